//! `select`: waiting on several channel operations at once (Go's select.go, `selectgo`).
//!
//! How it goes, as in Go:
//! 1. Put the cases in a random *poll order* (so that when several are ready each is chosen
//!    about equally often: Go's fairness) and in *lock order*, by the address of the
//!    channel's lock (so that two selects over the same channels never lock them in opposite
//!    orders and deadlock). Take every lock, each channel once.
//! 2. In poll order, complete the first case that can proceed without blocking. With a
//!    `default`, if none can, unlock and return `None`.
//! 3. Otherwise enqueue one sudog per case (on each channel's send or receive queue), all
//!    pointing at one [`SelWait`] on this goroutine's stack, and park; g0 releases the locks
//!    once the goroutine is off its stack. The first peer that takes one of these sudogs off a
//!    queue claims the `SelWait` (an atomic swap, Go's `selectDone`), completes that case and
//!    readies us; later peers that find our other sudogs skip them.
//! 4. Woken: lock all again, take our sudogs off every other channel, unlock, and report the
//!    case that won.
//!
//! Invariants: a select's sudogs are queued only while it is parked, and only the holder of a
//! channel's lock touches that channel's queues; after waking, the goroutine cannot leave
//! `select` (so its stack, where the sudogs and `SelWait` live, stays put) before it has
//! re-taken every lock, which g0 releases last.
//!
//! Nothing on this path allocates: the sudogs live in the cases and the `SelWait`, the poll
//! order, the lock order and the lock list on the selecting goroutine's stack (which never
//! moves, so what g0 and the peers read there stays valid while the goroutine is parked).
//!
//! Nil channels: a case may be disabled (an `Option` channel that is `None`, see
//! [`IntoCaseChan`]; [`Case::enabled`]). Disabled cases are left out of the poll and lock
//! orders, as Go leaves out cases without a channel: never chosen, never queued. A select
//! with no enabled case and no `default` parks for ever (Go's `select {}`), which
//! `checkdead` reports as a deadlock when nothing else can run.
//!
//! Use it through [`crate::select!`] (a fixed set of cases), or [`Select`] and [`recv_any`]
//! (a list of cases built at run time, Go's loop over `[]chan T`); [`select_array`] (what
//! the macro calls) and [`select`] run the engine, `selectgo`.

use alloc::vec::Vec;
#[cfg(not(loom))]
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::chan::{Chan, RecvCase, SendCase};
use crate::g::{WaitReason, G};
use crate::m::getg;
use crate::park::{gopark, goready};

/// What one case found when polled.
pub enum Poll {
    /// Done (a value sent or received, or a receive from a closed channel); the goroutine
    /// to ready, if a blocked peer was completed.
    Ready(Option<*mut G>),
    /// A send on a closed channel: `select` panics, as Go does.
    Closed,
    NotReady,
}

/// The claim on a parked select (Go's `g.selectDone` and the index of the case that won): the
/// first waker to find one of its sudogs takes it, and with it the right to complete that
/// case and ready the goroutine; every later waker skips the select's other sudogs.
///
/// Invariants: `done` goes from false to true once, by the winner's atomic swap; `won` is
/// written only by that winner, before it readies the goroutine, which reads it after waking.
///
/// It is the whole atomic protocol of the claim, so that the loom model
/// (`tests/loom_select.rs`) checks the code the runtime runs; with `ATOMIC = false` (built only
/// under `--cfg loom`, by [`Claim::new_broken`]) the claim is a load and then a store, the bug
/// the model must catch. The runtime uses `Claim` (`ATOMIC = true`).
pub struct Claim<const ATOMIC: bool = true> {
    done: AtomicBool,
    won: AtomicUsize,
}

impl Claim {
    pub fn new() -> Self {
        Claim {
            done: AtomicBool::new(false),
            won: AtomicUsize::new(usize::MAX),
        }
    }
}

impl Default for Claim {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(loom)]
impl Claim<false> {
    /// The broken claim, for the loom model only: it tests `done` and then sets it.
    pub fn new_broken() -> Self {
        Claim {
            done: AtomicBool::new(false),
            won: AtomicUsize::new(usize::MAX),
        }
    }
}

impl<const ATOMIC: bool> Claim<ATOMIC> {
    /// A waker that took case `case`'s sudog off its queue (chan.rs `WaitQ::dequeue`, under
    /// that channel's lock): true if it is the first, and so must complete the case and ready
    /// the goroutine; false if another case already won (the sudog is dropped).
    pub fn try_claim(&self, case: usize) -> bool {
        if ATOMIC {
            if self.done.swap(true, Ordering::AcqRel) {
                return false;
            }
        } else {
            if self.done.load(Ordering::Acquire) {
                return false;
            }
            self.done.store(true, Ordering::Release);
        }
        self.won.store(case, Ordering::Relaxed);
        true
    }

    /// The case that won, read by the selecting goroutine once readied (the waker's
    /// `goready` orders its store before this); `usize::MAX` if none did.
    pub fn won(&self) -> usize {
        self.won.load(Ordering::Acquire)
    }
}

/// The state a selecting goroutine's sudogs share: the claim, and its cases for the leak
/// finder.
pub struct SelWait {
    pub(crate) claim: Claim,
    /// The select's case list (a `[&mut dyn Case]` on its goroutine's stack) and its length,
    /// for the leak finder, which reaches it through a queued sudog's `sel`.
    pub(crate) cases: usize,
    pub(crate) ncases: usize,
}

/// One case of a select, type-erased (the channels' element types differ).
///
/// # Safety
/// Implementors: `poll`, `enqueue` and `dequeue` touch the channel only while its lock is
/// held by the caller (taken with `lock`); `unlock_fn(self)(self.lock_addr())` releases it.
/// Callers hold the lock around those three.
pub unsafe trait Case {
    /// The address of the channel's lock: the lock order, and what identifies the channel.
    fn lock_addr(&self) -> usize;
    /// Where the channel's lock comes in the lock order: `(order, lock_addr)`, where `order`
    /// is 0 except in a deterministic run (platform.rs `chan_order`).
    fn lock_order(&self) -> (u64, usize);
    /// Whether the case has a channel (false: Go's nil channel, never chosen; `select` then
    /// calls none of the methods below).
    fn enabled(&self) -> bool {
        true
    }
    /// For the leak finder (leak.rs), called while the select is parked and its channels'
    /// locks are held: the channel, the handle the case borrows, and whether its sudog is
    /// queued. `None` (the default): the finder never reports a goroutine waiting on it.
    fn leak_probe(&self) -> Option<Probe> {
        None
    }
    /// Takes the channel's lock (counted in the M's `locks`, like `Mutex::raw_lock`).
    fn lock(&self);
    /// The function that releases a lock of this channel type, given its address.
    ///
    /// # Safety
    /// Call the result only on this case's `lock_addr` while it is held.
    unsafe fn unlock_fn(&self) -> unsafe fn(usize);
    /// Tries to complete the operation without blocking.
    ///
    /// # Safety
    /// The channel lock is held.
    unsafe fn poll(&mut self) -> Poll;
    /// Queues this case's sudog for `gp`, tagged with `sel` and `case`.
    ///
    /// # Safety
    /// The channel lock is held; `self` stays in place until `dequeue` or a peer takes it.
    unsafe fn enqueue(&mut self, gp: *mut G, sel: *const SelWait, case: usize);
    /// Takes this case's sudog off its queue if it is still there.
    ///
    /// # Safety
    /// The channel lock is held.
    unsafe fn dequeue(&mut self);
    /// This case won while we were parked: collect its result. False for a send that was
    /// woken by `close` (the caller panics).
    fn won(&mut self) -> bool;
}

/// What the leak finder knows of an enabled case ([`Case::leak_probe`]).
pub struct Probe {
    /// The channel's identity (its `HChan`'s address).
    pub(crate) chan: usize,
    /// The address of the channel handle the case borrows.
    pub(crate) handle: usize,
    /// Whether the case's sudog is on the channel's queue.
    pub(crate) queued: bool,
}

/// One lock to release: its address and the function that releases a lock of its type.
type HeldLock = (usize, unsafe fn(usize));

/// The locks to release, in lock order, for g0 (read from the parked goroutine's stack).
struct Held<'a> {
    locks: &'a [HeldLock],
}

fn lock_all(cases: &[&mut dyn Case], order: &[usize]) {
    let mut last = 0;
    for &i in order {
        let a = cases[i].lock_addr();
        if a != last {
            cases[i].lock();
            last = a;
        }
    }
}

fn unlock_all(held: &Held) {
    for &(addr, f) in held.locks {
        // SAFETY: each distinct lock was taken by lock_all, once.
        unsafe { f(addr) };
    }
}

/// g0's side of parking in `select` (Go's `selparkcommit`): release every lock. The goroutine
/// may be readied as soon as the first is released, but it cannot leave `select` until it has
/// taken them all again, so `Held` and its locks (on its stack) stay valid until the last
/// unlock, after which they are not touched.
fn selparkcommit(_gp: *mut G, arg: usize) -> bool {
    // SAFETY: `arg` points to the parked goroutine's `Held` (see above).
    let locks = unsafe { (*(arg as *const Held)).locks };
    // After the last unlock the iterator only compares its pointers (it reads no element).
    for &(addr, f) in locks {
        // SAFETY: taken by the goroutine's lock_all; after the last one, `locks` is dead.
        unsafe { f(addr) };
    }
    true
}

/// A placeholder for the unused slots of a select's lock list.
unsafe fn no_unlock(_: usize) {}

/// A random number from the current M (Go's `cheaprand`).
fn rand() -> u32 {
    let m = crate::m::acquire_current_m();
    let r = if m.is_null() {
        // Outside a runtime: any spread will do.
        (crate::platform::get().nanotime() as u32).wrapping_mul(0x9e37_79b9)
    } else {
        // SAFETY: the current M, pinned by acquire_current_m.
        unsafe { crate::m::cheaprand(m) }
    };
    crate::m::release_m(m);
    r
}

/// Cases up to which [`select`] keeps its scratch space on the stack (beyond, it allocates).
const INLINE_CASES: usize = 16;

/// Runs a select over `cases`. Returns the index of the case that completed, or `None` if
/// `block` is false and no case was ready (Go's `default`). With no cases and `block`, the
/// goroutine waits forever (Go's `select {}`).
///
/// The poll order, lock order and lock list live on the goroutine's stack for up to 16 cases
/// (more allocate them); [`select_array`], which `select!` uses, never allocates.
///
/// # Panics
/// "send on closed channel", if the chosen case is a send on a closed channel.
pub fn select(cases: &mut [&mut dyn Case], block: bool) -> Option<usize> {
    let n = cases.len();
    if n <= INLINE_CASES {
        let mut poll = [0usize; INLINE_CASES];
        let mut order = [0usize; INLINE_CASES];
        let mut locks: [HeldLock; INLINE_CASES] = [(0, no_unlock); INLINE_CASES];
        selectgo(
            cases,
            block,
            &mut poll[..n],
            &mut order[..n],
            &mut locks[..n],
        )
    } else {
        let mut poll = alloc::vec![0usize; n];
        let mut order = alloc::vec![0usize; n];
        let mut locks: Vec<HeldLock> = alloc::vec![(0, no_unlock); n];
        selectgo(cases, block, &mut poll, &mut order, &mut locks)
    }
}

/// [`select`] over a fixed number of cases, its scratch space always on the goroutine's stack
/// (the goroutine's stack never moves, so it stays valid while the goroutine is parked): no
/// heap allocation whatever the number of cases. Go's compiler likewise gives `selectgo` its
/// arrays in the caller's frame.
pub fn select_array<const N: usize>(cases: &mut [&mut dyn Case; N], block: bool) -> Option<usize> {
    let mut poll = [0usize; N];
    let mut order = [0usize; N];
    let mut locks: [HeldLock; N] = [(0, no_unlock); N];
    selectgo(cases, block, &mut poll, &mut order, &mut locks)
}

/// The engine (Go's `selectgo`): `poll`, `order` and `locks` are scratch space of
/// `cases.len()` entries each.
fn selectgo(
    cases: &mut [&mut dyn Case],
    block: bool,
    poll: &mut [usize],
    order: &mut [usize],
    locks: &mut [HeldLock],
) -> Option<usize> {
    let n = cases.len();
    // Disabled cases (Go's nil channels) are left out of both orders, as Go leaves out cases
    // without a channel: never polled, never queued, never locked.
    let mut k = 0;
    for (i, c) in cases.iter().enumerate() {
        if c.enabled() {
            poll[k] = i;
            k += 1;
        }
    }
    if k == 0 {
        if !block {
            return None;
        }
        if getg().is_null() {
            panic!("select with no cases outside a goroutine");
        }
        // Nothing can ever ready us (Go's `select {}`, or a select whose every channel is
        // nil): park for ever; `checkdead` reports it if nothing else can run.
        let reason = if n == 0 {
            WaitReason::SelectNoCases
        } else {
            WaitReason::Select
        };
        // SAFETY: gp is the running G (us).
        unsafe { crate::leak::record_never(getg()) };
        gopark(None, 0, reason);
        unreachable!("a select with no enabled cases was readied");
    }
    let poll = &mut poll[..k];
    let order = &mut order[..k];
    // Poll order: a random permutation (Fisher-Yates).
    for i in (1..k).rev() {
        let j = rand() as usize % (i + 1);
        poll.swap(i, j);
    }
    // Lock order: by lock address, after the channel's `order` (0 but in a deterministic
    // run; a handful of cases: insertion sort).
    order.copy_from_slice(poll);
    for i in 1..k {
        let mut j = i;
        while j > 0 && cases[order[j - 1]].lock_order() > cases[order[j]].lock_order() {
            order.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut nlocks = 0;
    for &i in order.iter() {
        let a = cases[i].lock_addr();
        if nlocks == 0 || locks[nlocks - 1].0 != a {
            // SAFETY: the function matches this case's channel type.
            locks[nlocks] = (a, unsafe { cases[i].unlock_fn() });
            nlocks += 1;
        }
    }
    let held = Held {
        locks: &locks[..nlocks],
    };
    let order: &[usize] = order;

    lock_all(cases, order);
    for &i in poll.iter() {
        // SAFETY: all locks are held.
        match unsafe { cases[i].poll() } {
            Poll::Ready(g) => {
                unlock_all(&held);
                if let Some(gp) = g {
                    // SAFETY: the peer's sudog was taken off its queue under the lock.
                    unsafe { goready(gp) };
                }
                return Some(i);
            }
            Poll::Closed => {
                unlock_all(&held);
                panic!("send on closed channel");
            }
            Poll::NotReady => {}
        }
    }
    if !block {
        unlock_all(&held);
        return None;
    }
    let gp = getg();
    if gp.is_null() {
        unlock_all(&held);
        panic!("select would block outside a goroutine");
    }
    let sel = SelWait {
        claim: Claim::new(),
        cases: cases.as_ptr() as usize,
        ncases: n,
    };
    for &i in order {
        // SAFETY: all locks are held; `cases` stays borrowed (in place) until we return.
        unsafe { cases[i].enqueue(gp, &sel, i) };
    }
    // For the leak finder: one of our channels (0: a case it cannot see) and our cases.
    let first = cases[order[0]].leak_probe().map_or(0, |p| p.chan);
    // SAFETY: gp is the running G (us); the cases stay in place while we are parked.
    unsafe { crate::leak::record_chan(gp, first) };
    gopark(
        Some(selparkcommit),
        &held as *const Held as usize,
        WaitReason::Select,
    );
    // Readied by the peer that claimed `sel`.
    let won = sel.claim.won();
    if won >= n {
        crate::platform::fatal(format_args!("select woken without a winning case"));
    }
    lock_all(cases, order);
    for &i in order {
        if i != won {
            // SAFETY: all locks are held.
            unsafe { cases[i].dequeue() };
        }
    }
    unlock_all(&held);
    if !cases[won].won() {
        panic!("send on closed channel");
    }
    Some(won)
}

/// What a `select` case may name as its channel: a channel, or an `Option` of one, where
/// `None` is Go's nil channel (the case is never chosen). [`crate::select!`]'s `recv(ch)` and
/// `send(ch, v)` take `ch` as a `Chan<T>`, `&Chan<T>`, `Option<&Chan<T>>` or
/// `Option<Chan<T>>` (the macro borrows it); [`Select::recv`] and [`Select::send`] take
/// `&Chan<T>`, `Option<&Chan<T>>`, `&Option<Chan<T>>` or `&Option<&Chan<T>>`.
pub trait IntoCaseChan<'a> {
    /// The channel's element type.
    type Elem;
    /// The channel, or `None` for a disabled case.
    fn into_case_chan(self) -> Option<&'a Chan<Self::Elem>>;
}

impl<'a, T> IntoCaseChan<'a> for &'a Chan<T> {
    type Elem = T;
    fn into_case_chan(self) -> Option<&'a Chan<T>> {
        Some(self)
    }
}

impl<'a, T> IntoCaseChan<'a> for Option<&'a Chan<T>> {
    type Elem = T;
    fn into_case_chan(self) -> Option<&'a Chan<T>> {
        self
    }
}

impl<'a, T> IntoCaseChan<'a> for &'a Option<Chan<T>> {
    type Elem = T;
    fn into_case_chan(self) -> Option<&'a Chan<T>> {
        self.as_ref()
    }
}

impl<'a, 'b: 'a, T> IntoCaseChan<'a> for &'a Option<&'b Chan<T>> {
    type Elem = T;
    fn into_case_chan(self) -> Option<&'a Chan<T>> {
        *self
    }
}

/// A reference to any of the above (the macro's `&ch` of a `&Chan<T>`, say).
impl<'a, 'b: 'a, C: ?Sized> IntoCaseChan<'a> for &'a &'b C
where
    &'b C: IntoCaseChan<'b>,
{
    type Elem = <&'b C as IntoCaseChan<'b>>::Elem;
    fn into_case_chan(self) -> Option<&'a Chan<Self::Elem>> {
        (*self).into_case_chan()
    }
}

/// One case of a [`Select`].
enum DynCase<'a, T> {
    Recv(RecvCase<'a, T>),
    Send(SendCase<'a, T>),
}

impl<'a, T: Send> DynCase<'a, T> {
    fn as_case(&mut self) -> &mut dyn Case {
        match self {
            DynCase::Recv(c) => c,
            DynCase::Send(c) => c,
        }
    }
}

/// The case a [`Select`] chose: its index (the order the cases were added in) and, for a
/// receive, the value (`None`: the channel is closed; always `None` for a send).
#[derive(Debug, PartialEq, Eq)]
pub struct Selected<T> {
    pub index: usize,
    pub value: Option<T>,
}

/// A `select` over a list of cases built at run time (Go: a `select` over a slice of
/// channels, or `reflect.Select`), with Go's uniform choice among the cases that are ready.
/// All cases carry one element type `T`, as a Go loop over `[]chan T` does; for mixed types,
/// use [`crate::select!`] or [`select`] with your own cases.
///
/// ```ignore
/// let mut inputs: Vec<Option<Chan<u64>>> = ...;
/// while inputs.iter().any(Option::is_some) {
///     let mut s = Select::new();
///     for c in &inputs {
///         s.recv(c); // a None (closed input) is a disabled case: indices stay aligned
///     }
///     match s.wait() {
///         Selected { index, value: Some(v) } => use_it(index, v),
///         Selected { index, value: None } => inputs[index] = None,
///     }
/// }
/// ```
///
/// A `Select` may be waited on again: the cases stay, except that a send case that sent has
/// no value left and is disabled. Building one allocates (its case list, and the engine's
/// scratch space beyond 16 cases); [`crate::select!`] never does.
pub struct Select<'a, T> {
    cases: Vec<DynCase<'a, T>>,
}

impl<T: Send> Default for Select<'_, T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a, T: Send> Select<'a, T> {
    pub fn new() -> Self {
        Select { cases: Vec::new() }
    }

    /// Room for `n` cases.
    pub fn with_capacity(n: usize) -> Self {
        Select {
            cases: Vec::with_capacity(n),
        }
    }

    /// Adds a receive case; returns its index. A `None` channel makes a disabled case.
    pub fn recv(&mut self, ch: impl IntoCaseChan<'a, Elem = T>) -> usize {
        self.cases
            .push(DynCase::Recv(RecvCase::new_opt(ch.into_case_chan())));
        self.cases.len() - 1
    }

    /// Adds a send case of `v`; returns its index. A `None` channel makes a disabled case
    /// (`v` is dropped unsent with the `Select`).
    pub fn send(&mut self, ch: impl IntoCaseChan<'a, Elem = T>, v: T) -> usize {
        self.cases
            .push(DynCase::Send(SendCase::new_opt(ch.into_case_chan(), v)));
        self.cases.len() - 1
    }

    /// Disables case `i` (Go: sets its channel to nil); a send's value is dropped.
    pub fn disable(&mut self, i: usize) {
        match &mut self.cases[i] {
            DynCase::Recv(c) => c.disable(),
            DynCase::Send(c) => c.disable(),
        }
    }

    /// How many cases (enabled or not) the select has.
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }

    /// Blocks until a case can proceed, and runs it; with several ready, each is equally
    /// likely. With no enabled case, blocks for ever (Go's `select` on nil channels only).
    ///
    /// # Panics
    /// "send on closed channel", if the chosen case is a send on a closed channel.
    pub fn wait(&mut self) -> Selected<T> {
        self.run(true).expect("a blocking select returned no case")
    }

    /// Runs a case that can proceed now, if any (Go's `select` with a `default`).
    pub fn try_wait(&mut self) -> Option<Selected<T>> {
        self.run(false)
    }

    fn run(&mut self, block: bool) -> Option<Selected<T>> {
        for c in &mut self.cases {
            match c {
                DynCase::Recv(c) => c.rearm(),
                DynCase::Send(c) => c.rearm(),
            }
        }
        let mut dyns: Vec<&mut dyn Case> = self.cases.iter_mut().map(|c| c.as_case()).collect();
        let index = select(&mut dyns, block)?;
        drop(dyns);
        let value = match &mut self.cases[index] {
            DynCase::Recv(c) => c.take(),
            DynCase::Send(_) => None,
        };
        Some(Selected { index, value })
    }
}

/// Receives from whichever of `chans` has a value first, choosing uniformly among those
/// ready: the index and the value (`None`: that channel is closed and drained). The entries
/// are `&Chan<T>` or `Option<&Chan<T>>` (or references to them: `recv_any(&vec)` of a
/// `Vec<&Chan<T>>`, `Vec<Option<Chan<T>>>`, ...), where `None` is Go's nil channel, never
/// chosen; with none enabled, blocks for ever.
pub fn recv_any<'a, I, T: Send + 'a>(chans: I) -> (usize, Option<T>)
where
    I: IntoIterator,
    I::Item: IntoCaseChan<'a, Elem = T>,
{
    let r = recv_cases(chans).wait();
    (r.index, r.value)
}

/// [`recv_any`] that never blocks: `None` if no channel is ready (Go's `default`).
pub fn try_recv_any<'a, I, T: Send + 'a>(chans: I) -> Option<(usize, Option<T>)>
where
    I: IntoIterator,
    I::Item: IntoCaseChan<'a, Elem = T>,
{
    recv_cases(chans).try_wait().map(|r| (r.index, r.value))
}

/// A [`Select`] with a receive case on each of `chans`, in order.
fn recv_cases<'a, I, T: Send + 'a>(chans: I) -> Select<'a, T>
where
    I: IntoIterator,
    I::Item: IntoCaseChan<'a, Elem = T>,
{
    let mut s = Select::new();
    for c in chans {
        s.recv(c);
    }
    s
}

/// Go's `select` statement:
///
/// ```ignore
/// select! {
///     recv(ch) -> v => { /* v: Option<T>, None if ch is closed */ },
///     send(out, 42) => { /* sent */ },
///     recv(rt_core::time::after(Duration::from_millis(10))) -> _ => { /* timed out */ },
///     default => { /* nothing was ready (optional) */ },
/// }
/// ```
///
/// Cases are `recv(chan) -> pattern => expr`, `send(chan, value) => expr`, and at most one
/// `default => expr` (last). The value is that of the chosen case's expression.
///
/// `chan` is anything [`select::IntoCaseChan`](crate::select::IntoCaseChan) takes: a `Chan<T>`,
/// a reference to one, or an `Option` of either, where `None` is Go's nil channel: the case is
/// never chosen (Go's idiom for an input that is finished). A disabled send's value is
/// evaluated, as Go evaluates it, and dropped unsent. With every case disabled and no
/// `default`, the select blocks for ever (Go), which `checkdead` reports as a deadlock if
/// nothing else can run; with a `default`, it takes the default.
#[macro_export]
macro_rules! select {
    // Munch one case at a time, each in its own block so each `__case` is a distinct binding;
    // the idents travel on in `[$($done)*]` with their hygiene, so the final step can name them.
    (@go [$($done:tt)*] recv($ch:expr) -> $p:pat => $body:expr $(, $($rest:tt)*)?) => {{
        // `let x = &expr;` extends a temporary's life (e.g. `after(d)`) to the block.
        let __ch = &$ch;
        let mut __case = $crate::chan::RecvCase::new_opt($crate::select::IntoCaseChan::into_case_chan(__ch));
        $crate::select!(@go [$($done)* (recv __case $p => $body)] $($($rest)*)?)
    }};
    (@go [$($done:tt)*] send($ch:expr, $v:expr) => $body:expr $(, $($rest:tt)*)?) => {{
        let __ch = &$ch;
        let mut __case = $crate::chan::SendCase::new_opt($crate::select::IntoCaseChan::into_case_chan(__ch), $v);
        $crate::select!(@go [$($done)* (send __case => $body)] $($($rest)*)?)
    }};
    (@go [$($done:tt)*] default => $body:expr $(,)?) => {
        $crate::select!(@run false [$($done)*] $body)
    };
    (@go [$($done:tt)*]) => {
        $crate::select!(@run true [$($done)*] ::core::unreachable!("select returned no case"))
    };
    (@run $block:tt [$(($kind:ident $case:ident $($p:pat)? => $body:expr))*] $default:expr) => {{
        let __chosen = $crate::select::select_array(&mut [$(&mut $case as &mut dyn $crate::select::Case),*], $block);
        let _ = __chosen;
        $crate::select!(@arms [$(($kind $case $($p)? => $body))*] $default)
    }};
    (@arms [(recv $case:ident $p:pat => $body:expr) $($rest:tt)*] $default:expr) => {
        if $case.chosen() {
            let $p = $case.take();
            $body
        } else {
            $crate::select!(@arms [$($rest)*] $default)
        }
    };
    (@arms [(send $case:ident => $body:expr) $($rest:tt)*] $default:expr) => {
        if $case.chosen() {
            $body
        } else {
            $crate::select!(@arms [$($rest)*] $default)
        }
    };
    (@arms [] $default:expr) => {
        $default
    };
    ($($cases:tt)*) => {
        $crate::select!(@go [] $($cases)*)
    };
}

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
//! Use it through [`crate::select!`]; [`select_array`] (what the macro calls) and [`select`]
//! run the engine, `selectgo`.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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

/// The state a selecting goroutine's sudogs share (Go's `g.selectDone` and the index of the
/// case that won).
pub struct SelWait {
    pub(crate) done: AtomicBool,
    pub(crate) won: AtomicUsize,
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
    if n == 0 {
        if !block {
            return None;
        }
        if getg().is_null() {
            panic!("select with no cases outside a goroutine");
        }
        gopark(None, 0, WaitReason::SelectNoCases);
        unreachable!("a select with no cases was readied");
    }
    // Poll order: a random permutation (Fisher-Yates).
    for (i, p) in poll.iter_mut().enumerate() {
        *p = i;
    }
    for i in (1..n).rev() {
        let j = rand() as usize % (i + 1);
        poll.swap(i, j);
    }
    // Lock order: by lock address (a handful of cases: insertion sort).
    for (i, o) in order.iter_mut().enumerate() {
        *o = i;
    }
    for i in 1..n {
        let mut j = i;
        while j > 0 && cases[order[j - 1]].lock_addr() > cases[order[j]].lock_addr() {
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
        done: AtomicBool::new(false),
        won: AtomicUsize::new(usize::MAX),
    };
    for &i in order {
        // SAFETY: all locks are held; `cases` stays borrowed (in place) until we return.
        unsafe { cases[i].enqueue(gp, &sel, i) };
    }
    gopark(
        Some(selparkcommit),
        &held as *const Held as usize,
        WaitReason::Select,
    );
    // Readied by the peer that claimed `sel`.
    let won = sel.won.load(Ordering::Acquire);
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
#[macro_export]
macro_rules! select {
    // Munch one case at a time, each in its own block so each `__case` is a distinct binding;
    // the idents travel on in `[$($done)*]` with their hygiene, so the final step can name them.
    (@go [$($done:tt)*] recv($ch:expr) -> $p:pat => $body:expr $(, $($rest:tt)*)?) => {{
        // `let x = &expr;` extends a temporary's life (e.g. `after(d)`) to the block.
        let __ch = &$ch;
        let mut __case = $crate::chan::RecvCase::new(__ch);
        $crate::select!(@go [$($done)* (recv __case $p => $body)] $($($rest)*)?)
    }};
    (@go [$($done:tt)*] send($ch:expr, $v:expr) => $body:expr $(, $($rest:tt)*)?) => {{
        let __ch = &$ch;
        let mut __case = $crate::chan::SendCase::new(__ch, $v);
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

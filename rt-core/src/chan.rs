//! Channels: Go's `hchan` (chan.go), typed, with `Clone`able handles.
//!
//! A channel is a lock, a ring buffer of `cap` values (none for an unbuffered channel), a
//! `closed` flag and two queues of blocked goroutines: senders waiting for room or a receiver
//! (`sendq`), receivers waiting for a value (`recvq`). A blocked goroutine waits in a
//! [`Sudog`] on its own stack (Go's `sudog`), which names the goroutine and holds the value
//! being sent, or the slot a value is received into. The queues ([`WaitQ`], Go's `waitq`) are
//! linked through the sudogs themselves, so queueing, taking the first and unlinking any one
//! (a `select` leaving a channel it did not win) are O(1), and blocking never allocates.
//!
//! The rules, as in Go:
//! - a send to a waiting receiver hands the value over directly (no buffer in between), and
//!   readies the receiver; otherwise it goes into the buffer if there is room; otherwise the
//!   sender blocks until a receiver takes the value or the channel is closed (then it panics);
//! - a receive from a full buffer with a blocked sender takes the oldest value and moves the
//!   sender's value into the buffer (FIFO order holds); from an unbuffered channel it takes
//!   the sender's value directly; from a closed, drained channel it returns `None` at once;
//! - `close` wakes every blocked receiver (they get `None`) and every blocked sender (they
//!   panic: "send on closed channel"); closing twice panics: "close of closed channel".
//!
//! Invariants (under the lock): `recvq` is non-empty only while the buffer is empty; `sendq`
//! is non-empty only while the buffer is full; both are empty once the channel is closed.
//! A sudog is on at most one queue (`queued`), its links (`next`, `prev`) are written only
//! under that queue's channel lock, and the goroutine that owns it is parked while it is; the
//! waker fills it, takes it off the queue and readies the goroutine, all decided under the
//! lock, so exactly one party completes each operation.
//!
//! A timer's channel (time.rs: `after`, `new_timer`, `new_ticker`) carries its timer
//! (`HChan::timer`, Go's `hchan.timer`): a receiver blocked on it (`recv`, or a `select` case
//! while parked) makes the timer live for deadlock detection, and a receiver that finds it
//! empty past the deadline fires a one-shot timer itself (Go 1.23's `maybeRunChan`). The
//! channel's lock is also its timer's lock: firing, stopping and resetting the timer happen
//! under it (`Chan::timer_locked`), so a value of an old arming is never sent after a stop
//! or reset, and one sent but not received is removed by it (Go 1.23's synchronous timer
//! channels).
//!
//! Blocking uses [`gopark`] with the channel's lock released by g0 after the goroutine is
//! parked (Go's `chanparkcommit`), which closes the lost-wake-up race.
//!
//! For the leak finder (leak.rs): a goroutine about to block records the channel in its G
//! and the handle it borrows (`&self`) in its sudog (a select's cases: in its `SelWait`); every `HChan` begins with its
//! type's [`ChanOps`] (`repr(C)`), through which the finder locks and reads a channel it
//! knows only by address; and an `HChan` is freed only while no finder is looking.

use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};
use core::fmt;

use crate::g::{WaitReason, G};
use crate::lock::Mutex;
use crate::m::getg;
use crate::park::{gopark, goready};
use crate::select::{Case, Poll, SelWait};
use crate::time::ChanTimer;

/// A blocked sender or receiver (Go's `sudog`), on the blocked goroutine's stack.
pub(crate) struct Sudog<T> {
    g: *mut G,
    /// A sender's value (taken by the receiver); a receiver's slot (filled by the sender).
    elem: Option<T>,
    /// Woken by a completed operation (true) or by `close` (false). Go's `sudog.success`.
    success: bool,
    /// For a goroutine blocked in `select`: the select it waits in (null otherwise), shared by
    /// its sudogs on every channel; the first waker to claim it wins (Go's `g.selectDone`).
    sel: *const SelWait,
    /// Which case of that select this sudog stands for.
    case: usize,
    /// For a plain send or receive: the address of the handle the goroutine borrows (`&self`),
    /// for the leak finder.
    handle: usize,
    /// The links of the wait queue the sudog is on (Go's `sudog.next`/`prev`), and whether it
    /// is on one: written only under the lock of the channel that owns that queue.
    next: *mut Sudog<T>,
    prev: *mut Sudog<T>,
    queued: bool,
}

impl<T> Sudog<T> {
    const fn new(g: *mut G, elem: Option<T>) -> Self {
        Sudog {
            g,
            elem,
            success: false,
            sel: core::ptr::null(),
            case: 0,
            handle: 0,
            next: core::ptr::null_mut(),
            prev: core::ptr::null_mut(),
            queued: false,
        }
    }
}

/// A channel's queue of blocked senders or receivers (Go's `waitq`): an intrusive doubly-linked
/// list through the sudogs, so that queueing at the back, taking the first and unlinking any
/// one (a select leaving the channels it did not win) are each O(1) and never allocate.
struct WaitQ<T> {
    first: *mut Sudog<T>,
    last: *mut Sudog<T>,
    len: usize,
    /// Sudogs this queue has visited (taken off, skipped or unlinked) since the channel was
    /// made: the measure that tests use to check that removal does not walk the queue.
    visits: u64,
}

impl<T> WaitQ<T> {
    const fn new() -> Self {
        WaitQ {
            first: core::ptr::null_mut(),
            last: core::ptr::null_mut(),
            len: 0,
            visits: 0,
        }
    }

    /// Queues `sg` at the back (Go's `waitq.enqueue`).
    ///
    /// # Safety
    /// `sg` is on no queue and stays in place (its owner parked) until it is taken off.
    unsafe fn push_back(&mut self, sg: *mut Sudog<T>) {
        // SAFETY: the caller's promise for `sg`; `last`, if any, is a queued sudog of a parked
        // goroutine (valid while queued).
        unsafe {
            (*sg).next = core::ptr::null_mut();
            (*sg).prev = self.last;
            (*sg).queued = true;
            if self.last.is_null() {
                self.first = sg;
            } else {
                (*self.last).next = sg;
            }
        }
        self.last = sg;
        self.len += 1;
    }

    /// Unlinks `sg` if it is on this queue (Go's `dequeueSudoG`): O(1), from its own links.
    ///
    /// # Safety
    /// `sg` is valid, and on this queue or on none.
    unsafe fn remove(&mut self, sg: *mut Sudog<T>) {
        // SAFETY: the caller's promise; its neighbours are queued sudogs (valid while queued).
        unsafe {
            if !(*sg).queued {
                return;
            }
            self.visits += 1;
            let (prev, next) = ((*sg).prev, (*sg).next);
            if prev.is_null() {
                self.first = next;
            } else {
                (*prev).next = next;
            }
            if next.is_null() {
                self.last = prev;
            } else {
                (*next).prev = prev;
            }
            (*sg).next = core::ptr::null_mut();
            (*sg).prev = core::ptr::null_mut();
            (*sg).queued = false;
        }
        self.len -= 1;
    }

    /// Takes the first sudog off the queue, whoever it belongs to.
    fn pop_front(&mut self) -> Option<*mut Sudog<T>> {
        let sg = self.first;
        if sg.is_null() {
            return None;
        }
        // SAFETY: `sg` is on this queue.
        unsafe { self.remove(sg) };
        Some(sg)
    }

    /// Takes the first sudog off the queue whose goroutine can still be woken by it: a sudog
    /// of a `select` that another channel already won is dropped (Go's `waitq.dequeue`), and
    /// winning one records which case won.
    fn dequeue(&mut self) -> Option<*mut Sudog<T>> {
        while let Some(sg) = self.pop_front() {
            // SAFETY: a sudog that was queued belongs to a parked goroutine and stays valid
            // until its owner is readied (its owner's `select` takes its other sudogs off
            // their queues under those channels' locks before leaving).
            unsafe {
                let sel = (*sg).sel;
                if !sel.is_null() && !(*sel).claim.try_claim((*sg).case) {
                    continue;
                }
            }
            return Some(sg);
        }
        None
    }
}

struct State<T> {
    buf: VecDeque<T>,
    closed: bool,
    recvq: WaitQ<T>,
    sendq: WaitQ<T>,
}

/// `repr(C)`, so that `ops` is at offset 0 whatever `T`: the leak finder (leak.rs) reaches a
/// channel it knows only by address through it.
#[repr(C)]
struct HChan<T> {
    /// This channel type's functions for the leak finder.
    ops: &'static ChanOps,
    cap: usize,
    /// Orders this channel's lock before its address does (`platform::chan_order`).
    order: u64,
    state: Mutex<State<T>>,
    /// For a timer's channel (time.rs: `after`, `new_timer`), the timer (Go's `hchan.timer`):
    /// receivers that block on the channel make it live, and a receiver that finds the channel
    /// empty past the deadline fires it.
    timer: Option<TimerLink<T>>,
}

/// A channel's functions for the leak finder (leak.rs), which knows a channel only by the
/// address of its `HChan<T>` (the `Arc`'s data): the first field of every `HChan`.
pub(crate) struct ChanOps {
    /// The lock's address (with `order`, the order select and the finder take locks in).
    pub(crate) lock_addr: unsafe fn(usize) -> usize,
    /// The channel's `order` (`platform::chan_order`).
    pub(crate) order: unsafe fn(usize) -> u64,
    /// Takes the lock (`raw_lock`).
    pub(crate) lock: unsafe fn(usize),
    /// Releases it (`raw_unlock`).
    pub(crate) unlock: unsafe fn(usize),
    /// Under the lock: `gp`'s sudog on either queue, if it has one: the handle it borrows (a
    /// plain send or receive) or its select's [`SelWait`].
    pub(crate) queued: unsafe fn(usize, *mut G) -> Option<crate::leak::Waiting>,
    /// The handles (`Chan<T>` values) that exist: the `Arc`'s strong count.
    pub(crate) handles: unsafe fn(usize) -> usize,
}

/// The [`ChanOps`] of `HChan<T>`. In each, `p` is the address of a live `HChan<T>` (the
/// finder keeps channels from being freed while it looks: leak.rs).
impl<T: Send> HChan<T> {
    const OPS: &'static ChanOps = &ChanOps {
        lock_addr: Self::op_lock_addr,
        order: Self::op_order,
        lock: Self::op_lock,
        unlock: Self::op_unlock,
        queued: Self::op_queued,
        handles: Self::op_handles,
    };

    unsafe fn op_lock_addr(p: usize) -> usize {
        // SAFETY: the caller's promise (above).
        unsafe { &(*(p as *const Self)).state as *const Mutex<State<T>> as usize }
    }

    unsafe fn op_order(p: usize) -> u64 {
        // SAFETY: the caller's promise (above).
        unsafe { (*(p as *const Self)).order }
    }

    unsafe fn op_lock(p: usize) {
        // SAFETY: the caller's promise (above).
        unsafe { (*(p as *const Self)).state.raw_lock() }
    }

    unsafe fn op_unlock(p: usize) {
        // SAFETY: the caller's promise; it took the lock with `op_lock`.
        unsafe { (*(p as *const Self)).state.raw_unlock() }
    }

    unsafe fn op_queued(p: usize, gp: *mut G) -> Option<crate::leak::Waiting> {
        // SAFETY: the caller's promise, and it holds the lock, under which the queues'
        // sudogs (of parked goroutines) are valid.
        unsafe {
            let st = (*(p as *const Self)).state.get_locked();
            for q in [&st.sendq, &st.recvq] {
                let mut sg = q.first;
                while !sg.is_null() {
                    if (*sg).g == gp {
                        return Some(if (*sg).sel.is_null() {
                            crate::leak::Waiting::Single((*sg).handle)
                        } else {
                            crate::leak::Waiting::Select((*sg).sel)
                        });
                    }
                    sg = (*sg).next;
                }
            }
        }
        None
    }

    unsafe fn op_handles(p: usize) -> usize {
        // SAFETY: the caller's promise: `p` is an `Arc<HChan<T>>`'s data, alive; ManuallyDrop
        // keeps this from dropping a count it does not own: the count is only read.
        let a = core::mem::ManuallyDrop::new(unsafe { Arc::from_raw(p as *const Self) });
        // An armed timer (`after`, a timer, a ticker) will send on its channel from its heap
        // entry, which holds the channel only weakly: count it as one more handle, held by no
        // goroutine, so that the channel is never found dead while it can still fire.
        let timer = a.timer.as_ref().is_some_and(|tl| tl.t.armed());
        Arc::strong_count(&a) + timer as usize
    }
}

/// A channel is freed only when no leak finder is looking (leak.rs: a finder may hold the
/// address of a channel whose last handle is being dropped).
impl<T> Drop for HChan<T> {
    fn drop(&mut self) {
        crate::leak::wait_for_finders();
    }
}

/// A timer channel's timer, and how its firing time becomes the channel's value.
struct TimerLink<T> {
    t: Arc<ChanTimer>,
    value: fn(u64) -> T,
}

// SAFETY: the raw sudog pointers are only dereferenced under the lock by the one party that
// takes them off a queue, while their owner is parked; values of T move between goroutines,
// hence T: Send.
unsafe impl<T: Send> Send for HChan<T> {}
// SAFETY: as for `Send` above.
unsafe impl<T: Send> Sync for HChan<T> {}

/// A channel of `T` (Go's `chan T`). Clones are handles to the same channel.
pub struct Chan<T> {
    c: Arc<HChan<T>>,
}

impl<T> Clone for Chan<T> {
    fn clone(&self) -> Self {
        Chan { c: self.c.clone() }
    }
}

impl<T> fmt::Debug for Chan<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Chan(cap {})", self.c.cap)
    }
}

/// The largest allocation Go's runtime makes on amd64 (malloc.go `maxAlloc`: `1 << 48`, the
/// address bits the heap may use); `makechan` refuses a buffer larger than this.
const MAX_ALLOC: usize = 1 << 48;

/// Go's `make(chan T, cap)`: `cap == 0` is an unbuffered channel.
///
/// Panics with Go's words, `makechan: size out of range`, if the buffer (`cap` values of `T`)
/// overflows or exceeds [`MAX_ALLOC`] (chan.go `makechan`); a buffer in range that memory
/// cannot hold is a fatal `out of memory`, as Go's allocator makes it, never an abort.
pub fn make<T: Send>(cap: usize) -> Chan<T> {
    make_with(cap, None)
}

/// The channel of a timer (time.rs): one value of room, for the time it fires.
pub(crate) fn make_timer_chan(t: Arc<ChanTimer>) -> Chan<u64> {
    make_with(1, Some(TimerLink { t, value: |v| v }))
}

/// A timer channel under its lock (the timer's lock, time.rs): what firing, stopping and
/// resetting the timer may do to the channel. A woken receiver is readied once the lock is
/// released.
pub(crate) struct TimerSlot<'a> {
    ch: &'a Chan<u64>,
    st: &'a mut State<u64>,
    /// A receiver the send handed its value to, readied after the unlock.
    wake: Option<*mut G>,
}

impl TimerSlot<'_> {
    /// Sends `v` without blocking: to a waiting receiver, or into the buffer (one value of
    /// room). False if the buffer is full (a ticker's slow receiver: the tick is dropped) or
    /// the channel was closed.
    pub(crate) fn send(&mut self, v: u64) -> bool {
        debug_assert!(self.wake.is_none(), "one send per hold of a timer's lock");
        match self.ch.try_send_locked(self.st, v) {
            Ok(g) => {
                self.wake = g;
                true
            }
            Err(_) => false,
        }
    }

    /// Removes a value sent but not yet received (Go 1.23's `timerchandrain`); true if there
    /// was one.
    pub(crate) fn drain(&mut self) -> bool {
        let had = !self.st.buf.is_empty();
        self.st.buf.clear();
        had
    }
}

impl Chan<u64> {
    /// Runs `f` under the channel's lock, which for a timer's channel is the timer's lock
    /// (time.rs); then readies the receiver a send in `f` handed a value to, if any.
    pub(crate) fn timer_locked<R>(&self, f: impl FnOnce(&mut TimerSlot<'_>) -> R) -> R {
        let mut g = self.c.state.lock();
        let mut slot = TimerSlot {
            ch: self,
            st: &mut g,
            wake: None,
        };
        let r = f(&mut slot);
        let wake = slot.wake;
        drop(g);
        if let Some(gp) = wake {
            // SAFETY: gp's sudog was taken off recvq under the lock (try_send_locked): it is
            // parked and we are its only waker.
            unsafe { goready(gp) };
        }
        r
    }
}

/// A handle to a channel that does not keep it alive (a channel timer's heap entry, time.rs:
/// once nobody holds the timer's channel, nobody can receive from it, and its entry is dropped
/// and a ticker stops re-arming, as Go 1.23 collects unreferenced timers).
pub(crate) struct WeakChan<T> {
    c: Weak<HChan<T>>,
}

impl<T> Chan<T> {
    pub(crate) fn downgrade(&self) -> WeakChan<T> {
        WeakChan {
            c: Arc::downgrade(&self.c),
        }
    }
}

impl<T> WeakChan<T> {
    /// The channel, if a handle to it is still held somewhere.
    pub(crate) fn upgrade(&self) -> Option<Chan<T>> {
        self.c.upgrade().map(|c| Chan { c })
    }
}

fn make_with<T: Send>(cap: usize, timer: Option<TimerLink<T>>) -> Chan<T> {
    let bytes = core::mem::size_of::<T>().checked_mul(cap);
    if bytes.is_none_or(|b| b > MAX_ALLOC) {
        panic!("makechan: size out of range");
    }
    let mut buf = VecDeque::new();
    if buf.try_reserve_exact(cap).is_err() {
        crate::platform::fatal(format_args!(
            "runtime: out of memory: cannot allocate a {}-byte channel buffer",
            bytes.unwrap_or(0)
        ));
    }
    Chan {
        c: Arc::new(HChan {
            ops: HChan::<T>::OPS,
            cap,
            order: crate::platform::chan_order(),
            state: Mutex::new(State {
                buf,
                closed: false,
                recvq: WaitQ::new(),
                sendq: WaitQ::new(),
            }),
            timer,
        }),
    }
}

/// What a non-blocking send found (Go: `select` with a `default` case).
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// No receiver waiting and no room: the value comes back.
    Full(T),
    /// The channel is closed (a blocking send would panic): the value comes back.
    Closed(T),
}

/// What a non-blocking receive found.
#[derive(Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing to receive yet.
    Empty,
    /// Closed and drained.
    Closed,
}

impl<T: Send> Chan<T> {
    /// Go's `cap(ch)`.
    pub fn cap(&self) -> usize {
        self.c.cap
    }

    /// Go's `len(ch)`: values in the buffer.
    pub fn len(&self) -> usize {
        self.c.state.lock().buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Go's `ch <- v`. Blocks until a receiver takes `v` or the buffer has room.
    ///
    /// # Panics
    /// "send on closed channel", if the channel is or becomes closed.
    pub fn send(&self, v: T) {
        // A guard for the fast paths (it keeps the current M for the release); the blocking
        // path turns it into a raw hold for g0 to release.
        let mut g = self.c.state.lock();
        match self.try_send_locked(&mut g, v) {
            Ok(Some(gp)) => {
                drop(g);
                // SAFETY: gp's sudog was taken off recvq under the lock: it is parked and we
                // are its only waker.
                unsafe { goready(gp) };
            }
            Ok(None) => drop(g),
            Err(TrySendError::Closed(_)) => {
                drop(g);
                panic!("send on closed channel");
            }
            Err(TrySendError::Full(v)) => {
                let st = g.into_raw();
                let sg = self.block(st, |st| &mut st.sendq, Some(v), WaitReason::ChanSend);
                // Readied: a receiver took the value (success), or close woke us.
                if !sg.success {
                    panic!("send on closed channel");
                }
            }
        }
    }

    /// Blocks the calling goroutine in a sudog on one of the channel's queues until a peer
    /// completes its operation or `close` wakes it, and returns the sudog as the waker left it.
    /// The caller holds the lock as `raw_lock` does; g0 releases it once the goroutine is
    /// parked.
    fn block(
        &self,
        st: &mut State<T>,
        queue: fn(&mut State<T>) -> &mut WaitQ<T>,
        elem: Option<T>,
        reason: WaitReason,
    ) -> Sudog<T> {
        let lock = &self.c.state;
        let gp = getg();
        if gp.is_null() {
            // SAFETY: the caller took the lock with raw_lock.
            unsafe { lock.raw_unlock() };
            let op = if reason == WaitReason::ChanSend {
                "send"
            } else {
                "receive"
            };
            panic!("channel {op} would block outside a goroutine");
        }
        let mut sg = Sudog::new(gp, elem);
        // For the leak finder: the channel (in the G), and the handle we borrow (`self`, in
        // the sudog).
        sg.handle = self as *const Self as usize;
        // SAFETY: gp is the running G (us).
        unsafe { crate::leak::record_chan(gp, self.hchan_addr()) };
        // SAFETY: a fresh sudog on our stack, which stays put while we are parked; it is
        // taken off the queue by whoever readies us.
        unsafe { queue(st).push_back(&mut sg) };
        gopark(
            // g0 releases the channel lock once we are parked (Go's `chanparkcommit`).
            Some(crate::lock::park_unlock::<State<T>>),
            lock as *const Mutex<State<T>> as usize,
            reason,
        );
        // Readied: whoever took the sudog off the queue is done with it.
        sg
    }

    /// Under the lock: completes a send without blocking if it can. `Ok(Some(g))`: handed to
    /// a waiting receiver, which the caller readies after unlocking.
    fn try_send_locked(&self, st: &mut State<T>, v: T) -> Result<Option<*mut G>, TrySendError<T>> {
        // LAB(chan) begin: try_send_locked, Go's chansend without blocking
        // LAB(chan) hint: Chapter 9. In Go's order: a closed channel is an error
        // LAB(chan) hint: (TrySendError::Closed(v)). A receiver parked on recvq gets the value
        // LAB(chan) hint: directly (recvq.dequeue(): put v in its sudog's elem, set success,
        // LAB(chan) hint: return Ok(Some(its g)) for the caller to ready after unlocking). Else,
        // LAB(chan) hint: room in the buffer (st.buf.len() < self.c.cap): push_back, Ok(None).
        // LAB(chan) hint: Else Err(TrySendError::Full(v)): the caller parks on sendq.
        // LAB(chan) stub: let _ = (st, v);
        // LAB(chan) stub: todo!("LAB(chan): try_send_locked")
        if st.closed {
            return Err(TrySendError::Closed(v));
        }
        if let Some(sg) = st.recvq.dequeue() {
            // SAFETY: a sudog on recvq belongs to a parked receiver; off the queue, it is ours
            // to fill until we ready its goroutine.
            unsafe {
                (*sg).elem = Some(v);
                (*sg).success = true;
                return Ok(Some((*sg).g));
            }
        }
        if st.buf.len() < self.c.cap {
            st.buf.push_back(v);
            return Ok(None);
        }
        Err(TrySendError::Full(v))
        // LAB(chan) end
    }

    /// A send that never blocks (Go: `select { case ch <- v: default: }`).
    pub fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        let mut st = self.c.state.lock();
        let r = self.try_send_locked(&mut st, v);
        drop(st);
        match r {
            Ok(Some(gp)) => {
                // SAFETY: as in `send`.
                unsafe { goready(gp) };
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Go's `v, ok := <-ch`: `Some(v)`, or `None` once the channel is closed and drained.
    /// Blocks while there is nothing to receive.
    pub fn recv(&self) -> Option<T> {
        // As in `send`: a guard, made a raw hold only to block.
        let mut g = self.c.state.lock();
        match self.try_recv_locked(&mut g) {
            Ok((v, waker)) => {
                drop(g);
                if let Some(gp) = waker {
                    // SAFETY: gp's sudog was taken off sendq under the lock.
                    unsafe { goready(gp) };
                }
                Some(v)
            }
            Err(TryRecvError::Closed) => {
                drop(g);
                None
            }
            Err(TryRecvError::Empty) => {
                let st = g.into_raw();
                // Blocked on a timer's channel, the timer can ready us: it is live.
                self.timer_block();
                let mut sg = self.block(st, |st| &mut st.recvq, None, WaitReason::ChanReceive);
                self.timer_unblock();
                if sg.success {
                    sg.elem.take()
                } else {
                    None
                }
            }
        }
    }

    /// Under the lock: a value and, if a blocked sender was completed, its goroutine.
    fn try_recv_locked(&self, st: &mut State<T>) -> Result<(T, Option<*mut G>), TryRecvError> {
        // LAB(chan) begin: try_recv_locked, Go's chanrecv without blocking
        // LAB(chan) hint: A sender parked on sendq comes first (sendq.dequeue()): take its value
        // LAB(chan) hint: out of its sudog's elem and set success. Unbuffered, that value is the
        // LAB(chan) hint: one received; buffered (a sender waits only on a full buffer), receive
        // LAB(chan) hint: the buffer's head and append the sender's value, so order stays FIFO.
        // LAB(chan) hint: Return it with the sender's g to ready. Else the buffer's head, if any;
        // LAB(chan) hint: else Closed if closed; else a timer channel's due value
        // LAB(chan) hint: (self.timer_value()); else Empty (the caller parks on recvq).
        // LAB(chan) stub: let _ = st;
        // LAB(chan) stub: todo!("LAB(chan): try_recv_locked")
        if let Some(sg) = st.sendq.dequeue() {
            // SAFETY: a sudog on sendq belongs to a parked sender; off the queue, it is ours.
            unsafe {
                let theirs = (*sg).elem.take().expect("a blocked sender holds its value");
                (*sg).success = true;
                let v = if self.c.cap == 0 {
                    theirs
                } else {
                    // The buffer is full (a sender waits): take its head, append theirs.
                    let head = st
                        .buf
                        .pop_front()
                        .expect("a sender waits only on a full buffer");
                    st.buf.push_back(theirs);
                    head
                };
                return Ok((v, Some((*sg).g)));
            }
        }
        if let Some(v) = st.buf.pop_front() {
            return Ok((v, None));
        }
        if st.closed {
            return Err(TryRecvError::Closed);
        }
        match self.timer_value() {
            Some(v) => Ok((v, None)),
            None => Err(TryRecvError::Empty),
        }
        // LAB(chan) end
    }

    /// A timer's channel (`time::after`) whose deadline has passed has its value now, even
    /// before the timer fires on its own.
    fn timer_value(&self) -> Option<T> {
        let tl = self.c.timer.as_ref()?;
        tl.t.maybe_fire().map(|t| (tl.value)(t))
    }

    /// The timer's channel: a receiver is about to block (`time::ChanTimer::block`).
    fn timer_block(&self) {
        if let Some(tl) = &self.c.timer {
            tl.t.block();
        }
    }

    /// The timer's channel: that receiver no longer waits.
    fn timer_unblock(&self) {
        if let Some(tl) = &self.c.timer {
            tl.t.unblock();
        }
    }

    /// The timer this channel belongs to, if it is a timer's channel.
    pub(crate) fn timer(&self) -> Option<&ChanTimer> {
        self.c.timer.as_ref().map(|tl| &*tl.t)
    }

    /// A receive that never blocks (Go: `select { case v := <-ch: default: }`).
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut st = self.c.state.lock();
        let r = self.try_recv_locked(&mut st);
        drop(st);
        let (v, waker) = r?;
        if let Some(gp) = waker {
            // SAFETY: as in `recv`.
            unsafe { goready(gp) };
        }
        Ok(v)
    }

    /// Go's `close(ch)`: receivers drain what is buffered, then get `None`; blocked senders
    /// panic.
    ///
    /// # Panics
    /// "close of closed channel", if it is closed already.
    pub fn close(&self) {
        let mut st = self.c.state.lock();
        if st.closed {
            drop(st);
            panic!("close of closed channel");
        }
        st.closed = true;
        // The woken, linked through their own sudogs (Go's `glist`): no allocation.
        let mut woken = WaitQ::new();
        while let Some(sg) = st.recvq.dequeue().or_else(|| st.sendq.dequeue()) {
            // SAFETY: off the queue under the lock, its owner parked and woken by us alone:
            // ours; success stays false (closed).
            unsafe { woken.push_back(sg) };
        }
        drop(st);
        while let Some(sg) = woken.pop_front() {
            // SAFETY: each was parked on this channel and taken off its queue under the lock;
            // its sudog stays valid until we ready its goroutine, after which we do not
            // touch it (pop_front has already read its link).
            unsafe { goready((*sg).g) };
        }
    }

    /// Whether `close` has been called.
    pub fn is_closed(&self) -> bool {
        self.c.state.lock().closed
    }

    /// How many sudogs wait on the channel: `(senders, receivers)`, counting a `select`'s
    /// sudog until it leaves (for tests that wait until goroutines are blocked).
    #[doc(hidden)]
    pub fn waiting(&self) -> (usize, usize) {
        let st = self.c.state.lock();
        (st.sendq.len, st.recvq.len)
    }

    /// How many sudogs the channel's wait queues have visited (taken off, skipped or
    /// unlinked) since it was made: tests check with it that removal does not walk a queue.
    #[doc(hidden)]
    pub fn waitq_visits(&self) -> u64 {
        let st = self.c.state.lock();
        st.sendq.visits + st.recvq.visits
    }
}

/// Go's `for v := range ch`: receives until the channel is closed and drained.
impl<T: Send> Iterator for Chan<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.recv()
    }
}

/// A send case of a `select` (built by [`crate::select!`] and [`crate::select::Select`]).
/// Without a channel (Go's nil channel) it is never chosen, and its value is dropped unsent
/// with the case.
pub struct SendCase<'a, T> {
    ch: Option<&'a Chan<T>>,
    sg: Sudog<T>,
    chosen: bool,
}

/// A receive case of a `select` (built by [`crate::select!`] and [`crate::select::Select`]).
/// Without a channel (Go's nil channel) it is never chosen.
pub struct RecvCase<'a, T> {
    ch: Option<&'a Chan<T>>,
    sg: Sudog<T>,
    got: Option<T>,
    chosen: bool,
}

impl<'a, T: Send> SendCase<'a, T> {
    pub fn new(ch: &'a Chan<T>, v: T) -> Self {
        Self::new_opt(Some(ch), v)
    }

    /// A send case on `ch`, or a disabled one (Go's send on a nil channel in a `select`).
    pub fn new_opt(ch: Option<&'a Chan<T>>, v: T) -> Self {
        SendCase {
            ch,
            sg: Sudog::new(core::ptr::null_mut(), Some(v)),
            chosen: false,
        }
    }

    /// Whether `select` chose this case.
    pub fn chosen(&self) -> bool {
        self.chosen
    }

    /// Forgets a past choice (for a [`crate::select::Select`] waited on again); a case that
    /// sent has no value left, so it becomes disabled.
    pub(crate) fn rearm(&mut self) {
        if self.chosen {
            self.chosen = false;
            self.ch = None;
        }
    }

    /// Disables the case (Go: set its channel to nil); its value is dropped.
    pub(crate) fn disable(&mut self) {
        self.ch = None;
        self.sg.elem = None;
    }

    fn chan(&self) -> &'a Chan<T> {
        self.ch.expect("select polled a disabled send case")
    }
}

impl<'a, T: Send> RecvCase<'a, T> {
    pub fn new(ch: &'a Chan<T>) -> Self {
        Self::new_opt(Some(ch))
    }

    /// A receive case on `ch`, or a disabled one (Go's receive from a nil channel in a
    /// `select`).
    pub fn new_opt(ch: Option<&'a Chan<T>>) -> Self {
        RecvCase {
            ch,
            sg: Sudog::new(core::ptr::null_mut(), None),
            got: None,
            chosen: false,
        }
    }

    /// Whether `select` chose this case.
    pub fn chosen(&self) -> bool {
        self.chosen
    }

    /// The received value (`None`: the channel was closed), once chosen.
    pub fn take(&mut self) -> Option<T> {
        self.got.take()
    }

    /// Forgets a past choice (for a [`crate::select::Select`] waited on again).
    pub(crate) fn rearm(&mut self) {
        self.chosen = false;
        self.got = None;
    }

    /// Disables the case (Go: set its channel to nil).
    pub(crate) fn disable(&mut self) {
        self.ch = None;
    }

    fn chan(&self) -> &'a Chan<T> {
        self.ch.expect("select polled a disabled receive case")
    }
}

/// What both kinds of select case do to their channel; `queue` picks `sendq` or `recvq`.
impl<T: Send> Chan<T> {
    /// The channel's identity for the leak finder: its `HChan`'s address.
    fn hchan_addr(&self) -> usize {
        Arc::as_ptr(&self.c) as usize
    }

    /// What the leak finder needs of a select case on this channel.
    fn probe(&self, sg: &Sudog<T>) -> crate::select::Probe {
        crate::select::Probe {
            chan: self.hchan_addr(),
            handle: self as *const Self as usize,
            queued: sg.queued,
        }
    }

    fn lock_addr(&self) -> usize {
        &self.c.state as *const Mutex<State<T>> as usize
    }

    fn lock_order(&self) -> (u64, usize) {
        (self.c.order, self.lock_addr())
    }

    /// Tags `sg` as case `case` of the select `sel` of `gp` and queues it.
    ///
    /// # Safety
    /// The channel lock is held; `sg` stays in place until it is dequeued.
    unsafe fn select_enqueue(
        &self,
        queue: fn(&mut State<T>) -> &mut WaitQ<T>,
        sg: &mut Sudog<T>,
        gp: *mut G,
        sel: *const SelWait,
        case: usize,
    ) {
        sg.g = gp;
        sg.sel = sel;
        sg.case = case;
        // A case may be queued again (a `Select` waited on again): no stale outcome.
        sg.success = false;
        // SAFETY: the caller holds the lock, and keeps `sg` in place while it is queued.
        unsafe { queue(self.c.state.get_locked()).push_back(sg) };
    }

    /// Removes `sg` from its queue if it is still there (a select leaving the channels it did
    /// not win).
    ///
    /// # Safety
    /// The channel lock is held.
    unsafe fn select_dequeue(&self, queue: fn(&mut State<T>) -> &mut WaitQ<T>, sg: *mut Sudog<T>) {
        // SAFETY: the caller holds the lock; `sg` is this case's sudog, on this queue or on
        // none (a waker took it off).
        unsafe { queue(self.c.state.get_locked()).remove(sg) };
    }
}

// SAFETY: (this impl and RecvCase's below) every method but `lock_addr` runs with the channel lock held by the
// selecting goroutine (select.rs takes all of them in address order first), as the trait
// requires; the sudog lives in the case, which `select` keeps borrowed (so in place) while it
// is queued.
unsafe impl<T: Send> Case for SendCase<'_, T> {
    fn lock_addr(&self) -> usize {
        self.ch.map_or(0, |c| c.lock_addr())
    }
    fn lock_order(&self) -> (u64, usize) {
        self.ch.map_or((0, 0), |c| c.lock_order())
    }
    fn enabled(&self) -> bool {
        self.ch.is_some()
    }
    fn leak_probe(&self) -> Option<crate::select::Probe> {
        self.ch.map(|c| c.probe(&self.sg))
    }
    fn lock(&self) {
        self.chan().c.state.raw_lock();
    }
    unsafe fn unlock_fn(&self) -> unsafe fn(usize) {
        crate::lock::unlock_at::<State<T>>
    }
    unsafe fn poll(&mut self) -> Poll {
        // SAFETY: the lock is held (trait contract).
        let st = unsafe { self.chan().c.state.get_locked() };
        let v = self.sg.elem.take().expect("a send case holds its value");
        match self.chan().try_send_locked(st, v) {
            Ok(g) => {
                self.chosen = true;
                Poll::Ready(g)
            }
            Err(TrySendError::Closed(v)) => {
                self.sg.elem = Some(v);
                Poll::Closed
            }
            Err(TrySendError::Full(v)) => {
                self.sg.elem = Some(v);
                Poll::NotReady
            }
        }
    }
    unsafe fn enqueue(&mut self, gp: *mut G, sel: *const SelWait, case: usize) {
        // SAFETY: the lock is held; the case (with its sudog) stays borrowed by `select`.
        unsafe {
            self.chan()
                .select_enqueue(|st| &mut st.sendq, &mut self.sg, gp, sel, case)
        };
    }
    unsafe fn dequeue(&mut self) {
        // SAFETY: the lock is held.
        unsafe { self.chan().select_dequeue(|st| &mut st.sendq, &mut self.sg) };
    }
    fn won(&mut self) -> bool {
        self.chosen = true;
        self.sg.success
    }
}

// SAFETY: as for SendCase above.
unsafe impl<T: Send> Case for RecvCase<'_, T> {
    fn lock_addr(&self) -> usize {
        self.ch.map_or(0, |c| c.lock_addr())
    }
    fn lock_order(&self) -> (u64, usize) {
        self.ch.map_or((0, 0), |c| c.lock_order())
    }
    fn enabled(&self) -> bool {
        self.ch.is_some()
    }
    fn leak_probe(&self) -> Option<crate::select::Probe> {
        self.ch.map(|c| c.probe(&self.sg))
    }
    fn lock(&self) {
        self.chan().c.state.raw_lock();
    }
    unsafe fn unlock_fn(&self) -> unsafe fn(usize) {
        crate::lock::unlock_at::<State<T>>
    }
    unsafe fn poll(&mut self) -> Poll {
        // SAFETY: the lock is held (trait contract).
        let st = unsafe { self.chan().c.state.get_locked() };
        match self.chan().try_recv_locked(st) {
            Ok((v, g)) => {
                self.got = Some(v);
                self.chosen = true;
                Poll::Ready(g)
            }
            Err(TryRecvError::Closed) => {
                self.got = None;
                self.chosen = true;
                Poll::Ready(None)
            }
            Err(TryRecvError::Empty) => Poll::NotReady,
        }
    }
    unsafe fn enqueue(&mut self, gp: *mut G, sel: *const SelWait, case: usize) {
        self.chan().timer_block();
        // SAFETY: the lock is held; the case (with its sudog) stays borrowed by `select`.
        unsafe {
            self.chan()
                .select_enqueue(|st| &mut st.recvq, &mut self.sg, gp, sel, case)
        };
    }
    unsafe fn dequeue(&mut self) {
        // SAFETY: the lock is held.
        unsafe { self.chan().select_dequeue(|st| &mut st.recvq, &mut self.sg) };
        // A select that took another case abandons a timer's channel: its timer no longer
        // counts for this goroutine (Go 1.23), so it cannot delay deadlock detection.
        self.chan().timer_unblock();
    }
    fn won(&mut self) -> bool {
        self.chan().timer_unblock();
        self.chosen = true;
        self.got = if self.sg.success {
            self.sg.elem.take()
        } else {
            None
        };
        true
    }
}

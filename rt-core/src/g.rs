//! G: a goroutine. Go's counterpart is `g` in runtime2.go (with `gobuf` and `stack`).
//!
//! A G is a stack, the three registers that say where it stopped ([`Gobuf`]: SP, PC, BP), a
//! status, and bookkeeping. Gs are allocated once and never freed while their runtime lives:
//! an exited G goes to a free list (Go's `gfput`) with its stack and is reused by the next
//! spawn (`gfget`), so a spawn in the steady state allocates nothing.
//!
//! Ownership (who may touch the non-atomic fields): the M running the G; or, while the G is
//! not running, whichever queue or wait list holds it (a run queue, a free list, a channel's
//! waiters). The status moves between those owners with the transitions Go uses
//! (`casgstatus`). `stackguard0` and `preempt` are atomics: sysmon (or the timer interrupt)
//! writes them while another CPU runs the G.

use alloc::boxed::Box;
use core::panic::Location;
use core::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

use crate::stack::{Stack, STACK_GUARD};
use crate::status::GStatus;

/// Where a suspended G resumes: Go's `gobuf`. Only SP, PC and BP: the switch routine pushes
/// the other callee-saved registers on the G's own stack (arch/x86_64.rs), so a gobuf is all a
/// scheduler needs to resume a G, and BP lets a traceback walk its frames.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Gobuf {
    pub sp: usize,
    pub pc: usize,
    pub bp: usize,
}

/// Why a G is waiting (Go's `waitReason`, a `uint8` in runtime2.go; the text is what
/// `goroutine 7 [chan receive]:` and `scheddetail` print). A byte, so that it can live in an
/// atomic that the timer tick reads while the G's owner writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WaitReason {
    Zero = 0,
    WaitGroupWait,
    ChanSend,
    ChanReceive,
    ChanSendNilChan,
    ChanReceiveNilChan,
    Select,
    SelectNoCases,
    Sleep,
    SyncMutexLock,
    IoWait,
    /// Parked by a test or a platform for its own reasons (Go has no such reason).
    Other,
    // After `Other`, so that the values above (in recorded traces) keep their meaning.
    SyncRWMutexRLock,
    SyncRWMutexLock,
    SyncCondWait,
}

impl WaitReason {
    const ALL: [WaitReason; 15] = [
        WaitReason::Zero,
        WaitReason::WaitGroupWait,
        WaitReason::ChanSend,
        WaitReason::ChanReceive,
        WaitReason::ChanSendNilChan,
        WaitReason::ChanReceiveNilChan,
        WaitReason::Select,
        WaitReason::SelectNoCases,
        WaitReason::Sleep,
        WaitReason::SyncMutexLock,
        WaitReason::IoWait,
        WaitReason::Other,
        WaitReason::SyncRWMutexRLock,
        WaitReason::SyncRWMutexLock,
        WaitReason::SyncCondWait,
    ];

    /// Go's strings (runtime2.go, `waitReasonStrings`), kept in one table with the execution
    /// trace's decoder (rt-trace's `WAIT_REASONS`, indexed by this enum's values).
    pub fn as_str(&self) -> &'static str {
        rt_trace::format::WAIT_REASONS[*self as usize]
    }

    /// Whether the trace's table has a string for every reason, in this enum's order.
    #[cfg(test)]
    fn table_matches() -> bool {
        Self::ALL.len() == rt_trace::format::WAIT_REASONS.len()
            && Self::ALL.iter().enumerate().all(|(i, r)| *r as usize == i)
    }

    /// The reason for a raw byte as stored in [`G::waitreason`]; unknown values read as `Zero`.
    pub fn from_raw(v: u8) -> WaitReason {
        Self::ALL
            .get(v as usize)
            .copied()
            .unwrap_or(WaitReason::Zero)
    }
}

/// A goroutine's entry: the closure `spawn` was given.
pub type Entry = Box<dyn FnOnce() + Send + 'static>;

/// A goroutine. Go's `g`.
#[repr(C)]
pub struct G {
    /// The stack `[lo, hi)`. Empty until the G first runs (see `proc.rs`: a G that was spawned
    /// but never ran needs no stack, which keeps a million queued spawns cheap).
    pub(crate) stack: Stack,
    /// Compared with SP at every safe point: `stack.lo + STACK_GUARD` normally,
    /// [`STACK_PREEMPT`] when a preemption is requested.
    pub(crate) stackguard0: AtomicUsize,
    /// Where the G resumes.
    pub(crate) sched: Gobuf,
    /// The goroutine's id (Go's `goid`); a new one at every spawn that reuses this G. Atomic
    /// (relaxed: a plain move) because `scheddetail` reads it from the timer tick.
    pub(crate) goid: AtomicU64,
    /// A [`GStatus`] value (Go's `atomicstatus`).
    pub(crate) atomicstatus: AtomicU32,
    /// Preemption requested (Go's `preempt`); stackguard0 is set to STACK_PREEMPT with it.
    pub(crate) preempt: AtomicBool,
    /// The M running this G, or null (Go's `m`). Written only by that M; atomic (relaxed) so
    /// that `scheddetail` may read it from another CPU.
    pub(crate) m: AtomicPtr<crate::m::M>,
    /// A [`WaitReason`] byte, written by the G's owner, read by `scheddetail`.
    pub(crate) waitreason: AtomicU8,
    /// Where it was spawned (Go's `gopc`, printed by tracebacks as "created by").
    pub(crate) gopc: &'static Location<'static>,
    /// The return address into the function that spawned it (Go's `gopc` is this PC): the
    /// `created by` line's function name. 0 if unknown.
    pub(crate) gopc_pc: usize,
    /// The goroutine that spawned it (Go's `parentGoid`; 0: none).
    pub(crate) parentgoid: u64,
    /// The closure to run; taken when the G starts (Go's `startpc` plus the closure context).
    pub(crate) entry: Option<Entry>,
    /// Link for intrusive lists: run queues, free lists, wait queues (Go's `schedlink`).
    pub(crate) schedlink: *mut G,
    /// A word passed between a waker and the woken G (Go's `param`).
    pub(crate) param: usize,
    /// Whether this is an M's g0 (the scheduler's own "goroutine").
    pub(crate) is_g0: bool,
    /// An asynchronous preemption has been injected into this G's context by a signal and
    /// has not finished (host/signal.rs): a second one must not be stacked on it. Set by the
    /// signal handler on the G's M, cleared by the G itself when the injected call returns
    /// (possibly on another M).
    pub(crate) async_inflight: AtomicBool,
    /// The channel the G waits on while parked in a channel operation, for the leak finder
    /// (leak.rs): its `HChan` address (`leak::WAIT_NEVER`: parked for ever, a select with no
    /// enabled case; for a select, one of its channels). Written by the G itself just before
    /// it parks; the finder locks that channel and finds the G's sudog on it, which holds the
    /// rest (the borrowed handle, or the select's cases: on the G's own stack, so the G stays
    /// as small as it was). Stale once the G has woken.
    pub(crate) waitchan: AtomicUsize,
}

// SAFETY: a G is handed between threads by the scheduler; the ownership rules in the module
// comment say who may touch which field, and the hand-offs go through atomics or locks.
unsafe impl Send for G {}
// SAFETY: as for `Send` above.
unsafe impl Sync for G {}

impl G {
    pub(crate) fn new(goid: u64, gopc: &'static Location<'static>) -> G {
        G {
            stack: Stack::EMPTY,
            stackguard0: AtomicUsize::new(0),
            sched: Gobuf::default(),
            goid: AtomicU64::new(goid),
            atomicstatus: AtomicU32::new(GStatus::Idle as u32),
            preempt: AtomicBool::new(false),
            m: AtomicPtr::new(core::ptr::null_mut()),
            waitreason: AtomicU8::new(WaitReason::Zero as u8),
            gopc,
            gopc_pc: 0,
            parentgoid: 0,
            entry: None,
            schedlink: core::ptr::null_mut(),
            param: 0,
            is_g0: false,
            async_inflight: AtomicBool::new(false),
            waitchan: AtomicUsize::new(0),
        }
    }

    /// The goroutine's stack `[lo, hi)` (empty before it first runs).
    pub fn stack(&self) -> Stack {
        self.stack
    }

    pub fn goid(&self) -> u64 {
        self.goid.load(Ordering::Relaxed)
    }

    pub fn waitreason(&self) -> WaitReason {
        WaitReason::from_raw(self.waitreason.load(Ordering::Relaxed))
    }

    pub(crate) fn set_waitreason(&self, r: WaitReason) {
        self.waitreason.store(r as u8, Ordering::Relaxed);
    }

    pub(crate) fn status(&self) -> GStatus {
        GStatus::from_raw(self.atomicstatus.load(Ordering::Acquire))
            .expect("G status is a GStatus value")
    }

    /// Go's `casgstatus`: moves the status from `old` to `new`; any other current value is a
    /// runtime bug and fatal.
    ///
    /// Go needs a compare-and-swap here because its garbage collector sets a scan bit in the
    /// status concurrently. We have no such writer: every transition is made by the one party
    /// that owns the G at that moment (its M, or the waker that took it off a wait list under
    /// the list's lock; park.rs), so a checked load and a store do the same job without a
    /// locked instruction on the scheduler's hottest path.
    #[inline]
    pub(crate) fn casgstatus(&self, old: GStatus, new: GStatus) {
        let cur = self.atomicstatus.load(Ordering::Acquire);
        if cur != old as u32 {
            crate::fatal(format_args!(
                "casgstatus: goroutine {} is {:?}, expected {:?} (moving to {:?})",
                self.goid(),
                GStatus::from_raw(cur),
                old,
                new
            ));
        }
        self.atomicstatus.store(new as u32, Ordering::Release);
    }

    pub(crate) fn set_status(&self, s: GStatus) {
        self.atomicstatus.store(s as u32, Ordering::Release);
    }

    /// The normal `stackguard0` for this G's stack.
    pub(crate) fn normal_stackguard(&self) -> usize {
        self.stack.lo + STACK_GUARD
    }
}

/// An intrusive FIFO of Gs through `schedlink` (Go's `gQueue`). Not synchronised: the owner
/// (the scheduler lock, or a P) protects it.
pub struct GQueue {
    head: *mut G,
    tail: *mut G,
    /// Written only by the owner (plain load + store, no locked instruction); atomic so that
    /// `scheddetail` may read a P's free-list length (`gfreecnt`) from the timer tick.
    len: AtomicUsize,
}

// SAFETY: the queue only holds pointers; whoever owns the queue owns the Gs on it.
unsafe impl Send for GQueue {}

impl Default for GQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl GQueue {
    pub const fn new() -> Self {
        GQueue {
            head: core::ptr::null_mut(),
            tail: core::ptr::null_mut(),
            len: AtomicUsize::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    fn set_len(&self, n: usize) {
        self.len.store(n, Ordering::Relaxed);
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// # Safety
    /// `g` must be a live G that is on no other list.
    pub unsafe fn push_back(&mut self, g: *mut G) {
        // SAFETY: the caller hands us `g`, which is on no list, so its link is ours to set.
        unsafe { (*g).schedlink = core::ptr::null_mut() };
        if self.tail.is_null() {
            self.head = g;
        } else {
            // SAFETY: `tail` is on this list, which we own.
            unsafe { (*self.tail).schedlink = g };
        }
        self.tail = g;
        self.set_len(self.len() + 1);
    }

    /// # Safety
    /// `g` must be a live G that is on no other list.
    pub unsafe fn push_front(&mut self, g: *mut G) {
        // SAFETY: as in push_back.
        unsafe { (*g).schedlink = self.head };
        self.head = g;
        if self.tail.is_null() {
            self.tail = g;
        }
        self.set_len(self.len() + 1);
    }

    pub fn pop_front(&mut self) -> Option<*mut G> {
        if self.head.is_null() {
            return None;
        }
        let g = self.head;
        // SAFETY: `head` is on this list, which we own.
        self.head = unsafe { (*g).schedlink };
        if self.head.is_null() {
            self.tail = core::ptr::null_mut();
        }
        self.set_len(self.len() - 1);
        Some(g)
    }
}

#[cfg(test)]
mod wait_reason_tests {
    use super::WaitReason;

    #[test]
    fn every_wait_reason_has_its_go_string() {
        assert!(WaitReason::table_matches());
        assert_eq!(WaitReason::ChanReceive.as_str(), "chan receive");
        assert_eq!(WaitReason::Other.as_str(), "other");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn gs(n: usize) -> Vec<*mut G> {
        (0..n)
            .map(|i| {
                alloc::boxed::Box::into_raw(alloc::boxed::Box::new(G::new(
                    i as u64,
                    Location::caller(),
                )))
            })
            .collect()
    }

    fn ids(q: &mut GQueue) -> Vec<u64> {
        core::iter::from_fn(|| q.pop_front())
            // SAFETY: the Gs are live for the test.
            .map(|g| unsafe { (*g).goid() })
            .collect()
    }

    #[test]
    fn gqueue_is_fifo_with_push_front() {
        let g = gs(5);
        let mut a = GQueue::new();
        // SAFETY: each G is on at most one list at a time.
        unsafe {
            a.push_back(g[1]);
            a.push_back(g[2]);
            a.push_front(g[0]);
            a.push_back(g[3]);
            a.push_back(g[4]);
        }
        assert_eq!(a.len(), 5);
        assert_eq!(ids(&mut a), [0, 1, 2, 3, 4]);
        assert!(a.is_empty() && a.pop_front().is_none());
        for p in g {
            // SAFETY: made by Box::into_raw above, off every list now.
            drop(unsafe { alloc::boxed::Box::from_raw(p) });
        }
    }
}

//! P: a processor, the right to run Go code. Go's `p` in runtime2.go.
//!
//! There are exactly GOMAXPROCS Ps. An M must hold a P to run Gs; a P owns a local run queue
//! ([`RunQueue`], 256 slots + `runnext`), a free list of dead Gs (with their stacks) and a
//! cache of free stacks, so that spawning and exiting in the steady state touch no lock.
//!
//! Ownership, as the groups in [`P`] say: fields fixed at creation; fields owned by the M
//! holding the P; `link` under `sched.lock`; `timers` under its own lock; and atomics, read
//! by thieves, sysmon and the timer interrupt (the run queue, the status, the ticks), some
//! written only by sysmon (`sysmontick`).

use alloc::vec::Vec;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use crate::g::{GQueue, G};
use crate::m::M;
use crate::runq::{RunQueue, RUNQ_SIZE};
use crate::stack::Stack;

/// Go's P status values (`_Pidle` … `_Pdead`, runtime2.go).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum PStatus {
    Idle = 0,
    Running = 1,
    Syscall = 2,
    /// `_Pgcstop`: no GC here; kept for the numbering.
    GcStop = 3,
    Dead = 4,
}

/// What sysmon saw of a P at its last look (Go's `sysmontick`): the tick counters and when
/// they last changed.
#[derive(Default)]
pub struct SysmonTick {
    pub schedtick: AtomicU32,
    pub schedwhen: AtomicU64,
    pub syscalltick: AtomicU32,
    pub syscallwhen: AtomicU64,
}

pub struct P {
    // --- Fixed at creation.
    pub(crate) id: usize,

    // --- Owned by the M holding the P (no lock: only that M touches them).
    /// Dead Gs, with their stacks (Go's `gFree`).
    pub(crate) gfree: GQueue,
    /// Free stacks (Go's `mcache.stackcache`, stack.rs).
    pub(crate) stackcache: Vec<Stack>,
    /// Resident bytes of the stacks in `stackcache`, as the platform reported them when they
    /// were cached (0 on a platform that does not say).
    pub(crate) stackcache_resident: usize,
    /// Never-used Gs left in the slab this P allocated last (Gs come 64 to an allocation).
    pub(crate) gslab: Vec<*mut G>,

    // --- `sched.lock` must be held to use this.
    /// Idle-P list link.
    pub(crate) link: *mut P,

    // --- Under its own lock.
    /// Timers made by goroutines running on this P (Go's `p.timers`), time.rs.
    pub(crate) timers: crate::lock::Mutex<crate::time::Timers>,

    // --- Atomic. Written by the holder (or, for `status`, by whoever takes the P: `acquirep`,
    //     `retake`); read by thieves, sysmon, the timer interrupt and scheddetail.
    pub(crate) status: AtomicU32,
    /// The M holding this P, or null.
    pub(crate) m: AtomicPtr<M>,
    /// The local run queue: the owner puts and gets, thieves steal (runq.rs).
    pub(crate) runq: RunQueue<G, RUNQ_SIZE>,
    /// Incremented at every schedule that does not inherit a time slice (Go's `schedtick`).
    pub(crate) schedtick: AtomicU32,
    /// Incremented at every syscall exit that keeps the P (Go's `syscalltick`).
    pub(crate) syscalltick: AtomicU32,
    /// The earliest `when` in `timers`, u64::MAX if none (Go's `timer0When`): written under
    /// the heap's lock, read by anyone.
    pub(crate) timer0: AtomicU64,
    /// Gs this P has started running (a statistic: tests check every P got work).
    pub(crate) nran: AtomicU64,
    /// Gs this P took from other Ps' queues (a statistic).
    pub(crate) nstolen: AtomicU64,

    // --- Atomic, written only by sysmon.
    /// sysmon's memory of this P (Go's `sysmontick`).
    pub(crate) sysmontick: SysmonTick,
    /// Taken from a syscall by an interrupt-context sysmon, waiting for an M to hand it off
    /// (set by sysmon, cleared by the M that takes it).
    pub(crate) retaken: AtomicBool,
}

// SAFETY: Ps are shared between Ms under the ownership rules above.
unsafe impl Send for P {}
// SAFETY: as for `Send` above.
unsafe impl Sync for P {}

impl P {
    pub(crate) fn new(id: usize) -> P {
        P {
            id,
            status: AtomicU32::new(PStatus::Idle as u32),
            link: null_mut(),
            schedtick: AtomicU32::new(0),
            syscalltick: AtomicU32::new(0),
            m: AtomicPtr::new(null_mut()),
            runq: RunQueue::new(),
            gfree: GQueue::new(),
            stackcache: Vec::new(),
            stackcache_resident: 0,
            gslab: Vec::new(),
            sysmontick: SysmonTick::default(),
            retaken: AtomicBool::new(false),
            nran: AtomicU64::new(0),
            nstolen: AtomicU64::new(0),
            timers: crate::lock::Mutex::new(crate::time::Timers::new()),
            timer0: AtomicU64::new(u64::MAX),
        }
    }

    /// Takes the P out of `Syscall` state (to `Idle`), if it is still there: the race between
    /// the M returning from its syscall (`exitsyscall`) and sysmon retaking the P (`retake`)
    /// is decided by this one CAS.
    pub(crate) fn take_from_syscall(&self) -> bool {
        self.status
            .compare_exchange(
                PStatus::Syscall as u32,
                PStatus::Idle as u32,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    pub fn status(&self) -> PStatus {
        match self.status.load(Ordering::Acquire) {
            0 => PStatus::Idle,
            1 => PStatus::Running,
            2 => PStatus::Syscall,
            3 => PStatus::GcStop,
            _ => PStatus::Dead,
        }
    }
}

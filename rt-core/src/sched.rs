//! The scheduler: Go's `schedt` and the loop around `schedule` in proc.go: finding work
//! (`find_runnable`: local queue, global queue, stealing with `steal_work`), running it
//! (`execute`), and the global run queue.
//!
//! # The design (after proc.go's header)
//!
//! The main concepts are G (goroutine, g.rs), M (a thread or CPU, m.rs) and P (the right to
//! run, with a local run queue, p.rs). An M runs Gs only while it holds a P. Each M loops on
//! its g0 in [`schedule`]: find a runnable G ([`find_runnable`]), switch to it
//! ([`execute`]), and when the G switches back (it yielded, parked, exited, was preempted)
//! carry out what it asked (mcall.rs).
//!
//! Where work is found, in Go's order: every 61st schedule on a P the global queue first (so
//! that Gs there are not starved by two Gs that keep readying each other on a local queue);
//! then the local queue (runnext first); then the global queue; then stealing half of another
//! P's queue (4 passes over all Ps in random order; `runnext` only on the last pass). A P with
//! nothing to do is put on the idle list and its M goes to sleep (idle.rs, `stopm`), or
//! becomes the poller (poll.rs) if a timer or an I/O wait is pending.
//!
//! # Invariants
//!
//! - `nmspinning` counts Ms with `spinning` set; `npidle` counts Ps on the idle list.
//! - A P on the idle list has an empty run queue and no M.
//! - `runqsize` mirrors the global queue's length (read without the lock, as Go does).
//! - The lock order is: a runtime lock of a channel or WaitGroup, then `sched.lock`.
//! - Gs are never freed while the runtime lives: pointers to them stay valid.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::panic::Location;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering};

use crate::arch;
use crate::g::{GQueue, G};
use crate::idle::{self, acquirep, pidleget, pidleput, releasep};
use crate::lock::Mutex;
use crate::m::M;
use crate::mcall::{self, Next};
use crate::p::{PStatus, P};
use crate::platform;
use crate::poll;
use crate::preempt;
use crate::run::Failure;
use crate::stack;
use crate::stack::Stack;
use crate::status::GStatus;
use crate::tracer;
use rt_trace::format::Kind;

/// How long a spinning M keeps looking for work before it gives up its P and parks. Go's
/// spinning is a few steal passes; ours is longer because parking and waking an M costs tens
/// of microseconds on the VMs this runs on (docs/design.md §3). At most half the busy Ps' worth of
/// Ms spin, so the cost is bounded.
pub const SPIN_BEFORE_PARK_NS: u64 = 50_000;

/// What `sched.lock` protects.
pub(crate) struct SchedLocked {
    /// The global run queue (Go's `sched.runq`).
    pub runq: GQueue,
    /// Idle Ms, linked through `M::schedlink` (Go's `midle`, `nmidle`).
    pub midle: *mut M,
    pub nmidle: i32,
    /// Idle Ps, linked through `P::link` (Go's `pidle`).
    pub pidle: *mut P,
    /// Dead Gs spilled from the Ps' free lists (Go's `sched.gFree`).
    pub gfree: GQueue,
    /// Next M id (Go's `mnext`).
    pub mnext: i64,
}

// SAFETY: the raw pointers are to runtime objects whose ownership the lock protects.
unsafe impl Send for SchedLocked {}

/// Counters for tests, traces and benchmarks (relaxed atomics, written where the event
/// happens).
#[derive(Default)]
pub(crate) struct Stats {
    /// Preemption requests made by sysmon (`preemptone`).
    pub npreempt_requests: AtomicU64,
    /// Requests honoured at a safe point (`preempt_point`, a runtime entry).
    pub nsync_preempt: AtomicU64,
    /// Gs stopped by the platform from an interrupt where they stood
    /// ([`crate::preempt::async_preempt`]).
    pub nasync_preempt: AtomicU64,
    /// Ps taken from Ms stuck in a syscall.
    pub nretake_syscall: AtomicU64,
    /// Stacks asked of the platform (misses of the stack caches).
    pub nstackalloc: AtomicU64,
    /// Stacks given back to the platform.
    pub nstackfree: AtomicU64,
    /// Bytes released from cached stacks (`Platform::stack_trim`).
    pub nstacktrimmed: AtomicU64,
    /// Sleeps of the poller until a timer or an I/O event.
    pub npoll_sleeps: AtomicU64,
    /// Timers run.
    pub ntimers_run: AtomicU64,
}

/// Go's `schedt`: the state shared by all Ms and Ps of one runtime. Fields are grouped by
/// what guards them.
pub struct Sched {
    // --- Fixed at creation (read by anyone, never written).
    /// All Ps: `max_procs` of them, made at creation and freed with the runtime. Those with
    /// an id below `gomaxprocs` are in use; the others are `Dead` (Go's `procresize` frees
    /// them; ours stay, so that code reading `allp` without a lock never sees it change).
    pub(crate) allp: Vec<*mut P>,
    /// Step sizes coprime with `allp.len()`, for visiting all Ps in a random order (Go's
    /// `randomOrder`).
    pub(crate) coprimes: Vec<usize>,
    pub(crate) stack_size: usize,
    /// Mixed into each new M's `rand` ([`crate::run::Config::rand_seed`]).
    pub(crate) rand_seed: u64,

    // --- Written under `lock` (by `set_gomaxprocs`), read by anyone.
    /// Go's `gomaxprocs`: how many Ps are in use (1 ..= allp.len()).
    pub(crate) gomaxprocs: core::sync::atomic::AtomicUsize,
    /// The id of the main goroutine (0 until it is spawned): `goexit` there is special.
    pub(crate) main_goid: AtomicU64,
    /// The main goroutine called `goexit` (Go: the program goes on until the others are done,
    /// then reports "no goroutines (main called runtime.Goexit) - deadlock!").
    pub(crate) main_goexit: AtomicBool,

    // --- `lock` must be held to use these (Go's `sched.lock`).
    pub(crate) lock: Mutex<SchedLocked>,

    // --- Each under its own lock.
    /// Why the runtime stopped, if it failed (the first reason wins).
    pub(crate) failure: Mutex<Option<Failure>>,
    /// Every G of this runtime, as the slabs they were allocated in (Go's `allgs`).
    pub(crate) allgs: Mutex<Vec<*mut [G]>>,
    /// Free stacks beyond the Ps' caches (Go's global `stackpool`, stack.rs).
    pub(crate) stackpool: Mutex<Vec<Stack>>,
    /// Every M, for `destroy` and `scheddetail`.
    pub(crate) allms: Mutex<Vec<*mut M>>,

    // --- Atomic: counts mirrored for lock-free readers (written under `lock` where they
    //     mirror something it guards).
    pub(crate) nmspinning: AtomicI32,
    pub(crate) npidle: AtomicI32,
    /// The global queue's length.
    pub(crate) runqsize: AtomicI32,
    /// The global G free list's length.
    pub(crate) ngfree: AtomicI32,
    /// Ms that exist (started and not yet gone); `checkdead` compares it with `nmidle`.
    pub(crate) mcount: AtomicI32,
    pub(crate) goidgen: AtomicU64,
    /// Ps that sysmon took from syscalls and left for the next M in `find_runnable` to hand
    /// off (`Handoff::Deferred`); each such P has `retaken` set.
    pub(crate) nretaken: AtomicI32,
    /// Timers pending in all Ps' heaps.
    pub(crate) ntimers: AtomicI64,
    /// Timers that can still ready a goroutine (time.rs: a sleep's, or a channel timer's while
    /// a goroutine is blocked receiving from its channel); what `checkdead` and the poller
    /// look at. Shared with the channel timers, which may outlive the runtime.
    pub(crate) live_timers: Arc<AtomicI64>,
    /// Orders timers with equal deadlines by creation (time.rs).
    pub(crate) timerseq: AtomicU64,

    // --- Atomic: the run's state and settings.
    pub(crate) main_started: AtomicBool,
    pub(crate) exiting: AtomicBool,
    /// Whether exited goroutines' stacks are cached ([`crate::run::Config::stack_cache`]).
    pub(crate) stack_cache: AtomicBool,
    /// Go's `forcePreemptNS` ([`crate::run::Config::timeslice_ns`]).
    pub(crate) timeslice_ns: AtomicU64,
    /// Whether sysmon asks long-running Gs to yield ([`crate::run::Config::preempt`]).
    pub(crate) preempt_enabled: AtomicBool,
    /// Whether the platform may stop Gs from an interrupt ([`crate::run::Config::async_preempt`]).
    pub(crate) async_preempt_enabled: AtomicBool,

    // --- Atomic: the poller (poll.rs).
    /// An M is the poller: asleep until the earliest timer, an I/O event, or a break (Go: an
    /// M blocked in `netpoll(delay)`).
    pub(crate) polling: AtomicBool,
    /// The deadline the poller sleeps until (u64::MAX while it decides, or when none polls).
    pub(crate) poll_until: AtomicU64,
    /// The poller's wake-up word: set by [`Sched::netpoll_break`].
    pub(crate) poll_key: AtomicU32,

    pub(crate) stats: Stats,
}

// SAFETY: shared by all Ms; every field is atomic, locked, or fixed after creation.
unsafe impl Send for Sched {}

// SAFETY: as for Send: every field is atomic, locked, or fixed after creation, so shared
// references from several Ms are sound.
unsafe impl Sync for Sched {}

/// The strides of `steal_work`'s walk over `n` Ps (Go's `randomOrder`): the numbers in 1..=n
/// coprime with n, so that from any start, n steps of any stride visit every P once.
pub(crate) fn steal_strides(n: usize) -> Vec<usize> {
    (1..=n).filter(|&s| gcd(s, n) == 1).collect()
}

pub(crate) fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Sched {
    /// Creates an M (with its g0) that belongs to this runtime and counts it as existing.
    /// The caller starts it: on a new thread through the platform, or on the current thread.
    pub(crate) fn new_m(&self) -> *mut M {
        let id = {
            let mut l = self.lock.lock();
            l.mnext += 1;
            l.mnext - 1
        };
        self.mcount.fetch_add(1, Ordering::AcqRel);
        self.alloc_m(id)
    }

    pub(crate) fn alloc_m(&self, id: i64) -> *mut M {
        let mut g0 = G::new(0, Location::caller());
        g0.is_g0 = true;
        g0.set_status(GStatus::Running);
        let g0 = Box::into_raw(Box::new(g0));
        let mut mm = M::new(id, g0, self);
        mm.rand ^= self.rand_seed;
        let m = Box::into_raw(Box::new(mm));
        self.allms.lock().push(m);
        m
    }
}

/// The g0 loop (Go's `schedule`): find a G, run it, and when it switches back serve its
/// request (mcall.rs) until it is off this M. Returns when the runtime exits.
///
/// # Safety
/// Runs on `m`'s own thread, on its g0 (`m` is the current M).
pub(crate) unsafe fn schedule(m: *mut M) {
    // SAFETY: an M's runtime outlives the M.
    let sched: &Sched = unsafe { &*(*m).runtime };
    // SAFETY: on m's g0 (the caller's promise).
    while let Some((gp, inherit)) = unsafe { find_runnable(m) } {
        // SAFETY: m is the current M; `spinning` is an atomic.
        if unsafe { (*m).spinning.load(Ordering::Relaxed) } {
            // SAFETY: m is the current M.
            unsafe { idle::reset_spinning(m) };
        }
        // SAFETY: find_runnable handed gp (runnable) to this M, and m holds a P.
        unsafe { execute(m, gp, inherit) };
        let mut gp = gp;
        loop {
            // SAFETY: on m's g0, right after gp switched back to it with `mcall`.
            let req = unsafe { mcall::take(m) };
            // SAFETY: on m's g0, with gp (the G that made the request) switched out.
            match unsafe { mcall::handle(m, gp, req) } {
                Next::FindWork => break,
                // The G is runnable again at once (a park whose unlock said no, or a
                // syscall exit that found a P): run it, keeping its time slice.
                // SAFETY: gp is runnable again and still handed to this M, which holds a P.
                Next::Resume => unsafe { execute(m, gp, true) },
                // Found next while the request held the scheduler lock.
                Next::Run(next) => {
                    // SAFETY: m is the current M and holds a P.
                    if unsafe { retiring(sched, (*m).p) } {
                        // The P is to retire (set_gomaxprocs): next waits in the global
                        // queue, and find_runnable retires the P.
                        let mut l = sched.lock.lock_with(m);
                        globrunqput(sched, &mut l, next);
                        break;
                    }
                    gp = next;
                    // SAFETY: the request handed next (runnable) to this M, which holds a P.
                    unsafe { execute(m, gp, false) };
                }
                // g0 ran a function for the G (`systemstack`): switch straight back.
                // SAFETY: gp is still Running on this M; its gobuf holds the context it saved
                // when it switched to g0.
                Next::Return => unsafe { resume(m, gp) },
            }
        }
    }
}

/// Go's `execute`: runs `gp` (runnable) on `m` until it switches back to g0. Inlined into the
/// g0 loop so that g0 does not return from a function right after a switch (see `gosched`).
///
/// # Safety
/// On `m`'s g0 (`m` is the current M), holding a P; `gp` is runnable and was handed to this M.
#[inline(always)]
pub(crate) unsafe fn execute(m: *mut M, gp: *mut G, inherit: bool) {
    // SAFETY: m is the current M; its `p` is written only by itself.
    let pp = unsafe { (*m).p };
    // SAFETY: gp was handed to this M: no other M runs or sets it up; `status` and `preempt`
    // are atomics.
    unsafe {
        (*gp).casgstatus(GStatus::Runnable, GStatus::Running);
        (*gp).preempt.store(false, Ordering::Relaxed);
    }
    // SAFETY: as above: gp's stack is only set by the M it was handed to.
    if unsafe { (*gp).stack.is_empty() } {
        // SAFETY: an M's runtime outlives the M, and pp is the P the current M holds.
        let stack = unsafe { stack::stackalloc((*m).runtime, pp) };
        // SAFETY: gp has never run (no stack yet), so its stack and gobuf are ours to set; the
        // fresh stack is unused and its top `[hi - 64, hi)` writable memory owned by gp.
        unsafe {
            (*gp).stack = stack;
            arch::prepare_new(&mut (*gp).sched, stack.hi, crate::proc::goentry);
        }
    }
    // SAFETY: gp was handed to this M; `stackguard0` is an atomic and its stack is set.
    unsafe {
        (*gp)
            .stackguard0
            .store((*gp).normal_stackguard(), Ordering::Relaxed);
    }
    // Owner-only counters (sysmon and thieves only read them): load + store, no RMW.
    if !inherit {
        // SAFETY: Ps live as long as the runtime and pp is m's; `schedtick` is an atomic.
        unsafe {
            let t = (*pp).schedtick.load(Ordering::Relaxed);
            (*pp).schedtick.store(t.wrapping_add(1), Ordering::Relaxed);
        }
    }
    // SAFETY: Ps live as long as the runtime and pp is m's; `nran` is an atomic.
    unsafe {
        (*pp)
            .nran
            .store((*pp).nran.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
    tracer::ev!(
        m,
        Kind::GoStart,
        0,
        // SAFETY: gp is handed to this M; its goid is an atomic.
        unsafe { (*gp).goid() },
        inherit as u64,
        0,
    );
    // SAFETY: on m's g0; gp is now Running, handed to this M, and its gobuf holds a context
    // saved by swtch or prepared above.
    unsafe { resume(m, gp) };
}

/// Switches from g0 to `gp` (already Running) and returns when it switches back.
///
/// # Safety
/// On `m`'s g0 (`m` is the current M); `gp` is Running and handed to this M, and its gobuf
/// holds a context saved by `swtch` on its own stack (or prepared for a new G).
#[inline]
pub(crate) unsafe fn resume(m: *mut M, gp: *mut G) {
    // SAFETY: m is the current M and gp is handed to it; `curg` and `m` are atomics.
    unsafe {
        (*m).curg.store(gp, Ordering::Relaxed);
        (*gp).m.store(m, Ordering::Relaxed);
    }
    // SAFETY: gp's gobuf holds a context saved by swtch (or prepared for a new G) on its own
    // stack, which no other M runs; g0's gobuf is ours to save into.
    unsafe { arch::swtch(&mut (*(*m).g0).sched, &(*gp).sched) };
}

/// Go's `dropg`.
///
/// # Safety
/// On `m`'s g0 (`m` is the current M), with `gp` switched out.
pub(crate) unsafe fn dropg(m: *mut M, gp: *mut G) {
    // SAFETY: on m's g0 with gp switched out: m and gp are live (Ms and Gs outlive their use
    // here); `curg` and `m` are atomics.
    unsafe {
        (*m).curg.store(null_mut(), Ordering::Relaxed);
        (*gp).m.store(null_mut(), Ordering::Relaxed);
    }
}

/// Go's `gosched_m`/`goschedImpl`: the G goes to the global queue. If this P's local queue
/// is empty, `findRunnable` would next take from the global queue under the same lock we
/// hold, so we do that here (the same G it would pick, with the same 61-tick batch rule) and
/// save a second acquisition of the scheduler lock, the hot spot when several Ps yield; and if
/// the global queue is empty too, the G itself is what would be picked.
///
/// # Safety
/// On `m`'s g0 (`m` is the current M) with `gp` switched out; `m` holds a P.
#[inline]
pub(crate) unsafe fn gosched_m(m: *mut M, gp: *mut G) -> Next {
    // SAFETY: gp is switched out on m's g0, so no one else changes its status (an atomic).
    unsafe { (*gp).casgstatus(GStatus::Running, GStatus::Runnable) };
    // SAFETY: on m's g0 with gp switched out.
    unsafe { dropg(m, gp) };
    // SAFETY: an M's runtime outlives the M.
    let sched = unsafe { &*(*m).runtime };
    // SAFETY: m is the current M; its `p` is written only by itself.
    let pp = unsafe { (*m).p };
    // Due timers and I/O first: what they ready must not wait behind a goroutine that
    // keeps yielding or being preempted (below, it would be taken straight back).
    // SAFETY: on g0 of an M of sched.
    unsafe { poll::ready_events(sched) };
    // Nothing else to run here or in the global queue: Go would put the G on the global
    // queue and take it straight back. Reading `runqsize == 0` orders before any put in
    // progress elsewhere (runqsize is published under the lock after a put), so running
    // the G again now is that same put-and-take at this instant, without the lock.
    // SAFETY: pp is m's P (Ps live as long as the runtime); its run queue is atomic.
    if unsafe { (*pp).runq.is_empty() }
        && sched.runqsize.load(Ordering::Acquire) == 0
        && !sched.exiting.load(Ordering::Acquire)
    {
        return Next::Run(gp);
    }
    let mut l = sched.lock.lock_with(m);
    globrunqput(sched, &mut l, gp);
    // SAFETY: as above.
    if !unsafe { (*pp).runq.is_empty() } || sched.exiting.load(Ordering::Acquire) {
        return Next::FindWork;
    }
    // SAFETY: pp is m's P; `schedtick` is an atomic.
    let max = if unsafe { (*pp).schedtick.load(Ordering::Relaxed) }.is_multiple_of(61) {
        1
    } else {
        0
    };
    // SAFETY: pp is the current M's P, owned by it.
    match unsafe { globrunqget(sched, &mut l, pp, max) } {
        Some(next) => Next::Run(next),
        None => Next::FindWork,
    }
}

/// Go's `findRunnable`: a G to run, or None if the runtime is exiting. Blocks (the M sleeps)
/// while there is nothing to do.
///
/// # Safety
/// On `m`'s g0 (`m` is the current M); m's P (if any) is owned by m. When it returns a G,
/// `m` holds a P.
pub(crate) unsafe fn find_runnable(m: *mut M) -> Option<(*mut G, bool)> {
    // SAFETY: an M's runtime outlives the M.
    let sched = unsafe { &*(*m).runtime };
    'top: loop {
        if sched.exiting.load(Ordering::Acquire) {
            // SAFETY: m is the current M; `spinning` is an atomic.
            if unsafe { (*m).spinning.swap(false, Ordering::Relaxed) } {
                sched.nmspinning.fetch_sub(1, Ordering::AcqRel);
                tracer::ev!(m, Kind::SpinStop, 0, 0, 0, 0);
            }
            return None;
        }
        if sched.nretaken.load(Ordering::Relaxed) > 0 {
            // SAFETY: m is the current M; its `p` is written only by itself.
            if unsafe { (*m).p.is_null() } {
                // An M without a P (one that left the idle list for this) takes it.
                if let Some(pp) = preempt::take_retaken(sched) {
                    // SAFETY: m is the current M and holds no P; take_retaken gave us pp,
                    // which no M holds.
                    unsafe { acquirep(m, pp) };
                }
            } else {
                preempt::handoff_retaken(sched);
            }
        }
        // SAFETY: m is the current M; its `p` is written only by itself.
        let pp = unsafe { (*m).p };
        if pp.is_null() {
            // SAFETY: m is the current M, on its g0, and holds no P.
            unsafe { idle::stopm(m) };
            continue;
        }
        // SAFETY: pp is m's P.
        if unsafe { retiring(sched, pp) } {
            // SAFETY: on m's g0; pp is m's P.
            unsafe { retire_p(sched, m, pp) };
            continue;
        }
        // Due timers and I/O events first: what they ready goes on our queue.
        // SAFETY: on g0 of an M of sched.
        unsafe { poll::ready_events(sched) };
        // SAFETY: on m's g0, and pp is m's P.
        if let Some(found) = unsafe { queued_work(sched, m, pp) } {
            return Some(found);
        }
        // Steal, if not too many Ms are spinning already: at most half the busy Ps.
        let busy =
            sched.gomaxprocs.load(Ordering::Relaxed) as i32 - sched.npidle.load(Ordering::Relaxed);
        // SAFETY: m is the current M; `spinning` is an atomic.
        if unsafe { (*m).spinning.load(Ordering::Relaxed) }
            || 2 * sched.nmspinning.load(Ordering::Relaxed) < busy
        {
            // SAFETY: as above.
            if !unsafe { (*m).spinning.load(Ordering::Relaxed) } {
                // SAFETY: m is the current M.
                unsafe { idle::become_spinning(m) };
            }
            // Keep looking for a while before giving up the P: an M that parks costs the
            // next submitter a futex wake-up (tens of µs on a VM), while a spinning M is
            // found by `wakep` for free (docs/design.md §3).
            let mut deadline = 0;
            loop {
                // SAFETY: on m's g0, and pp is m's P.
                if let Some(gp) = unsafe { steal_work(m, pp) } {
                    return Some((gp, false));
                }
                if sched.runqsize.load(Ordering::Relaxed) > 0 {
                    let mut l = sched.lock.lock_with(m);
                    // SAFETY: pp is the current M's P, owned by it.
                    if let Some(gp) = unsafe { globrunqget(sched, &mut l, pp, 0) } {
                        return Some((gp, false));
                    }
                }
                if sched.exiting.load(Ordering::Acquire) {
                    continue 'top;
                }
                // SAFETY: on g0 of an M of sched.
                if unsafe { poll::run_timers(sched) } > 0 {
                    continue 'top;
                }
                let now = platform::get().nanotime();
                if deadline == 0 {
                    deadline = now + SPIN_BEFORE_PARK_NS;
                } else if now >= deadline {
                    break;
                }
                for _ in 0..64 {
                    core::hint::spin_loop();
                }
            }
        }
        // Nothing: give up the P (Go's "stop:" label).
        let mut l = sched.lock.lock_with(m);
        if sched.exiting.load(Ordering::Acquire) {
            continue;
        }
        // SAFETY: pp is the current M's P, owned by it.
        if let Some(gp) = unsafe { globrunqget(sched, &mut l, pp, 0) } {
            return Some((gp, false));
        }
        // SAFETY: m is the current M and holds a P (pp).
        let pp = unsafe { releasep(m) };
        // SAFETY: under sched.lock; pp was just released by m, so it has no M and is ours to
        // put on the idle list.
        unsafe { pidleput(sched, &mut l, pp) };
        drop(l);
        // SAFETY: m is the current M; `spinning` is an atomic.
        if unsafe { (*m).spinning.swap(false, Ordering::Relaxed) } {
            if sched.nmspinning.fetch_sub(1, Ordering::AcqRel) <= 0 {
                platform::fatal(format_args!("findrunnable: negative nmspinning"));
            }
            tracer::ev!(m, Kind::SpinStop, 0, 0, 0, 0);
            // Pairs with the fence in `wakep`: our decrement before our reads of the queues
            // in `last_look`, so that we or the submitter sees the other.
            core::sync::atomic::fence(Ordering::SeqCst);
            // SAFETY: m is the current M, on its g0, holding no P.
            if unsafe { last_look(sched, m) } {
                continue 'top;
            }
        }
        // SAFETY: m is the current M, on its g0, holding no P.
        unsafe { poll::idle(m) };
    }
}

/// The delicate dance (proc.go findRunnable, after "we're no longer spinning"): an M that
/// stops spinning must look at the global queue and every P's queue once more *after* it has
/// decremented `nmspinning`. A goroutine readied while we were spinning saw a spinning M and
/// woke no one (`wakep` wakes an M only when none spins); without this look it would sit in
/// its queue with every M asleep. True: there was work, and `m` now holds a P and spins again.
///
/// # Safety
/// On `m`'s g0 (`m` is the current M), holding no P, just out of spinning.
unsafe fn last_look(sched: &Sched, m: *mut M) -> bool {
    // LAB(park) begin: last_look, the re-check that closes the lost wake-up
    // LAB(park) hint: Chapter 5. If the global queue has goroutines (sched.runqsize > 0) or
    // LAB(park) hint: any P in sched.allp has a non-empty run queue ((*p2).runq.is_empty()),
    // LAB(park) hint: take an idle P (pidleget under sched.lock.lock_with(m)); if you got one,
    // LAB(park) hint: acquirep(m, pp), become spinning again (idle::become_spinning) and
    // LAB(park) hint: return true. If there is no idle P, someone else is running and will
    // LAB(park) hint: find the work: return false.
    // LAB(park) stub: let _ = (sched, m);
    // LAB(park) stub: false
    // The global queue too, as Go looks: a goroutine put there while we spun (by retire_p, or
    // a timer run without a P) met the same `wakep` that trusted us.
    let work = sched.runqsize.load(Ordering::Acquire) > 0
        || sched
            .allp
            .iter()
            // SAFETY: Ps live as long as the runtime; another P's queue is only read, through
            // its atomics.
            .any(|&p2| !unsafe { (*p2).runq.is_empty() });
    if !work {
        return false;
    }
    let mut l = sched.lock.lock_with(m);
    // SAFETY: under sched.lock.
    let pp = unsafe { pidleget(sched, &mut l) };
    drop(l);
    if pp.is_null() {
        return false;
    }
    // SAFETY: m is the current M and holds no P (the caller's promise); pp came off the idle
    // list, so no M holds it.
    unsafe { acquirep(m, pp) };
    // SAFETY: m is the current M.
    unsafe { idle::become_spinning(m) };
    true
    // LAB(park) end
}

/// The first places `find_runnable` looks, in Go's order: the global queue on every 61st
/// schedule (so that a P whose local queue never empties still lets the global queue's
/// goroutines run), then the local queue (runnext first), then the global queue.
///
/// # Safety
/// On `m`'s g0 (`m` is the current M), and `pp` is m's P.
// Inlined: it was find_runnable's own code before the lab region made it a function, and every
// schedule passes here.
#[inline(always)]
unsafe fn queued_work(sched: &Sched, m: *mut M, pp: *mut P) -> Option<(*mut G, bool)> {
    // LAB(findrunnable) begin: queued_work, the order of findRunnable's first looks
    // LAB(findrunnable) hint: Chapter 4. The stub only looks at the local queue. Go's order
    // LAB(findrunnable) hint: (proc.go findRunnable): if pp's schedtick is a multiple of 61 and
    // LAB(findrunnable) hint: the global queue is not empty (sched.runqsize), take one G from
    // LAB(findrunnable) hint: it: globrunqget(sched, &mut l, pp, 1) under l = sched.lock.lock_with(m).
    // LAB(findrunnable) hint: Then the local queue, (*pp).runq.get(). Then, if the global
    // LAB(findrunnable) hint: queue is not empty, a batch from it: globrunqget(.., 0). A G from
    // LAB(findrunnable) hint: the global queue does not inherit the time slice: (gp, false).
    // LAB(findrunnable) stub: let _ = (sched, m);
    // LAB(findrunnable) stub: // SAFETY: pp is m's P: m is the owner its queue's `get` requires.
    // LAB(findrunnable) stub: unsafe { (*pp).runq.get() }
    // Fairness: now and then look at the global queue first (proc.go: "Check the
    // global runnable queue once in a while to ensure fairness").
    // SAFETY: pp is m's P (Ps live as long as the runtime); `schedtick` is an atomic.
    if unsafe { (*pp).schedtick.load(Ordering::Relaxed) }.is_multiple_of(61)
        && sched.runqsize.load(Ordering::Relaxed) > 0
    {
        let mut l = sched.lock.lock_with(m);
        // SAFETY: pp is the current M's P, owned by it.
        if let Some(gp) = unsafe { globrunqget(sched, &mut l, pp, 1) } {
            return Some((gp, false));
        }
    }
    // SAFETY: pp is m's P: m is the owner its queue's `get` requires.
    if let Some(found) = unsafe { (*pp).runq.get() } {
        return Some(found);
    }
    if sched.runqsize.load(Ordering::Relaxed) > 0 {
        let mut l = sched.lock.lock_with(m);
        // SAFETY: pp is the current M's P, owned by it.
        if let Some(gp) = unsafe { globrunqget(sched, &mut l, pp, 0) } {
            return Some((gp, false));
        }
    }
    None
    // LAB(findrunnable) end
}

/// How long a thief sleeps before taking a running P's `runnext` (Go: `usleep(3)` in
/// proc.go `runqgrab`).
const RUNNEXT_GRACE_US: u32 = 3;

/// Go's `stealWork`: 4 passes over all other Ps in random order, stealing half of a run
/// queue; `runnext` only on the last pass.
///
/// # Safety
/// On `m`'s g0 (`m` is the current M), and `pp` is m's P.
pub(crate) unsafe fn steal_work(m: *mut M, pp: *mut P) -> Option<*mut G> {
    // SAFETY: an M's runtime outlives the M.
    let sched = unsafe { &*(*m).runtime };
    let n = sched.allp.len();
    if n == 1 {
        return None;
    }
    const STEAL_TRIES: usize = 4;
    for i in 0..STEAL_TRIES {
        let last = i == STEAL_TRIES - 1;
        // SAFETY: m is the current M; its random state is used only by itself.
        let r = unsafe { crate::m::cheaprand(m) } as usize;
        let step = sched.coprimes[r % sched.coprimes.len()];
        let mut pos = (r / sched.coprimes.len()) % n;
        for _ in 0..n {
            let p2 = sched.allp[pos];
            pos = (pos + step) % n;
            // SAFETY: Ps live as long as the runtime; a P's status is an atomic.
            if p2 == pp || unsafe { (*p2).status() } == PStatus::Idle {
                continue;
            }
            // Go sleeps 3 µs before taking a running P's runnext so that P gets to run it
            // (proc.go `runqgrab`: a channel hand-off takes ~50 ns, so 3 µs overshoots 50x).
            // On Linux that sleep lasts ~60 µs (timer slack; 61.9 µs measured here), and the
            // length matters: a producer that readies its consumer keeps running until the
            // buffer is full, so a thief that waited only a `sched_yield` or 3 µs of spinning
            // took the consumer mid-hand-off and the two then fought over the channel from two
            // Ps (chan_buffered at 2 Ps: 1.3-1.9x Go's time). So we sleep as Go does.
            let wait = || platform::get().usleep(RUNNEXT_GRACE_US);
            // SAFETY: m owns pp (the owner its queue's `steal_from` requires); p2 lives as
            // long as the runtime and is only touched through its atomic queue.
            if let Some(gp) = unsafe { (*pp).runq.steal_from(&(*p2).runq, last, &wait) } {
                // SAFETY: pp is m's P; `nstolen` is an atomic.
                unsafe { (*pp).nstolen.fetch_add(1, Ordering::Relaxed) };
                if tracer::on() {
                    // SAFETY: Ps live as long as the runtime; ids are fixed, lengths atomic.
                    let (victim, n) = unsafe { ((*p2).id, (*pp).runq.len() + 1) };
                    tracer::ev!(m, Kind::ProcSteal, 0, victim as u64, n as u64, 0);
                }
                return Some(gp);
            }
        }
    }
    None
}

/// Whether `pp` is beyond GOMAXPROCS ([`crate::set_gomaxprocs`] lowered it): its M must
/// retire it ([`retire_p`]) instead of running more goroutines on it.
///
/// # Safety
/// `pp` is a P of `sched`.
#[inline]
unsafe fn retiring(sched: &Sched, pp: *mut P) -> bool {
    // SAFETY: the caller's promise; Ps live as long as the runtime, an id is fixed at creation.
    unsafe { (*pp).id >= sched.gomaxprocs.load(Ordering::Acquire) }
}

/// A P beyond GOMAXPROCS (after [`crate::set_gomaxprocs`] lowered it) retires: its queued
/// goroutines go to the global queue, its timers to P 0, and it becomes `Dead`; its M is left
/// without a P (and stops, or finds another). Go's `procresize` does this under stop-the-world;
/// here the P's own M does it, on g0, at its next look for work, so nothing else touches the
/// P's queue as its owner.
///
/// # Safety
/// On `m`'s g0 (the current M); `pp` is m's P.
unsafe fn retire_p(sched: &Sched, m: *mut M, pp: *mut P) {
    // A spinning M hands its spinning on first (Go's `resetspinning`: out of it, and wake an
    // M to spin if none does). While an M spins, submitters wake no one (`wakep`), trusting
    // the spinner to find their work; this one is about to stop without looking, so the work
    // it was trusted with (goroutines readied meanwhile, the timers moved below) needs
    // another. Without the hand-off, a P retired by a spinning M left its timers to no poller
    // and every M asleep (procs::sleepers_on_removed_ps_still_wake, 1 run in 3).
    // SAFETY: m is the current M; `spinning` is an atomic.
    if unsafe { (*m).spinning.load(Ordering::Relaxed) } {
        // SAFETY: m is the current M.
        unsafe { idle::reset_spinning(m) };
    }
    // SAFETY: pp is m's P: m is the owner its queue's `get` requires.
    while let Some((gp, _)) = unsafe { (*pp).runq.get() } {
        let mut l = sched.lock.lock_with(m);
        globrunqput(sched, &mut l, gp);
    }
    // SAFETY: P 0 is never retired (GOMAXPROCS >= 1), so it differs from pp.
    unsafe { crate::time::move_timers(sched, pp, sched.allp[0]) };
    // SAFETY: m is the current M and holds pp.
    let pp = unsafe { idle::releasep(m) };
    // SAFETY: pp is no M's and on no list: ours to mark.
    unsafe { (*pp).status.store(PStatus::Dead as u32, Ordering::Release) };
    // Whatever waits in the global queue now needs an M: the Gs moved above, and the G that
    // the schedule loop put there on its way here (a gosched's pick, which a retiring P does
    // not run). When only the moved Gs were counted, that G was left with every M asleep
    // (set_gomaxprocs_shrinks_and_grows_while_goroutines_run: "all goroutines are asleep"
    // beside a runnable G, 1 run in ~40). One wakep suffices: the M it starts spins, and a
    // spinner that finds work wakes the next (reset_spinning).
    if sched.runqsize.load(Ordering::Acquire) > 0 {
        idle::wakep(sched);
    }
}

/// Go's `globrunqput`.
pub(crate) fn globrunqput(sched: &Sched, l: &mut SchedLocked, gp: *mut G) {
    // SAFETY: gp is runnable and owned by the caller, on no other list.
    unsafe { l.runq.push_back(gp) };
    sched.runqsize.store(l.runq.len() as i32, Ordering::Relaxed);
}

/// Go's `globrunqget`: takes a batch (its fair share, at most half a local queue) from the
/// global queue, returns one to run and puts the rest on `pp`'s local queue.
///
/// # Safety
/// `pp` is the current M's P (owned by it), and `l` is `sched`'s locked state.
pub(crate) unsafe fn globrunqget(
    sched: &Sched,
    l: &mut SchedLocked,
    pp: *mut P,
    max: usize,
) -> Option<*mut G> {
    let size = l.runq.len();
    if size == 0 {
        return None;
    }
    // Go's batch: a fair share, plus one. (A queue of one, the common case on the gosched
    // path, needs no division.)
    let mut n = if size == 1 {
        1
    } else {
        ((size as u32 / sched.gomaxprocs.load(Ordering::Relaxed) as u32) as usize + 1).min(size)
    };
    if max > 0 {
        n = n.min(max);
    }
    n = n.min(crate::runq::RUNQ_SIZE / 2);
    tracer::ev_here(Kind::GlobalRunqGet, 0, n as u64, 0, 0);
    let gp = l.runq.pop_front();
    for _ in 1..n {
        let g1 = l
            .runq
            .pop_front()
            .expect("global run queue shorter than its length");
        // SAFETY: pp is owned by the current M; half a queue always fits in an empty-enough
        // local queue, and any overflow is appended back to the global queue below.
        if let Some(over) = unsafe { (*pp).runq.put(g1, false) } {
            for &g in &over.items[..over.len] {
                // SAFETY: these Gs came off pp's queue; they are runnable and on no list.
                unsafe { l.runq.push_back(g) };
            }
        }
    }
    sched.runqsize.store(l.runq.len() as i32, Ordering::Relaxed);
    gp
}

/// Go's `runqput` including `runqputslow`: to `pp`'s local queue (runnext if `next`), the
/// older half going to the global queue when it is full.
///
/// # Safety
/// `pp` is the current M's P (owned by it), and `gp` is runnable and on no list.
pub(crate) unsafe fn runqput(sched: &Sched, pp: *mut P, gp: *mut G, next: bool) {
    // SAFETY: the caller owns pp (it is the current M's P) and gp (runnable, on no list).
    if let Some(over) = unsafe { (*pp).runq.put(gp, next) } {
        let mut l = sched.lock.lock();
        for &g in &over.items[..over.len] {
            // SAFETY: runnable Gs taken off pp's queue, on no list.
            unsafe { l.runq.push_back(g) };
        }
        sched.runqsize.store(l.runq.len() as i32, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::steal_strides;

    /// Whether n steps of `stride` from `start` visit each of `n` positions once.
    fn covers(n: usize, stride: usize, start: usize) -> bool {
        let mut seen = alloc::vec![false; n];
        let mut pos = start;
        for _ in 0..n {
            if seen[pos] {
                return false;
            }
            seen[pos] = true;
            pos = (pos + stride) % n;
        }
        true
    }

    /// The strides are exactly those whose walk visits every P from every start: none that
    /// skips a P (a thief would never look at it), none missing (fewer orders to spread
    /// thieves over). Checked by walking, not by recomputing gcds.
    #[test]
    fn steal_strides_are_exactly_the_walks_that_visit_every_p() {
        for n in 1..=16 {
            let want: alloc::vec::Vec<usize> = (1..=n)
                .filter(|&s| (0..n).all(|start| covers(n, s, start)))
                .collect();
            assert_eq!(steal_strides(n), want, "strides over {n} Ps");
        }
        assert_eq!(steal_strides(6), [1, 5]);
    }
}

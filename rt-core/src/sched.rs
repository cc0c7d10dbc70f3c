//! The scheduler: Go's `schedt` and the loop around `schedule` in proc.go: finding work
//! (`find_runnable`: local queue, global queue, stealing), running it (`execute`), and the
//! global run queue.
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
use crate::preempt::{self, Handoff};
use crate::run::Failure;
use crate::stack;
use crate::stack::Stack;
use crate::status::GStatus;

/// How long a spinning M keeps looking for work before it gives up its P and parks. Go's
/// spinning is a few steal passes; ours is longer because parking and waking an M costs tens
/// of microseconds on the VMs this runs on (DESIGN.md §4). At most half the busy Ps' worth of
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

/// A snapshot of a runtime's counters ([`Sched::counters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Preemption requests made by sysmon (a G overran its time slice).
    pub preempt_requests: u64,
    /// Requests honoured at a safe point.
    pub sync_preempts: u64,
    /// Gs stopped from an interrupt where they stood.
    pub async_preempts: u64,
    /// Ps taken from Ms stuck in a syscall.
    pub syscall_retakes: u64,
    /// Stacks asked of the platform (misses of the stack caches).
    pub stack_allocs: u64,
    /// Stacks given back to the platform.
    pub stack_frees: u64,
    /// Bytes released from cached stacks.
    pub stack_bytes_trimmed: u64,
    /// Sleeps of the poller until a timer or an I/O event.
    pub poll_sleeps: u64,
    /// Timers run.
    pub timers_run: u64,
}

/// Go's `schedt`: the state shared by all Ms and Ps of one runtime. Fields are grouped by
/// what guards them.
pub struct Sched {
    // --- Fixed at creation (read by anyone, never written).
    /// All Ps (GOMAXPROCS of them).
    pub(crate) allp: Vec<*mut P>,
    pub(crate) gomaxprocs: usize,
    /// Step sizes coprime with GOMAXPROCS, for visiting all Ps in a random order (Go's
    /// `randomOrder`).
    pub(crate) coprimes: Vec<usize>,
    pub(crate) stack_size: usize,

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

unsafe impl Sync for Sched {}

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
        let m = Box::into_raw(Box::new(M::new(id, g0, self)));
        self.allms.lock().push(m);
        m
    }

    /// Gs allocated so far (dead ones on free lists included): Go's `len(allgs)`. Gs are
    /// reused, never freed while the runtime lives, so a steady spawn/exit loop keeps this
    /// constant.
    pub fn allg_count(&self) -> usize {
        self.allgs.lock().iter().map(|s| s.len()).sum()
    }

    /// A snapshot of the runtime's counters.
    pub fn counters(&self) -> Counters {
        let st = &self.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            preempt_requests: get(&st.npreempt_requests),
            sync_preempts: get(&st.nsync_preempt),
            async_preempts: get(&st.nasync_preempt),
            syscall_retakes: get(&st.nretake_syscall),
            stack_allocs: get(&st.nstackalloc),
            stack_frees: get(&st.nstackfree),
            stack_bytes_trimmed: get(&st.nstacktrimmed),
            poll_sleeps: get(&st.npoll_sleeps),
            timers_run: get(&st.ntimers_run),
        }
    }

    /// Switches the stack cache on or off while the runtime runs (to measure what it saves).
    pub fn set_stack_cache(&self, on: bool) {
        self.stack_cache.store(on, Ordering::Relaxed);
    }

    /// One pass of sysmon ([`preempt::retake`]), for a platform whose sysmon is its own (the
    /// kernel's timer tick).
    pub fn retake(&self, now: u64, handoff: Handoff) -> u32 {
        preempt::retake(self, now, handoff)
    }

    /// Per-P counts of Gs run and stolen (for tests and schedtrace).
    pub fn per_p_stats(&self) -> Vec<(u64, u64)> {
        self.allp
            .iter()
            // SAFETY: Ps live as long as the runtime; the counters are atomics.
            .map(|&p| unsafe {
                (
                    (*p).nran.load(Ordering::Relaxed),
                    (*p).nstolen.load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

/// The g0 loop (Go's `schedule`): find a G, run it, and when it switches back serve its
/// request (mcall.rs) until it is off this M. Returns when the runtime exits.
pub(crate) unsafe fn schedule(m: *mut M) {
    // SAFETY: runs on m's own thread, on g0; every G handled here was handed to this M.
    unsafe {
        while let Some((gp, inherit)) = find_runnable(m) {
            if (*m).spinning.load(Ordering::Relaxed) {
                idle::reset_spinning(m);
            }
            execute(m, gp, inherit);
            let mut gp = gp;
            loop {
                match mcall::handle(m, gp, mcall::take(m)) {
                    Next::FindWork => break,
                    // The G is runnable again at once (a park whose unlock said no, or a
                    // syscall exit that found a P): run it, keeping its time slice.
                    Next::Resume => execute(m, gp, true),
                    // Found next while the request held the scheduler lock.
                    Next::Run(next) => {
                        gp = next;
                        execute(m, gp, false);
                    }
                    // g0 ran a function for the G (`systemstack`): switch straight back.
                    Next::Return => resume(m, gp),
                }
            }
        }
    }
}

/// Go's `execute`: runs `gp` (runnable) on `m` until it switches back to g0. Inlined into the
/// g0 loop so that g0 does not return from a function right after a switch (see `gosched`).
#[inline(always)]
pub(crate) unsafe fn execute(m: *mut M, gp: *mut G, inherit: bool) {
    // SAFETY: gp is runnable and was handed to this M; m holds a P.
    unsafe {
        let pp = (*m).p;
        (*gp).casgstatus(GStatus::Runnable, GStatus::Running);
        (*gp).preempt.store(false, Ordering::Relaxed);
        if (*gp).stack.is_empty() {
            let stack = stack::stackalloc((*m).runtime, pp);
            (*gp).stack = stack;
            arch::prepare_new(&mut (*gp).sched, stack.hi, crate::proc::goentry);
        }
        (*gp)
            .stackguard0
            .store((*gp).normal_stackguard(), Ordering::Relaxed);
        // Owner-only counters (sysmon and thieves only read them): load + store, no RMW.
        if !inherit {
            let t = (*pp).schedtick.load(Ordering::Relaxed);
            (*pp).schedtick.store(t.wrapping_add(1), Ordering::Relaxed);
        }
        (*pp)
            .nran
            .store((*pp).nran.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        resume(m, gp);
    }
}

/// Switches from g0 to `gp` (already Running) and returns when it switches back.
#[inline]
pub(crate) unsafe fn resume(m: *mut M, gp: *mut G) {
    // SAFETY: gp's gobuf holds a context saved by swtch (or prepared for a new G) on its own
    // stack, which no other M runs; g0's gobuf is ours to save into.
    unsafe {
        (*m).curg.store(gp, Ordering::Relaxed);
        (*gp).m.store(m, Ordering::Relaxed);
        arch::swtch(&mut (*(*m).g0).sched, &(*gp).sched);
    }
}

/// Go's `dropg`.
pub(crate) unsafe fn dropg(m: *mut M, gp: *mut G) {
    // SAFETY: on m's g0 with gp switched out.
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
pub(crate) unsafe fn gosched_m(m: *mut M, gp: *mut G) -> Next {
    // SAFETY: on m's g0 with gp switched out; m holds a P.
    unsafe {
        (*gp).casgstatus(GStatus::Running, GStatus::Runnable);
        dropg(m, gp);
        let sched = &*(*m).runtime;
        let pp = (*m).p;
        // Due timers and I/O first: what they ready must not wait behind a goroutine that
        // keeps yielding or being preempted (below, it would be taken straight back).
        poll::ready_events(sched);
        // Nothing else to run here or in the global queue: Go would put the G on the global
        // queue and take it straight back. Reading `runqsize == 0` orders before any put in
        // progress elsewhere (runqsize is published under the lock after a put), so running
        // the G again now is that same put-and-take at this instant, without the lock.
        if (*pp).runq.is_empty()
            && sched.runqsize.load(Ordering::Acquire) == 0
            && !sched.exiting.load(Ordering::Acquire)
        {
            return Next::Run(gp);
        }
        let mut l = sched.lock.lock_with(m);
        globrunqput(sched, &mut l, gp);
        if !(*pp).runq.is_empty() || sched.exiting.load(Ordering::Acquire) {
            return Next::FindWork;
        }
        let max = if (*pp).schedtick.load(Ordering::Relaxed).is_multiple_of(61) {
            1
        } else {
            0
        };
        match globrunqget(sched, &mut l, pp, max) {
            Some(next) => Next::Run(next),
            None => Next::FindWork,
        }
    }
}

/// Go's `findRunnable`: a G to run, or None if the runtime is exiting. Blocks (the M sleeps)
/// while there is nothing to do.
pub(crate) unsafe fn find_runnable(m: *mut M) -> Option<(*mut G, bool)> {
    // SAFETY: on m's g0; m's P (if any) is owned by m.
    unsafe {
        let sched = &*(*m).runtime;
        'top: loop {
            if sched.exiting.load(Ordering::Acquire) {
                if (*m).spinning.swap(false, Ordering::Relaxed) {
                    sched.nmspinning.fetch_sub(1, Ordering::AcqRel);
                }
                return None;
            }
            if sched.nretaken.load(Ordering::Relaxed) > 0 {
                if (*m).p.is_null() {
                    // An M without a P (one that left the idle list for this) takes it.
                    if let Some(pp) = preempt::take_retaken(sched) {
                        acquirep(m, pp);
                    }
                } else {
                    preempt::handoff_retaken(sched);
                }
            }
            let pp = (*m).p;
            if pp.is_null() {
                idle::stopm(m);
                continue;
            }
            // Due timers and I/O events first: what they ready goes on our queue.
            poll::ready_events(sched);
            // Fairness: now and then look at the global queue first (proc.go: "Check the
            // global runnable queue once in a while to ensure fairness").
            if (*pp).schedtick.load(Ordering::Relaxed).is_multiple_of(61)
                && sched.runqsize.load(Ordering::Relaxed) > 0
            {
                let mut l = sched.lock.lock_with(m);
                if let Some(gp) = globrunqget(sched, &mut l, pp, 1) {
                    return Some((gp, false));
                }
            }
            if let Some(found) = (*pp).runq.get() {
                return Some(found);
            }
            if sched.runqsize.load(Ordering::Relaxed) > 0 {
                let mut l = sched.lock.lock_with(m);
                if let Some(gp) = globrunqget(sched, &mut l, pp, 0) {
                    return Some((gp, false));
                }
            }
            // Steal, if not too many Ms are spinning already: at most half the busy Ps.
            let busy = sched.gomaxprocs as i32 - sched.npidle.load(Ordering::Relaxed);
            if (*m).spinning.load(Ordering::Relaxed)
                || 2 * sched.nmspinning.load(Ordering::Relaxed) < busy
            {
                if !(*m).spinning.load(Ordering::Relaxed) {
                    idle::become_spinning(m);
                }
                // Keep looking for a while before giving up the P: an M that parks costs the
                // next submitter a futex wake-up (tens of µs on a VM), while a spinning M is
                // found by `wakep` for free (DESIGN.md §4).
                let mut deadline = 0;
                loop {
                    if let Some(gp) = steal_work(m, pp) {
                        return Some((gp, false));
                    }
                    if sched.runqsize.load(Ordering::Relaxed) > 0 {
                        let mut l = sched.lock.lock_with(m);
                        if let Some(gp) = globrunqget(sched, &mut l, pp, 0) {
                            return Some((gp, false));
                        }
                    }
                    if sched.exiting.load(Ordering::Acquire) {
                        continue 'top;
                    }
                    if poll::run_timers(sched) > 0 {
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
            if let Some(gp) = globrunqget(sched, &mut l, pp, 0) {
                return Some((gp, false));
            }
            let pp = releasep(m);
            pidleput(sched, &mut l, pp);
            drop(l);
            if (*m).spinning.swap(false, Ordering::Relaxed) {
                if sched.nmspinning.fetch_sub(1, Ordering::AcqRel) <= 0 {
                    platform::fatal(format_args!("findrunnable: negative nmspinning"));
                }
                // The delicate dance: a submitter may have seen us spinning and woken no one.
                for &p2 in &sched.allp {
                    if !(*p2).runq.is_empty() {
                        let mut l = sched.lock.lock_with(m);
                        let pp = pidleget(sched, &mut l);
                        drop(l);
                        if !pp.is_null() {
                            acquirep(m, pp);
                            idle::become_spinning(m);
                            continue 'top;
                        }
                        break;
                    }
                }
            }
            poll::idle(m);
        }
    }
}

/// Go's `stealWork`: 4 passes over all other Ps in random order, stealing half of a run
/// queue; `runnext` only on the last pass.
pub(crate) unsafe fn steal_work(m: *mut M, pp: *mut P) -> Option<*mut G> {
    // SAFETY: on m's g0, m owns pp; other Ps are only touched through their atomic queues.
    unsafe {
        let sched = &*(*m).runtime;
        let n = sched.allp.len();
        if n == 1 {
            return None;
        }
        const STEAL_TRIES: usize = 4;
        for i in 0..STEAL_TRIES {
            let last = i == STEAL_TRIES - 1;
            let r = (*m).cheaprand() as usize;
            let step = sched.coprimes[r % sched.coprimes.len()];
            let mut pos = (r / sched.coprimes.len()) % n;
            for _ in 0..n {
                let p2 = sched.allp[pos];
                pos = (pos + step) % n;
                if p2 == pp || (*p2).status() == PStatus::Idle {
                    continue;
                }
                // Go sleeps 3 µs before taking a running P's runnext so that P gets to run it;
                // a sleep that short is ~60 µs on Linux VMs (timer slack), so we yield instead.
                if let Some(gp) = (*pp)
                    .runq
                    .steal_from(&(*p2).runq, last, &|| platform::get().osyield())
                {
                    (*pp).nstolen.fetch_add(1, Ordering::Relaxed);
                    return Some(gp);
                }
            }
        }
        None
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
        ((size as u32 / sched.gomaxprocs as u32) as usize + 1).min(size)
    };
    if max > 0 {
        n = n.min(max);
    }
    n = n.min(crate::runq::RUNQ_SIZE / 2);
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

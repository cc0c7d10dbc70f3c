//! The scheduler: Go's `schedt` and the functions around `schedule` in proc.go.
//!
//! # The design (after proc.go's header)
//!
//! The main concepts are G (goroutine, g.rs), M (a thread or CPU, m.rs) and P (the right to
//! run, with a local run queue, p.rs). An M runs Gs only while it holds a P. Each M loops on
//! its g0 in [`schedule`]: find a runnable G ([`find_runnable`]), switch to it
//! ([`execute`]), and when the G switches back (it yielded, parked, exited, was preempted)
//! carry out what it asked.
//!
//! Where work is found, in Go's order: every 61st schedule on a P the global queue first (so
//! that Gs there are not starved by two Gs that keep readying each other on a local queue);
//! then the local queue (runnext first); then the global queue; then stealing half of another
//! P's queue (4 passes over all Ps in random order; `runnext` only on the last pass). A P with
//! nothing to do is put on the idle list and its M goes to sleep (`stopm`).
//!
//! # Worker parking and unparking (proc.go's "Worker thread parking/unparking")
//!
//! We want enough running Ms to use the available Ps, but no Ms burning CPU with nothing to
//! do. A *spinning* M is one that has a P and is looking for work to steal; there is at most
//! half as many spinning Ms as busy Ps. When new work appears (a spawn, a G readied) and there
//! is an idle P but no spinning M, [`wakep`] wakes one M to spin. A spinning M that finds work
//! stops spinning and wakes another ([`reset_spinning`]), so bursts of work fan out; a spinning
//! M that finds nothing drops its P, then *re-checks every run queue* before sleeping: a
//! submitter that saw `nmspinning > 0` did not wake anyone, so the last spinner must not miss
//! its work.
//!
//! # Invariants
//!
//! - `nmspinning` counts Ms with `spinning` set; `npidle` counts Ps on the idle list.
//! - A P on the idle list has an empty run queue and no M.
//! - `runqsize` mirrors the global queue's length (read without the lock, as Go does).
//! - The lock order is: a runtime lock of a channel or WaitGroup, then `sched.lock`.
//! - Gs are never freed while the runtime lives: pointers to them stay valid.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::panic::Location;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering};

use crate::arch;
use crate::g::{GQueue, Stack, G, STACK_PREEMPT};
use crate::lock::Mutex;
use crate::m::{Req, M};
use crate::p::{PStatus, P, STACK_CACHE_BUDGET, STACK_CACHE_MAX};
use crate::platform;
use crate::status::GStatus;

/// Go's `forcePreemptNS`: a G that has run this long without a reschedule gets a preemption
/// request from sysmon.
pub const FORCE_PREEMPT_NS: u64 = 10_000_000;

/// How long a spinning M keeps looking for work before it gives up its P and parks. Go's
/// spinning is a few steal passes; ours is longer because parking and waking an M costs tens
/// of microseconds on the VMs this runs on (DESIGN.md §4). At most half the busy Ps' worth of
/// Ms spin, so the cost is bounded.
pub const SPIN_BEFORE_PARK_NS: u64 = 50_000;

/// The default usable size of a goroutine stack (the platform adds a guard page below). Rust
/// frames are larger than Go's and our stacks cannot grow by copying, so this is the maximum,
/// not the start: on the host it is virtual memory, committed page by page as it is touched.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Why the runtime stopped other than by `main` returning.
#[derive(Debug)]
pub enum Failure {
    /// Go's `checkdead`: no G can ever run again.
    Deadlock,
    /// A goroutine panicked (host: the payload is re-raised by `block_on`).
    Panic {
        goid: u64,
        #[cfg(feature = "std")]
        payload: Box<dyn core::any::Any + Send>,
        message: String,
    },
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Failure::Deadlock => f.write_str("all goroutines are asleep - deadlock!"),
            Failure::Panic { goid, message, .. } => {
                write!(f, "panic in goroutine {goid}: {message}")
            }
        }
    }
}

/// What `sched.lock` protects.
pub(crate) struct SchedLocked {
    /// The global run queue (Go's `sched.runq`).
    pub runq: GQueue,
    /// Idle Ms (Go's `midle`, `nmidle`).
    pub midle: *mut M,
    pub nmidle: i32,
    /// Idle Ps (Go's `pidle`).
    pub pidle: *mut P,
    /// Dead Gs spilled from the Ps' free lists (Go's `sched.gFree`).
    pub gfree: GQueue,
    /// Next M id (Go's `mnext`).
    pub mnext: i64,
}

// SAFETY: the raw pointers are to runtime objects whose ownership the lock protects.
unsafe impl Send for SchedLocked {}

/// Counters for tests, traces and benchmarks.
#[derive(Default)]
pub struct Stats {
    /// Preemption requests made by sysmon (`preemptone`).
    pub npreempt_requests: AtomicU64,
    /// Requests honoured at a safe point (`preempt_point`, a runtime entry).
    pub nsync_preempt: AtomicU64,
    /// Gs stopped by the platform from an interrupt where they stood ([`crate::proc::async_preempt`]).
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

/// How `retake` hands off a P it took from an M stuck in a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// At once (`handoffp`): sysmon is an ordinary thread (the host).
    Now,
    /// Later, by the next M that looks for work: sysmon is an interrupt handler (the kernel's
    /// tick), which must not take the scheduler lock or allocate an M.
    Deferred,
}

/// Go's `schedt`: the state shared by all Ms and Ps of one runtime.
pub struct Sched {
    pub(crate) lock: Mutex<SchedLocked>,
    pub nmspinning: AtomicI32,
    pub npidle: AtomicI32,
    /// The global queue's length, readable without the lock.
    pub runqsize: AtomicI32,
    /// The global G free list's length, readable without the lock.
    pub ngfree: AtomicI32,
    /// Ms that exist (started and not yet gone); `checkdead` compares it with `nmidle`.
    pub mcount: AtomicI32,
    pub goidgen: AtomicU64,
    /// All Ps (GOMAXPROCS of them), fixed at creation.
    pub allp: Vec<*mut P>,
    pub gomaxprocs: usize,
    /// Step sizes coprime with GOMAXPROCS, for visiting all Ps in a random order (Go's
    /// `randomOrder`).
    coprimes: Vec<usize>,
    pub stack_size: usize,
    /// Whether exited goroutines' stacks are cached for reuse (per P, then a global pool).
    /// On by default; off, every stack comes from and goes back to the platform (to measure
    /// what the cache saves).
    pub stack_cache: AtomicBool,
    pub main_started: AtomicBool,
    pub exiting: AtomicBool,
    pub(crate) failure: Mutex<Option<Failure>>,
    /// Every G of this runtime, as the slabs they were allocated in (Go's `allgs`).
    pub(crate) allgs: Mutex<Vec<*mut [G]>>,
    /// Free stacks beyond the Ps' caches (Go's global `stackpool`).
    pub(crate) stackpool: Mutex<Vec<Stack>>,
    pub(crate) allms: Mutex<Vec<*mut M>>,
    /// Ps that sysmon took from syscalls and left for the next M in `find_runnable` to hand
    /// off (`Handoff::Deferred`); each such P has `retaken` set.
    pub nretaken: AtomicI32,
    /// Go's `forcePreemptNS`, settable (the kernel's `timeslice=` argument).
    pub timeslice_ns: AtomicU64,
    /// Whether sysmon asks long-running Gs to yield at all (the kernel's `preempt=0` turns it
    /// off, to show what starvation looks like).
    pub preempt_enabled: AtomicBool,
    /// Orders timers with equal deadlines by creation (time.rs).
    pub(crate) timerseq: AtomicU64,
    /// Timers pending in all Ps' heaps.
    pub ntimers: AtomicI64,
    /// An M is the poller: asleep until the earliest timer, an I/O event, or a break (Go: an
    /// M blocked in `netpoll(delay)`).
    pub polling: AtomicBool,
    /// The deadline the poller sleeps until (u64::MAX while it decides, or when none polls).
    pub poll_until: AtomicU64,
    /// The poller's wake-up word: set by [`Sched::netpoll_break`].
    pub poll_key: AtomicU32,
    pub stats: Stats,
}

// SAFETY: shared by all Ms; every field is atomic, locked, or fixed after creation.
unsafe impl Send for Sched {}
unsafe impl Sync for Sched {}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Sched {
    /// A runtime with `gomaxprocs` Ps, all idle, and no M yet.
    pub fn new(gomaxprocs: usize, stack_size: usize) -> Box<Sched> {
        assert!(gomaxprocs >= 1, "GOMAXPROCS must be at least 1");
        let allp: Vec<*mut P> = (0..gomaxprocs)
            .map(|i| Box::into_raw(Box::new(P::new(i))))
            .collect();
        let sched = Box::new(Sched {
            lock: Mutex::new(SchedLocked {
                runq: GQueue::new(),
                midle: null_mut(),
                nmidle: 0,
                pidle: null_mut(),
                gfree: GQueue::new(),
                mnext: 0,
            }),
            nmspinning: AtomicI32::new(0),
            npidle: AtomicI32::new(0),
            runqsize: AtomicI32::new(0),
            ngfree: AtomicI32::new(0),
            mcount: AtomicI32::new(0),
            goidgen: AtomicU64::new(0),
            coprimes: (1..=gomaxprocs)
                .filter(|&s| gcd(s, gomaxprocs) == 1)
                .collect(),
            allp,
            gomaxprocs,
            stack_size,
            stack_cache: AtomicBool::new(true),
            main_started: AtomicBool::new(false),
            exiting: AtomicBool::new(false),
            failure: Mutex::new(None),
            allgs: Mutex::new(Vec::new()),
            stackpool: Mutex::new(Vec::new()),
            allms: Mutex::new(Vec::new()),
            nretaken: AtomicI32::new(0),
            timeslice_ns: AtomicU64::new(FORCE_PREEMPT_NS),
            preempt_enabled: AtomicBool::new(true),
            timerseq: AtomicU64::new(0),
            ntimers: AtomicI64::new(0),
            polling: AtomicBool::new(false),
            poll_until: AtomicU64::new(u64::MAX),
            poll_key: AtomicU32::new(0),
            stats: Stats::default(),
        });
        {
            let mut l = sched.lock.lock();
            // Push in reverse so that P0 comes off the idle list first.
            for &pp in sched.allp.iter().rev() {
                // SAFETY: the Ps were just created and are owned by this runtime.
                unsafe { pidleput(&sched, &mut l, pp) };
            }
        }
        sched
    }

    /// Creates an M (with its g0) that belongs to this runtime and counts it as existing.
    /// The caller starts it: on a new thread through the platform, or on the current thread.
    pub fn new_m(&self) -> *mut M {
        let id = {
            let mut l = self.lock.lock();
            l.mnext += 1;
            l.mnext - 1
        };
        self.mcount.fetch_add(1, Ordering::AcqRel);
        self.alloc_m(id)
    }

    fn alloc_m(&self, id: i64) -> *mut M {
        let mut g0 = G::new(0, Location::caller());
        g0.is_g0 = true;
        g0.set_status(GStatus::Running);
        let g0 = Box::into_raw(Box::new(g0));
        let m = Box::into_raw(Box::new(M::new(id, g0, self)));
        self.allms.lock().push(m);
        m
    }

    /// Records why the runtime must stop (the first reason wins) and stops it.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) fn fail(&self, f: Failure) {
        {
            let mut slot = self.failure.lock();
            if slot.is_none() {
                *slot = Some(f);
            }
        }
        self.exit();
    }

    /// For a platform with a spare CPU or thread and no M on it: if sysmon took a P from a
    /// syscall ([`Handoff::Deferred`]) and no M has picked it up, a new M that will run it
    /// (Go's `handoffp` → `startm` → `newm`, which an interrupt-context sysmon may not do).
    /// The caller starts the M on the spare CPU with [`mstart`].
    pub fn new_m_for_retaken(&self) -> Option<*mut M> {
        if self.nretaken.load(Ordering::Acquire) == 0 || self.exiting.load(Ordering::Acquire) {
            return None;
        }
        let pp = take_retaken(self)?;
        let m = self.new_m();
        // SAFETY: the M is not running yet; the store happens-before the caller starts it.
        unsafe { (*m).nextp.store(pp, Ordering::Release) };
        Some(m)
    }

    /// Stops the runtime: every M leaves its scheduling loop at its next look for work.
    pub fn exit(&self) {
        self.exiting.store(true, Ordering::Release);
        self.netpoll_break();
        let mut l = self.lock.lock();
        wake_all_idle(&mut l);
    }

    /// Wakes the poller, if an M is one (Go's `netpollBreak`): a timer earlier than its
    /// deadline was added, an I/O event readied a goroutine, or the runtime exits. Lock-free
    /// and allocation-free: the kernel calls it from its serial interrupt handler.
    pub fn netpoll_break(&self) {
        if self.poll_key.swap(1, Ordering::SeqCst) == 0 {
            platform::get().futex_wake(&self.poll_key);
        }
    }

    pub fn take_failure(&self) -> Option<Failure> {
        self.failure.lock().take()
    }

    /// Runs `main` as the main goroutine, with the calling thread as an M, until `main`
    /// returns or the runtime fails. Go's `rt0_go` → `newproc(main)` → `mstart`.
    ///
    /// # Safety
    /// The calling thread must be free to act as an M (not already one), and the platform
    /// must be installed.
    pub unsafe fn run_main(&self, main: crate::g::Entry) {
        let m0 = self.new_m();
        crate::m::setm(m0);
        {
            let mut l = self.lock.lock();
            // SAFETY: m0 is ours; a fresh runtime has every P idle.
            let pp = unsafe { pidleget(self, &mut l) };
            drop(l);
            // SAFETY: pp came off the idle list, m0 holds no P.
            unsafe { acquirep(m0, pp) };
        }
        let sched = self as *const Sched as usize;
        crate::proc::newproc(
            Box::new(move || {
                main();
                // SAFETY: the runtime outlives its goroutines (it is destroyed only after
                // every M has left its loop).
                unsafe { (*(sched as *const Sched)).exit() };
            }),
            Location::caller(),
        );
        self.main_started.store(true, Ordering::Release);
        // SAFETY: m0 is the current M, on its own thread's stack (its g0).
        unsafe { mstart_current(m0) };
        crate::m::setm(null_mut());
    }

    /// Frees every G, stack, M and P. Returns false (and frees nothing) if some M has not
    /// left its loop: its thread may still use them.
    ///
    /// # Safety
    /// After `exit`, and no goroutine or M of this runtime may run any more.
    pub unsafe fn destroy(self: Box<Self>) -> bool {
        if self.mcount.load(Ordering::Acquire) != 0 {
            Box::leak(self);
            return false;
        }
        let plat = platform::get();
        // Every stack still held, freed in one batch.
        let mut stacks: Vec<Stack> = Vec::new();
        for &slab in self.allgs.lock().iter() {
            // SAFETY: every slab of Gs was made by Box::into_raw and none of its Gs runs.
            let slab = unsafe { Box::from_raw(slab) };
            stacks.extend(slab.iter().map(|g| g.stack).filter(|s| !s.is_empty()));
        }
        stacks.append(&mut self.stackpool.lock());
        for &m in self.allms.lock().iter() {
            // SAFETY: as above, for Ms and their g0s (each made by Box::into_raw, none running).
            unsafe {
                drop(Box::from_raw((*m).g0));
                drop(Box::from_raw(m));
            }
        }
        for &pp in &self.allp {
            // SAFETY: as above, for Ps.
            let p = unsafe { Box::from_raw(pp) };
            stacks.extend_from_slice(&p.stackcache);
        }
        // SAFETY: no goroutine runs any more; G, pool and cache stacks are distinct.
        unsafe { plat.stack_free(&stacks) };
        true
    }

    /// Gs allocated so far (dead ones on free lists included): Go's `len(allgs)`. Gs are
    /// reused, never freed while the runtime lives, so a steady spawn/exit loop keeps this
    /// constant.
    pub fn allg_count(&self) -> usize {
        self.allgs.lock().iter().map(|s| s.len()).sum()
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

/// Go's `mstart`: the entry of every M after the first. Takes the P that `startm` gave it and
/// schedules until the runtime exits.
///
/// # Safety
/// `m` is a fresh M of a live runtime; the calling thread (or CPU) is its thread, with a stack
/// that is `m`'s g0 stack.
pub unsafe fn mstart(m: *mut M) {
    crate::m::setm(m);
    // SAFETY: forwarded.
    unsafe { mstart_current(m) };
    crate::m::setm(null_mut());
}

unsafe fn mstart_current(m: *mut M) {
    // SAFETY: m is the current M (the caller's promise).
    unsafe {
        let sched = &*(*m).sched;
        let pp = (*m).nextp.swap(null_mut(), Ordering::AcqRel);
        if !pp.is_null() {
            acquirep(m, pp);
        }
        schedule(m);
        if !(*m).p.is_null() {
            let pp = releasep(m);
            let mut l = sched.lock.lock();
            pidleput_exiting(sched, &mut l, pp);
        }
        // The last touch of the runtime by this M: after this, `destroy` may free it.
        sched.mcount.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The g0 loop (Go's `schedule` plus the g0 halves of `mcall`: `park_m`, `gosched_m`,
/// `goexit0`, `exitsyscall0`, `systemstack`). Returns when the runtime exits.
unsafe fn schedule(m: *mut M) {
    // SAFETY: runs on m's own thread, on g0; every G handled here was handed to this M.
    unsafe {
        while let Some((gp, inherit)) = find_runnable(m) {
            if (*m).spinning.load(Ordering::Relaxed) {
                reset_spinning(m);
            }
            execute(m, gp, inherit);
            // gp has switched back to g0 with a request; serve requests until it is off this M.
            let mut gp = gp;
            loop {
                let req = core::mem::replace(&mut (*m).req, Req::None);
                // mcall raised `locks` so that no interrupt would preempt the G between
                // writing the request and the switch; the G is off its stack now.
                crate::m::locks_add(m, -1);
                match req {
                    Req::SystemStack(f) => {
                        // On g0 there is no current goroutine (Go: getg() == m.g0), so the
                        // function cannot park or yield the G it was called from.
                        (*m).curg.store(null_mut(), Ordering::Relaxed);
                        (*f)();
                        resume(m, gp);
                    }
                    Req::None => platform::fatal(format_args!(
                        "schedule: goroutine switched to g0 without a request"
                    )),
                    req => match handle(m, gp, req) {
                        Next::FindWork => break,
                        // The G is runnable again at once (a park whose unlock said no, or a
                        // syscall exit that found a P): run it, keeping its time slice.
                        Next::Resume => execute(m, gp, true),
                        // Found next while the request held the scheduler lock.
                        Next::Run(next) => {
                            gp = next;
                            execute(m, gp, false);
                        }
                    },
                }
            }
        }
    }
}

/// What g0 does after serving a G's request.
enum Next {
    /// Look for work (the G is off this M).
    FindWork,
    /// Run the same G again.
    Resume,
    /// Run this G (the G is off this M).
    Run(*mut G),
}

/// Carries out a G's request on g0.
unsafe fn handle(m: *mut M, gp: *mut G, req: Req) -> Next {
    // SAFETY: on m's g0, with gp just switched out.
    unsafe {
        match req {
            Req::Gosched => gosched_m(m, gp),
            Req::Preempt => {
                (*(*m).sched)
                    .stats
                    .nsync_preempt
                    .fetch_add(1, Ordering::Relaxed);
                gosched_m(m, gp)
            }
            Req::AsyncPreempt => {
                // We came here from an interrupt handler: let the platform restore what g0
                // needs (the kernel turns interrupts back on).
                platform::get().after_async_preempt();
                (*(*m).sched)
                    .stats
                    .nasync_preempt
                    .fetch_add(1, Ordering::Relaxed);
                gosched_m(m, gp)
            }
            Req::Park { unlock, arg } => {
                if crate::park::park_m(m, gp, unlock, arg) {
                    Next::FindWork
                } else {
                    Next::Resume
                }
            }
            Req::Exit => {
                crate::proc::goexit0(m, gp);
                Next::FindWork
            }
            Req::ExitSyscall => {
                if crate::proc::exitsyscall0(m, gp) {
                    Next::Resume
                } else {
                    Next::FindWork
                }
            }
            Req::SystemStack(_) | Req::None => unreachable!("served by schedule"),
        }
    }
}

/// Go's `execute`: runs `gp` (runnable) on `m` until it switches back to g0. Inlined into the
/// g0 loop so that g0 does not return from a function right after a switch (see `gosched`).
#[inline(always)]
unsafe fn execute(m: *mut M, gp: *mut G, inherit: bool) {
    // SAFETY: gp is runnable and was handed to this M; m holds a P.
    unsafe {
        let pp = (*m).p;
        (*gp).casgstatus(GStatus::Runnable, GStatus::Running);
        (*gp).preempt.store(false, Ordering::Relaxed);
        if (*gp).stack.is_empty() {
            let stack = stackalloc((*m).sched, pp);
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
unsafe fn resume(m: *mut M, gp: *mut G) {
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
unsafe fn gosched_m(m: *mut M, gp: *mut G) -> Next {
    // SAFETY: on m's g0 with gp switched out; m holds a P.
    unsafe {
        (*gp).casgstatus(GStatus::Running, GStatus::Runnable);
        dropg(m, gp);
        let sched = &*(*m).sched;
        let pp = (*m).p;
        // Due timers and I/O first: what they ready must not wait behind a goroutine that
        // keeps yielding or being preempted (below, it would be taken straight back).
        ready_events(sched);
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
unsafe fn find_runnable(m: *mut M) -> Option<(*mut G, bool)> {
    // SAFETY: on m's g0; m's P (if any) is owned by m.
    unsafe {
        let sched = &*(*m).sched;
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
                    if let Some(pp) = take_retaken(sched) {
                        acquirep(m, pp);
                    }
                } else {
                    handoff_retaken(sched);
                }
            }
            let pp = (*m).p;
            if pp.is_null() {
                stopm(m);
                continue;
            }
            // Due timers and I/O events first: what they ready goes on our queue.
            ready_events(sched);
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
                    become_spinning(m);
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
                    if run_timers(sched) > 0 {
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
                            become_spinning(m);
                            continue 'top;
                        }
                        break;
                    }
                }
            }
            idle(m);
        }
    }
}

/// Readies what due timers and I/O events complete (Go's `checkTimers`, and the `netpoll`
/// that sysmon does when no M has polled for 10 ms: here it is one load per schedule, so a P
/// kept busy by runnable goroutines still delivers I/O at its next schedule). The hot path
/// with neither pending is two loads.
unsafe fn ready_events(sched: &Sched) {
    // SAFETY: forwarded (on g0 of an M of sched).
    unsafe { run_timers(sched) };
    if platform::get().netpoll_ready() {
        netpoll();
    }
}

/// Runs due timers of every P (time.rs) and counts them.
unsafe fn run_timers(sched: &Sched) -> usize {
    // SAFETY: on g0 of an M of sched (find_runnable's caller).
    let n = unsafe { crate::time::run_all_due(sched) };
    if n > 0 {
        sched
            .stats
            .ntimers_run
            .fetch_add(n as u64, Ordering::Relaxed);
    }
    n
}

/// Readies the goroutines the platform's I/O events completed (Go's `netpoll(0)` then
/// `injectglist`); returns how many.
fn netpoll() -> usize {
    let mut n = 0;
    platform::get().netpoll(&mut |gp| {
        // SAFETY: the platform hands each waiting G over once, after it parked.
        unsafe { crate::park::goready(gp) };
        n += 1;
    });
    n
}

/// An M without a P and without work: it becomes the poller if timers or I/O waits are
/// pending and no other M is polling, else it sleeps on the idle list (`stopm`). The poller
/// sleeps until the earliest timer (or an I/O event, or a break), runs what is due (taking an
/// idle P first, so that what it readies runs here), and returns to scheduling.
unsafe fn idle(m: *mut M) {
    // SAFETY: m is the current M, holding no P.
    unsafe {
        let sched = &*(*m).sched;
        let plat = platform::get();
        while !sched.exiting.load(Ordering::Acquire)
            && (sched.ntimers.load(Ordering::SeqCst) > 0 || plat.io_waiting())
            && !sched.polling.swap(true, Ordering::SeqCst)
        {
            // Publish the deadline, then look again (Dekker with `wake_poller`, which adds
            // first and then reads `poll_until`): a timer added meanwhile is seen by one side.
            let mut until = crate::time::earliest(sched);
            sched.poll_until.store(until, Ordering::SeqCst);
            let again = crate::time::earliest(sched);
            if again < until {
                until = again;
                sched.poll_until.store(until, Ordering::SeqCst);
            }
            if until > plat.nanotime() && !plat.netpoll_ready() {
                sched.stats.npoll_sleeps.fetch_add(1, Ordering::Relaxed);
                plat.poll_sleep(&sched.poll_key, until);
            }
            sched.poll_key.store(0, Ordering::SeqCst);
            sched.poll_until.store(u64::MAX, Ordering::SeqCst);
            sched.polling.store(false, Ordering::SeqCst);
            if sched.exiting.load(Ordering::Acquire) {
                return;
            }
            let due = crate::time::earliest(sched) <= plat.nanotime() || plat.netpoll_ready();
            if !due {
                continue;
            }
            // Take an idle P, so that what the timers and I/O ready runs on this M.
            let pp = {
                let mut l = sched.lock.lock_with(m);
                pidleget(sched, &mut l)
            };
            if !pp.is_null() {
                acquirep(m, pp);
            }
            run_timers(sched);
            netpoll();
            if !(*m).p.is_null() {
                return;
            }
        }
        stopm(m);
    }
}

/// A timer due at `when` was added (Go's `wakeNetPoller`): wake the poller if it sleeps past
/// `when`; with no poller, make sure an M will look (one that finds nothing becomes the poller).
pub(crate) fn wake_poller(sched: &Sched, when: u64) {
    if sched.polling.load(Ordering::SeqCst) {
        if when < sched.poll_until.load(Ordering::SeqCst) {
            sched.netpoll_break();
        }
    } else if sched.npidle.load(Ordering::SeqCst) > 0
        && sched.nmspinning.load(Ordering::SeqCst) == 0
    {
        wakep(sched);
    }
}

/// Go's `stealWork`: 4 passes over all other Ps in random order, stealing half of a run
/// queue; `runnext` only on the last pass.
unsafe fn steal_work(m: *mut M, pp: *mut P) -> Option<*mut G> {
    // SAFETY: on m's g0, m owns pp; other Ps are only touched through their atomic queues.
    unsafe {
        let sched = &*(*m).sched;
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

unsafe fn become_spinning(m: *mut M) {
    // SAFETY: m is the current M.
    unsafe {
        (*m).spinning.store(true, Ordering::Relaxed);
        (*(*m).sched).nmspinning.fetch_add(1, Ordering::AcqRel);
    }
}

/// Go's `resetspinning`: this M found work; if it was the last spinner, wake another M to
/// keep looking (the work it found may be the first of a burst).
unsafe fn reset_spinning(m: *mut M) {
    // SAFETY: m is the current M.
    unsafe {
        let sched = &*(*m).sched;
        (*m).spinning.store(false, Ordering::Relaxed);
        if sched.nmspinning.fetch_sub(1, Ordering::AcqRel) <= 0 {
            platform::fatal(format_args!("resetspinning: negative nmspinning"));
        }
        wakep(sched);
    }
}

/// Go's `stopm`: puts the M on the idle list and sleeps until `startm` gives it a P (or the
/// runtime exits).
unsafe fn stopm(m: *mut M) {
    // SAFETY: m is the current M and holds no P.
    unsafe {
        let sched = &*(*m).sched;
        if !(*m).p.is_null() {
            platform::fatal(format_args!("stopm holding p"));
        }
        {
            let mut l = sched.lock.lock_with(m);
            if sched.exiting.load(Ordering::Acquire) {
                return;
            }
            (*m).schedlink = l.midle;
            l.midle = m;
            l.nmidle += 1;
            checkdead(sched, &mut l);
        }
        (*m).blocked.store(true, Ordering::Relaxed);
        while !(*m).park.is_set() {
            // A P that an interrupt-context sysmon took from a syscall needs an M: this one
            // leaves the idle list for it (in the kernel any interrupt, such as the tick,
            // ends the wait, so this is seen within a tick).
            if sched.nretaken.load(Ordering::Acquire) > 0 && leave_midle(sched, m) {
                (*m).blocked.store(false, Ordering::Relaxed);
                return;
            }
            (*m).park.sleep_once();
        }
        (*m).blocked.store(false, Ordering::Relaxed);
        (*m).park.clear();
        let pp = (*m).nextp.swap(null_mut(), Ordering::AcqRel);
        if !pp.is_null() {
            acquirep(m, pp);
        }
    }
}

/// Go's `checkdead`, called as an M goes idle: if every M is idle (none runs a goroutine,
/// none polls for timers or I/O), no timer is pending and no goroutine waits for I/O, no G can
/// ever be readied, so the program is deadlocked.
fn checkdead(sched: &Sched, l: &mut SchedLocked) {
    if !sched.main_started.load(Ordering::Acquire) || sched.exiting.load(Ordering::Acquire) {
        return;
    }
    if l.nmidle < sched.mcount.load(Ordering::Acquire) {
        return;
    }
    // A pending timer or I/O wait can still ready a goroutine (Go: "There are no goroutines
    // running, so we can look at the P's timers").
    if sched.ntimers.load(Ordering::SeqCst) > 0 || platform::get().io_waiting() {
        return;
    }
    {
        let mut f = sched.failure.lock();
        if f.is_none() {
            *f = Some(Failure::Deadlock);
        }
    }
    sched.exiting.store(true, Ordering::Release);
    wake_all_idle(l);
}

fn wake_all_idle(l: &mut SchedLocked) {
    while let Some(m) = mget(l) {
        // SAFETY: an idle M sleeps on its note until woken; nextp stays null, so it will find
        // the runtime exiting and leave.
        unsafe { (*m).park.wakeup() };
    }
}

/// Takes `m` (the caller) off the idle list if it is still there; false if `startm` already
/// took it (then its wake-up is on the way).
unsafe fn leave_midle(sched: &Sched, m: *mut M) -> bool {
    let mut l = sched.lock.lock_with(m);
    let mut link: *mut *mut M = &mut l.midle;
    // SAFETY: the idle list is linked through live Ms under this lock.
    unsafe {
        while !(*link).is_null() {
            if *link == m {
                *link = (*m).schedlink;
                l.nmidle -= 1;
                return true;
            }
            link = &mut (**link).schedlink;
        }
    }
    false
}

fn mget(l: &mut SchedLocked) -> Option<*mut M> {
    let m = l.midle;
    if m.is_null() {
        return None;
    }
    // SAFETY: Ms on the idle list are live and linked under this lock.
    l.midle = unsafe { (*m).schedlink };
    l.nmidle -= 1;
    Some(m)
}

/// Go's `startm`: runs `pp` (or an idle P, if null) on an idle M, or a new one.
pub(crate) fn startm(sched: &Sched, pp: *mut P, spinning: bool) {
    let mut l = sched.lock.lock();
    let pp = if pp.is_null() {
        // SAFETY: under the lock.
        let p = unsafe { pidleget(sched, &mut l) };
        if p.is_null() {
            drop(l);
            if spinning {
                // The caller counted us as spinning, but there is no P to spin on.
                sched.nmspinning.fetch_sub(1, Ordering::AcqRel);
            }
            return;
        }
        p
    } else {
        pp
    };
    if sched.exiting.load(Ordering::Acquire) {
        // SAFETY: under the lock; pp is ours to return.
        unsafe { pidleput_exiting(sched, &mut l, pp) };
        if spinning {
            sched.nmspinning.fetch_sub(1, Ordering::AcqRel);
        }
        return;
    }
    match mget(&mut l) {
        Some(nmp) => {
            drop(l);
            // SAFETY: nmp is idle, asleep on its note; these stores happen-before its wake-up.
            unsafe {
                (*nmp).spinning.store(spinning, Ordering::Relaxed);
                (*nmp).nextp.store(pp, Ordering::Release);
                (*nmp).park.wakeup();
            }
        }
        None => {
            let id = l.mnext;
            l.mnext += 1;
            sched.mcount.fetch_add(1, Ordering::AcqRel);
            drop(l);
            newm(sched, id, pp, spinning);
        }
    }
}

/// Go's `newm`: a new M, started by the platform with `pp`.
fn newm(sched: &Sched, id: i64, pp: *mut P, spinning: bool) {
    let m = sched.alloc_m(id);
    // SAFETY: the new M is not running yet; these stores happen-before its thread starts.
    unsafe {
        (*m).spinning.store(spinning, Ordering::Relaxed);
        (*m).nextp.store(pp, Ordering::Release);
    }
    if !platform::get().new_os_thread(m) {
        // No thread or CPU for it: the P goes back to the idle list.
        let mut l = sched.lock.lock();
        // SAFETY: pp was handed to the M that could not start.
        unsafe { pidleput_exiting(sched, &mut l, pp) };
        sched.mcount.fetch_sub(1, Ordering::AcqRel);
        if spinning {
            sched.nmspinning.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Go's `wakep`: if there is an idle P and no spinning M, wake an M to spin.
pub(crate) fn wakep(sched: &Sched) {
    // No idle P, nothing to wake (Go goes on to set `needspinning`, which we do not have).
    if sched.npidle.load(Ordering::Relaxed) == 0
        || sched.nmspinning.load(Ordering::Relaxed) != 0
        || sched
            .nmspinning
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let pp = {
        let mut l = sched.lock.lock();
        // SAFETY: under the lock.
        unsafe { pidleget(sched, &mut l) }
    };
    if pp.is_null() {
        sched.nmspinning.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    startm(sched, pp, true);
}

/// Go's `handoffp`: a P whose M is blocked (in a syscall) goes to another M if there is work
/// for it, else to the idle list.
pub(crate) fn handoffp(sched: &Sched, pp: *mut P) {
    // SAFETY: pp was taken from its M (status CAS to idle by the caller); its queue is atomic.
    unsafe {
        if !(*pp).runq.is_empty() || sched.runqsize.load(Ordering::Relaxed) != 0 {
            startm(sched, pp, false);
            return;
        }
        // No local work: if no M is spinning or idle-with-a-P, start one to spin.
        if sched.nmspinning.load(Ordering::Relaxed) + sched.npidle.load(Ordering::Relaxed) == 0
            && sched
                .nmspinning
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            startm(sched, pp, true);
            return;
        }
        let mut l = sched.lock.lock();
        if sched.runqsize.load(Ordering::Relaxed) != 0 {
            drop(l);
            startm(sched, pp, false);
            return;
        }
        pidleput(sched, &mut l, pp);
    }
}

/// Go's `acquirep`/`wirep`.
pub(crate) unsafe fn acquirep(m: *mut M, pp: *mut P) {
    // SAFETY: m is the current M; pp came off the idle list or from startm.
    unsafe {
        if !(*m).p.is_null() || !(*pp).m.load(Ordering::Relaxed).is_null() {
            platform::fatal(format_args!(
                "acquirep: M {} or P {} already wired",
                (*m).id,
                (*pp).id
            ));
        }
        (*m).p = pp;
        (*pp).m.store(m, Ordering::Release);
        (*pp)
            .status
            .store(PStatus::Running as u32, Ordering::Release);
    }
}

/// Go's `releasep`.
pub(crate) unsafe fn releasep(m: *mut M) -> *mut P {
    // SAFETY: m is the current M and holds a P.
    unsafe {
        let pp = (*m).p;
        (*pp).m.store(null_mut(), Ordering::Release);
        (*pp).status.store(PStatus::Idle as u32, Ordering::Release);
        (*m).p = null_mut();
        pp
    }
}

/// Go's `pidleput`. The P must have an empty run queue and no M.
pub(crate) unsafe fn pidleput(sched: &Sched, l: &mut SchedLocked, pp: *mut P) {
    // SAFETY: under the lock; pp is owned by the caller.
    unsafe {
        if !(*pp).runq.is_empty() {
            platform::fatal(format_args!(
                "pidleput: P {} has a non-empty run queue",
                (*pp).id
            ));
        }
        pidleput_exiting(sched, l, pp);
    }
}

/// `pidleput` without the empty-queue check (for a runtime that is exiting, where queued Gs
/// are abandoned as Go abandons them when `main` returns).
unsafe fn pidleput_exiting(sched: &Sched, l: &mut SchedLocked, pp: *mut P) {
    // SAFETY: under the lock; pp is owned by the caller.
    unsafe {
        (*pp).status.store(PStatus::Idle as u32, Ordering::Release);
        (*pp).link = l.pidle;
    }
    l.pidle = pp;
    sched.npidle.fetch_add(1, Ordering::AcqRel);
}

/// Go's `pidleget`.
pub(crate) unsafe fn pidleget(sched: &Sched, l: &mut SchedLocked) -> *mut P {
    let pp = l.pidle;
    if !pp.is_null() {
        // SAFETY: Ps on the idle list are linked under this lock.
        l.pidle = unsafe { (*pp).link };
        sched.npidle.fetch_sub(1, Ordering::AcqRel);
    }
    pp
}

/// Go's `globrunqput`.
pub(crate) fn globrunqput(sched: &Sched, l: &mut SchedLocked, gp: *mut G) {
    // SAFETY: gp is runnable and owned by the caller, on no other list.
    unsafe { l.runq.push_back(gp) };
    sched.runqsize.store(l.runq.len() as i32, Ordering::Relaxed);
}

/// Go's `globrunqget`: takes a batch (its fair share, at most half a local queue) from the
/// global queue, returns one to run and puts the rest on `pp`'s local queue.
unsafe fn globrunqget(
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

/// A stack for a G about to run for the first time: from the P's cache (refilled in a batch
/// from the global pool), else from the platform. Go's `stackalloc` with its per-P
/// `stackcache` and global `stackpool`.
unsafe fn stackalloc(sched: *const Sched, pp: *mut P) -> Stack {
    // SAFETY: pp is owned by the current M.
    unsafe {
        if (*sched).stack_cache.load(Ordering::Relaxed) {
            if (*pp).stackcache.is_empty() {
                let mut pool = (*sched).stackpool.lock();
                let n = pool.len().min(STACK_CACHE_MAX / 2);
                let at = pool.len() - n;
                (*pp).stackcache.extend(pool.drain(at..));
                drop(pool);
                (*pp).stackcache_resident = resident_of(&(*pp).stackcache);
            }
            if let Some(s) = (*pp).stackcache.pop() {
                let r = platform::get().stack_resident(&s).unwrap_or(0);
                (*pp).stackcache_resident = (*pp).stackcache_resident.saturating_sub(r);
                return s;
            }
        }
        let size = (*sched).stack_size;
        (*sched).stats.nstackalloc.fetch_add(1, Ordering::Relaxed);
        platform::get().stack_alloc(size).unwrap_or_else(|| {
            platform::fatal(format_args!(
                "out of memory allocating a {size}-byte goroutine stack"
            ))
        })
    }
}

fn resident_of(stacks: &[Stack]) -> usize {
    let plat = platform::get();
    stacks
        .iter()
        .map(|s| plat.stack_resident(s).unwrap_or(0))
        .sum()
}

/// Free stacks kept in the global pool; beyond this they go back to the platform.
const STACK_POOL_MAX: usize = 4096;

/// Returns a stack to the P's cache (Go's `stackfree`). Three limits keep the cache from
/// hoarding memory:
/// - resident bytes: past [`STACK_CACHE_BUDGET`], the deep pages of every cached stack are
///   released in one batch (`Platform::stack_trim`: in the kernel, one TLB shootdown), and
///   the top pages stay mapped for the next goroutine;
/// - count: past [`STACK_CACHE_MAX`], half the cache is trimmed and moved to the global pool
///   (Go's `stackcacherelease`), so pooled stacks hold one page each;
/// - the pool: past `STACK_POOL_MAX`, stacks go back to the platform.
///
/// With the cache switched off (`Sched::stack_cache`, for measuring what it saves) every
/// stack goes straight back to the platform.
pub(crate) unsafe fn stackfree(sched: *const Sched, pp: *mut P, stack: Stack) {
    if stack.is_empty() {
        return;
    }
    let plat = platform::get();
    // SAFETY: pp is owned by the current M; nothing runs on `stack`.
    unsafe {
        if !(*sched).stack_cache.load(Ordering::Relaxed) {
            (*sched).stats.nstackfree.fetch_add(1, Ordering::Relaxed);
            plat.stack_free(&[stack]);
            return;
        }
        (*pp).stackcache.push(stack);
        (*pp).stackcache_resident += plat.stack_resident(&stack).unwrap_or(0);
        if (*pp).stackcache_resident > STACK_CACHE_BUDGET {
            let released = plat.stack_trim(&(*pp).stackcache);
            (*sched)
                .stats
                .nstacktrimmed
                .fetch_add(released as u64, Ordering::Relaxed);
            (*pp).stackcache_resident = resident_of(&(*pp).stackcache);
        }
        if (*pp).stackcache.len() > STACK_CACHE_MAX {
            let half = (*pp).stackcache.len() / 2;
            let spill: Vec<Stack> = (*pp).stackcache.drain(..half).collect();
            let released = plat.stack_trim(&spill);
            (*sched)
                .stats
                .nstacktrimmed
                .fetch_add(released as u64, Ordering::Relaxed);
            (*pp).stackcache_resident = resident_of(&(*pp).stackcache);
            let mut pool = (*sched).stackpool.lock();
            let room = STACK_POOL_MAX.saturating_sub(pool.len()).min(spill.len());
            pool.extend_from_slice(&spill[..room]);
            drop(pool);
            if room < spill.len() {
                (*sched)
                    .stats
                    .nstackfree
                    .fetch_add((spill.len() - room) as u64, Ordering::Relaxed);
                plat.stack_free(&spill[room..]);
            }
        }
    }
}

/// Go's `sysmon` → `retake`, one pass: asks Gs that have run longer than the time slice
/// (`timeslice_ns`, Go's `forcePreemptNS`) to yield (`preemptone`), and takes Ps from Ms stuck
/// in a syscall. Called by the host's sysmon thread ([`Handoff::Now`]) and, in the kernel, by
/// CPU 0's timer tick ([`Handoff::Deferred`]). One caller at a time: sysmon's memory of each P
/// (Go's `sysmontick`) lives in atomics of the P that only sysmon writes. Reads only atomics,
/// takes no lock and allocates nothing unless it hands a P off [`Handoff::Now`].
pub fn retake(sched: &Sched, now: u64, handoff: Handoff) -> u32 {
    let slice = sched.timeslice_ns.load(Ordering::Relaxed);
    let preempt = sched.preempt_enabled.load(Ordering::Relaxed);
    let mut n = 0;
    for &pp in sched.allp.iter() {
        // SAFETY: Ps live as long as the runtime; only their atomics are used here.
        let pp_ref = unsafe { &*pp };
        let pd = &pp_ref.sysmontick;
        let s = pp_ref.status();
        let mut sysretake = false;
        if s == PStatus::Running || s == PStatus::Syscall {
            let t = pp_ref.schedtick.load(Ordering::Relaxed);
            if pd.schedtick.load(Ordering::Relaxed) != t {
                pd.schedtick.store(t, Ordering::Relaxed);
                pd.schedwhen.store(now, Ordering::Relaxed);
            } else if pd.schedwhen.load(Ordering::Relaxed) + slice <= now {
                if preempt {
                    preemptone(sched, pp_ref);
                }
                // In a syscall, preemptone has no effect: retake the P below.
                sysretake = true;
            }
        }
        if s == PStatus::Syscall {
            let t = pp_ref.syscalltick.load(Ordering::Relaxed);
            if !sysretake && pd.syscalltick.load(Ordering::Relaxed) != t {
                pd.syscalltick.store(t, Ordering::Relaxed);
                pd.syscallwhen.store(now, Ordering::Relaxed);
                continue;
            }
            // Keep the P if it has nothing to do, someone else can take new work, and the
            // syscall is young (Go: "On the one hand we don't want to retake Ps if there is
            // no other work to do, but on the other hand we want to retake them eventually").
            if pp_ref.runq.is_empty()
                && sched.nmspinning.load(Ordering::Relaxed) + sched.npidle.load(Ordering::Relaxed)
                    > 0
                && pd.syscallwhen.load(Ordering::Relaxed) + 10_000_000 > now
            {
                continue;
            }
            if pp_ref.take_from_syscall() {
                n += 1;
                pp_ref.syscalltick.fetch_add(1, Ordering::Relaxed);
                sched.stats.nretake_syscall.fetch_add(1, Ordering::Relaxed);
                match handoff {
                    Handoff::Now => handoffp(sched, pp),
                    Handoff::Deferred => {
                        pp_ref.retaken.store(true, Ordering::Release);
                        sched.nretaken.fetch_add(1, Ordering::Release);
                    }
                }
            }
        }
    }
    n
}

/// One P that an interrupt-context sysmon retook, now owned by the caller.
fn take_retaken(sched: &Sched) -> Option<*mut P> {
    for &pp in sched.allp.iter() {
        // SAFETY: Ps live as long as the runtime; the swap makes the caller the P's owner.
        if unsafe { (*pp).retaken.swap(false, Ordering::Acquire) } {
            sched.nretaken.fetch_sub(1, Ordering::Relaxed);
            return Some(pp);
        }
    }
    None
}

/// Hands off the Ps that an interrupt-context sysmon retook (`Handoff::Deferred`). Called by
/// Ms looking for work, where taking the scheduler lock and starting an M are allowed.
fn handoff_retaken(sched: &Sched) {
    for &pp in sched.allp.iter() {
        // SAFETY: Ps live as long as the runtime; the swap makes this M the P's only owner.
        if unsafe { (*pp).retaken.swap(false, Ordering::Acquire) } {
            sched.nretaken.fetch_sub(1, Ordering::Relaxed);
            handoffp(sched, pp);
        }
    }
}

/// Go's `preemptone`: asks the G running on `pp` to stop at its next safe point.
fn preemptone(sched: &Sched, pp: &P) {
    let m = pp.m.load(Ordering::Acquire);
    if m.is_null() {
        return;
    }
    // SAFETY: Ms and Gs live as long as the runtime. `curg` may change under us; at worst we
    // flag a G that has just been descheduled, and `execute` clears the flag when it runs.
    unsafe {
        let gp = (*m).curg.load(Ordering::Relaxed);
        if gp.is_null() || (*gp).is_g0 {
            return;
        }
        (*gp).preempt.store(true, Ordering::Release);
        (*gp).stackguard0.store(STACK_PREEMPT, Ordering::Release);
    }
    sched
        .stats
        .npreempt_requests
        .fetch_add(1, Ordering::Relaxed);
}

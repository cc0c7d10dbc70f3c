//! A runtime's life cycle, the same on every platform: create it (Go's `schedinit`), run
//! `main` as the main goroutine with the calling thread or CPU as M0 (`rt0_go` →
//! `newproc(main)` → `mstart`), wait for the other Ms to leave their loops, report how it
//! ended, and free it. Also `mstart`, where every other M begins, and what a platform or a
//! test may read and set on a running runtime (`Sched::counters`, `per_p_stats`, `retake`).
//!
//! Invariants: a runtime is destroyed only after every M has left its loop (`mcount == 0`);
//! otherwise it is leaked, never freed under a running M. The first failure recorded wins.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::panic::Location;
use core::ptr::null_mut;
use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

use crate::g::GQueue;
use crate::idle::{acquirep, pidleget, pidleput, pidleput_exiting, releasep, wake_all_idle};
use crate::lock::Mutex;
use crate::m::M;
use crate::p::PStatus;
use crate::p::P;
use crate::platform;
use crate::preempt::{self, Handoff, FORCE_PREEMPT_NS};
use crate::sched::{schedule, Stats};
use crate::sched::{Sched, SchedLocked};
use crate::stack::Stack;

/// How a runtime is set up: GOMAXPROCS and the knobs that Go takes from `GODEBUG` (the
/// kernel takes them from its arguments). [`Config::new`] gives Go's defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Ps (Go's GOMAXPROCS); at least 1.
    pub gomaxprocs: usize,
    /// The most Ps [`crate::set_gomaxprocs`] may raise GOMAXPROCS to while the runtime runs
    /// (0: the larger of `gomaxprocs` and the platform's CPU count). All of them are made at
    /// the start; those not in use cost a few hundred bytes and a look by each thief.
    pub max_procs: usize,
    /// Usable bytes of a goroutine stack (the platform adds a guard page below).
    pub stack_size: usize,
    /// Whether exited goroutines' stacks are cached for reuse (off: every stack comes from
    /// and goes back to the platform, to measure what the cache saves).
    pub stack_cache: bool,
    /// Go's `forcePreemptNS`: how long a G may run before sysmon asks it to yield.
    pub timeslice_ns: u64,
    /// Whether sysmon asks long-running Gs to yield at all (off shows what starvation looks
    /// like).
    pub preempt: bool,
    /// Whether a platform that can stop a G from an interrupt may do so (Go's
    /// `GODEBUG=asyncpreemptoff=1` turns it off).
    pub async_preempt: bool,
    /// How long [`Sched::run`] waits, after `main` returns, for the other Ms to leave their
    /// loops (each does at its next look for work; one stuck in a goroutine may never).
    pub m_exit_wait_ns: u64,
    /// Whether the run records an execution trace (tracer.rs) through the platform's
    /// `trace_write` (off by default: each trace point then costs one branch).
    pub trace: bool,
    /// Mixed into every M's random number generator (the steal order, select's choice among
    /// ready cases). 0, the default, leaves Go's per-M seeds; the host's deterministic mode
    /// (host/det.rs) derives it from its seed so that each seed makes other choices.
    pub rand_seed: u64,
}

impl Config {
    /// Go's defaults with `gomaxprocs` Ps.
    pub fn new(gomaxprocs: usize) -> Config {
        Config {
            gomaxprocs,
            max_procs: 0,
            stack_size: crate::stack::DEFAULT_STACK_SIZE,
            stack_cache: true,
            timeslice_ns: FORCE_PREEMPT_NS,
            preempt: true,
            async_preempt: true,
            m_exit_wait_ns: 5_000_000_000,
            trace: false,
            rand_seed: 0,
        }
    }
}

/// What a platform does around [`Sched::run`], at the two points where its work differs.
pub trait Hooks {
    /// The runtime exists and `main` is about to start: the host starts its sysmon thread;
    /// the kernel publishes the runtime to its timer tick.
    fn started(&mut self, _sched: &Sched) {}
    /// `main` has returned (or the runtime failed) and the other Ms have left their loops
    /// (or the wait timed out). The runtime is still alive: statistics can be read.
    fn finished(&mut self, _sched: &Sched) {}
    /// The run failed (after `finished`, before the runtime is freed): a platform that ends
    /// the program on a failure (the kernel: `fatal error: ...`) does it here, with the
    /// goroutines still in place, and never returns; the default returns, and
    /// [`Sched::run`] frees the runtime and hands the failure back.
    fn failed(&mut self, _sched: &Sched, _failure: &Failure) {}
}

/// Why a runtime stopped other than by `main` returning.
#[derive(Debug)]
pub enum Failure {
    /// Go's `checkdead`: no G can ever run again. `goroutines` is the dump of every
    /// goroutine (trace.rs), as Go prints it after the message.
    Deadlock { goroutines: String },
    /// The main goroutine called [`crate::goexit`] and every other goroutine has ended.
    MainGoexit,
    /// A goroutine panicked (host: the payload is re-raised by `block_on`).
    Panic {
        goid: u64,
        #[cfg(feature = "std")]
        payload: Box<dyn core::any::Any + Send>,
        message: String,
    },
}

/// The text after `fatal error: `: Go's words, then (for a deadlock) the goroutines.
impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Failure::Deadlock { goroutines } => {
                f.write_str("all goroutines are asleep - deadlock!")?;
                if !goroutines.trim().is_empty() {
                    write!(f, "\n\n{}", goroutines.trim())?;
                }
                Ok(())
            }
            Failure::Panic { goid, message, .. } => {
                write!(f, "panic in goroutine {goid}: {message}")
            }
            Failure::MainGoexit => {
                f.write_str("no goroutines (main called runtime.Goexit) - deadlock!")
            }
        }
    }
}

/// The runtime started last and still running, for debuggers: `cargo xtask gdb`'s extension
/// (xtask/gdb/rt_core.py) finds every goroutine from here (`allgs`), as Go's runtime-gdb.py
/// starts from `runtime.allgs`. In the kernel there is one runtime; on the host, the newest.
/// Never read by rt-core itself.
#[no_mangle]
pub static RT_CORE_SCHED: core::sync::atomic::AtomicPtr<Sched> =
    core::sync::atomic::AtomicPtr::new(null_mut());

impl Sched {
    /// The one life cycle of a runtime, for every platform: installs `platform`, creates a
    /// runtime from `config`, runs `main` as the main goroutine with the calling thread (or
    /// CPU) as M0 until it returns or the runtime fails, waits for the other Ms, and frees
    /// the runtime. `hooks` are called when it has started and when its Ms are gone.
    ///
    /// Panics if another platform is installed, or if the caller is already an M.
    pub fn run(
        platform: &'static dyn platform::Platform,
        config: &Config,
        main: crate::g::Entry,
        hooks: &mut dyn Hooks,
    ) -> Result<(), Failure> {
        platform::set(platform).expect("rt-core: another platform is installed");
        let plat = platform::get();
        if !crate::m::getm().is_null() {
            panic!("rt-core: a runtime started from inside a runtime (the caller is an M)");
        }
        let sched = Sched::new(config);
        RT_CORE_SCHED.store(&*sched as *const Sched as *mut Sched, Ordering::Release);
        if config.trace {
            crate::tracer::start(&sched);
        }
        hooks.started(&sched);
        // SAFETY: the caller is not an M (checked above) and the platform is installed.
        unsafe { sched.run_main(main) };
        let deadline = plat.nanotime().saturating_add(config.m_exit_wait_ns);
        while sched.mcount.load(Ordering::Acquire) != 0 && plat.nanotime() < deadline {
            plat.usleep(50);
        }
        if config.trace {
            let stuck = sched.mcount.load(Ordering::Acquire).max(0) as u64;
            crate::tracer::stop(&sched, stuck);
        }
        hooks.finished(&sched);
        let failure = match sched.take_failure() {
            Some(Failure::Deadlock { mut goroutines }) => {
                // Go's checkdead is a fatal error: every goroutine, with its frames.
                let lvl = crate::traceback::level();
                let lvl = if lvl == crate::traceback::Level::None {
                    lvl
                } else {
                    lvl.max(crate::traceback::Level::All)
                };
                let _ = crate::traceback::write_all(&mut goroutines, &sched, None, lvl, false);
                Some(Failure::Deadlock { goroutines })
            }
            other => other,
        };
        if let Some(f) = &failure {
            hooks.failed(&sched, f);
        }
        let _ = RT_CORE_SCHED.compare_exchange(
            &*sched as *const Sched as *mut Sched,
            null_mut(),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        let ms = i64::from(sched.mcount.load(Ordering::Acquire));
        // SAFETY: the runtime has exited; if some M is still inside a goroutine (stuck in a
        // blocking call, or never preempted), destroy leaks everything instead of freeing it.
        // (Normal on the host when main returns with goroutines still running, Go's exit; in
        // the kernel every M leaves, so a kept runtime is what a test of memory left after a
        // run must name first.)
        if !unsafe { sched.destroy() } {
            RUNTIMES_KEPT.fetch_add(1, Ordering::SeqCst);
            LAST_KEPT_MS.store(ms, Ordering::SeqCst);
        }
        failure.map_or(Ok(()), Err)
    }

    /// A runtime as `config` says, with all its Ps idle and no M yet.
    pub(crate) fn new(config: &Config) -> Box<Sched> {
        let (gomaxprocs, stack_size) = (config.gomaxprocs, config.stack_size);
        assert!(gomaxprocs >= 1, "GOMAXPROCS must be at least 1");
        let nprocs = if config.max_procs == 0 {
            gomaxprocs.max(platform::get().ncpu())
        } else {
            config.max_procs.max(gomaxprocs)
        };
        let allp: Vec<*mut P> = (0..nprocs)
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
            coprimes: crate::sched::steal_strides(nprocs),
            allp,
            gomaxprocs: core::sync::atomic::AtomicUsize::new(gomaxprocs),
            main_goid: AtomicU64::new(0),
            main_goexit: AtomicBool::new(false),
            stack_size,
            stack_cache: AtomicBool::new(config.stack_cache),
            main_started: AtomicBool::new(false),
            exiting: AtomicBool::new(false),
            failure: Mutex::new(None),
            allgs: Mutex::new(Vec::new()),
            stackpool: Mutex::new(Vec::new()),
            allms: Mutex::new(Vec::new()),
            nretaken: AtomicI32::new(0),
            timeslice_ns: AtomicU64::new(config.timeslice_ns),
            rand_seed: config.rand_seed,
            preempt_enabled: AtomicBool::new(config.preempt),
            async_preempt_enabled: AtomicBool::new(config.async_preempt),
            timerseq: AtomicU64::new(0),
            ntimers: AtomicI64::new(0),
            live_timers: Arc::new(AtomicI64::new(0)),
            polling: AtomicBool::new(false),
            poll_until: AtomicU64::new(u64::MAX),
            poll_key: AtomicU32::new(0),
            stats: Stats::default(),
        });
        {
            let mut l = sched.lock.lock();
            // Push in reverse so that P0 comes off the idle list first; Ps beyond GOMAXPROCS
            // wait, dead, for `set_gomaxprocs`.
            for &pp in sched.allp[..gomaxprocs].iter().rev() {
                // SAFETY: the Ps were just created and are owned by this runtime.
                unsafe { pidleput(&sched, &mut l, pp) };
            }
            for &pp in &sched.allp[gomaxprocs..] {
                // SAFETY: as above; no one else can see them yet.
                unsafe { (*pp).status.store(PStatus::Dead as u32, Ordering::Relaxed) };
            }
        }
        sched
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

    /// Stops the runtime: every M leaves its scheduling loop at its next look for work.
    pub fn exit(&self) {
        self.exiting.store(true, Ordering::Release);
        self.netpoll_break();
        let mut l = self.lock.lock();
        wake_all_idle(&mut l);
    }

    pub(crate) fn take_failure(&self) -> Option<Failure> {
        self.failure.lock().take()
    }

    /// Runs `main` as the main goroutine, with the calling thread as an M, until `main`
    /// returns or the runtime fails. Go's `rt0_go` → `newproc(main)` → `mstart`.
    ///
    /// # Safety
    /// The calling thread must be free to act as an M (not already one), and the platform
    /// must be installed.
    pub(crate) unsafe fn run_main(&self, main: crate::g::Entry) {
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
        let goid = crate::proc::newproc(
            Box::new(move || {
                main();
                // SAFETY: the runtime outlives its goroutines (it is destroyed only after
                // every M has left its loop).
                unsafe { (*(sched as *const Sched)).exit() };
            }),
            Location::caller(),
        );
        self.main_goid.store(goid, Ordering::Relaxed);
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
    pub(crate) unsafe fn destroy(self: Box<Self>) -> bool {
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

/// `mstart` for an M already recorded as the current one (`run_main`'s M0, or `mstart`).
///
/// # Safety
/// `m` is the current M, fresh, on its g0 stack.
pub(crate) unsafe fn mstart_current(m: *mut M) {
    // SAFETY: an M's runtime outlives the M (it is freed only after this M's last touch below).
    let sched = unsafe { &*(*m).runtime };
    // SAFETY: m is live; nextp is an atomic.
    let pp = unsafe { (*m).nextp.swap(null_mut(), Ordering::AcqRel) };
    if !pp.is_null() {
        // SAFETY: startm handed pp to this M, which holds no P yet.
        unsafe { acquirep(m, pp) };
    }
    // startm may have made us a spinning M.
    // SAFETY: m is the current M; `spinning` is an atomic.
    if crate::tracer::on() && unsafe { (*m).spinning.load(Ordering::Relaxed) } {
        crate::tracer::ev!(m, rt_trace::format::Kind::SpinStart, 0, 0, 0, 0);
    }
    // SAFETY: m is the current M, on its g0.
    unsafe { schedule(m) };
    // SAFETY: m is the current M; its `p` is its own.
    if unsafe { !(*m).p.is_null() } {
        // SAFETY: m holds a P.
        let pp = unsafe { releasep(m) };
        let mut l = sched.lock.lock();
        // SAFETY: under the lock; pp was just released by this M.
        unsafe { pidleput_exiting(sched, &mut l, pp) };
    }
    // SAFETY: m is the current M.
    unsafe { crate::tracer::flush_m(m) };
    // The last touch of the runtime by this M: after this, `destroy` may free it.
    sched.mcount.fetch_sub(1, Ordering::AcqRel);
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

/// Runtimes whose memory `run` kept instead of freeing, because an M had not left its loop
/// when the runtime exited (`Sched::destroy`).
static RUNTIMES_KEPT: AtomicUsize = AtomicUsize::new(0);
/// The Ms still running when the last such runtime exited.
static LAST_KEPT_MS: AtomicI64 = AtomicI64::new(0);

/// How many runtimes so far ended with an M still running, their memory kept, and how many
/// Ms were still running in the last of them: for tests that count what is left after a run.
pub fn runtimes_kept() -> (usize, i64) {
    (
        RUNTIMES_KEPT.load(Ordering::SeqCst),
        LAST_KEPT_MS.load(Ordering::SeqCst),
    )
}

/// What a platform or a test may read and set on a running runtime.
impl Sched {
    /// Gs allocated so far (dead ones on free lists included): Go's `len(allgs)`. Gs are
    /// reused, never freed while the runtime lives, so a steady spawn/exit loop keeps this
    /// constant.
    pub fn allg_count(&self) -> usize {
        self.allgs.lock().iter().map(|s| s.len()).sum()
    }

    /// Ms made so far (Go's `mcount`): idle Ms are reused, so this stays near the number of
    /// CPUs or threads that run goroutines at once plus those blocked in syscalls.
    pub fn allm_count(&self) -> usize {
        self.allms.lock().len()
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
        self.allp[..self.gomaxprocs.load(Ordering::Relaxed)]
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

//! The host platform (feature `std`): Ms on `std::thread`, parking on a futex, goroutine
//! stacks carved from reserved regions with guard markers (host/stacks.rs),
//! `CLOCK_MONOTONIC`, and a sysmon thread.
//! Go's counterparts: os_linux.go (`newosproc`, `futexsleep`, `futexwakeup`), mem_linux.go,
//! and `sysmon` in proc.go.
//!
//! Goroutines move between threads: any runtime call (spawn, gosched, a WaitGroup wait, a safe
//! point) may resume on another OS thread. Code in goroutines must not keep a reference to a
//! `thread_local!` value across such a call, and should not rely on a thread-local read before
//! a runtime call and one after it in the same function seeing the same thread (the compiler
//! may reuse the first thread's address). rt-core's own current-M read is kept out of line for
//! this reason (m.rs `getm`).
//!
//! [`Runtime::block_on`] is the entry point: it runs a closure as the main goroutine with the
//! calling thread as M0, starts more Ms as the scheduler asks, and returns the closure's
//! result when it returns (or re-raises a goroutine's panic, or panics on deadlock).

use std::boxed::Box;
use std::string::{String, ToString};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;
use std::vec::Vec;
use std::{eprint, eprintln, format};

use crate::m::M;
use crate::platform::Platform;
use crate::run::{Config, Failure, Hooks};
use crate::sched::Sched;
use crate::stack::Stack;

pub struct Host;

/// The host platform (install with `rt_core::platform::set(&HOST)`; `Runtime` does it).
pub static HOST: Host = Host;

use stacks::PAGE;

pub mod det;
mod diag;
mod signal;
mod stacks;
pub use signal::{signal_stats, SignalStats};
#[doc(hidden)]
pub use stacks::use_one_mapping_per_stack;

/// Stack of an M's thread (its g0): the scheduler loop and `systemstack` calls run here.
const M_THREAD_STACK: usize = 512 * 1024;

struct SendPtr<T>(*mut T);
// SAFETY: the pointer is handed to the new thread, which becomes its only user (an M).
unsafe impl<T> Send for SendPtr<T> {}

/// FUTEX_WAIT: sleeps while `*key == 0`, at most `timeout_ns` if given (may return early).
fn futex_wait(key: &AtomicU32, timeout_ns: Option<u64>) {
    let ts = timeout_ns.map(|d| libc::timespec {
        tv_sec: (d / 1_000_000_000).min(i32::MAX as u64) as libc::time_t,
        tv_nsec: (d % 1_000_000_000) as libc::c_long,
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT on a live u32 with a relative timeout that outlives the call (or
    // none): sleeps while *key == 0.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            key.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            0u32,
            tsp,
        )
    };
}

impl Platform for Host {
    // With feature `std`, rt-core keeps the current M in its own thread-local (m.rs) and
    // reads it directly; these two are for code that goes through the platform.
    #[inline]
    fn current_m(&self) -> *mut M {
        crate::m::host_current_m()
    }

    fn set_current_m(&self, m: *mut M) {
        crate::m::setm(m);
    }

    fn nanotime(&self) -> u64 {
        if let Some((w, me)) = det::current() {
            return w.nanotime(me);
        }
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec we pass.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    fn new_os_thread(&self, m: *mut M) -> bool {
        let m = SendPtr(m);
        // SAFETY: the M is fresh and not yet started; its id is set.
        let id = unsafe { (*m.0).id };
        let builder = std::thread::Builder::new()
            .name(format!("rt-m{id}"))
            .stack_size(M_THREAD_STACK);
        if let Some(w) = det::current_arc() {
            return w.spawn(
                builder,
                Box::new(move || {
                    let m = m;
                    // SAFETY: as below.
                    unsafe { crate::run::mstart(m.0) }
                }),
            );
        }
        builder
            .spawn(move || {
                let m = m;
                // SAFETY: this new thread is the M's thread; its stack is the M's g0 stack.
                unsafe { crate::run::mstart(m.0) }
            })
            .is_ok()
    }

    fn futex_sleep(&self, key: &AtomicU32) {
        if let Some((w, me)) = det::current() {
            return w.futex_sleep(me, key);
        }
        futex_wait(key, None);
    }

    fn poll_sleep(&self, key: &AtomicU32, deadline: u64) {
        if let Some((w, me)) = det::current() {
            return w.poll_sleep(me, key, deadline);
        }
        let now = self.nanotime();
        if deadline > now {
            futex_wait(key, Some(deadline - now));
        }
    }

    fn futex_wake(&self, key: &AtomicU32) {
        if let Some((w, me)) = det::current() {
            return w.futex_wake(me, key);
        }
        // SAFETY: FUTEX_WAKE on a live u32 wakes at most one sleeper.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                key.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                1u32,
            )
        };
    }

    fn stack_alloc(&self, size: usize) -> Option<Stack> {
        stacks::alloc(size.next_multiple_of(PAGE))
    }

    unsafe fn stack_free(&self, stacks: &[Stack]) {
        // SAFETY: forwarded: each came from stack_alloc, once, unused.
        unsafe { stacks::free(stacks) }
    }

    fn preempt_m(&self, m: *mut M) {
        if det::current().is_some() {
            return; // no signals in a deterministic run (async preemption is off there)
        }
        signal::preempt_m(m)
    }

    fn osyield(&self) {
        if let Some((w, me)) = det::current() {
            return w.osyield(me);
        }
        // SAFETY: no arguments, no memory.
        unsafe { libc::sched_yield() };
    }

    fn sched_point(&self) {
        if let Some((w, me)) = det::current() {
            w.sched_point(me);
        }
    }

    fn usleep(&self, us: u32) {
        if let Some((w, me)) = det::current() {
            return w.usleep(me, us);
        }
        std::thread::sleep(Duration::from_micros(us as u64));
    }

    fn write_str(&self, s: &str) {
        eprint!("{s}");
    }

    fn exit_fatal(&self) -> ! {
        // Go exits with status 2 after a fatal error.
        std::process::exit(2)
    }

    fn ncpu(&self) -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    fn symbolize(
        &self,
        pc: usize,
        ret: bool,
        f: &mut dyn FnMut(&[crate::platform::SymFrame], Option<usize>),
    ) {
        diag::symbolize(pc, ret, f)
    }

    fn source_root(&self) -> &str {
        diag::source_root()
    }

    fn on_fatal_stack(&self, f: &mut dyn FnMut()) {
        diag::on_fatal_stack(f)
    }

    #[inline]
    fn trace_clock(&self) -> u64 {
        if TRACE_TSC_HZ.load(Ordering::Relaxed) != 0 {
            // SAFETY: RDTSC only reads the time-stamp counter (SDM Vol. 2B, RDTSC); the
            // calibration below found it constant and non-stop on this CPU.
            unsafe { core::arch::x86_64::_rdtsc() }
        } else {
            self.nanotime()
        }
    }

    fn trace_clock_hz(&self) -> u64 {
        let hz = calibrate_tsc();
        TRACE_TSC_HZ.store(hz, Ordering::Relaxed);
        if hz == 0 {
            1_000_000_000
        } else {
            hz
        }
    }

    fn trace_write(&self, bytes: &[u8], wait: bool) -> bool {
        let mut g = if wait {
            match TRACE.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            }
        } else {
            match TRACE.try_lock() {
                Ok(g) => g,
                Err(_) => return false,
            }
        };
        match g.as_mut() {
            Some(sink) => {
                sink.bytes.extend_from_slice(bytes);
                true
            }
            None => false,
        }
    }

    fn trace_finish(&self) {
        let sink = match TRACE.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(sink) = sink {
            if let Err(e) = write_trace_json(&sink) {
                eprintln!("rt-core: trace: cannot write {}: {e}", sink.path.display());
            }
        }
    }
}

/// Where a host program's trace goes ([`Runtime::trace`]): its records are kept in memory
/// (40 bytes an event) and turned into Perfetto JSON when the runtime ends.
struct TraceSink {
    path: std::path::PathBuf,
    bytes: Vec<u8>,
}

static TRACE: StdMutex<Option<TraceSink>> = StdMutex::new(None);

/// The TSC's rate when the trace's clock is the TSC (0: the trace uses CLOCK_MONOTONIC). A
/// TSC read costs 12 ns here, `clock_gettime` 28 ns (docs/platform.md), and a trace point
/// reads the clock once.
static TRACE_TSC_HZ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The TSC's rate measured against CLOCK_MONOTONIC over 5 ms, if the CPU says its TSC is
/// constant and does not stop (Linux's `constant_tsc` and `nonstop_tsc` flags: the same
/// conditions under which Linux itself keeps time with it); 0 otherwise.
fn calibrate_tsc() -> u64 {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = flags
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    if !(has("constant_tsc") && has("nonstop_tsc")) {
        return 0;
    }
    // SAFETY: as in `trace_clock`.
    let tsc = || unsafe { core::arch::x86_64::_rdtsc() };
    let (t0, n0) = (tsc(), HOST.nanotime());
    std::thread::sleep(Duration::from_millis(5));
    let (t1, n1) = (tsc(), HOST.nanotime());
    let (dt, dn) = (t1.wrapping_sub(t0) as u128, n1.saturating_sub(n0) as u128);
    if dn == 0 || dt == 0 {
        return 0;
    }
    (dt * 1_000_000_000 / dn) as u64
}

/// Decodes the trace and writes it as Chrome Trace Event JSON (rt-trace's view), naming each
/// goroutine after the function that created it.
fn write_trace_json(sink: &TraceSink) -> Result<(), String> {
    if sink.path.extension().is_some_and(|e| e == "bin") {
        // The raw records, for rt-trace's decoder and checks (the kernel's `.bin` too).
        return std::fs::write(&sink.path, &sink.bytes).map_err(|e| e.to_string());
    }
    let trace = rt_trace::decode::decode(&sink.bytes).map_err(|e| e.to_string())?;
    let name_of = |pc: u64| {
        let mut name = None;
        diag::symbolize(pc as usize, true, &mut |frames, _| {
            // The innermost frame that is not the runtime's own: `spawn` is inlined into the
            // function that called it.
            let f = frames
                .iter()
                .find(|f| !crate::traceback::format::is_runtime_frame(f.function))
                .or(frames.first());
            if let Some(f) = f {
                name = Some(f.function.to_string());
            }
        });
        name
    };
    let model = rt_trace::model::build(&trace, &name_of);
    std::fs::write(&sink.path, rt_trace::json::to_string(&model)).map_err(|e| e.to_string())
}

/// Runs goroutines on host threads.
pub struct Runtime {
    gomaxprocs: usize,
    stack_size: usize,
    sysmon: bool,
    stack_cache: bool,
    async_preempt: bool,
    timeslice_ns: u64,
    max_procs: usize,
    trace: Option<std::path::PathBuf>,
    on_leak: Option<LeakHandler>,
    /// The seed of a deterministic run (host/det.rs), or None.
    det: Option<u64>,
    timeslice_set: bool,
}

/// What [`Runtime::on_leak`] is given.
type LeakHandler = Box<dyn FnOnce(crate::leak::LeakReport) + Send>;

impl Runtime {
    /// A runtime with `gomaxprocs` Ps (0: the number of CPUs, Go's default).
    pub fn new(gomaxprocs: usize) -> Runtime {
        let gomaxprocs = if gomaxprocs == 0 {
            HOST.ncpu()
        } else {
            gomaxprocs
        };
        Runtime {
            gomaxprocs,
            stack_size: crate::stack::DEFAULT_STACK_SIZE,
            sysmon: true,
            stack_cache: true,
            async_preempt: true,
            timeslice_ns: crate::preempt::FORCE_PREEMPT_NS,
            max_procs: 0,
            trace: std::env::var_os("RT_CORE_TRACE").map(Into::into),
            on_leak: None,
            det: det::scoped_seed(),
            timeslice_set: false,
        }
    }

    /// A deterministic run (host/det.rs): one of the run's threads runs at a time, and which
    /// one, every M's random choices (steal order, select's order), the time slice and the
    /// passage of time (virtual: sleeps and timers take no real time) all come from `seed`.
    /// The same seed and program give the same schedule, step for step
    /// ([`det::last_run`]); a failing run prints its seed, to be rerun with `GORT_SEED`
    /// ([`det::seeds`]). Asynchronous preemption is off (goroutines are preempted at safe
    /// points, by a sysmon that runs in virtual time).
    pub fn deterministic(mut self, seed: u64) -> Runtime {
        self.det = Some(seed);
        self
    }

    /// Hands `f` the leak report (rt-core/src/leak.rs: goroutines parked on channels that no
    /// goroutine that can still run can reach) when `block_on` returns and some goroutines
    /// leaked, instead of printing it to stderr (the default). Not called after a deadlock
    /// or a panic, whose reports say more.
    pub fn on_leak(mut self, f: impl FnOnce(crate::leak::LeakReport) + Send + 'static) -> Runtime {
        self.on_leak = Some(Box::new(f));
        self
    }

    /// Records an execution trace of the run and writes it to `path` as Chrome Trace Event
    /// JSON (open it in Perfetto, ui.perfetto.dev, or chrome://tracing): a track per M, a
    /// slice per run of a goroutine, wake-up arrows, run-queue counters. A path ending in
    /// `.bin` gets the raw records instead (rt-trace decodes them). The environment variable
    /// `RT_CORE_TRACE=path` does the same for every runtime a program creates; one runtime
    /// records at a time.
    pub fn trace(mut self, path: impl Into<std::path::PathBuf>) -> Runtime {
        self.trace = Some(path.into());
        self
    }

    /// Usable bytes per goroutine stack (virtual; committed as touched).
    pub fn stack_size(mut self, bytes: usize) -> Runtime {
        self.stack_size = bytes;
        self
    }

    /// Without the stack cache: every goroutine's stack is `mmap`ed at its start and
    /// `munmap`ed at its exit (to measure what the cache saves).
    pub fn without_stack_cache(mut self) -> Runtime {
        self.stack_cache = false;
        self
    }

    /// Whether a goroutine that overruns its time slice in code with no safe point (a loop
    /// that calls nothing) is stopped by a signal, as Go does (host/signal.rs); on by default.
    /// Off, such a loop keeps its P until it reaches a safe point (`preempt_point`, or any
    /// runtime call). Go's `GODEBUG=asyncpreemptoff=1` in the environment turns it off whatever
    /// this says, as it does for a whole Go program.
    pub fn async_preempt(mut self, on: bool) -> Runtime {
        self.async_preempt = on;
        self
    }

    /// How long a goroutine may run before sysmon asks it to yield (Go's `forcePreemptNS`,
    /// 10 ms by default).
    pub fn timeslice(mut self, d: Duration) -> Runtime {
        self.timeslice_ns = d.as_nanos().clamp(1, u64::MAX as u128) as u64;
        self.timeslice_set = true;
        self
    }

    /// The most Ps `set_gomaxprocs` may raise GOMAXPROCS to while the runtime runs (default:
    /// the larger of GOMAXPROCS and the CPU count).
    pub fn max_procs(mut self, n: usize) -> Runtime {
        self.max_procs = n;
        self
    }

    /// Without sysmon: no preemption requests and no retaking Ps from syscalls.
    pub fn without_sysmon(mut self) -> Runtime {
        self.sysmon = false;
        self
    }

    /// Runs `f` as the main goroutine and returns its result. Goroutines still running when
    /// it returns are abandoned (Go: the program exits when `main` returns). A goroutine's
    /// panic is re-raised here; a deadlock panics with Go's message.
    pub fn block_on<R: Send + 'static>(self, f: impl FnOnce() -> R + Send + 'static) -> R {
        self.block_on_with(|_| {}, f)
    }

    /// Like `block_on`, and hands `inspect` the scheduler afterwards (for tests and benchmarks
    /// that read its statistics).
    pub fn block_on_with<R: Send + 'static>(
        self,
        inspect: impl FnOnce(&Sched),
        f: impl FnOnce() -> R + Send + 'static,
    ) -> R {
        stacks::install_fault_handler();
        diag::reserve_fatal_stack();
        diag::install_sigquit();
        diag::install_panic_hook();
        if let Some(l) = std::env::var("GOTRACEBACK")
            .ok()
            .and_then(|v| crate::traceback::Level::parse(&v))
        {
            crate::traceback::set_level(l);
        }
        let mut config = Config::new(self.gomaxprocs);
        config.stack_size = self.stack_size;
        config.stack_cache = self.stack_cache;
        config.timeslice_ns = self.timeslice_ns;
        config.max_procs = self.max_procs;
        config.async_preempt =
            self.async_preempt && !godebug_asyncpreemptoff() && self.sysmon && signal::supported();
        if let Some(seed) = self.det {
            // No signals: their arrival is not the seed's choice.
            config.async_preempt = false;
            config.rand_seed = det::derive(seed, 2);
            if !self.timeslice_set {
                // 20 µs to 2 ms of virtual time: preemption at many different points.
                config.timeslice_ns = 20_000 + det::derive(seed, 3) % 1_980_000;
            }
        }
        if let Some(path) = self.trace {
            let mut g = TRACE.lock().unwrap_or_else(|p| p.into_inner());
            if g.is_some() {
                panic!("rt-core: a trace is already being recorded by another runtime");
            }
            *g = Some(TraceSink {
                path,
                bytes: Vec::new(),
            });
            config.trace = true;
        }
        let result: Arc<StdMutex<Option<R>>> = Arc::new(StdMutex::new(None));
        let slot = result.clone();
        let det_guard = self.det.map(det::World::enter_main);
        let mut hooks = HostHooks {
            sysmon: self.sysmon,
            thread: None,
            det_sysmon_done: None,
            inspect: Some(inspect),
            on_leak: self.on_leak,
        };
        let ended = Sched::run(
            &HOST,
            &config,
            Box::new(move || {
                let r = f();
                *slot.lock().unwrap() = Some(r);
            }),
            &mut hooks,
        );
        if let Some(g) = det_guard {
            let seed = g.seed();
            drop(g);
            if ended.is_err() {
                eprintln!("{}", det::failure_line(seed));
            }
        }
        match ended {
            Ok(()) => result
                .lock()
                .unwrap()
                .take()
                .expect("main goroutine returned a result"),
            Err(Failure::Panic { payload, .. }) => std::panic::resume_unwind(payload),
            Err(deadlock) => panic!("fatal error: {deadlock}"),
        }
    }
}

/// Go's `GODEBUG=asyncpreemptoff=1` (a comma-separated list of settings; the last wins).
fn godebug_asyncpreemptoff() -> bool {
    std::env::var("GODEBUG").is_ok_and(|v| {
        v.split(',')
            .filter_map(|kv| kv.trim().strip_prefix("asyncpreemptoff="))
            .next_back()
            .is_some_and(|x| x == "1")
    })
}

/// The host's part of a run: a sysmon thread while it runs, and the caller's look at the
/// runtime once its Ms are gone.
struct HostHooks<I> {
    sysmon: bool,
    thread: Option<std::thread::JoinHandle<()>>,
    /// In a deterministic run, sysmon is a participant of the world: set (under the baton)
    /// as its loop ends, which M0 waits for in virtual time before joining the thread.
    det_sysmon_done: Option<Arc<std::sync::atomic::AtomicBool>>,
    inspect: Option<I>,
    on_leak: Option<LeakHandler>,
}

impl<I: FnOnce(&Sched)> Hooks for HostHooks<I> {
    fn started(&mut self, sched: &Sched) {
        if !self.sysmon {
            return;
        }
        let sched_addr = sched as *const Sched as usize;
        if let Some(w) = det::current_arc() {
            let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let d = done.clone();
            let ok = w.spawn(
                std::thread::Builder::new().name("rt-sysmon".into()),
                Box::new(move || {
                    // SAFETY: as below; `finished` waits for `done` first.
                    let sched = unsafe { &*(sched_addr as *const Sched) };
                    sysmon_loop(sched);
                    d.store(true, Ordering::Release);
                }),
            );
            assert!(ok, "cannot start the sysmon thread");
            self.det_sysmon_done = Some(done);
            return;
        }
        self.thread = Some(
            std::thread::Builder::new()
                .name("rt-sysmon".into())
                .spawn(move || {
                    // SAFETY: the runtime is destroyed only after `finished` has joined this
                    // thread.
                    let sched = unsafe { &*(sched_addr as *const Sched) };
                    sysmon_loop(sched);
                })
                .expect("cannot start the sysmon thread"),
        );
    }

    fn finished(&mut self, sched: &Sched) {
        if let Some(done) = self.det_sysmon_done.take() {
            while !done.load(Ordering::Acquire) {
                HOST.usleep(100);
            }
        }
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
        // Leaked goroutines, once main has returned (a failure has its own report).
        if sched.failure.lock().is_none() {
            let report = crate::leak::LeakReport::of(sched);
            if !report.goroutines.is_empty() {
                match self.on_leak.take() {
                    Some(f) => f(report),
                    None => eprint!(
                        "rt-core: {} leaked goroutine(s): parked on channels that no goroutine \
                         that can still run can reach\n\n{}\n",
                        report.goroutines.len(),
                        report.text
                    ),
                }
            }
        }
        if let Some(inspect) = self.inspect.take() {
            inspect(sched);
        }
    }
}

/// Go's `sysmon`: wakes every 20 µs while it finds work to do, backing off to 10 ms when idle.
fn sysmon_loop(sched: &Sched) {
    let mut delay_us = 20u32;
    let mut idle = 0u32;
    while !sched.exiting.load(Ordering::Acquire) {
        HOST.usleep(delay_us);
        let before = sched.stats.npreempt_requests.load(Ordering::Relaxed);
        let retaken = crate::preempt::retake(sched, HOST.nanotime(), crate::preempt::Handoff::Now);
        if retaken > 0 || sched.stats.npreempt_requests.load(Ordering::Relaxed) != before {
            idle = 0;
            delay_us = 20;
        } else {
            idle += 1;
            if idle > 50 {
                delay_us = (delay_us * 2).min(10_000);
            }
        }
    }
}

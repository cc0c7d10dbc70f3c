//! What rt-core needs from the machine below it (docs/design.md §3), and nothing more. Go's
//! counterparts are the OS-specific files (os_linux.go, lock_futex.go, stack allocation in
//! mem_linux.go). The kernel implements this for bare metal (GS base, `hlt` + IPI, page-mapped
//! stacks); [`crate::host`] implements it for Linux threads (feature `std`).
//!
//! One platform per process: [`set`] installs it once, before any runtime is created
//! ([`crate::Sched::run`] does).
//!
//! Besides the trait, this module holds what a platform's own code may call: starting an M
//! on a CPU or thread ([`mstart`]), its interrupt handlers' questions and actions
//! ([`want_async_preempt`], [`async_preempt`], [`running_g`], [`stack_overflow`]), and its
//! netpoller's parking and waking of goroutines ([`gopark`], [`goready`], [`getg`]).

use core::cell::UnsafeCell;
use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};

pub use crate::g::{WaitReason, G};
pub use crate::m::{getg, M};
pub use crate::park::{gopark, goready};
pub use crate::preempt::{async_preempt, want_async_preempt, Handoff};
pub use crate::run::mstart;
pub use crate::stack::{stack_overflow, Stack};
pub use crate::traceback::format::SymFrame;
pub use crate::traceback::Start;

pub trait Platform: Sync + 'static {
    /// The M running on this thread or CPU, or null (Go: `getg().m`, kept in TLS).
    fn current_m(&self) -> *mut M;
    fn set_current_m(&self, m: *mut M);
    /// Monotonic nanoseconds (Go's `nanotime`).
    fn nanotime(&self) -> u64;
    /// Starts `m` on a new thread or a spare CPU: it must call [`mstart`]`(m)`.
    /// Returns false if no thread or CPU can be had (the caller then keeps the P idle).
    fn new_os_thread(&self, m: *mut M) -> bool;
    /// Sleeps while `*key == 0` (Go's `futexsleep(key, 0, -1)`); may return spuriously.
    fn futex_sleep(&self, key: &AtomicU32);
    /// Wakes a sleeper on `key` (Go's `futexwakeup(key, 1)`).
    fn futex_wake(&self, key: &AtomicU32);
    /// A goroutine stack of `size` usable bytes with an inaccessible guard below it. The
    /// platform may back it lazily (the kernel maps one page and grows it on demand).
    fn stack_alloc(&self, size: usize) -> Option<Stack>;
    /// Gives stacks back, in one batch (so that a platform can make one TLB shootdown for all).
    ///
    /// # Safety
    /// Each stack came from `stack_alloc`, is given back once, and no goroutine runs on it.
    unsafe fn stack_free(&self, stacks: &[Stack]);
    /// Bytes of `stack` backed by memory right now, if the platform knows cheaply (the kernel
    /// does: its page-fault handler keeps count). `None`: the caches never trim.
    fn stack_resident(&self, _stack: &Stack) -> Option<usize> {
        None
    }
    /// Releases the memory deep in each stack, keeping only what a new goroutine touches first
    /// (the kernel keeps the top page); the stacks stay usable and grow again on demand. One
    /// batch, one TLB shootdown. Returns the bytes released.
    ///
    /// # Safety
    /// Each stack came from `stack_alloc` and no goroutine runs on it.
    unsafe fn stack_trim(&self, _stacks: &[Stack]) -> usize {
        0
    }
    /// The poller's sleep (Go's `netpoll(delay)`): sleeps while `*key == 0`, until `deadline`
    /// (nanotime; u64::MAX: no deadline), or until an I/O event. May return early.
    fn poll_sleep(&self, key: &AtomicU32, deadline: u64);
    /// Hands over the goroutines whose I/O completed since the last call (Go's `netpoll(0)`
    /// returning a list to `injectglist`), each once. Platforms without I/O: nothing.
    fn netpoll(&self, _ready: &mut dyn FnMut(*mut G)) {}
    /// Whether `netpoll` has something to hand over (cheap).
    fn netpoll_ready(&self) -> bool {
        false
    }
    /// Whether a goroutine is parked waiting for I/O: an interrupt may still ready it, so a
    /// program with every other goroutine asleep is not deadlocked.
    fn io_waiting(&self) -> bool {
        false
    }
    /// Writes a piece of an execution trace (tracer.rs) where the platform keeps it: the
    /// kernel's debug console port, the host's trace file. `wait`: false when the caller may
    /// be an interrupt handler (the kernel's sysmon), which must not wait for a writer it may
    /// have interrupted. Returns false if the bytes were not taken (they are counted as lost).
    fn trace_write(&self, _bytes: &[u8], _wait: bool) -> bool {
        false
    }
    /// The trace's clock: cheap and monotonic (the kernel reads the TSC).
    fn trace_clock(&self) -> u64 {
        self.nanotime()
    }
    /// Ticks of [`Platform::trace_clock`] per second; asked once, as a trace starts (a
    /// platform may choose its trace clock then).
    fn trace_clock_hz(&self) -> u64 {
        1_000_000_000
    }
    /// The trace is complete: everything has been written (the host turns it into JSON).
    fn trace_finish(&self) {}
    /// The CPU this code runs on, where an M is a CPU (the kernel); `None` on the host.
    fn cpu_id(&self) -> Option<u64> {
        None
    }
    /// Gives the CPU away briefly (Go's `osyield`).
    fn osyield(&self);
    /// A point where the runtime could let another M run (taking a runtime lock: every
    /// goroutine switch, channel operation and wake-up takes one), called only while [`SCHED_POINTS`] is non-zero: the host's
    /// deterministic mode (host/det.rs) may pass its baton to another thread here. Default:
    /// nothing.
    fn sched_point(&self) {}
    /// Sleeps about `us` microseconds (Go's `usleep`).
    fn usleep(&self, us: u32);
    /// Writes to the console for fatal errors and traces.
    fn write_str(&self, s: &str);
    /// Ends the program after a fatal runtime error.
    fn exit_fatal(&self) -> !;
    /// Number of CPUs (the default GOMAXPROCS).
    fn ncpu(&self) -> usize;
    /// Called on g0 right after a G was preempted asynchronously (from an interrupt handler,
    /// [`async_preempt`]): restore what g0 needs that the handler turned off
    /// (the kernel re-enables interrupts). Platforms without async preemption do nothing.
    fn after_async_preempt(&self) {}
    /// Go's `preemptM`: sysmon asks the thread of `m`, whose G has overrun its time slice and
    /// was flagged, to stop it asynchronously (the host sends a signal: host/signal.rs). The
    /// kernel's default does nothing: its timer tick looks at every CPU's G by itself.
    fn preempt_m(&self, _m: *mut M) {}
    /// Symbolizes `pc` (a return address when `ret`: the call is at `pc - 1`): calls `f` with
    /// its logical frames, innermost inlined call first, and the PC's offset from the
    /// function's entry. A platform that cannot (the kernel, whose symbols xtask reads from
    /// the ELF) does not call `f`, and tracebacks print raw lines (traceback/format.rs).
    fn symbolize(&self, _pc: usize, _ret: bool, _f: &mut dyn FnMut(&[SymFrame], Option<usize>)) {}
    /// The directory that tracebacks show file names relative to (the workspace); "" for none.
    fn source_root(&self) -> &str {
        ""
    }
    /// What an M runs on, for `goroutine running on other thread; stack unavailable` (Go's
    /// word is "thread"; the kernel's Ms are CPUs).
    fn m_word(&self) -> &'static str {
        "thread"
    }
    /// Runs `f`, the report of a fatal error, on a stack with room for it: the host's
    /// symbolizer needs far more than a goroutine that just overflowed has left. Called once
    /// per program (only the first fatal error reports). Default: right here.
    fn on_fatal_stack(&self, f: &mut dyn FnMut()) {
        f()
    }
}

/// While non-zero, the runtime calls [`Platform::sched_point`] at its scheduling points (a
/// platform counts here the runs that want them: the host's deterministic runs). While zero,
/// each point costs one load and a branch that is never taken.
pub static SCHED_POINTS: AtomicUsize = AtomicUsize::new(0);

/// A scheduling point ([`Platform::sched_point`]).
#[inline(always)]
pub(crate) fn sched_point() {
    if SCHED_POINTS.load(Ordering::Relaxed) != 0 {
        sched_point_slow();
    }
}

#[cold]
#[inline(never)]
fn sched_point_slow() {
    if installed() {
        get().sched_point();
    }
}

/// The next channel's creation number in a deterministic run (0 outside one: see
/// [`chan_order`]).
static CHAN_SEQ: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// What orders a new channel's lock among others' besides its address (select and the leak
/// finder lock by `(chan_order, address)`): 0 normally, so that the order is Go's, by address;
/// while a deterministic run is alive ([`SCHED_POINTS`]), the channel's creation number, so
/// that the order — and with it which M waits for which — does not depend on where the
/// allocator put the channels, which differs from run to run.
#[inline]
pub(crate) fn chan_order() -> u64 {
    if SCHED_POINTS.load(Ordering::Relaxed) == 0 {
        0
    } else {
        CHAN_SEQ.fetch_add(1, Ordering::Relaxed) + 1
    }
}

struct Slot {
    state: AtomicU8,
    value: UnsafeCell<Option<&'static dyn Platform>>,
}

// SAFETY: `value` is written once, before `state` becomes READY (release), and only read after
// observing READY (acquire).
unsafe impl Sync for Slot {}

const EMPTY: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;

static PLATFORM: Slot = Slot {
    state: AtomicU8::new(EMPTY),
    value: UnsafeCell::new(None),
};

/// Installs the platform. A second call with the same platform is a no-op; with another, an error.
pub fn set(p: &'static dyn Platform) -> Result<(), &'static str> {
    match PLATFORM
        .state
        .compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Acquire)
    {
        Ok(_) => {
            // SAFETY: we won the EMPTY -> WRITING transition, so no one else writes or reads.
            unsafe { *PLATFORM.value.get() = Some(p) };
            PLATFORM.state.store(READY, Ordering::Release);
            Ok(())
        }
        Err(_) => {
            while PLATFORM.state.load(Ordering::Acquire) != READY {
                core::hint::spin_loop();
            }
            if core::ptr::addr_eq(get() as *const dyn Platform, p as *const dyn Platform) {
                Ok(())
            } else {
                Err("a different rt-core platform is already installed")
            }
        }
    }
}

/// Whether a platform is installed (no runtime has started before it is).
pub fn installed() -> bool {
    PLATFORM.state.load(Ordering::Acquire) == READY
}

/// The installed platform.
#[inline]
pub fn get() -> &'static dyn Platform {
    if PLATFORM.state.load(Ordering::Acquire) != READY {
        panic!("rt-core: no platform installed (call rt_core::platform::set first)");
    }
    // SAFETY: READY was observed with acquire ordering, so `value` is initialised and frozen.
    unsafe { (*PLATFORM.value.get()).unwrap_unchecked() }
}

/// The platform's console as a `fmt::Write`, for the runtime's own reports (fatal errors,
/// overflows, tracebacks).
pub(crate) struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        get().write_str(s);
        Ok(())
    }
}

/// Prints `fatal error: ...` (Go's `throw`), then the goroutines (the running one first, from
/// the caller's frame; traceback/mod.rs), and ends the program. Only the first caller prints
/// and exits; another M that fails meanwhile (two Ms can run out of stacks at once) waits for
/// the exit instead of interleaving a second message (Go's `fatalthrow` likewise lets one
/// thread report).
#[cold]
#[inline(never)]
pub fn fatal(args: fmt::Arguments) -> ! {
    fatal_at(args, Some(crate::traceback::Start::caller()))
}

/// [`fatal`], with the running goroutine's traceback starting at `at` (an interrupted
/// instruction, a faulting frame); `None`: no traceback of the running goroutine.
#[cold]
pub fn fatal_at(args: fmt::Arguments, at: Option<crate::traceback::Start>) -> ! {
    if !installed() {
        // No runtime has started (a host program making a channel before `block_on`): there
        // are no goroutines to trace and no console but the panic's. Say the same words.
        panic!("fatal error: {args}");
    }
    static FAILING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if FAILING.swap(true, Ordering::AcqRel) {
        loop {
            get().usleep(1_000_000);
        }
    }
    get().on_fatal_stack(&mut || {
        let _ = fmt::write(&mut Console, format_args!("fatal error: {args}\n"));
        crate::traceback::print_failure(at, true);
    });
    get().exit_fatal()
}

/// The goroutine running on `m` (not its g0), if any: for a platform's fault handler, which
/// asks whether a fault hit that goroutine's stack.
///
/// # Safety
/// `m` is null or the live M running on the caller's CPU or thread (the caller is its
/// interrupt or fault handler), so the G it reports stays live while the handler runs.
pub unsafe fn running_g(m: *mut M) -> Option<&'static G> {
    // SAFETY: the caller's promise.
    let m = unsafe { m.as_ref() }?;
    // SAFETY: Gs are never freed while their runtime lives, and the runtime outlives its Ms.
    let g = unsafe { m.curg.load(core::sync::atomic::Ordering::Relaxed).as_ref() }?;
    (!g.is_g0).then_some(g)
}

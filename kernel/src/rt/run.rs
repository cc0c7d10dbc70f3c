//! Running a runtime: [`run`] makes one, runs the main goroutine on the bootstrap processor
//! with the APs as further Ms, and destroys it; `CURRENT` is where the tick, the idle APs
//! and the serial interrupt find the runtime meanwhile.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use rt_core::platform::{Platform, M};
use rt_core::{Config, Failure, Hooks, Sched};

use crate::rt::platform::PLATFORM;
use crate::rt::stats::{preemptions_of, LAST_RUN};

/// Runs `main` as the main goroutine with `gomaxprocs` Ps (0: one per online CPU), the
/// bootstrap processor as M0 and the APs as further Ms, until `main` returns
/// ([`Sched::run`], with the settings of the kernel's arguments). Returns the runtime's
/// statistics per P (Gs run, Gs stolen); a deadlock or a goroutine's panic is a fatal error.
pub fn run(gomaxprocs: usize, main: impl FnOnce() + Send + 'static) -> Vec<(u64, u64)> {
    let args = crate::args::get();
    crate::mm::stack::set_slot_size(args.maxstack_bytes());
    let mut config = Config::new(if gomaxprocs == 0 {
        PLATFORM.ncpu()
    } else {
        gomaxprocs
    });
    config.stack_size = crate::mm::stack::max_stack();
    config.stack_cache = !args.stack_cache_off;
    config.timeslice_ns = args.timeslice_ms() * 1_000_000;
    config.preempt = !args.preempt_off;
    config.async_preempt = !args.async_preempt_off;
    config.trace = args.trace;
    // The APs leave their M loops at their next look for work: a second is plenty under
    // emulation; an AP stuck in a goroutine that is never preempted (`preempt=0`) is left.
    config.m_exit_wait_ns = 1_000_000_000;
    let mut hooks = KernelHooks {
        were_enabled: false,
        per_p: Vec::new(),
    };
    if let Err(failure) = Sched::run(&PLATFORM, &config, Box::new(main), &mut hooks) {
        // `failed` below ends the run before this; kept so that no failure is ever lost.
        rt_core::fatal(format_args!("{failure}"))
    }
    hooks.per_p
}

/// The kernel's part of a run: the runtime published to the tick, the idle APs and the serial
/// interrupt ([`CURRENT`]) while it runs, and interrupts on.
struct KernelHooks {
    were_enabled: bool,
    per_p: Vec<(u64, u64)>,
}

impl Hooks for KernelHooks {
    fn started(&mut self, sched: &Sched) {
        CURRENT.store(sched as *const Sched as *mut Sched, Ordering::Release);
        // Goroutines run with interrupts on: the tick reaches every M (APs enable them as
        // they take an M: smp::ap_idle). They stay on while `Sched::run` waits for the APs'
        // Ms: a goroutine still running on an AP may unmap stacks as it exits (a TLB
        // shootdown), and this CPU must answer its IPI (x86/tlb.rs).
        self.were_enabled = x86_64::instructions::interrupts::are_enabled();
        x86_64::instructions::interrupts::enable();
    }

    fn finished(&mut self, sched: &Sched) {
        self.per_p = sched.per_p_stats();
        *LAST_RUN.lock() = preemptions_of(sched);
        CURRENT.store(core::ptr::null_mut(), Ordering::SeqCst);
        while CURRENT_USERS.load(Ordering::SeqCst) != 0 {
            core::hint::spin_loop();
        }
        if !self.were_enabled {
            x86_64::instructions::interrupts::disable();
        }
    }

    /// A deadlock or a goroutine's panic ends the kernel's run at once, as Go's `throw` does,
    /// before the runtime's stacks are freed.
    fn failed(&mut self, _sched: &Sched, failure: &Failure) {
        rt_core::fatal(format_args!("{failure}"))
    }
}

/// The runtime running now, for the tick (schedtrace) to read; null when none runs.
pub(super) static CURRENT: AtomicPtr<Sched> = AtomicPtr::new(core::ptr::null_mut());

/// CPUs (other than the one in `run`) using CURRENT right now: `run` clears CURRENT, then
/// waits for this to drop to zero before it frees the runtime.
static CURRENT_USERS: AtomicU32 = AtomicU32::new(0);

/// For an idle AP (smp::ap_idle), outside interrupt context: a new M for a P that sysmon took
/// from a syscall, if the running runtime has one waiting and no idle M took it. The tick,
/// an interrupt, retakes the P but may not allocate an M; a spare CPU can.
pub fn m_for_retaken_p() -> Option<*mut M> {
    with_current(Sched::new_m_for_retaken).flatten()
}

/// Wakes the running runtime's poller (interrupt context: lock-free), for serial input.
pub fn netpoll_break() {
    with_current(Sched::netpoll_break);
}

/// Runs `f` on the running runtime, if one runs, counted in CURRENT_USERS so that `run`
/// cannot free it meanwhile (from any CPU, outside interrupt context or in it).
pub(super) fn with_current<R>(f: impl FnOnce(&Sched) -> R) -> Option<R> {
    CURRENT_USERS.fetch_add(1, Ordering::SeqCst);
    let sched = CURRENT.load(Ordering::SeqCst);
    // SAFETY: `run` frees the runtime only after clearing CURRENT and seeing no users, and we
    // counted ourselves before loading it.
    let r = (!sched.is_null()).then(|| f(unsafe { &*sched }));
    CURRENT_USERS.fetch_sub(1, Ordering::SeqCst);
    r
}

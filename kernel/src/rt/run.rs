//! Running a runtime: [`run`] makes one, runs the main goroutine on the bootstrap processor
//! with the APs as further Ms, and destroys it; `CURRENT` is where the tick, the idle APs
//! and the serial interrupt find the runtime meanwhile.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use rt_core::m::M;
use rt_core::platform::Platform;
use rt_core::sched::{Failure, Sched};

use crate::rt::platform::PLATFORM;
use crate::rt::stats::{preemptions_of, LAST_RUN};
use crate::x86::tsc;

/// Runs `main` as the main goroutine with `gomaxprocs` Ps (0: one per online CPU), the
/// bootstrap processor as M0 and the APs as further Ms, until `main` returns. Returns the
/// runtime's statistics per P (Gs run, Gs stolen); a deadlock is a fatal error.
pub fn run(gomaxprocs: usize, main: impl FnOnce() + Send + 'static) -> alloc::vec::Vec<(u64, u64)> {
    rt_core::platform::set(&PLATFORM).expect("another rt-core platform is installed");
    let procs = if gomaxprocs == 0 {
        PLATFORM.ncpu()
    } else {
        gomaxprocs
    };
    let args = crate::args::get();
    crate::mm::stack::set_slot_size(args.maxstack_bytes());
    let sched = Sched::new(procs, crate::mm::stack::max_stack());
    sched
        .stack_cache
        .store(!args.stack_cache_off, Ordering::Relaxed);
    sched
        .timeslice_ns
        .store(args.timeslice_ms() * 1_000_000, Ordering::Relaxed);
    sched
        .preempt_enabled
        .store(!args.preempt_off, Ordering::Relaxed);
    CURRENT.store(&*sched as *const Sched as *mut Sched, Ordering::Release);
    // Goroutines run with interrupts on: the tick reaches every M (APs enable them as they
    // take an M: smp::ap_idle).
    let were_enabled = x86_64::instructions::interrupts::are_enabled();
    x86_64::instructions::interrupts::enable();
    // SAFETY: the BSP is not an M yet, and the platform is installed.
    unsafe { sched.run_main(Box::new(main)) };
    // The APs leave their M loops at their next look for work; give them a moment. Interrupts
    // stay on while we wait: a goroutine still running on an AP may unmap stacks as it exits
    // (a TLB shootdown), and this CPU must answer its IPI (x86/tlb.rs).
    let deadline = tsc::nanos() + 1_000_000_000;
    while sched.mcount.load(Ordering::Acquire) != 0 && tsc::nanos() < deadline {
        core::hint::spin_loop();
    }
    let stats = sched.per_p_stats();
    *LAST_RUN.lock() = preemptions_of(&sched);
    CURRENT.store(core::ptr::null_mut(), Ordering::SeqCst);
    while CURRENT_USERS.load(Ordering::SeqCst) != 0 {
        core::hint::spin_loop();
    }
    if !were_enabled {
        x86_64::instructions::interrupts::disable();
    }
    if let Some(f) = sched.take_failure() {
        match f {
            Failure::Deadlock => {
                let mut list = alloc::string::String::new();
                let _ = rt_core::trace::goroutines(&sched, &mut list);
                rt_core::fatal(format_args!(
                    "all goroutines are asleep - deadlock!\n\n{}",
                    list.trim_end()
                ))
            }
            other => rt_core::fatal(format_args!("{other}")),
        }
    }
    // SAFETY: every M has left its loop (or destroy leaks instead of freeing).
    unsafe { sched.destroy() };
    stats
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

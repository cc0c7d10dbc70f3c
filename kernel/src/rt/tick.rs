//! What the runtime does from the timer interrupt: sysmon and schedtrace on CPU 0
//! ([`tick_cpu0`]), and on every CPU the choice to preempt its goroutine where it stands
//! ([`tick_async`]).

use core::sync::atomic::Ordering;

use rt_core::platform::{Handoff, M};

use crate::rt::run::CURRENT;
use crate::x86::{interrupts, percpu, tsc};

/// Called from CPU 0's timer tick (interrupt context: no waiting on locks, no allocation).
/// Prints Go's schedtrace line every `schedtrace=MS` milliseconds while a runtime runs, and
/// with `scheddetail=1` the per-P, per-M and per-G lines (rt_core::trace).
///
/// It is also sysmon (Go's `sysmon` → `retake`): it asks goroutines that overran their time
/// slice to yield, and takes Ps from syscalls, leaving their hand-off to the next M that looks
/// for work (an interrupt handler takes no scheduler lock and starts no M).
pub fn tick_cpu0() {
    let sched = CURRENT.load(Ordering::Acquire);
    if sched.is_null() {
        return;
    }
    // SAFETY: CURRENT is cleared before the runtime is destroyed, by `run` on this same CPU
    // (so never while this tick runs); retake and schedtrace read atomics only and take no lock
    // they would wait for.
    let sched = unsafe { &*sched };
    sched.retake(tsc::nanos(), Handoff::Deferred);
    let args = crate::args::get();
    if args.schedtrace == 0 {
        return;
    }
    let cpu0 = percpu::get(0);
    let ticks = cpu0.map_or(0, |p| p.ticks.load(Ordering::Relaxed));
    if !ticks.is_multiple_of((args.schedtrace / args.tick_ms()).max(1)) {
        return;
    }
    crate::dev::console::with_writer(|w| write_schedtrace(sched, w, args.scheddetail));
}

/// Go's schedtrace line (and with `detailed`, the per-P, per-M and per-G lines) for `sched`,
/// from interrupt context on CPU 0 (the tick, the Ctrl-\ dump).
pub fn write_schedtrace(sched: &rt_core::Sched, w: &mut dyn core::fmt::Write, detailed: bool) {
    let cpu0 = percpu::get(0);
    // The M and G lists are behind runtime locks. If the M this tick interrupted holds a
    // runtime lock, it may hold one of those: try once. Otherwise the holder is another CPU
    // inside a short critical section: wait for it a little.
    let m = cpu0.map_or(core::ptr::null_mut(), |p| p.m.load(Ordering::Relaxed)) as *mut M;
    // SAFETY: a CPU's M outlives its time on the CPU.
    let interrupted_holds_lock = unsafe { m.as_ref() }.is_some_and(M::holds_locks);
    // Ms asleep: CPUs whose M is halted on its note.
    let idle_threads = (0..percpu::MAX_CPUS)
        .map_while(percpu::get)
        .filter(|p| !p.sleeping_on.load(Ordering::Relaxed).is_null())
        .count();
    let trace = rt_core::trace::TraceArgs {
        now_ms: tsc::nanos() / 1_000_000,
        idlethreads: Some(idle_threads),
        detailed,
        lock_tries: if interrupted_holds_lock { 1 } else { 100_000 },
    };
    let _ = rt_core::trace::schedtrace(sched, w, &trace);
}

/// Called from every CPU's timer tick: whether to preempt this CPU's goroutine from the
/// interrupt, where it stands (Go's `preemptM` signal). rt-core decides
/// ([`rt_core::platform::want_async_preempt`]: flagged since the previous tick, no runtime
/// lock held, on its own stack); what the kernel adds is that interrupts were enabled (they
/// were, or the tick would not have come), so the interrupted code holds no `IrqLock`.
pub fn tick_async(cpu: &percpu::PerCpu, regs: &interrupts::SavedRegs) -> bool {
    let m = cpu.m.load(Ordering::Relaxed) as *mut M;
    // SAFETY: `m` is the M running on this CPU (or null), and this is its timer interrupt.
    let yes = unsafe { rt_core::platform::want_async_preempt(m, regs.rsp as usize) };
    if yes {
        cpu.async_preempts.fetch_add(1, Ordering::Relaxed);
    }
    yes
}

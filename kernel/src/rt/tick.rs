//! What the runtime does from the timer interrupt: sysmon and schedtrace on CPU 0
//! ([`tick_cpu0`]), and on every CPU the choice to preempt its goroutine where it stands
//! ([`tick_async`]).

use core::sync::atomic::Ordering;

use rt_core::m::M;

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
    rt_core::sched::retake(sched, tsc::nanos(), rt_core::sched::Handoff::Deferred);
    let args = crate::args::get();
    if args.schedtrace == 0 {
        return;
    }
    let cpu0 = percpu::get(0);
    let ticks = cpu0.map_or(0, |p| p.ticks.load(Ordering::Relaxed));
    if !ticks.is_multiple_of((args.schedtrace / args.tick_ms()).max(1)) {
        return;
    }
    // The M and G lists are behind runtime locks. If the M this tick interrupted holds a
    // runtime lock, it may hold one of those: try once. Otherwise the holder is another CPU
    // inside a short critical section: wait for it a little.
    let m =
        cpu0.map_or(core::ptr::null_mut(), |p| p.m.load(Ordering::Relaxed)) as *mut rt_core::m::M;
    // SAFETY: a CPU's M outlives its time on the CPU; `locks` is an atomic.
    let interrupted_holds_lock = !m.is_null() && unsafe { (*m).locks.load(Ordering::Relaxed) } > 0;
    // Ms asleep: CPUs whose M is halted on its note.
    let idle_threads = (0..percpu::MAX_CPUS)
        .map_while(percpu::get)
        .filter(|p| !p.sleeping_on.load(Ordering::Relaxed).is_null())
        .count();
    let trace = rt_core::trace::TraceArgs {
        now_ms: tsc::nanos() / 1_000_000,
        idlethreads: Some(idle_threads),
        detailed: args.scheddetail,
        lock_tries: if interrupted_holds_lock { 1 } else { 100_000 },
    };
    crate::dev::console::with_writer(|w| {
        let _ = rt_core::trace::schedtrace(sched, w, &trace);
    });
}

/// Called from every CPU's timer tick: whether to preempt this CPU's goroutine from the
/// interrupt (Go's `preemptM` signal + `isAsyncSafePoint`). Yes when the G was already flagged
/// at this CPU's previous tick, in the same time slice (so it had a tick's time to reach a safe
/// point and did not), and it stands at an async-safe point:
/// - its M holds no runtime lock (`m.locks == 0`; `mcall` also raises it, so the middle of a
///   switch to g0 is excluded);
/// - the interrupted stack pointer lies in the G's own stack (not g0's: the scheduler, the
///   `systemstack` code and the idle loop run on g0);
/// - interrupts were enabled (they were, or the tick would not have come; every kernel lock
///   that an interrupt path touches is an `IrqLock`, held with interrupts off).
pub fn tick_async(cpu: &percpu::PerCpu, regs: &interrupts::SavedRegs) -> bool {
    let m = cpu.m.load(Ordering::Relaxed) as *mut M;
    if m.is_null() {
        return false;
    }
    // SAFETY: the M running on this CPU is live; curg, locks, preempt are atomics. The G's
    // stack bounds are written by this CPU's M before the G runs, so this interrupt (on the
    // same CPU, after those writes) reads them stably.
    unsafe {
        let gp = (*m).curg.load(Ordering::Relaxed);
        if gp.is_null()
            || (*gp).is_g0
            || !(*gp).preempt.load(Ordering::Relaxed)
            || (*gp).status() != rt_core::status::GStatus::Running
        {
            cpu.preempt_seen
                .store(core::ptr::null_mut(), Ordering::Relaxed);
            return false;
        }
        let pp = (*m).p;
        let tick = if pp.is_null() {
            0
        } else {
            (*pp).schedtick.load(Ordering::Relaxed)
        };
        if cpu.preempt_seen.load(Ordering::Relaxed) != gp.cast()
            || cpu.preempt_seen_tick.load(Ordering::Relaxed) != tick
        {
            // First sight of the flag: give the G a tick to reach a safe point.
            cpu.preempt_seen.store(gp.cast(), Ordering::Relaxed);
            cpu.preempt_seen_tick.store(tick, Ordering::Relaxed);
            return false;
        }
        if crate::args::get().async_preempt_off || (*m).locks.load(Ordering::Relaxed) != 0 {
            return false;
        }
        let stack = (*gp).stack;
        if !(stack.lo as u64..stack.hi as u64).contains(&regs.rsp) {
            return false;
        }
        cpu.preempt_seen
            .store(core::ptr::null_mut(), Ordering::Relaxed);
        cpu.async_preempts.fetch_add(1, Ordering::Relaxed);
        true
    }
}

//! What the running runtime (or the last one) reports: preemption counts, memory held by its
//! goroutines, stack-cache counters, and which M each CPU ran.

use core::sync::atomic::Ordering;

use rt_core::Sched;

use crate::rt::run::with_current;
use crate::x86::percpu;

/// Preemption counts of a runtime (from [`rt_core::Counters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Preemptions {
    /// Requests sysmon made (a G overran its slice).
    pub requests: u64,
    /// Honoured at a safe point.
    pub sync: u64,
    /// Made from the timer interrupt where the G stood.
    pub asynchronous: u64,
}

/// `sched`'s preemption counts so far.
pub(super) fn preemptions_of(sched: &Sched) -> Preemptions {
    let c = sched.counters();
    Preemptions {
        requests: c.preempt_requests,
        sync: c.sync_preempts,
        asynchronous: c.async_preempts,
    }
}

/// The running runtime's preemption counts so far (None when no runtime runs).
pub fn preemptions() -> Option<Preemptions> {
    with_current(preemptions_of)
}

pub(super) static LAST_RUN: spin::Mutex<Preemptions> = spin::Mutex::new(Preemptions {
    requests: 0,
    sync: 0,
    asynchronous: 0,
});

/// What the goroutines of the running runtime hold in memory right now (tests, the showcase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemSnapshot {
    /// Physical frames allocated (stack pages, page tables, everything; the heap's frames are
    /// mapped at boot, so heap growth shows in `heap_bytes`).
    pub frames: u64,
    /// Heap bytes in use (G structs, closures, run queues...).
    pub heap_bytes: u64,
    /// Goroutine stack pages mapped.
    pub stack_pages: u64,
    /// Gs allocated by the runtime (0 when none runs).
    pub gs: usize,
    /// Ms made by the runtime (0 when none runs).
    pub ms: usize,
}

/// Takes a [`MemSnapshot`].
pub fn mem_snapshot() -> MemSnapshot {
    MemSnapshot {
        frames: crate::mm::frame::frame_stats().0,
        heap_bytes: crate::mm::heap::used() as u64,
        stack_pages: crate::mm::stack::stats().mapped_pages,
        gs: with_current(Sched::allg_count).unwrap_or(0),
        ms: with_current(Sched::allm_count).unwrap_or(0),
    }
}

/// The running runtime's stack-cache counters: (stacks asked of the platform, stacks given
/// back, bytes trimmed from cached stacks).
pub fn stack_counts() -> Option<(u64, u64, u64)> {
    with_current(|sched| {
        let c = sched.counters();
        (c.stack_allocs, c.stack_frees, c.stack_bytes_trimmed)
    })
}

/// Ps the running runtime has retaken from goroutines in a syscall so far.
pub fn syscall_retakes() -> Option<u64> {
    with_current(|sched| sched.counters().syscall_retakes)
}

/// Switches the running runtime's stack cache on or off (to measure what it saves).
pub fn set_stack_cache(on: bool) {
    with_current(|sched| sched.set_stack_cache(on));
}

/// The preemption counts of the last runtime that [`run`](crate::rt::run::run) finished.
pub fn last_run_preemptions() -> Preemptions {
    *LAST_RUN.lock()
}

/// Which M each online CPU ran last: `cpu0=M0 cpu1=M2 ...` (`-` for a CPU that ran none).
pub fn cpu_to_m() -> alloc::string::String {
    use core::fmt::Write;
    let mut out = alloc::string::String::new();
    for i in 0..percpu::MAX_CPUS {
        let Some(cpu) = percpu::get(i) else { break };
        let id = cpu.last_m_id.load(Ordering::Relaxed);
        let _ = if id < 0 {
            write!(out, "cpu{i}=- ")
        } else {
            write!(out, "cpu{i}=M{id} ")
        };
    }
    out.trim_end().into()
}

/// The running runtime's schedtrace with `scheddetail`'s per-P, per-M and per-G lines, as text
/// (None when no runtime runs): for tests that read what the lines say of the present state.
pub fn schedtrace_detail() -> Option<alloc::string::String> {
    with_current(|sched| {
        let mut out = alloc::string::String::new();
        crate::rt::tick::write_schedtrace(sched, &mut out, true);
        out
    })
}

//! TLB shootdown: making every CPU forget translations that one CPU removed.
//!
//! A CPU caches translations in its TLB; clearing a page-table entry invalidates nothing on the
//! other CPUs, and software must tell them (Intel SDM Vol. 3A §4.10.5, "Propagation of
//! Paging-Structure Changes to Multiple Processors": an IPI whose handler invalidates). The
//! kernel unmaps only goroutine stack pages (mm/stack.rs: trimming cached stacks, freeing slots),
//! and always in batches, so one shootdown covers many pages:
//!
//! 1. the caller unmaps its pages, flushing them from its own TLB with `invlpg`;
//! 2. [`shootdown`] bumps the request generation and sends
//!    [`crate::x86::interrupts::SHOOTDOWN_VECTOR`] to every other online CPU;
//! 3. each of them reloads CR3 (a full flush of non-global entries; stack pages are not global)
//!    and records the generation it saw in its per-CPU `tlb_gen`;
//! 4. the caller waits until every other CPU's `tlb_gen` has reached its generation, then may
//!    free the frames and reuse the addresses.
//!
//! Two CPUs may shoot down at once: each serves the other's request while it waits (it checks
//! the generation itself), so neither waits on the other even with interrupts off. A CPU
//! that does not answer within a second of the waiter's own running time (`tsc::Patience`: a
//! stop of the host does not count) is a named fatal error, never a hang.
//!
//! Linux's counterpart is `flush_tlb_others`; Go needs none (user space: the OS does this).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::x86::{apic, interrupts, percpu, tsc};

/// The newest shootdown requested (generations start at 1).
static REQUESTED: AtomicU64 = AtomicU64::new(0);

/// Shootdowns made (each one IPI round), for tests and figures.
static SHOOTDOWNS: AtomicU64 = AtomicU64::new(0);

/// Flushes this CPU's TLB if a shootdown it has not served yet is pending. Called by the IPI
/// handler and by CPUs waiting in [`shootdown`].
pub fn serve(me: &percpu::PerCpu) {
    let want = REQUESTED.load(Ordering::SeqCst);
    if me.tlb_gen.load(Ordering::SeqCst) < want {
        // Reloading CR3 drops every non-global translation (SDM Vol. 3A §4.10.4.1).
        x86_64::instructions::tlb::flush_all();
        me.tlb_flushes.fetch_add(1, Ordering::Relaxed);
        me.tlb_gen.fetch_max(want, Ordering::SeqCst);
    }
}

/// Makes every other online CPU flush its TLB, and waits until they have. The caller has
/// already cleared the page-table entries and flushed its own TLB for them.
///
/// Must not be called with a lock held that an interrupt handler takes: the other CPUs answer
/// from one.
pub fn shootdown() {
    let Some(me) = percpu::current() else { return };
    if percpu::ONLINE.load(Ordering::SeqCst) <= 1 {
        return;
    }
    let gen = REQUESTED.fetch_add(1, Ordering::SeqCst) + 1;
    SHOOTDOWNS.fetch_add(1, Ordering::Relaxed);
    for i in 0..percpu::MAX_CPUS {
        let Some(cpu) = percpu::get(i) else { break };
        if i != me.index {
            apic::send_fixed(cpu.apic_id, interrupts::SHOOTDOWN_VECTOR);
        }
    }
    // One second of our own running time (not the host's stops: tsc::Patience).
    let mut patience = tsc::Patience::new(1_000_000_000);
    for i in 0..percpu::MAX_CPUS {
        let Some(cpu) = percpu::get(i) else { break };
        if i == me.index {
            continue;
        }
        while cpu.tlb_gen.load(Ordering::SeqCst) < gen {
            // Another CPU may be waiting for us in its own shootdown.
            serve(me);
            if patience.exhausted() {
                crate::dev::console::print_fatal(format_args!(
                    "\nfatal error: TLB shootdown: cpu {i} did not flush within 1 s \
                     (it had seen generation {} of {gen}; idle={}, sleeping={}, ticks={}, halts={})\n",
                    cpu.tlb_gen.load(Ordering::SeqCst),
                    cpu.idle.load(Ordering::SeqCst),
                    !cpu.sleeping_on.load(Ordering::SeqCst).is_null(),
                    cpu.ticks.load(Ordering::SeqCst),
                    cpu.halts.load(Ordering::SeqCst),
                ));
                crate::dev::qemu::exit(crate::dev::qemu::ExitCode::Failure);
            }
            core::hint::spin_loop();
        }
    }
}

/// Shootdowns made so far.
pub fn shootdowns() -> u64 {
    SHOOTDOWNS.load(Ordering::Relaxed)
}

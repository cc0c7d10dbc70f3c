//! The kernel platform for rt-core: what the scheduler needs from the machine (docs/design.md §3),
//! provided by bare metal. Go's counterpart is an OS port (os_linux.go and friends).
//!
//! - The current M lives in the CPU's per-CPU data (GS base): `getm()` is one `gs:` load.
//! - Starting an M (`newosproc`) hands it to an idle AP and wakes that AP with the wake-up
//!   IPI; the AP runs it on its own boot stack, which becomes the M's g0 stack. M0 is the
//!   bootstrap processor. With no idle AP left, the runtime keeps the P idle (Go would make a
//!   thread; a CPU cannot be made).
//! - Parking an M (`futexsleep`) halts its CPU with the lost-wake-up race closed: the CPU
//!   announces the word it sleeps on, re-checks it, and halts with `sti; hlt`; a waker sets the
//!   word, then IPIs every CPU that announced it (sequentially consistent on both sides, so one
//!   of the two sees the other).
//! - The clock is the TSC, calibrated against the PIT.
//! - Goroutine stacks are virtual slots with a guard page, one page mapped at first and the
//!   rest mapped on demand by the page-fault handler (mm/stack.rs); trimming and freeing them is
//!   one TLB shootdown per batch (x86/tlb.rs).

use core::sync::atomic::{AtomicU32, Ordering};

use rt_core::platform::{Platform, Stack, G, M};

use crate::x86::{apic, interrupts, percpu, tsc};

pub struct KernelPlatform;

pub static PLATFORM: KernelPlatform = KernelPlatform;

/// Halts this CPU while `*key == 0` (the caller re-checks: any interrupt ends the halt, the
/// wake-up IPI that `futex_wake` sends included). With a `deadline` (the poller's sleep), it
/// also returns at the deadline or when serial input has readied a goroutine: if the deadline
/// comes before the next tick, the LAPIC timer is set one-shot for it (interrupts are off, so
/// it cannot fire before the `hlt`) and the periodic tick restored afterwards.
fn halt_while_zero(key: &AtomicU32, deadline: Option<u64>) {
    // SAFETY: runtime code runs only on CPUs whose per-CPU data is set up.
    let me = unsafe { percpu::current_unchecked() };
    let were_enabled = x86_64::instructions::interrupts::are_enabled();
    me.sleeping_on
        .store(key as *const AtomicU32 as *mut AtomicU32, Ordering::SeqCst);
    x86_64::instructions::interrupts::disable();
    let now = tsc::nanos();
    let go_on = match deadline {
        None => true,
        Some(d) => now < d && !crate::dev::serial_in::ready(),
    };
    if key.load(Ordering::SeqCst) == 0 && go_on {
        let tick = crate::tick_ms();
        let programmed = deadline.is_some_and(|d| {
            d - now < tick * 1_000_000 && apic::one_shot_in(interrupts::TIMER_VECTOR, d - now, tick)
        });
        me.halts.fetch_add(1, Ordering::Relaxed);
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
        if programmed {
            apic::start_timer(interrupts::TIMER_VECTOR, tick);
        }
    }
    me.sleeping_on
        .store(core::ptr::null_mut(), Ordering::SeqCst);
    if were_enabled {
        x86_64::instructions::interrupts::enable();
    }
}

impl Platform for KernelPlatform {
    #[inline]
    fn current_m(&self) -> *mut M {
        // SAFETY: every CPU sets up its per-CPU data before it runs any runtime code.
        unsafe { percpu::current_unchecked() }
            .m
            .load(Ordering::Relaxed)
            .cast()
    }

    // The trait's contract: `m` is null or the live M that starts running on this CPU.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    fn set_current_m(&self, m: *mut M) {
        // SAFETY: as above.
        let me = unsafe { percpu::current_unchecked() };
        me.m.store(m.cast(), Ordering::Relaxed);
        // SAFETY: `m` is null or the live M that starts running on this CPU.
        if let Some(m) = unsafe { m.as_ref() } {
            me.last_m_id.store(m.id(), Ordering::Relaxed);
        }
    }

    fn nanotime(&self) -> u64 {
        tsc::nanos()
    }

    fn new_os_thread(&self, m: *mut M) -> bool {
        for i in 1..percpu::MAX_CPUS {
            let Some(cpu) = percpu::get(i) else { break };
            if cpu.idle.load(Ordering::SeqCst)
                && cpu
                    .pending_m
                    .compare_exchange(
                        core::ptr::null_mut(),
                        m.cast(),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                if cpu.idle.load(Ordering::SeqCst) {
                    apic::send_fixed(cpu.apic_id, interrupts::WAKE_VECTOR);
                    return true;
                }
                // It stopped being idle meanwhile (it took another M): take ours back.
                if cpu
                    .pending_m
                    .compare_exchange(
                        m.cast(),
                        core::ptr::null_mut(),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_err()
                {
                    // It took ours after all.
                    return true;
                }
            }
        }
        false
    }

    fn futex_sleep(&self, key: &AtomicU32) {
        halt_while_zero(key, None);
    }

    fn poll_sleep(&self, key: &AtomicU32, deadline: u64) {
        halt_while_zero(key, Some(deadline));
    }

    fn netpoll(&self, ready: &mut dyn FnMut(*mut G)) {
        crate::dev::serial_in::netpoll(ready)
    }

    fn netpoll_ready(&self) -> bool {
        crate::dev::serial_in::ready()
    }

    fn io_waiting(&self) -> bool {
        crate::dev::serial_in::waiting()
    }

    fn futex_wake(&self, key: &AtomicU32) {
        let target = key as *const AtomicU32 as *mut AtomicU32;
        for i in 0..percpu::MAX_CPUS {
            let Some(cpu) = percpu::get(i) else { break };
            if cpu.sleeping_on.load(Ordering::SeqCst) == target {
                apic::send_fixed(cpu.apic_id, interrupts::WAKE_VECTOR);
            }
        }
    }

    fn stack_alloc(&self, size: usize) -> Option<Stack> {
        crate::mm::stack::alloc(size)
    }

    unsafe fn stack_free(&self, stacks: &[Stack]) {
        // SAFETY: forwarded from rt-core's promise (unused, freed once).
        unsafe { crate::mm::stack::free(stacks) }
    }

    fn stack_resident(&self, stack: &Stack) -> Option<usize> {
        Some(crate::mm::stack::resident(stack))
    }

    unsafe fn stack_trim(&self, stacks: &[Stack]) -> usize {
        // SAFETY: forwarded from rt-core's promise (no goroutine runs on them).
        unsafe { crate::mm::stack::trim(stacks) }
    }

    fn osyield(&self) {
        for _ in 0..64 {
            core::hint::spin_loop();
        }
    }

    fn usleep(&self, us: u32) {
        let until = tsc::nanos() + us as u64 * 1000;
        while tsc::nanos() < until {
            core::hint::spin_loop();
        }
    }

    fn write_str(&self, s: &str) {
        crate::dev::console::print_fatal(format_args!("{s}"));
    }

    fn exit_fatal(&self) -> ! {
        crate::dev::qemu::exit(crate::dev::qemu::ExitCode::Failure)
    }

    fn m_word(&self) -> &'static str {
        "CPU"
    }

    fn ncpu(&self) -> usize {
        percpu::ONLINE.load(Ordering::SeqCst) as usize
    }

    fn trace_write(&self, bytes: &[u8], wait: bool) -> bool {
        if crate::dev::tracemem::present() {
            crate::dev::tracemem::write(bytes)
        } else {
            crate::dev::debugcon::write(bytes, wait)
        }
    }

    #[inline]
    fn trace_clock(&self) -> u64 {
        tsc::rdtsc()
    }

    fn trace_clock_hz(&self) -> u64 {
        tsc::hz()
    }

    fn cpu_id(&self) -> Option<u64> {
        percpu::current().map(|c| c.index as u64)
    }

    fn after_async_preempt(&self) {
        // g0 continues from the timer interrupt's handler, where interrupts are off; the
        // scheduler runs with them on (an idle M halts with `sti; hlt` and needs the tick).
        x86_64::instructions::interrupts::enable();
    }
}

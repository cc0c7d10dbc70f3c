//! A CPU that never answers a TLB shootdown (here: a goroutine that turned interrupts off and
//! spins) is a named fatal error on the CPU that waits, after one second of its own running
//! time (x86/tlb.rs, tsc::Patience), with what the silent CPU was doing; never a hang.
//! @smp 2
//! @expect-fail fatal error: TLB shootdown: cpu 1 did not flush within 1 s
//! @expect-fail idle=false, sleeping=false

#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, Ordering};
use rt_core::spawn;

kernel::test_kernel!(a_cpu_with_interrupts_off_does_not_hang_the_shootdown);

fn a_cpu_with_interrupts_off_does_not_hang_the_shootdown() {
    static DEAF: AtomicBool = AtomicBool::new(false);
    kernel::rt::run::run(2, || {
        // Goroutines go wherever the scheduler puts them: keep starting them until one runs
        // on cpu 1, which then stops listening.
        while !DEAF.load(Ordering::SeqCst) {
            spawn(|| {
                // Interrupts go off before the look at the CPU: the other order let a timer
                // tick move this goroutine to cpu 0 between the look and the switch-off, and
                // then cpu 0 went deaf instead (a hang in CI).
                x86_64::instructions::interrupts::disable();
                if kernel::x86::cpu::index() == 1 && !DEAF.swap(true, Ordering::SeqCst) {
                    loop {
                        core::hint::spin_loop();
                    }
                }
                x86_64::instructions::interrupts::enable();
            });
            rt_core::gosched();
        }
        assert_eq!(
            kernel::x86::cpu::index(),
            0,
            "cpu 1 is deaf: we are on cpu 0"
        );
        kernel::x86::tlb::shootdown();
    });
    panic!("the shootdown returned although cpu 1 never flushed");
}

//! A goroutine that panics on an application processor is reported with its CPU and its
//! goroutine id, and fails the run.
//! @smp 2
//! @expect-fail KERNEL PANIC on cpu 1: goroutine panicked on an application processor
//! @expect-fail in goroutine

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use rt_core::{spawn, WaitGroup};

kernel::test_kernel!(panic_on_an_ap);

fn panic_on_an_ap() {
    kernel::rt::run::run(2, || {
        let wg = Arc::new(WaitGroup::new());
        wg.add(10_000);
        for _ in 0..10_000 {
            let wg = wg.clone();
            spawn(move || {
                if kernel::x86::cpu::index() == 1 {
                    panic!("goroutine panicked on an application processor");
                }
                for _ in 0..1_000 {
                    core::hint::spin_loop();
                }
                wg.done();
            });
        }
        wg.wait();
    });
    panic!("no goroutine ran on the application processor");
}

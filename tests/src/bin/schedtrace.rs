//! `schedtrace=MS` prints Go's SCHED line from CPU 0's LAPIC timer tick while the scheduler
//! runs: the timer is calibrated and ticking, and the line carries the runtime's state.
//! @smp 2
//! @args schedtrace=5
//! @expect-output SCHED
//! @expect-output gomaxprocs=2 idleprocs=
//! @expect-output threads=
//! @expect-output runqueue=

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use rt_core::{spawn, WaitGroup};

kernel::test_kernel!(ticks_run_on_every_cpu_while_goroutines_run);

fn ticks_run_on_every_cpu_while_goroutines_run() {
    let before: alloc::vec::Vec<u64> = (0..2)
        .map(|i| {
            kernel::x86::percpu::get(i)
                .unwrap()
                .ticks
                .load(Ordering::SeqCst)
        })
        .collect();
    kernel::rt::run::run(2, || {
        // ~50 ms of work, so that several 5 ms schedtrace lines appear.
        let until = kernel::x86::tsc::nanos() + 50_000_000;
        let wg = Arc::new(WaitGroup::new());
        wg.add(2);
        for _ in 0..2 {
            let wg = wg.clone();
            spawn(move || {
                while kernel::x86::tsc::nanos() < until {
                    rt_core::gosched();
                }
                wg.done();
            });
        }
        wg.wait();
    });
    for (cpu, &b) in before.iter().enumerate() {
        let after = kernel::x86::percpu::get(cpu)
            .unwrap()
            .ticks
            .load(Ordering::SeqCst);
        assert!(
            after > b + 10,
            "cpu {cpu}'s LAPIC timer ticked {} times in 50 ms",
            after - b
        );
    }
}

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
    let before: Arc<alloc::vec::Vec<u64>> = Arc::new(
        (0..2)
            .map(|i| {
                kernel::x86::percpu::get(i)
                    .unwrap()
                    .ticks
                    .load(Ordering::SeqCst)
            })
            .collect(),
    );
    let ticked = |cpu: usize| {
        kernel::x86::percpu::get(cpu)
            .unwrap()
            .ticks
            .load(Ordering::SeqCst)
    };
    let b = before.clone();
    kernel::rt::run::run(2, move || {
        // ~50 ms of work, so that several 5 ms schedtrace lines appear; longer (at most 10 s)
        // while a CPU has not ticked 10 times yet, since a loaded host may not run its vCPU.
        let wg = Arc::new(WaitGroup::new());
        wg.add(2);
        for _ in 0..2 {
            let (wg, b) = (wg.clone(), b.clone());
            spawn(move || {
                let all_ticked = || (0..2).all(|cpu| ticked(cpu) > b[cpu] + 10);
                tests::wait_for(50_000_000, all_ticked, rt_core::gosched);
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
            "cpu {cpu}'s LAPIC timer ticked {} times while goroutines ran",
            after - b
        );
    }
}

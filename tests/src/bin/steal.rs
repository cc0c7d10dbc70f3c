//! Work stealing on bare metal (Go's `stealWork`): the only way goroutines get to run here is
//! for an idle P's M to steal them. The main goroutine spawns them onto its own P's local
//! queue (fewer than 256, so none spills to the global queue), then holds that P with
//! preemption off (`acquirem`: neither the tick's requests nor async preemption can move it)
//! until they have all run. Every CPU hosts an M of that run, each its own.
//! @smp 2 4

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::x86::percpu;
use rt_core::spawn;

kernel::test_kernel!(idle_ps_steal_from_a_p_that_never_yields);

fn idle_ps_steal_from_a_p_that_never_yields() {
    const N: usize = 200;
    let ncpu = percpu::ONLINE.load(Ordering::SeqCst) as usize;
    let m_of_cpu = || -> Vec<i64> {
        (0..ncpu)
            .map(|i| percpu::get(i).map_or(-1, |c| c.last_m_id.load(Ordering::SeqCst)))
            .collect()
    };
    // The only test of this kernel: no runtime has run yet, so no CPU has hosted an M.
    let before = m_of_cpu();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let stats = kernel::rt::run::run(0, move || {
        rt_core::acquirem();
        for _ in 0..N {
            let r = r.clone();
            spawn(move || {
                // 1 ms of work each: long enough that one thief cannot drain the queue before
                // the next M is woken (a thief that finds work wakes another, Go's wakep), so
                // every idle P gets an M.
                let until = kernel::x86::tsc::nanos() + 1_000_000;
                while kernel::x86::tsc::nanos() < until {
                    core::hint::spin_loop();
                }
                r.fetch_add(1, Ordering::Relaxed);
            });
        }
        // Emulated time: generous, and only a bound on a hang (a run that steals is done in
        // well under a second).
        tests::wait_for(0, || r.load(Ordering::Relaxed) >= N, core::hint::spin_loop);
        rt_core::releasem();
    });
    let after = m_of_cpu();
    kernel::println!("per-P (ran, stolen): {stats:?}");
    kernel::println!("CPUs as Ms: {}", kernel::rt::stats::cpu_to_m());
    assert_eq!(
        ran.load(Ordering::Relaxed),
        N,
        "goroutines run while their P was held: per-P (ran, stolen) {stats:?}"
    );
    assert!(
        stats.iter().map(|&(_, s)| s).sum::<u64>() > 0,
        "no P stole: per-P (ran, stolen) {stats:?}"
    );
    assert!(
        before.iter().all(|&m| m < 0),
        "a CPU hosted an M before the run: {before:?}"
    );
    let mut ms = after.clone();
    ms.sort();
    ms.dedup();
    assert!(
        after.iter().all(|&m| m >= 0) && ms.len() == ncpu,
        "every CPU hosts an M of its own (M id per CPU, -1 for none): {after:?}"
    );
}

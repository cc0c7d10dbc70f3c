//! GOMAXPROCS=1 on 4 cores: one P, spare Ms; everything still runs.
//! @smp 4
//! @args gomaxprocs=1

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use rt_core::{gomaxprocs, spawn, WaitGroup};

kernel::test_kernel!(one_p_runs_everything);

fn one_p_runs_everything() {
    let sum = Arc::new(AtomicU64::new(0));
    let s = sum.clone();
    let stats = kernel::rt::run::run(kernel::args::get().gomaxprocs, move || {
        assert_eq!(gomaxprocs(), 1);
        let wg = Arc::new(WaitGroup::new());
        wg.add(10_000);
        for i in 0..10_000u64 {
            let (s, wg) = (s.clone(), wg.clone());
            spawn(move || {
                s.fetch_add(i, Ordering::Relaxed);
                wg.done();
            });
        }
        wg.wait();
    });
    assert_eq!(sum.load(Ordering::Relaxed), (0..10_000u64).sum::<u64>());
    assert_eq!(stats.len(), 1);
    assert!(stats[0].0 >= 10_000, "{stats:?}");
}

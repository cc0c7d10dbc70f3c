//! GOMAXPROCS=1 on 4 cores: one P, spare Ms; everything still runs, and a goroutine in the
//! global queue is not starved by a full local queue (the 61st-tick check).
//! @smp 4
//! @args gomaxprocs=1

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use rt_core::{gomaxprocs, gosched, spawn, WaitGroup};

kernel::test_kernel!(
    one_p_runs_everything,
    global_queue_is_checked_every_61_ticks
);

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

/// Every 61st schedule a P looks at the global queue before its local one (proc.go: "Check
/// the global runnable queue once in a while to ensure fairness"). A goroutine that yields to
/// the global queue behind 250 goroutines on the local queue runs within 62 of them; without
/// the check it would run after all 250.
fn global_queue_is_checked_every_61_ticks() {
    const LOCAL: usize = 250;
    let log = Arc::new(rt_core::sync::Mutex::new(Vec::new()));
    let l = log.clone();
    kernel::rt::run::run(kernel::args::get().gomaxprocs, move || {
        let wg = Arc::new(WaitGroup::new());
        wg.add(LOCAL as i32 + 1);
        for i in 0..LOCAL {
            let (l, wg) = (l.clone(), wg.clone());
            spawn(move || {
                l.lock().push(i as i64);
                wg.done();
            });
        }
        let (l2, w) = (l.clone(), wg.clone());
        // Spawned last, so it runs first (runnext); its gosched sends it to the global queue
        // behind the 250 local goroutines.
        spawn(move || {
            gosched();
            l2.lock().push(-1);
            w.done();
        });
        wg.wait();
    });
    let log = log.lock();
    assert_eq!(log.len(), LOCAL + 1, "every goroutine ran once");
    let pos = log.iter().position(|&x| x == -1).expect("the yielder ran");
    assert!(
        pos <= 62,
        "the global-queue goroutine ran after {pos} local ones"
    );
}

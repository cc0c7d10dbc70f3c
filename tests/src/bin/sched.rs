//! rt-core on bare metal, every CPU an M: 100k goroutines spawned from one goroutine (on P0)
//! each run exactly once, and with several Ps every P runs some of them (stealing and the
//! global queue spread the work).
//! @smp 1 2 4 8
//! @timeout 120

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering};
use rt_core::{spawn, WaitGroup};

kernel::test_kernel!(hundred_thousand_goroutines_run_once_on_every_p);

fn hundred_thousand_goroutines_run_once_on_every_p() {
    const N: usize = 100_000;
    let runs: Arc<Vec<AtomicU8>> = Arc::new((0..N).map(|_| AtomicU8::new(0)).collect());
    let r = runs.clone();
    let stats = kernel::rt::run::run(0, move || {
        let wg = Arc::new(WaitGroup::new());
        wg.add(N as i32);
        for i in 0..N {
            let (r, wg) = (r.clone(), wg.clone());
            spawn(move || {
                // A little work, so the burst lasts long enough for every M to join in.
                let mut x = i as u64;
                for _ in 0..200 {
                    x = core::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
                core::hint::black_box(x);
                r[i].fetch_add(1, Ordering::Relaxed);
                wg.done();
            });
        }
        wg.wait();
    });
    let bad = runs.iter().position(|c| c.load(Ordering::Relaxed) != 1);
    assert_eq!(bad, None, "goroutine {bad:?} did not run exactly once");
    let online = kernel::x86::percpu::ONLINE.load(Ordering::SeqCst) as usize;
    assert_eq!(
        stats.len(),
        online,
        "GOMAXPROCS defaults to the online CPUs"
    );
    kernel::println!("per-P (ran, stolen): {stats:?}");
    assert!(
        stats.iter().all(|&(ran, _)| ran > 0),
        "every P ran goroutines: {stats:?}"
    );
}

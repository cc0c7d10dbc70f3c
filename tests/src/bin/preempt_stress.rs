//! Preemption under stress: with a 1 ms time slice on 4 CPUs, goroutines that spawn, wait,
//! yield, take a runtime lock and spin are preempted synchronously and from the interrupt
//! all the time; every one finishes (no deadlock, no lost goroutine) and the shared counter
//! guarded by the runtime lock is exact.
//! @smp 2 4
//! @cpu qemu64 qemu64,+x2apic
//! @args timeslice=1
//! @timeout 240

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use rt_core::{gosched, preempt_point, spawn, WaitGroup};

kernel::test_kernel!(runtime_heavy_goroutines_survive_constant_preemption);

static LOCK: rt_core::sync::SpinLock<u64> = rt_core::sync::SpinLock::new(0);

fn spin_ms(ms: u64, body: impl Fn()) {
    let until = kernel::x86::tsc::nanos() + ms * 1_000_000;
    while kernel::x86::tsc::nanos() < until {
        body();
    }
}

fn runtime_heavy_goroutines_survive_constant_preemption() {
    const PARENTS: u64 = 40;
    const CHILDREN: u64 = 25;
    let finished = Arc::new(AtomicU64::new(0));
    let f2 = finished.clone();
    kernel::rt::run::run(0, move || {
        let wg = Arc::new(WaitGroup::new());
        wg.add(PARENTS as i32);
        for p in 0..PARENTS {
            let (wg, finished) = (wg.clone(), f2.clone());
            spawn(move || {
                let inner = Arc::new(WaitGroup::new());
                inner.add(CHILDREN as i32);
                for c in 0..CHILDREN {
                    let (inner, finished) = (inner.clone(), finished.clone());
                    spawn(move || {
                        // A bit of everything: a tight loop past the slice, the runtime
                        // lock held across a slice (never preempted inside), a yield, and a
                        // loop with a safe point.
                        spin_ms(2, core::hint::spin_loop);
                        {
                            let mut n = LOCK.lock();
                            spin_ms(1, core::hint::spin_loop);
                            *n += 1;
                        }
                        gosched();
                        spin_ms(2, preempt_point);
                        core::hint::black_box(p ^ c);
                        finished.fetch_add(1, Ordering::Relaxed);
                        inner.done();
                    });
                }
                inner.wait();
                wg.done();
            });
        }
        wg.wait();
    });
    let p = kernel::rt::stats::last_run_preemptions();
    kernel::println!("preempt_stress: {p:?}");
    assert_eq!(finished.load(Ordering::SeqCst), PARENTS * CHILDREN);
    assert_eq!(
        *LOCK.lock(),
        PARENTS * CHILDREN,
        "a locked increment was lost"
    );
    assert!(
        p.sync > 0 && p.asynchronous > 0,
        "expected both kinds of preemption with a 1 ms slice: {p:?}"
    );
}

//! The execution trace (rt-core/src/tracer.rs) of a workload that makes every kind of event:
//! a burst of goroutines spawned on one P (stolen by the others), channel ping-pong across
//! CPUs (blocks and wake-ups), sleeps (timers), yields, a loop with no safe point (preempted
//! from the timer interrupt), one that calls `preempt_point` (preempted at a safe point), and
//! a blocking call whose P sysmon retakes. The harness (`@trace`) boots it with `trace=1` and
//! the trace window, then decodes the trace and checks it (xtask/src/trace.rs `verify`): its
//! counts equal the runtime's own, runs never overlap on a CPU, every start has its stop,
//! wake-ups join the next run, and its JSON, SVG and HTML views are what their readers need.
//! @trace
//! @smp 2 4
//! @timeout 240

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use kernel::x86::tsc;
use rt_core::chan::make;
use rt_core::{gosched, spawn, WaitGroup};

kernel::test_kernel!(every_kind_of_event_in_one_run);

fn spin_for(ns: u64, safe_points: bool) {
    let until = tsc::nanos() + ns;
    while tsc::nanos() < until {
        if safe_points {
            rt_core::preempt_point();
        } else {
            core::hint::spin_loop();
        }
    }
}

fn every_kind_of_event_in_one_run() {
    let sum = Arc::new(AtomicU64::new(0));
    let s = sum.clone();
    kernel::rt::run::run(0, move || {
        let wg = Arc::new(WaitGroup::new());
        // A burst spawned from one goroutine: the other Ps steal.
        const BURST: u64 = 200;
        wg.add(BURST as i32);
        for i in 0..BURST {
            let (wg, s) = (wg.clone(), s.clone());
            spawn(move || {
                spin_for(200_000, true);
                s.fetch_add(i, Ordering::Relaxed);
                wg.done();
            });
        }
        // Ping-pong: each message blocks one side and wakes the other.
        let (to, from) = (make::<u64>(0), make::<u64>(0));
        wg.add(1);
        {
            let (to, from, wg) = (to.clone(), from.clone(), wg.clone());
            spawn(move || {
                while let Some(v) = to.recv() {
                    from.send(v + 1);
                }
                wg.done();
            });
        }
        // Sleepers (timers) and yielders.
        wg.add(4);
        for k in 0..4u64 {
            let wg = wg.clone();
            spawn(move || {
                for _ in 0..5 {
                    if k % 2 == 0 {
                        rt_core::time::sleep(Duration::from_millis(1));
                    } else {
                        gosched();
                    }
                }
                wg.done();
            });
        }
        // Overrunning their time slice: one with safe points, one without.
        wg.add(2);
        for safe in [true, false] {
            let wg = wg.clone();
            spawn(move || {
                spin_for(60_000_000, safe);
                wg.done();
            });
        }
        // A blocking call long enough for sysmon to retake its P.
        wg.add(1);
        {
            let wg = wg.clone();
            spawn(move || {
                rt_core::entersyscall();
                spin_for(40_000_000, false);
                rt_core::exitsyscall();
                wg.done();
            });
        }
        let mut v = 0;
        for _ in 0..100 {
            to.send(v);
            v = from.recv().expect("the echo goroutine answers");
        }
        assert_eq!(v, 100, "each echo adds one");
        to.close();
        wg.wait();
    });
    let want: u64 = (0..200).sum();
    assert_eq!(
        sum.load(Ordering::Relaxed),
        want,
        "every burst goroutine ran once"
    );
    let p = kernel::rt::stats::last_run_preemptions();
    kernel::println!("trace: preemptions {p:?}");
}

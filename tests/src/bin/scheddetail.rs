//! `schedtrace=MS scheddetail=1` adds Go's per-P, per-M and per-G lines to the SCHED line,
//! printed from CPU 0's timer tick while goroutines run, park and wait; and the per-P lines
//! count the timers each P holds (`timerslen`: 0 before and after, the sleepers' while they
//! sleep).
//! @smp 2
//! @args schedtrace=5 scheddetail=1
//! @expect-output gcwaiting=false nmidlelocked=0 stopwait=0 sysmonwait=false
//! @expect-output P0: status=
//! @expect-output P1: status=
//! @expect-output M0: p=
//! @expect-output M1: p=
//! @expect-output status=4(sync.WaitGroup.Wait) m=nil lockedm=nil
//! @expect-output status=2() m=

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use rt_core::{spawn, WaitGroup};

kernel::test_kernel!(
    detail_lines_show_running_and_parked_goroutines,
    timerslen_counts_the_pending_timers
);

fn detail_lines_show_running_and_parked_goroutines() {
    kernel::rt::run::run(2, || {
        // Three goroutines parked on a WaitGroup, two spinning for ~40 ms (several 5 ms
        // traces), then everything finishes.
        let gate = Arc::new(WaitGroup::new());
        gate.add(1);
        let done = Arc::new(WaitGroup::new());
        done.add(5);
        for _ in 0..3 {
            let (gate, done) = (gate.clone(), done.clone());
            spawn(move || {
                gate.wait();
                done.done();
            });
        }
        let until = kernel::x86::tsc::nanos() + 40_000_000;
        for _ in 0..2 {
            let done = done.clone();
            spawn(move || {
                // Mostly running (so a trace finds them in status 2), yielding every 100 µs.
                while kernel::x86::tsc::nanos() < until {
                    let slice = kernel::x86::tsc::nanos() + 100_000;
                    while kernel::x86::tsc::nanos() < slice {
                        core::hint::spin_loop();
                    }
                    rt_core::gosched();
                }
                done.done();
            });
        }
        while kernel::x86::tsc::nanos() < until {
            rt_core::gosched();
        }
        gate.done();
        done.wait();
    });
    // The lines themselves are checked by the harness (@expect-output); here, that the
    // argument arrived as the trace needs it.
    let args = kernel::args::get();
    assert!(args.scheddetail && args.schedtrace == 5);
}

/// `timerslen` of each P line of a detailed schedtrace, in P order.
fn timerslen_per_p(trace: &str) -> Vec<usize> {
    trace
        .lines()
        .filter(|l| l.trim_start().starts_with('P'))
        .filter_map(|l| l.split("timerslen=").nth(1)?.trim().parse().ok())
        .collect()
}

/// Three goroutines sleep 300 ms: while they do, the Ps they slept on hold their timers, and
/// the P lines' `timerslen` add up to (at least) 3; before and after, every P holds none.
fn timerslen_counts_the_pending_timers() {
    const SLEEPERS: usize = 3;
    let seen = Arc::new(spin::Mutex::new(Vec::new()));
    let s = seen.clone();
    kernel::rt::run::run(2, move || {
        let trace = || kernel::rt::stats::schedtrace_detail().expect("a runtime runs");
        let before = timerslen_per_p(&trace());
        let asleep = Arc::new(AtomicUsize::new(0));
        let wg = Arc::new(WaitGroup::new());
        wg.add(SLEEPERS as i32);
        for _ in 0..SLEEPERS {
            let (asleep, wg) = (asleep.clone(), wg.clone());
            spawn(move || {
                asleep.fetch_add(1, Ordering::SeqCst);
                rt_core::time::sleep(Duration::from_millis(300));
                wg.done();
            });
        }
        while asleep.load(Ordering::SeqCst) < SLEEPERS {
            rt_core::gosched();
        }
        // Each has set its timer a few instructions after counting itself: look until the
        // lines show them (well within their 300 ms).
        let t0 = kernel::x86::tsc::nanos();
        let mut during = timerslen_per_p(&trace());
        while during.iter().sum::<usize>() < SLEEPERS
            && kernel::x86::tsc::nanos() - t0 < 100_000_000
        {
            rt_core::gosched();
            during = timerslen_per_p(&trace());
        }
        wg.wait();
        let after = timerslen_per_p(&trace());
        *s.lock() = vec![before, during, after];
    });
    let seen = seen.lock();
    kernel::println!("scheddetail: timerslen per P before, during, after the sleeps: {seen:?}");
    let [before, during, after] = &seen[..] else {
        panic!("three traces: {seen:?}")
    };
    assert_eq!(before.len(), 2, "a P line per P: {before:?}");
    assert!(before.iter().all(|&n| n == 0), "no timer yet: {before:?}");
    assert!(
        during.iter().sum::<usize>() >= SLEEPERS,
        "{SLEEPERS} sleepers, but the P lines hold {during:?} timers"
    );
    assert!(
        after.iter().all(|&n| n == 0),
        "every timer fired: {after:?}"
    );
}

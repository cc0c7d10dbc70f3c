//! Go 1.23's timers and `context` in the kernel: ticks never early and whole periods apart,
//! none stale after `reset`/`stop`; `Timer::stop`/`reset` report as Go's; `after_func` runs in
//! a goroutine of its own and `stop` prevents it; timers reset concurrently on every CPU lose
//! and double nothing; a tree of goroutines stops when its context's root is cancelled; a
//! deadline cancels with `DeadlineExceeded`, never early.
//! @smp 1 2
//! @timeout 120

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;
use rt_core::chan::TryRecvError;
use rt_core::context::{with_cancel, with_deadline};
use rt_core::time::{after_func, new_ticker, new_timer, new_timer_at, now, sleep, Timer};
use rt_core::{chan, goid, select, spawn, Context, ContextError, WaitGroup};

kernel::test_kernel!(
    ticks_are_never_early_and_whole_periods_apart,
    no_stale_tick_after_reset_or_stop,
    timer_stop_and_reset_report_as_go_1_23,
    after_func_runs_in_its_own_goroutine_and_stop_prevents_it,
    timers_reset_concurrently_lose_and_double_nothing,
    cancelling_the_root_stops_a_tree_of_goroutines,
    a_deadline_cancels_never_early,
);

const MS: u64 = 1_000_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Receives `n` ticks, checking each: received no earlier than due, after `after` + a period
/// for the first, then strictly later and a whole number of periods after the previous one.
fn check_ticks(c: &chan::Chan<u64>, n: usize, period: u64, after: u64) -> u64 {
    let mut prev = None;
    for i in 0..n {
        let v = c.recv().unwrap();
        let at = now();
        assert!(at >= v, "tick {i} received {} ns before it was due", v - at);
        match prev {
            None => assert!(
                v >= after + period,
                "first tick within a period of the start"
            ),
            Some(p) => {
                assert!(v > p, "tick {i} not after the previous one");
                assert!(
                    v - p >= period && (v - p).is_multiple_of(period),
                    "tick {i} {} ns after the previous one (period {period})",
                    v - p
                );
            }
        }
        prev = Some(v);
    }
    prev.unwrap()
}

fn ticks_are_never_early_and_whole_periods_apart() {
    kernel::rt::run::run(0, || {
        let t0 = now();
        let t = new_ticker(ms(2));
        check_ticks(&t.c, 20, 2 * MS, t0);
        t.stop();
    });
}

fn no_stale_tick_after_reset_or_stop() {
    kernel::rt::run::run(0, || {
        let t0 = now();
        let t = new_ticker(ms(1));
        let last = check_ticks(&t.c, 5, MS, t0);
        // A tick waits unreceived, then the period changes: it is gone.
        sleep(ms(3));
        let r = now();
        t.reset(ms(3));
        let first = t.c.recv().unwrap();
        assert!(
            first > last && first >= r + 3 * MS,
            "a tick from before the reset"
        );
        check_ticks(&t.c, 4, 3 * MS, r);
        sleep(ms(4));
        t.stop();
        assert_eq!(
            t.c.try_recv(),
            Err(TryRecvError::Empty),
            "stale tick after stop"
        );
        sleep(ms(8));
        assert_eq!(
            t.c.try_recv(),
            Err(TryRecvError::Empty),
            "a tick after stop"
        );
    });
}

fn timer_stop_and_reset_report_as_go_1_23() {
    kernel::rt::run::run(1, || {
        let hour = Duration::from_secs(3600);
        // Pending.
        let t = new_timer(hour);
        assert!(t.stop());
        assert!(!t.stop(), "stopped");
        // Fired, not received: both remove the value and report true.
        let t = new_timer_at(now());
        sleep(ms(2));
        assert!(t.stop());
        assert_eq!(t.c.try_recv(), Err(TryRecvError::Empty));
        let t = new_timer_at(now());
        sleep(ms(2));
        let r = now();
        assert!(t.reset(ms(2)));
        assert!(
            t.c.recv().unwrap() >= r + 2 * MS,
            "the value from before the reset"
        );
        // Fired and received.
        assert!(!t.stop());
        let r = now();
        assert!(!t.reset(ms(1)));
        assert!(t.c.recv().unwrap() >= r + MS);
    });
}

fn after_func_runs_in_its_own_goroutine_and_stop_prevents_it() {
    kernel::rt::run::run(0, || {
        let me = goid();
        let c = chan::make::<u64>(1);
        let c2 = c.clone();
        let t0 = now();
        let t = after_func(ms(2), move || c2.send(goid()));
        let g = c.recv().unwrap();
        assert!(now() >= t0 + 2 * MS);
        assert!(g != me && g != 0, "ran in goroutine {g} (caller {me})");
        assert!(!t.stop());
        let runs = Arc::new(AtomicUsize::new(0));
        let r2 = runs.clone();
        let t = after_func(ms(1), move || {
            r2.fetch_add(1, Ordering::SeqCst);
        });
        assert!(t.stop());
        sleep(ms(5));
        assert_eq!(runs.load(Ordering::SeqCst), 0, "a stopped after_func ran");
    });
}

fn timers_reset_concurrently_lose_and_double_nothing() {
    const TIMERS: usize = 16;
    kernel::rt::run::run(0, || {
        let hour = Duration::from_secs(3600);
        let timers: Arc<Vec<Timer>> = Arc::new((0..TIMERS).map(|_| new_timer(hour)).collect());
        let wg = Arc::new(WaitGroup::new());
        for g in 0..4u64 {
            let (timers, wg) = (timers.clone(), wg.clone());
            wg.add(1);
            spawn(move || {
                let mut x = g * 7919 + 1;
                for i in 0..300 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let t = &timers[(x >> 33) as usize % TIMERS];
                    if i % 5 == 4 {
                        t.stop();
                    } else {
                        t.reset(Duration::from_micros((x >> 40) % 8000));
                    }
                    if i % 16 == 0 {
                        rt_core::gosched();
                    }
                }
                wg.done();
            });
        }
        wg.wait();
        let finals: Vec<u64> = timers
            .iter()
            .map(|t| {
                let when = now() + 3 * MS;
                t.reset_at(when);
                when
            })
            .collect();
        for (i, t) in timers.iter().enumerate() {
            assert!(t.c.recv().unwrap() >= finals[i], "timer {i}: a stale value");
        }
        sleep(ms(12));
        for (i, t) in timers.iter().enumerate() {
            assert_eq!(
                t.c.try_recv(),
                Err(TryRecvError::Empty),
                "timer {i}: doubled"
            );
        }
    });
}

fn cancelling_the_root_stops_a_tree_of_goroutines() {
    let exited = Arc::new(AtomicU64::new(0));
    let e = exited.clone();
    kernel::rt::run::run(0, move || {
        let (root, cancel) = with_cancel(&Context::background());
        let work = chan::make::<u32>(0);
        let wg = Arc::new(WaitGroup::new());
        let mut keep = Vec::new();
        let mut ctxs = Vec::new();
        for _ in 0..4 {
            let (c1, k1) = with_cancel(&root);
            for _ in 0..3 {
                let (c2, k2) = with_cancel(&c1);
                for _ in 0..3 {
                    let (c3, k3) = with_cancel(&c2);
                    ctxs.push(c3);
                    keep.push(k3);
                }
                ctxs.push(c2);
                keep.push(k2);
            }
            ctxs.push(c1);
            keep.push(k1);
        }
        for ctx in ctxs {
            let (wg, work, e) = (wg.clone(), work.clone(), e.clone());
            wg.add(1);
            spawn(move || {
                loop {
                    let stop = select! {
                        recv(ctx.done()) -> _ => true,
                        recv(work) -> _ => false,
                    };
                    if stop {
                        break;
                    }
                }
                assert_eq!(ctx.err(), Some(ContextError::Canceled));
                e.fetch_add(1, Ordering::SeqCst);
                wg.done();
            });
        }
        for i in 0..100 {
            work.send(i);
        }
        cancel.cancel();
        wg.wait();
    });
    assert_eq!(exited.load(Ordering::SeqCst), 52);
}

fn a_deadline_cancels_never_early() {
    kernel::rt::run::run(0, || {
        let when = now() + 3 * MS;
        let (ctx, _cancel) = with_deadline(&Context::background(), when);
        let (child, _c) = with_cancel(&ctx);
        child.done().recv();
        let t = now();
        assert!(t >= when, "cancelled {} ns before the deadline", when - t);
        assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
        assert_eq!(child.err(), Some(ContextError::DeadlineExceeded));
    });
}

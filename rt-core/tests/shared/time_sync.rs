//! Bodies of time_sync.rs's tests that deterministic.rs also runs, each under many seeds
//! (shared rather than copied: time_sync.rs calls them too).

#![allow(unused_imports)]

use rt_core::chan;
use rt_core::sync::{Mutex, Once};
use rt_core::time::{after, new_timer, now, sleep};
use rt_core::{select, spawn, Runtime, WaitGroup};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub fn sleep_never_returns_early() {
    Runtime::new(2).block_on(|| {
        for ms in [1u64, 3, 10] {
            let t0 = now();
            sleep(Duration::from_millis(ms));
            let took = now() - t0;
            assert!(
                took >= ms * 1_000_000,
                "sleep({ms} ms) returned after {took} ns"
            );
        }
    });
}

pub fn timers_fire_in_deadline_order_and_never_early() {
    let fired = Runtime::new(1).block_on(|| {
        // Deadlines 1, 2, ... 30 ms, made in a scrambled order.
        let mut ds: Vec<u64> = (1..=30).collect();
        ds.reverse();
        ds.swap(3, 11);
        ds.swap(0, 17);
        ds.swap(5, 29);
        let t0 = now();
        let mut timers: Vec<(u64, rt_core::time::OneShot)> = ds
            .into_iter()
            .map(|d| {
                let when = t0 + d * 1_000_000;
                (when, rt_core::time::new_timer_at(when))
            })
            .collect();
        timers.sort_by_key(|t| t.0);
        timers
            .into_iter()
            .map(|(when, t)| (when, t.c.recv().unwrap()))
            .collect::<Vec<_>>()
    });
    for (i, &(deadline, at)) in fired.iter().enumerate() {
        assert!(at >= deadline, "timer {i} fired {} ns early", deadline - at);
        if i > 0 {
            assert!(
                at >= fired[i - 1].1,
                "timer {i} fired before timer {}",
                i - 1
            );
        }
    }
}

pub fn after_times_out_a_select_and_a_ready_case_wins_over_a_later_timeout() {
    Runtime::new(2).block_on(|| {
        let never = chan::make::<u32>(0);
        let t0 = now();
        let r = select! {
            recv(never) -> _ => "value",
            recv(after(Duration::from_millis(5))) -> _ => "timeout",
        };
        assert_eq!(r, "timeout");
        assert!(now() - t0 >= 5_000_000);

        let ready = chan::make::<u32>(1);
        ready.send(1);
        let r = select! {
            recv(ready) -> _ => "value",
            recv(after(Duration::from_secs(60))) -> _ => "timeout",
        };
        assert_eq!(r, "value");
    });
}

pub fn a_stopped_timer_does_not_fire() {
    Runtime::new(1).block_on(|| {
        let t = new_timer(Duration::from_millis(2));
        assert!(t.stop(), "a pending timer stops");
        assert!(!t.stop(), "a second stop reports it was stopped already");
        sleep(Duration::from_millis(10));
        assert_eq!(t.c.try_recv(), Err(chan::TryRecvError::Empty));
        let t2 = new_timer(Duration::from_millis(1));
        let fired_at = t2.c.recv().unwrap();
        assert!(!t2.stop(), "a fired timer does not stop");
        assert!(fired_at > 0);
    });
}

pub fn sleepers_do_not_block_the_p() {
    const N: u64 = 100;
    const SLEEP_MS: u64 = 50;
    let (woken_meanwhile, elapsed) = Runtime::new(1).block_on(|| {
        let wg = Arc::new(WaitGroup::new());
        let asleep = Arc::new(AtomicU64::new(0));
        let woken = Arc::new(AtomicU64::new(0));
        let t0 = now();
        for _ in 0..N {
            let (wg, asleep, woken) = (wg.clone(), asleep.clone(), woken.clone());
            wg.add(1);
            spawn(move || {
                asleep.fetch_add(1, Relaxed);
                sleep(Duration::from_millis(SLEEP_MS));
                woken.fetch_add(1, Relaxed);
                wg.done();
            });
        }
        // Each sleeper runs once, up to its sleep, when we yield the P to it.
        while asleep.load(Relaxed) < N {
            rt_core::gosched();
        }
        let t1 = now();
        while now() - t1 < 5_000_000 {
            rt_core::gosched();
        }
        let woken_meanwhile = woken.load(Relaxed);
        wg.wait();
        (woken_meanwhile, now() - t0)
    });
    assert_eq!(
        woken_meanwhile, 0,
        "a sleeper woke before all {N} were asleep and we had run 5 ms: the sleeps did not overlap"
    );
    assert!(
        elapsed < N * SLEEP_MS * 1_000_000 / 2,
        "{N} sleeps of {SLEEP_MS} ms took {elapsed} ns: they ran one after another"
    );
}

pub fn once_runs_once_and_late_callers_wait_for_it() {
    let (calls, seen) = Runtime::new(4).block_on(|| {
        let once = Arc::new(Once::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let value = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(AtomicUsize::new(0));
        let wg = Arc::new(WaitGroup::new());
        for _ in 0..32 {
            let (once, calls, value, seen, wg) = (
                once.clone(),
                calls.clone(),
                value.clone(),
                seen.clone(),
                wg.clone(),
            );
            wg.add(1);
            spawn(move || {
                once.call_once(|| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    sleep(Duration::from_millis(5));
                    value.store(42, Ordering::SeqCst);
                });
                // Whoever returns from call_once sees the function's effects.
                if value.load(Ordering::SeqCst) == 42 {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                wg.done();
            });
        }
        wg.wait();
        (calls.load(Ordering::SeqCst), seen.load(Ordering::SeqCst))
    });
    assert_eq!(calls, 1);
    assert_eq!(seen, 32);
}

/// Every body here, by name (for deterministic.rs).
#[allow(dead_code)]
pub const ALL: &[(&str, fn())] = &[
    (
        "time_sync::sleep_never_returns_early",
        sleep_never_returns_early,
    ),
    (
        "time_sync::timers_fire_in_deadline_order_and_never_early",
        timers_fire_in_deadline_order_and_never_early,
    ),
    (
        "time_sync::after_times_out_a_select_and_a_ready_case_wins_over_a_later_timeout",
        after_times_out_a_select_and_a_ready_case_wins_over_a_later_timeout,
    ),
    (
        "time_sync::a_stopped_timer_does_not_fire",
        a_stopped_timer_does_not_fire,
    ),
    (
        "time_sync::sleepers_do_not_block_the_p",
        sleepers_do_not_block_the_p,
    ),
    (
        "time_sync::once_runs_once_and_late_callers_wait_for_it",
        once_runs_once_and_late_callers_wait_for_it,
    ),
];

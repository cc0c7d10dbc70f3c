//! Bodies of sync_go.rs's tests that deterministic.rs also runs, each under many seeds
//! (shared rather than copied: sync_go.rs calls them too).

#![allow(unused_imports)]

use rt_core::chan;
use rt_core::sync::{Cond, Mutex, RWMutex, STARVATION_THRESHOLD_NS};
use rt_core::time::sleep;
use rt_core::{gosched, spawn, Runtime, WaitGroup};
use std::collections::VecDeque;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

pub fn rwmutex_try_locks() {
    Runtime::new(1).block_on(|| {
        let m = RWMutex::new(0u32);
        let w = m.write();
        assert!(
            m.try_write().is_none(),
            "try_write succeeded with the lock held"
        );
        assert!(
            m.try_read().is_none(),
            "try_read succeeded with the lock held"
        );
        drop(w);
        assert!(
            m.try_write().is_some(),
            "try_write failed with the lock free"
        );
        let r1 = m.try_read().expect("try_read failed with the lock free");
        let r2 = m
            .try_read()
            .expect("try_read failed with the lock read-held");
        assert!(
            m.try_write().is_none(),
            "try_write succeeded with the lock read-held"
        );
        assert!(
            m.try_write().is_none(),
            "a failed try_write released the readers"
        );
        drop((r1, r2));
        let w = m.write();
        assert!(m.try_read().is_none() && m.try_write().is_none());
        assert!(
            m.try_read().is_none(),
            "a failed try-lock released the writer"
        );
        drop(w);
        *m.write() += 1;
        assert_eq!(*m.read(), 1);
    });
}

pub fn cond_signal() {
    Runtime::new(2).block_on(|| {
        let n = 2;
        let m = Arc::new(Mutex::new(()));
        let c = Arc::new(Cond::new());
        let (running, awake) = (chan::make(n), chan::make(n));
        for _ in 0..n {
            let (m, c, running, awake) = (m.clone(), c.clone(), running.clone(), awake.clone());
            spawn(move || {
                let g = m.lock();
                running.send(());
                let g = c.wait(g);
                awake.send(());
                drop(g);
            });
        }
        for _ in 0..n {
            running.recv();
        }
        for _ in 0..n {
            assert!(awake.try_recv().is_err(), "goroutine not asleep");
            drop(m.lock()); // Every waiter that reported running is in `wait` now.
            c.signal();
            awake.recv(); // Deadlocks (the runtime reports it) if nobody wakes.
            assert!(awake.try_recv().is_err(), "too many goroutines awake");
        }
        c.signal();
    });
}

pub fn signal_wakes_exactly_one_in_ticket_order() {
    const N: usize = 8;
    let woken = Runtime::new(1).block_on(|| {
        let m = Arc::new(Mutex::new(Vec::new()));
        let c = Arc::new(Cond::new());
        let waiting = Arc::new(AtomicUsize::new(0));
        for k in 0..N {
            let (m2, c2, w) = (m.clone(), c.clone(), waiting.clone());
            spawn(move || {
                let g = m2.lock();
                w.fetch_add(1, SeqCst);
                let mut g = c2.wait(g);
                g.push(k);
            });
            while waiting.load(SeqCst) <= k {
                gosched();
            }
            drop(m.lock()); // Waiter k is in `wait`, after waiters 0..k.
        }
        for k in 0..N {
            c.signal();
            for _ in 0..100 {
                gosched();
            }
            let woken = m.lock().clone();
            assert_eq!(woken.len(), k + 1, "signal {k} woke {woken:?}");
        }
        let order = m.lock().clone();
        order
    });
    assert_eq!(
        woken,
        (0..N).collect::<Vec<_>>(),
        "woken out of ticket order"
    );
}

pub fn cond_broadcast() {
    Runtime::new(4).block_on(|| {
        let n = 100;
        let m = Arc::new(Mutex::new(false)); // exit
        let c = Arc::new(Cond::new());
        let (running, awake) = (chan::make(n), chan::make(n));
        for i in 0..n {
            let (m, c, running, awake) = (m.clone(), c.clone(), running.clone(), awake.clone());
            spawn(move || {
                let mut g = m.lock();
                while !*g {
                    running.send(i);
                    g = c.wait(g);
                    awake.send(i);
                }
            });
        }
        for round in 0..n {
            for _ in 0..n {
                running.recv(); // Deadlocks unless all n are waiting again.
            }
            if round == n - 1 {
                *m.lock() = true;
            }
            assert!(awake.try_recv().is_err(), "goroutine not asleep");
            let g = m.lock();
            c.broadcast();
            drop(g);
            let mut seen = vec![false; n];
            for _ in 0..n {
                let g = awake.recv().unwrap();
                assert!(!seen[g], "goroutine woke up twice");
                seen[g] = true;
            }
        }
        assert!(running.try_recv().is_err(), "goroutine did not exit");
        c.broadcast();
    });
}

pub fn cond_loses_no_wakeups_between_producers_and_consumers() {
    const PRODUCERS: u64 = 4;
    const CONSUMERS: u64 = 4;
    const ITEMS: u64 = 5000;
    let (consumed, sum) = Runtime::new(4).block_on(|| {
        let q = Arc::new(Mutex::new((VecDeque::new(), 0u64))); // (items, producers done)
        let c = Arc::new(Cond::new());
        let consumed = Arc::new(AtomicU64::new(0));
        let sum = Arc::new(AtomicU64::new(0));
        let wg = Arc::new(WaitGroup::new());
        wg.add((PRODUCERS + CONSUMERS) as i32);
        for p in 0..PRODUCERS {
            let (q, c, wg) = (q.clone(), c.clone(), wg.clone());
            spawn(move || {
                for i in 0..ITEMS {
                    q.lock().0.push_back(p * ITEMS + i);
                    c.signal();
                }
                q.lock().1 += 1;
                c.broadcast();
                wg.done();
            });
        }
        for _ in 0..CONSUMERS {
            let (q, c, wg) = (q.clone(), c.clone(), wg.clone());
            let (consumed, sum) = (consumed.clone(), sum.clone());
            spawn(move || {
                let mut g = q.lock();
                loop {
                    if let Some(v) = g.0.pop_front() {
                        drop(g);
                        consumed.fetch_add(1, SeqCst);
                        sum.fetch_add(v, SeqCst);
                        g = q.lock();
                    } else if g.1 == PRODUCERS {
                        break;
                    } else {
                        g = c.wait(g);
                    }
                }
                drop(g);
                wg.done();
            });
        }
        wg.wait();
        (consumed.load(SeqCst), sum.load(SeqCst))
    });
    let n = PRODUCERS * ITEMS;
    assert_eq!(consumed, n);
    assert_eq!(sum, n * (n - 1) / 2);
}

/// Every body here, by name (for deterministic.rs).
#[allow(dead_code)]
pub const ALL: &[(&str, fn())] = &[
    ("sync_go::rwmutex_try_locks", rwmutex_try_locks),
    ("sync_go::cond_signal", cond_signal),
    (
        "sync_go::signal_wakes_exactly_one_in_ticket_order",
        signal_wakes_exactly_one_in_ticket_order,
    ),
    ("sync_go::cond_broadcast", cond_broadcast),
    (
        "sync_go::cond_loses_no_wakeups_between_producers_and_consumers",
        cond_loses_no_wakeups_between_producers_and_consumers,
    ),
];

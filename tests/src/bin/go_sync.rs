//! Go's `sync` in the kernel, across CPUs: an `RWMutex` never lets a writer in with anyone
//! else nor readers with a writer (Go's HammerRWMutex); a waiting writer is not starved by a
//! stream of overlapping readers; `Cond` broadcasts wake every waiter each round and signals
//! lose no wake-up between producers and consumers; a `Mutex` held in a tight loop lets a
//! waiter in within a bounded number of the holder's iterations (starvation mode, Go's
//! TestMutexFairness). Everything is counted, not timed.
//! @smp 1 2 4
//! @timeout 180
//! @mem 1G

#![no_std]
#![no_main]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::SeqCst};
use core::time::Duration;
use rt_core::sync::{Cond, Mutex, RWMutex, STARVATION_THRESHOLD_NS};
use rt_core::time::sleep;
use rt_core::{gosched, spawn, WaitGroup};

kernel::test_kernel!(
    rwmutex_hammer_excludes_writers_from_everyone,
    a_waiting_writer_is_not_starved_by_overlapping_readers,
    cond_broadcast_wakes_every_waiter_each_round,
    cond_loses_no_wakeup_between_producers_and_consumers,
    mutex_starvation_mode_lets_a_waiter_in,
);

/// Readers add 1 to `activity`, writers 10000: a reader must see fewer than 10000, a writer
/// exactly 10000.
fn rwmutex_hammer_excludes_writers_from_everyone() {
    const READERS: i32 = 10;
    const WRITERS: i32 = 2;
    const ITERATIONS: u32 = 2000;
    kernel::rt::run::run(0, || {
        let rw = Arc::new(RWMutex::new(0u64));
        let activity = Arc::new(AtomicI32::new(0));
        let wg = Arc::new(WaitGroup::new());
        wg.add(READERS + WRITERS);
        for k in 0..READERS + WRITERS {
            let (rw, act, wg) = (rw.clone(), activity.clone(), wg.clone());
            let writer = k % 6 == 0;
            spawn(move || {
                for i in 0..ITERATIONS {
                    if writer {
                        let mut g = rw.write();
                        let n = act.fetch_add(10000, SeqCst) + 10000;
                        assert_eq!(n, 10000, "a writer is in with activity {}", n);
                        *g += 1;
                        if i % 8 == 0 {
                            gosched();
                        }
                        act.fetch_sub(10000, SeqCst);
                    } else {
                        let g = rw.read();
                        let n = act.fetch_add(1, SeqCst) + 1;
                        assert!(
                            (1..10000).contains(&n),
                            "a reader is in with activity {}",
                            n
                        );
                        let _ = *g;
                        if i % 8 == 0 {
                            gosched();
                        }
                        act.fetch_sub(1, SeqCst);
                    }
                }
                wg.done();
            });
        }
        wg.wait();
        assert_eq!(*rw.read(), (WRITERS as u64) * ITERATIONS as u64);
    });
}

/// A chain of readers, each holding the lock until its successor is in (for up to `PATIENCE`
/// yields); reader `WRITER_AT` starts a writer. New readers wait behind the writer, so the
/// writer gets in long before the chain's end, with only a few readers admitted after it
/// queued.
fn a_waiting_writer_is_not_starved_by_overlapping_readers() {
    const CHAIN: u64 = 1000;
    const WRITER_AT: u64 = 20;
    const PATIENCE: u32 = 50;
    #[derive(Clone)]
    struct Shared {
        rw: Arc<RWMutex<()>>,
        admitted: Arc<AtomicU64>,
        queued_at: Arc<AtomicU64>,
        acquired_at: Arc<AtomicU64>,
        end: Arc<WaitGroup>,
    }
    fn reader(i: u64, s: Shared) {
        let g = s.rw.read();
        s.admitted.fetch_add(1, SeqCst);
        if i + 1 < CHAIN {
            let s2 = s.clone();
            spawn(move || reader(i + 1, s2));
            if i == WRITER_AT {
                let s2 = s.clone();
                spawn(move || {
                    s2.queued_at.store(s2.admitted.load(SeqCst), SeqCst);
                    let w = s2.rw.write();
                    s2.acquired_at.store(s2.admitted.load(SeqCst), SeqCst);
                    drop(w);
                    s2.end.done();
                });
            }
            for _ in 0..PATIENCE {
                if s.admitted.load(SeqCst) > i + 1 {
                    break;
                }
                gosched();
            }
        } else {
            s.end.done();
        }
        drop(g);
    }
    let s = Shared {
        rw: Arc::new(RWMutex::new(())),
        admitted: Arc::new(AtomicU64::new(0)),
        queued_at: Arc::new(AtomicU64::new(0)),
        acquired_at: Arc::new(AtomicU64::new(0)),
        end: Arc::new(WaitGroup::new()),
    };
    let s2 = s.clone();
    let procs = Arc::new(AtomicU64::new(0));
    let p2 = procs.clone();
    kernel::rt::run::run(0, move || {
        p2.store(rt_core::gomaxprocs() as u64, SeqCst);
        s2.end.add(2);
        let s3 = s2.clone();
        spawn(move || reader(0, s3));
        s2.end.wait();
    });
    let (queued, acquired) = (s.queued_at.load(SeqCst), s.acquired_at.load(SeqCst));
    assert_eq!(s.admitted.load(SeqCst), CHAIN);
    assert!(
        acquired < CHAIN,
        "the writer got in only at the end of the readers"
    );
    assert!(
        acquired - queued <= 2 * procs.load(SeqCst),
        "{} readers got in after the writer queued",
        acquired - queued
    );
    kernel::println!(
        "go_sync: writer queued after {} readers, got in after {}",
        queued,
        acquired
    );
}

/// Go's TestCondBroadcast: `N` waiters, `ROUNDS` broadcasts; each wakes every waiter once.
fn cond_broadcast_wakes_every_waiter_each_round() {
    const N: usize = 32;
    const ROUNDS: u64 = 50;
    kernel::rt::run::run(0, || {
        // (round being waited for, waiters that saw each round)
        let m = Arc::new(Mutex::new((0u64, vec![0u64; N])));
        let c = Arc::new(Cond::new());
        let waiting = Arc::new(Cond::new());
        let wg = Arc::new(WaitGroup::new());
        wg.add(N as i32);
        for k in 0..N {
            let (m, c, waiting, wg) = (m.clone(), c.clone(), waiting.clone(), wg.clone());
            spawn(move || {
                let mut g = m.lock();
                let mut seen = 0;
                while seen < ROUNDS {
                    while g.0 == seen {
                        waiting.signal();
                        g = c.wait(g);
                    }
                    seen += 1;
                    assert_eq!(g.0, seen, "waiter {} missed a round", k);
                    g.1[k] += 1;
                }
                drop(g);
                wg.done();
            });
        }
        for round in 0..ROUNDS {
            let mut g = m.lock();
            // Wait until every waiter has seen the last round (and so waits for this one).
            while g.1.iter().any(|&s| s < round) {
                g = waiting.wait(g);
            }
            g.0 += 1;
            drop(g);
            c.broadcast();
        }
        wg.wait();
        let g = m.lock();
        assert!(g.1.iter().all(|&s| s == ROUNDS), "rounds seen: {:?}", g.1);
    });
}

/// Producers push and signal, consumers wait for items: a lost wake-up would leave consumers
/// asleep with items queued (a deadlock the runtime reports) or end short.
fn cond_loses_no_wakeup_between_producers_and_consumers() {
    const PRODUCERS: u64 = 4;
    const CONSUMERS: u64 = 4;
    const ITEMS: u64 = 5000;
    let out = Arc::new(AtomicU64::new(0));
    let o = out.clone();
    kernel::rt::run::run(0, move || {
        let q = Arc::new(Mutex::new((VecDeque::new(), 0u64)));
        let c = Arc::new(Cond::new());
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
            let (q, c, wg, o) = (q.clone(), c.clone(), wg.clone(), o.clone());
            spawn(move || {
                let mut g = q.lock();
                loop {
                    if let Some(v) = g.0.pop_front() {
                        drop(g);
                        o.fetch_add(v + 1, SeqCst);
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
    });
    let n = PRODUCERS * ITEMS;
    assert_eq!(out.load(SeqCst), n * (n + 1) / 2, "items lost or repeated");
}

/// Go's TestMutexFairness, counted: A holds the mutex `HOLD` at a time with no pause between
/// unlock and lock; B waits for it `ATTEMPTS` times. A sleep never ends early, so at most
/// `1 ms / HOLD` of A's iterations start in B's first 1 ms of waiting; then B switches the
/// mutex to starvation mode and gets it next.
fn mutex_starvation_mode_lets_a_waiter_in() {
    const HOLD: Duration = Duration::from_micros(200);
    const LIMIT: u64 = 2000;
    const ATTEMPTS: usize = 5;
    let worst = Arc::new(AtomicU64::new(0));
    let served = Arc::new(AtomicU64::new(0));
    let (w2, s2) = (worst.clone(), served.clone());
    kernel::rt::run::run(0, move || {
        let m = Arc::new(Mutex::new(()));
        let b_waiting = Arc::new(AtomicBool::new(false));
        let b_done = Arc::new(AtomicBool::new(false));
        let a_stopped = Arc::new(AtomicBool::new(false));
        let wg = Arc::new(WaitGroup::new());
        wg.add(1);
        {
            let (m, b_waiting, b_done, a_stopped, wg) = (
                m.clone(),
                b_waiting.clone(),
                b_done.clone(),
                a_stopped.clone(),
                wg.clone(),
            );
            spawn(move || {
                for _ in 0..ATTEMPTS {
                    sleep(HOLD);
                    b_waiting.store(true, SeqCst);
                    let g = m.lock();
                    b_waiting.store(false, SeqCst);
                    if !a_stopped.load(SeqCst) {
                        s2.fetch_add(1, SeqCst);
                    }
                    drop(g);
                }
                b_done.store(true, SeqCst);
                wg.done();
            });
        }
        let mut overtakes = 0u64;
        for _ in 0..LIMIT {
            let g = m.lock();
            if b_waiting.load(SeqCst) {
                overtakes += 1;
                if overtakes > w2.load(SeqCst) {
                    w2.store(overtakes, SeqCst);
                }
            } else {
                overtakes = 0;
            }
            sleep(HOLD);
            drop(g);
            if b_done.load(SeqCst) {
                break;
            }
        }
        a_stopped.store(true, SeqCst);
        wg.wait();
    });
    let bound = STARVATION_THRESHOLD_NS / HOLD.as_nanos() as u64 + 3;
    assert_eq!(
        served.load(SeqCst),
        ATTEMPTS as u64,
        "the waiter was kept out until the holder stopped"
    );
    assert!(
        worst.load(SeqCst) <= bound,
        "the holder took the mutex {} times in a row while the waiter waited (bound {})",
        worst.load(SeqCst),
        bound
    );
}

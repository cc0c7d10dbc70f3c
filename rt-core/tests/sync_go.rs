//! Go's `sync` tests' properties for rt-core's `Mutex` (normal and starvation modes),
//! `RWMutex` and `Cond`, on host threads (sync/mutex_test.go, rwmutex_test.go,
//! cond_test.go). Everything is checked by counting and ordering; the one clock value is
//! Go's 1 ms starvation threshold, and the only timing facts used are that a sleep never ends
//! early.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use rt_core::chan;
use rt_core::sync::{Cond, Mutex, RWMutex, STARVATION_THRESHOLD_NS};
use rt_core::time::sleep;
use rt_core::{gosched, spawn, Runtime, WaitGroup};

/// The bodies that deterministic.rs also runs under many seeds.
#[path = "shared/sync_go.rs"]
mod shared;

// ---------------------------------------------------------------------------------------
// RWMutex

/// TestRWMutex's prologue: the try-locks against each mode.
#[test]
fn rwmutex_try_locks() {
    shared::rwmutex_try_locks()
}

/// TestParallelReaders: `n` readers all hold the lock at once (each takes it, reports, and
/// releases only once every reader has reported).
#[test]
fn rwmutex_parallel_readers() {
    for (n, procs) in [(1, 4), (3, 4), (4, 2), (8, 1)] {
        Runtime::new(procs).block_on(move || {
            let m = Arc::new(RWMutex::new(()));
            let (locked, unlock, done) = (chan::make(0), chan::make(0), chan::make(0));
            for _ in 0..n {
                let (m, locked, unlock, done) =
                    (m.clone(), locked.clone(), unlock.clone(), done.clone());
                spawn(move || {
                    let g = m.read();
                    locked.send(());
                    unlock.recv();
                    drop(g);
                    done.send(());
                });
            }
            for _ in 0..n {
                locked.recv(); // Deadlocks (and the runtime says so) unless n hold it at once.
            }
            for _ in 0..n {
                unlock.send(());
            }
            for _ in 0..n {
                done.recv();
            }
        });
    }
}

/// HammerRWMutex: readers and writers; `activity` counts readers inside plus 10000 per
/// writer inside: a reader must never see a writer, a writer must never see anyone.
fn hammer_rwmutex(procs: usize, readers: usize, iterations: u32) {
    Runtime::new(procs).block_on(move || {
        let rw = Arc::new(RWMutex::new(()));
        let activity = Arc::new(AtomicI32::new(0));
        let wg = Arc::new(WaitGroup::new());
        let writer = |rw: Arc<RWMutex<()>>, act: Arc<AtomicI32>, wg: Arc<WaitGroup>| {
            move || {
                for i in 0..iterations {
                    let g = rw.write();
                    let n = act.fetch_add(10000, SeqCst) + 10000;
                    assert_eq!(n, 10000, "a writer is in with activity {n}");
                    busy(i);
                    act.fetch_sub(10000, SeqCst);
                    drop(g);
                }
                wg.done();
            }
        };
        let reader = |rw: Arc<RWMutex<()>>, act: Arc<AtomicI32>, wg: Arc<WaitGroup>| {
            move || {
                for i in 0..iterations {
                    let g = rw.read();
                    let n = act.fetch_add(1, SeqCst) + 1;
                    assert!((1..10000).contains(&n), "a reader is in with activity {n}");
                    busy(i);
                    act.fetch_sub(1, SeqCst);
                    drop(g);
                }
                wg.done();
            }
        };
        wg.add(2 + readers as i32);
        spawn(writer(rw.clone(), activity.clone(), wg.clone()));
        for _ in 0..readers / 2 {
            spawn(reader(rw.clone(), activity.clone(), wg.clone()));
        }
        spawn(writer(rw.clone(), activity.clone(), wg.clone()));
        for _ in readers / 2..readers {
            spawn(reader(rw.clone(), activity.clone(), wg.clone()));
        }
        wg.wait();
        assert_eq!(activity.load(SeqCst), 0);
    });
}

/// Go's empty loop inside the critical section, plus a yield now and then so that on one P
/// the others get in while the lock is held.
fn busy(i: u32) {
    for _ in 0..100 {
        std::hint::spin_loop();
    }
    if i.is_multiple_of(4) {
        gosched();
    }
}

#[test]
fn rwmutex_hammer_gomaxprocs_1() {
    for readers in [1, 3, 10] {
        hammer_rwmutex(1, readers, 500);
    }
}

#[test]
fn rwmutex_hammer_gomaxprocs_4() {
    for readers in [1, 3, 10, 5] {
        hammer_rwmutex(4, readers, 500);
    }
}

/// A writer is not starved by a stream of overlapping readers. A chain of readers: each takes
/// the lock, starts the next reader, and holds on until that one is in (for up to `PATIENCE`
/// yields): the readers' holds overlap without a gap for as long as new readers get in.
/// Reader `WRITER_AT` also starts a writer, while it holds the lock. As new readers must wait
/// behind a waiting writer, the reader holding the lock gives up waiting for its successor,
/// leaves, and the writer gets in long before the chain ends; only readers already past the
/// check when the writer announced itself get in between.
fn writer_not_starved(procs: usize) {
    const CHAIN: u64 = 2000;
    const WRITER_AT: u64 = 20;
    const PATIENCE: u32 = 50;
    #[derive(Clone)]
    struct Shared {
        rw: Arc<RWMutex<()>>,
        admitted: Arc<AtomicU64>,
        /// Readers admitted when the writer called `write`, and when it got in.
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
    Runtime::new(procs).block_on(move || {
        s2.end.add(2); // The chain's end and the writer.
        let s3 = s2.clone();
        spawn(move || reader(0, s3));
        s2.end.wait();
    });
    let (queued_at, acquired_at) = (s.queued_at.load(SeqCst), s.acquired_at.load(SeqCst));
    assert_eq!(
        s.admitted.load(SeqCst),
        CHAIN,
        "the reader chain did not run to its end"
    );
    assert!(
        acquired_at < CHAIN,
        "the writer got in only when the reader stream ended ({acquired_at} readers, \
         GOMAXPROCS {procs})"
    );
    let overtakers = acquired_at - queued_at;
    assert!(
        overtakers <= 2 * procs as u64,
        "{overtakers} readers got in after the writer queued (GOMAXPROCS {procs})"
    );
}

#[test]
fn a_waiting_writer_is_not_starved_by_overlapping_readers() {
    writer_not_starved(1);
    writer_not_starved(2);
}

// ---------------------------------------------------------------------------------------
// Cond

/// TestCondSignal: each signal wakes one waiter, and only one.
#[test]
fn cond_signal() {
    shared::cond_signal()
}

/// Signal wakes exactly one waiter, the one that has waited longest (ticket order). Waiters
/// queue one at a time, in a known order; after each signal the signaller yields many times
/// (on one P every readied goroutine runs meanwhile) and counts who woke.
#[test]
fn signal_wakes_exactly_one_in_ticket_order() {
    shared::signal_wakes_exactly_one_in_ticket_order()
}

/// TestCondSignalGenerations: each signal wakes the waiter of its generation.
#[test]
fn cond_signal_generations() {
    Runtime::new(2).block_on(|| {
        let n = 100;
        let m = Arc::new(Mutex::new(()));
        let c = Arc::new(Cond::new());
        let (running, awake) = (chan::make(n), chan::make(n));
        for i in 0..n {
            let (m2, c2, running2, awake2) = (m.clone(), c.clone(), running.clone(), awake.clone());
            spawn(move || {
                let g = m2.lock();
                running2.send(());
                let g = c2.wait(g);
                awake2.send(i);
                drop(g);
            });
            if i > 0 {
                let a = awake.recv().unwrap();
                assert_eq!(a, i - 1, "wrong goroutine woke up");
            }
            running.recv();
            let g = m.lock();
            c.signal();
            drop(g);
        }
    });
}

/// TestCondBroadcast: a broadcast wakes every waiter, each once, round after round.
#[test]
fn cond_broadcast() {
    shared::cond_broadcast()
}

/// TestCondSignalStealing: a broadcast racing with a new waiter still wakes the old one.
#[test]
fn cond_signal_stealing() {
    Runtime::new(4).block_on(|| {
        for _ in 0..1000 {
            let m = Arc::new(Mutex::new(false)); // done
            let c = Arc::new(Cond::new());
            let ch = chan::make::<()>(0);
            {
                let (m, c, ch) = (m.clone(), c.clone(), ch.clone());
                spawn(move || {
                    let g = m.lock();
                    ch.send(());
                    let g = c.wait(g);
                    drop(g);
                    ch.send(());
                });
            }
            ch.recv();
            drop(m.lock()); // The first waiter is in `wait`.
            {
                let c = c.clone();
                spawn(move || c.broadcast());
            }
            {
                let (m, c) = (m.clone(), c.clone());
                spawn(move || {
                    let mut g = m.lock();
                    while !*g {
                        g = c.wait(g);
                    }
                });
            }
            ch.recv(); // The first waiter must be woken (else: deadlock, reported).
            *m.lock() = true;
            c.broadcast(); // Release the second waiter if the broadcast missed it.
        }
    });
}

/// No lost wake-ups under load: producers push items and signal, consumers wait for items; if
/// a signal were lost, consumers would sleep with items queued and the run would deadlock
/// (reported by the runtime) or end short.
#[test]
fn cond_loses_no_wakeups_between_producers_and_consumers() {
    shared::cond_loses_no_wakeups_between_producers_and_consumers()
}

// ---------------------------------------------------------------------------------------
// Mutex

/// A failed `try_lock` leaves the mutex as it was: held by its holder (a guard made for the
/// failed attempt would unlock it when dropped).
#[test]
fn a_failed_try_lock_leaves_the_mutex_held() {
    Runtime::new(1).block_on(|| {
        let m = Mutex::new(0);
        let g = m.lock();
        assert!(
            m.try_lock().is_none(),
            "try_lock succeeded with the mutex held"
        );
        assert!(m.is_locked(), "a failed try_lock unlocked the mutex");
        assert!(
            m.try_lock().is_none(),
            "the mutex is free after a failed try_lock"
        );
        drop(g);
        assert!(!m.is_locked());
        let g = m.try_lock().expect("try_lock failed with the mutex free");
        assert!(m.is_locked());
        drop(g);
    });
}

/// TestMutex (HammerMutex): no update lost, with `try_lock` mixed in, across Ps.
#[test]
fn mutex_hammer_loses_no_update() {
    const G: u64 = 8;
    const N: u64 = 4000;
    let total = Runtime::new(4).block_on(|| {
        let m = Arc::new(Mutex::new(0u64));
        let wg = Arc::new(WaitGroup::new());
        wg.add(G as i32);
        for _ in 0..G {
            let (m, wg) = (m.clone(), wg.clone());
            spawn(move || {
                let mut i = 0;
                while i < N {
                    let g = if i % 200 == 0 {
                        // Not a spin on try_lock: in starvation mode it fails until the
                        // waiters are served, which may need this P.
                        m.try_lock().unwrap_or_else(|| m.lock())
                    } else {
                        m.lock()
                    };
                    let mut g = g;
                    let x = *g;
                    if i % 50 == 0 {
                        gosched();
                    }
                    *g = x + 1;
                    i += 1;
                }
                wg.done();
            });
        }
        wg.wait();
        let v = *m.lock();
        v
    });
    assert_eq!(total, G * N);
}

/// How long goroutine A holds the mutex in each of its iterations (a sleep: at least this).
const HOLD: Duration = Duration::from_micros(100);

#[derive(Debug)]
struct Contention {
    /// A's acquisitions that began while B was waiting, per attempt of B.
    overtakes: Vec<u64>,
    /// A's critical sections that found the mutex starving while B waited, per attempt.
    starving_seen: Vec<u64>,
    /// B's attempts that got the mutex while A was still looping.
    b_served: usize,
}

/// TestMutexFairness's scenario, counted: A loops lock / hold for `HOLD` / unlock with no
/// pause between, up to `LIMIT` times or until B is done; B, `ATTEMPTS` times, pauses, then
/// locks and unlocks once.
fn contend(procs: usize) -> Contention {
    const LIMIT: u64 = 4000;
    const ATTEMPTS: usize = 5;
    Runtime::new(procs).block_on(|| {
        let m = Arc::new(Mutex::new(()));
        let b_waiting = Arc::new(AtomicBool::new(false));
        let attempt = Arc::new(AtomicUsize::new(0));
        let b_done = Arc::new(AtomicBool::new(false));
        let a_stopped = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let wg = Arc::new(WaitGroup::new());
        wg.add(1);
        {
            let (m, b_waiting, attempt, b_done, a_stopped, served, wg) = (
                m.clone(),
                b_waiting.clone(),
                attempt.clone(),
                b_done.clone(),
                a_stopped.clone(),
                served.clone(),
                wg.clone(),
            );
            spawn(move || {
                for k in 0..ATTEMPTS {
                    sleep(HOLD);
                    attempt.store(k, SeqCst);
                    b_waiting.store(true, SeqCst);
                    let g = m.lock();
                    b_waiting.store(false, SeqCst);
                    if !a_stopped.load(SeqCst) {
                        served.fetch_add(1, SeqCst);
                    }
                    drop(g);
                }
                b_done.store(true, SeqCst);
                wg.done();
            });
        }
        let mut overtakes = vec![0u64; ATTEMPTS];
        let mut starving_seen = vec![0u64; ATTEMPTS];
        for _ in 0..LIMIT {
            let g = m.lock();
            if b_waiting.load(SeqCst) {
                overtakes[attempt.load(SeqCst)] += 1;
            }
            sleep(HOLD);
            if b_waiting.load(SeqCst) && m.is_starving() {
                starving_seen[attempt.load(SeqCst)] += 1;
            }
            drop(g);
            if b_done.load(SeqCst) {
                break;
            }
        }
        a_stopped.store(true, SeqCst);
        wg.wait();
        Contention {
            overtakes,
            starving_seen,
            b_served: served.load(SeqCst),
        }
    })
}

/// Normal mode: a woken waiter does not own the mutex; a goroutine that arrives (here: comes
/// back) while it is on its way takes it first. On one P, B only runs while A sleeps holding
/// the mutex, so B is always parked when A unlocks, and A's next lock always overtakes it
/// (a pure hand-off would give B the mutex at that unlock: no overtakes).
#[test]
fn mutex_normal_mode_lets_a_newcomer_overtake_a_woken_waiter() {
    let c = contend(1);
    let total: u64 = c.overtakes.iter().sum();
    assert!(total > 0, "no acquisition overtook a woken waiter: {c:?}");
}

/// Starvation mode (TestMutexFairness, counted): A never pauses between unlock and lock, yet B
/// gets the mutex within a bounded number of A's iterations: once B has waited 1 ms it
/// switches the mutex to starvation mode and A's next unlock hands it to B. A holds the mutex
/// at least `HOLD` per iteration (a sleep never ends early), so at most `1 ms / HOLD` of A's
/// iterations begin within B's first 1 ms of waiting; B's next wake-up then sees it starved,
/// and A gets at most a couple more. And with the mutex starving, A's unlock is the last
/// before B's turn: at most one of A's critical sections sees it starving while B waits.
#[test]
fn mutex_starvation_mode_serves_a_waiter_after_1ms() {
    let bound = STARVATION_THRESHOLD_NS / HOLD.as_nanos() as u64 + 3;
    for procs in [1, 2] {
        let c = contend(procs);
        assert_eq!(
            c.b_served,
            c.overtakes.len(),
            "B was kept out until A stopped (GOMAXPROCS {procs}): {c:?}"
        );
        for (k, &n) in c.overtakes.iter().enumerate() {
            assert!(
                n <= bound,
                "attempt {k}: A took the mutex {n} times while B waited (bound {bound}, \
                 GOMAXPROCS {procs}): {c:?}"
            );
        }
        for (k, &n) in c.starving_seen.iter().enumerate() {
            assert!(
                n <= 1,
                "attempt {k}: A held a starving mutex {n} times before B (GOMAXPROCS \
                 {procs}): {c:?}"
            );
        }
    }
}

/// Waiters queue FIFO and a woken waiter that lost goes back to the front: under a holder
/// that keeps re-taking the mutex, three waiters that queued in order 0, 1, 2 get it in that
/// order (with the woken waiter re-queued at the back they would take turns being woken, and
/// whichever was woken first after 1 ms would win).
#[test]
fn mutex_waiters_are_served_in_arrival_order_under_a_busy_holder() {
    for round in 0..4 {
        let order = Runtime::new(1).block_on(|| {
            let m = Arc::new(Mutex::new(Vec::new()));
            let done = Arc::new(AtomicUsize::new(0));
            let mut g = m.lock();
            for k in 0..3 {
                let (m2, done) = (m.clone(), done.clone());
                spawn(move || {
                    m2.lock().push(k);
                    done.fetch_add(1, SeqCst);
                });
                while m.waiters() <= k {
                    gosched();
                }
            }
            // Bounded: if the waiters were never served, fail rather than loop for ever.
            for _ in 0..4000 {
                if done.load(SeqCst) == 3 {
                    break;
                }
                drop(g);
                g = m.lock();
                sleep(HOLD);
            }
            let order = g.clone();
            drop(g);
            order
        });
        assert_eq!(
            order,
            vec![0, 1, 2],
            "round {round}: served out of arrival order"
        );
    }
}

/// Uncontended locking does not park: the main goroutine, alone, locks and unlocks every
/// kind of lock many times and signals a `Cond` nobody waits on, and runs exactly as often as
/// one that does nothing (a park would add a run: the counter sees a single `gosched`).
#[test]
fn uncontended_locking_does_not_park() {
    fn runs(f: impl FnOnce() + Send + 'static) -> u64 {
        let mut n = 0;
        Runtime::new(1)
            .without_sysmon()
            .block_on_with(|s| n = s.per_p_stats().iter().map(|p| p.0).sum(), f);
        n
    }
    let idle = runs(|| {});
    let one_yield = runs(gosched);
    assert_eq!(one_yield, idle + 1, "the run counter does not see a yield");
    let busy = runs(|| {
        let m = Mutex::new(0u64);
        let rw = RWMutex::new(0u64);
        let c = Cond::new();
        for _ in 0..20_000 {
            *m.lock() += 1;
            *m.try_lock().unwrap() += 1;
            *rw.write() += 1;
            *rw.try_write().unwrap() += 1;
            let (a, b) = (rw.read(), rw.try_read().unwrap());
            assert_eq!(*a, *b);
            drop((a, b));
            c.signal();
            c.broadcast();
        }
        assert_eq!(*m.lock(), 40_000);
        assert!(!m.is_locked() && m.waiters() == 0);
    });
    assert_eq!(busy, idle, "uncontended locking parked or yielded");
}

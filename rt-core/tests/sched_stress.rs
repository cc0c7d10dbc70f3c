//! The scheduler under load and its Go rules, on host threads.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rt_core::{entersyscall, exitsyscall, gosched, preempt_point, spawn, Runtime, WaitGroup};

/// 1M goroutines spawned by one goroutine: each runs exactly once (none lost, none twice).
fn million(procs: usize) {
    const N: usize = 1_000_000;
    let runs: Arc<Vec<AtomicU8>> = Arc::new((0..N).map(|_| AtomicU8::new(0)).collect());
    let r = runs.clone();
    let stats = Arc::new(Mutex::new(Vec::new()));
    let st = stats.clone();
    Runtime::new(procs).block_on_with(
        move |sched| *st.lock().unwrap() = sched.per_p_stats(),
        move || {
            let wg = Arc::new(WaitGroup::new());
            wg.add(N as i32);
            for i in 0..N {
                let (r, wg) = (r.clone(), wg.clone());
                spawn(move || {
                    r[i].fetch_add(1, Ordering::Relaxed);
                    wg.done();
                });
            }
            wg.wait();
        },
    );
    let bad: Vec<(usize, u8)> = runs
        .iter()
        .enumerate()
        .map(|(i, c)| (i, c.load(Ordering::Relaxed)))
        .filter(|&(_, c)| c != 1)
        .take(10)
        .collect();
    assert!(
        bad.is_empty(),
        "GOMAXPROCS={procs}: goroutines that did not run exactly once: {bad:?}"
    );
    let stats = stats.lock().unwrap();
    assert_eq!(stats.len(), procs);
    if procs > 1 {
        // One P spawned everything; the others got work by stealing or from the global queue.
        assert!(
            stats.iter().all(|&(ran, _)| ran > 0),
            "every P ran goroutines: {stats:?}"
        );
    }
}

#[test]
fn million_goroutines_run_once_gomaxprocs_1() {
    million(1);
}

#[test]
fn million_goroutines_run_once_gomaxprocs_2() {
    million(2);
}

#[test]
fn million_goroutines_run_once_gomaxprocs_4() {
    million(4);
}

/// Work stealing (Go's `stealWork`) is the only way the goroutines get to run: the main
/// goroutine spawns them onto its own P's local queue (fewer than 256, so none spills to the
/// global queue) and then keeps that P busy without ever yielding (no sysmon, so no
/// preemption). The second P's M must steal them; without stealing none would ever run.
#[test]
fn an_idle_p_steals_from_a_p_that_never_yields() {
    const N: usize = 200;
    let stolen = Arc::new(Mutex::new(Vec::new()));
    let st = stolen.clone();
    let ran = Runtime::new(2).without_sysmon().block_on_with(
        move |sched| *st.lock().unwrap() = sched.per_p_stats(),
        || {
            let ran = Arc::new(AtomicUsize::new(0));
            for _ in 0..N {
                let ran = ran.clone();
                spawn(move || {
                    ran.fetch_add(1, Ordering::Relaxed);
                });
            }
            // Hold this P: no runtime call, so nothing here can give the P or its queue away.
            let deadline = Instant::now() + Duration::from_secs(10);
            while ran.load(Ordering::Relaxed) < N && Instant::now() < deadline {
                std::hint::spin_loop();
            }
            ran.load(Ordering::Relaxed)
        },
    );
    let stats = stolen.lock().unwrap().clone();
    assert_eq!(
        ran, N,
        "goroutines run while their P was held (per-P (ran, stolen): {stats:?})"
    );
    let total: u64 = stats.iter().map(|&(_, s)| s).sum();
    assert!(total > 0, "no P stole: per-P (ran, stolen) {stats:?}");
}

/// A goroutine waiting in the global queue runs within 61 schedules even though the local
/// queue stays full (proc.go: "Check the global runnable queue once in a while to ensure
/// fairness"). Without the rule it would run after all 250 local goroutines.
#[test]
fn global_queue_is_checked_every_61_ticks() {
    let log = Runtime::new(1).without_sysmon().block_on(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let wg = Arc::new(WaitGroup::new());
        const LOCAL: usize = 250;
        wg.add(LOCAL as i32 + 1);
        for i in 0..LOCAL {
            let (log, wg) = (log.clone(), wg.clone());
            spawn(move || {
                log.lock().unwrap().push(i as i64);
                wg.done();
            });
        }
        let (l, w) = (log.clone(), wg.clone());
        // Spawned last, so it runs first (runnext); its gosched sends it to the global queue
        // behind 250 local goroutines.
        spawn(move || {
            gosched();
            l.lock().unwrap().push(-1);
            w.done();
        });
        wg.wait();
        let v = log.lock().unwrap().clone();
        v
    });
    let pos = log.iter().position(|&x| x == -1).expect("the yielder ran");
    assert!(
        pos <= 62,
        "the global-queue goroutine ran after {pos} local ones"
    );
}

/// With GOMAXPROCS=1, a goroutine blocked in a syscall does not stop the others: sysmon
/// retakes its P and hands it to another M. Returns how far the worker got during the call.
fn progress_during_syscall(sysmon: bool) -> u64 {
    let rt = if sysmon {
        Runtime::new(1)
    } else {
        Runtime::new(1).without_sysmon()
    };
    rt.block_on(|| {
        let counter = Arc::new(AtomicU64::new(0));
        let blocking = Arc::new(AtomicBool::new(true));
        let during = Arc::new(AtomicU64::new(0));
        let wg = Arc::new(WaitGroup::new());
        wg.add(2);
        {
            let (counter, blocking, wg) = (counter.clone(), blocking.clone(), wg.clone());
            spawn(move || {
                while blocking.load(Ordering::Acquire) {
                    counter.fetch_add(1, Ordering::Relaxed);
                    gosched();
                }
                wg.done();
            });
        }
        {
            let (counter, blocking, during, wg) = (
                counter.clone(),
                blocking.clone(),
                during.clone(),
                wg.clone(),
            );
            spawn(move || {
                let before = counter.load(Ordering::Relaxed);
                entersyscall();
                std::thread::sleep(Duration::from_millis(200)); // a blocking host call
                exitsyscall();
                during.store(counter.load(Ordering::Relaxed) - before, Ordering::Relaxed);
                blocking.store(false, Ordering::Release);
                wg.done();
            });
        }
        wg.wait();
        during.load(Ordering::Relaxed)
    })
}

#[test]
fn blocked_syscall_does_not_stop_other_goroutines() {
    let steps = progress_during_syscall(true);
    assert!(
        steps > 100,
        "the worker made {steps} steps during a 200 ms syscall"
    );
}

#[test]
fn without_sysmon_a_blocked_syscall_holds_the_only_p() {
    // The control experiment: the same program, nobody to retake the P.
    assert_eq!(progress_during_syscall(false), 0);
}

/// With GOMAXPROCS=1, a goroutine spinning through safe points is preempted by sysmon's
/// request (stackguard0 = STACK_PREEMPT), so another goroutine gets to run. The spinner gives
/// up after 5 s; if the other goroutine only ran after that, there was no preemption.
/// Asynchronous preemption is off: with it, sysmon's signal stops the spinner wherever it is,
/// and a safe point that never yields (`preempt_point` or `morestack` made a no-op, which
/// cargo-mutants tried) went unnoticed.
fn spinner_lets_other_run(sysmon: bool) -> bool {
    let rt = if sysmon {
        Runtime::new(1).async_preempt(false)
    } else {
        Runtime::new(1).async_preempt(false).without_sysmon()
    };
    rt.block_on(|| {
        let other_ran = Arc::new(AtomicBool::new(false));
        let preempted_in_time = Arc::new(AtomicBool::new(false));
        let wg = Arc::new(WaitGroup::new());
        wg.add(2);
        let (other, ok, wg2) = (other_ran.clone(), preempted_in_time.clone(), wg.clone());
        spawn(move || {
            // The neighbour is spawned by the spinner, so it waits on the only P's queue
            // while the spinner holds that P.
            let (o, w) = (other.clone(), wg2.clone());
            spawn(move || {
                o.store(true, Ordering::Release);
                w.done();
            });
            let give_up = Instant::now() + Duration::from_secs(5);
            while !other.load(Ordering::Acquire) && Instant::now() < give_up {
                preempt_point();
            }
            ok.store(other.load(Ordering::Acquire), Ordering::Relaxed);
            wg2.done();
        });
        wg.wait();
        preempted_in_time.load(Ordering::Relaxed)
    })
}

/// A safe point met while a runtime lock is held (`m.locks > 1`) defers sysmon's request, and
/// the unlock re-arms it: no other goroutine runs on the one P while main holds the lock, and
/// one does soon after. Asynchronous preemption is off, so only safe points yield. Without this
/// test, `morestack` yielding inside the lock (`> 1` -> `< 1`) or keeping the lock count it
/// took (`locks_add(m, -1)` -> `+1`, after which no request is ever honoured) went unnoticed.
#[test]
fn a_safe_point_inside_a_runtime_lock_defers_the_request_until_the_unlock() {
    static LOCK: rt_core::sync::SpinLock<()> = rt_core::sync::SpinLock::new(());
    let (ran_while_held, ran_after) = Runtime::new(1).async_preempt(false).block_on(|| {
        let holding = Arc::new(AtomicBool::new(false));
        let ran_while_held = Arc::new(AtomicBool::new(false));
        let ran = Arc::new(AtomicBool::new(false));
        let (h, w, r) = (holding.clone(), ran_while_held.clone(), ran.clone());
        // Queued behind main on the only P.
        spawn(move || {
            if h.load(Ordering::SeqCst) {
                w.store(true, Ordering::SeqCst);
            }
            r.store(true, Ordering::SeqCst);
        });
        LOCK.raw_lock();
        holding.store(true, Ordering::SeqCst);
        // Past a time slice (10 ms) and a sysmon period, through safe points.
        let until = Instant::now() + Duration::from_millis(60);
        while Instant::now() < until {
            preempt_point();
        }
        holding.store(false, Ordering::SeqCst);
        // SAFETY: taken by raw_lock above on this goroutine's M, which cannot have changed
        // (no safe point yields while the lock is held: what this test checks).
        unsafe { LOCK.raw_unlock() };
        let give_up = Instant::now() + Duration::from_secs(5);
        while !ran.load(Ordering::SeqCst) && Instant::now() < give_up {
            preempt_point();
        }
        (
            ran_while_held.load(Ordering::SeqCst),
            ran.load(Ordering::SeqCst),
        )
    });
    assert!(
        !ran_while_held,
        "another goroutine ran while main held a runtime lock: a safe point yielded inside it"
    );
    assert!(
        ran_after,
        "the request was never honoured after the unlock (5 s of safe points)"
    );
}

#[test]
fn sysmon_preempts_a_spinning_goroutine_at_a_safe_point() {
    assert!(spinner_lets_other_run(true));
}

#[test]
fn without_sysmon_a_spinner_starves_its_neighbour() {
    assert!(!spinner_lets_other_run(false));
}

/// Many goroutines park on and wake each other through WaitGroups across 4 Ps.
#[test]
fn waitgroup_chains_across_ps() {
    let total = Runtime::new(4).block_on(|| {
        let sum = Arc::new(AtomicUsize::new(0));
        let outer = Arc::new(WaitGroup::new());
        for round in 0..100 {
            outer.add(1);
            let (sum, outer) = (sum.clone(), outer.clone());
            spawn(move || {
                let inner = Arc::new(WaitGroup::new());
                for k in 0..100 {
                    inner.add(1);
                    let (sum, inner) = (sum.clone(), inner.clone());
                    spawn(move || {
                        sum.fetch_add(round * 100 + k, Ordering::Relaxed);
                        inner.done();
                    });
                }
                inner.wait();
                outer.done();
            });
        }
        outer.wait();
        sum.load(Ordering::Relaxed)
    });
    assert_eq!(total, (0..10_000).sum::<usize>());
}

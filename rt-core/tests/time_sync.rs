//! Timers, `Mutex`, `Once`, `WaitGroup` at scale, and deadlock detection with timers, on host
//! threads. Timing is asserted only one way (a timer never fires early: deterministic); how
//! late it fires is measured by `cargo xtask bench`, not asserted.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rt_core::chan;
use rt_core::sync::Mutex;
use rt_core::time::sleep;
use rt_core::{select, spawn, Runtime, WaitGroup};

/// The bodies that deterministic.rs also runs under many seeds.
#[path = "shared/time_sync.rs"]
mod shared;

#[test]
fn sleep_never_returns_early() {
    shared::sleep_never_returns_early()
}

/// Timers fire in deadline order, whatever order they were made in, and never early: each
/// timer's channel receives the time it fired, so the check does not depend on how soon the
/// woken goroutines get to run. One P, so one heap: across Ps, as in Go, timers due at the
/// same moment may fire concurrently, in either order.
#[test]
fn timers_fire_in_deadline_order_and_never_early() {
    shared::timers_fire_in_deadline_order_and_never_early()
}

#[test]
fn after_times_out_a_select_and_a_ready_case_wins_over_a_later_timeout() {
    shared::after_times_out_a_select_and_a_ready_case_wins_over_a_later_timeout()
}

#[test]
fn a_stopped_timer_does_not_fire() {
    shared::a_stopped_timer_does_not_fire()
}

/// Sleeping goroutines do not hold their Ms: on 1 P, 100 goroutines all go to sleep (each
/// parks, giving the P back), and the main goroutine then runs for 5 ms while every one of
/// them is still asleep; the 100 sleeps of 50 ms overlap. A sleep that held the P would run
/// them one after another: the last would start ~5 s later, after the first had woken.
#[test]
fn sleepers_do_not_block_the_p() {
    shared::sleepers_do_not_block_the_p()
}

#[test]
#[should_panic(expected = "all goroutines are asleep - deadlock!")]
fn deadlock_is_detected_once_the_last_timer_has_fired() {
    Runtime::new(2).block_on(|| {
        // A pending timer is not a deadlock...
        sleep(Duration::from_millis(5));
        // ...but once nothing is left that could ever wake us, it is.
        let c = chan::make::<u32>(0);
        c.recv();
    });
}

#[test]
fn mutex_excludes_across_ms_and_loses_no_update() {
    const G: u64 = 8;
    const N: u64 = 20_000;
    let (v, inside) = Runtime::new(4).block_on(|| {
        let m = Arc::new(Mutex::new(0u64));
        let inside = Arc::new(AtomicUsize::new(0));
        let max_inside = Arc::new(AtomicUsize::new(0));
        let wg = Arc::new(WaitGroup::new());
        for _ in 0..G {
            let (m, wg, inside, max_inside) =
                (m.clone(), wg.clone(), inside.clone(), max_inside.clone());
            wg.add(1);
            spawn(move || {
                for i in 0..N {
                    let mut g = m.lock();
                    let k = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max_inside.fetch_max(k, Ordering::SeqCst);
                    // A non-atomic read-modify-write, sometimes with a yield inside.
                    let x = *g;
                    if i % 64 == 0 {
                        rt_core::gosched();
                    }
                    *g = x + 1;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(g);
                }
                wg.done();
            });
        }
        wg.wait();
        let v = *m.lock();
        (v, max_inside.load(Ordering::SeqCst))
    });
    assert_eq!(v, G * N, "updates lost");
    assert_eq!(inside, 1, "two goroutines inside the mutex at once");
}

/// A goroutine waiting for the mutex parks (it is `Waiting`, not spinning) and gets it when it
/// is unlocked.
#[test]
fn a_contended_mutex_parks_the_waiter() {
    Runtime::new(2).block_on(|| {
        let m = Arc::new(Mutex::new(0));
        let g = m.lock();
        let got = chan::make::<u32>(1);
        let (m2, got2) = (m.clone(), got.clone());
        spawn(move || {
            let v = *m2.lock();
            got2.send(v + 1);
        });
        sleep(Duration::from_millis(20));
        assert_eq!(got.try_recv(), Err(chan::TryRecvError::Empty));
        drop(g);
        assert_eq!(got.recv(), Some(1));
        assert!(!m.is_locked());
    });
}

#[test]
fn once_runs_once_and_late_callers_wait_for_it() {
    shared::once_runs_once_and_late_callers_wait_for_it()
}

#[test]
fn a_waitgroup_over_100k_goroutines() {
    const N: u64 = 100_000;
    let sum = Runtime::new(4).block_on(|| {
        let wg = Arc::new(WaitGroup::new());
        let sum = Arc::new(AtomicU64::new(0));
        for i in 0..N {
            let (wg, sum) = (wg.clone(), sum.clone());
            wg.add(1);
            spawn(move || {
                sum.fetch_add(i, Ordering::Relaxed);
                wg.done();
            });
        }
        wg.wait();
        sum.load(Ordering::Relaxed)
    });
    assert_eq!(sum, N * (N - 1) / 2);
}

/// The lines of the deadlock test's spawns and blocking calls, as the test ran them.
static DEADLOCK_LINES: [std::sync::atomic::AtomicU32; 4] =
    [const { std::sync::atomic::AtomicU32::new(0) }; 4];

/// The deadlock report lists every goroutine with what it waits for and its frames, as Go's
/// does.
#[test]
fn the_deadlock_report_lists_the_goroutines_and_their_wait_reasons() {
    let msg = std::panic::catch_unwind(|| {
        Runtime::new(2).block_on(|| {
            let c = chan::make::<u32>(0);
            let c2 = c.clone();
            DEADLOCK_LINES[0].store(line!() + 1, Relaxed);
            spawn(move || {
                c2.send(1);
                DEADLOCK_LINES[1].store(line!() + 1, Relaxed);
                c2.send(2);
            });
            c.recv();
            let m = Arc::new(Mutex::new(()));
            let _g = m.lock();
            let m2 = m.clone();
            DEADLOCK_LINES[2].store(line!() + 1, Relaxed);
            spawn(move || drop(m2.lock()));
            DEADLOCK_LINES[3].store(line!() + 1, Relaxed);
            select! { recv(chan::make::<u8>(0)) -> _ => () }
        })
    })
    .unwrap_err();
    let msg = msg
        .downcast_ref::<String>()
        .expect("a formatted message")
        .clone();
    assert!(
        msg.starts_with("fatal error: all goroutines are asleep - deadlock!"),
        "{msg}"
    );
    // Each goroutine's frames end at its blocking call's line (Go's traceback), and each but
    // main says where it was created, by which function, in which goroutine.
    let lines: Vec<u32> = DEADLOCK_LINES.iter().map(|l| l.load(Relaxed)).collect();
    let f = "rt-core/tests/time_sync.rs";
    let test = "time_sync::the_deadlock_report_lists_the_goroutines_and_their_wait_reasons";
    for want in [
        format!("goroutine 1 [select]:\n{test}::{{closure#0}}::{{closure#0}}(...)\n\t{f}:{}", lines[3]),
        format!("goroutine 2 [chan send]:\n{test}::{{closure#0}}::{{closure#0}}::{{closure#0}}(...)\n\t{f}:{}", lines[1]),
        format!("created by {test}::{{closure#0}}::{{closure#0}} in goroutine 1\n\t{f}:{}", lines[0]),
        "goroutine 3 [sync.Mutex.Lock]:\n".into(),
        format!("in goroutine 1\n\t{f}:{}", lines[2]),
    ] {
        assert!(msg.contains(&want), "missing {want:?} in:\n{msg}");
    }
    assert_eq!(msg.matches("\ngoroutine ").count(), 3, "{msg}");
}

//! Go's `runtime` package as rt-core has it: `num_goroutine`, `set_gomaxprocs` while
//! goroutines run (Ps added and removed as Go's `procresize` does, nothing lost), and `goexit`
//! (the goroutine's drops run, as Go runs its defers). Host; the kernel's counterparts run in
//! tests/src/bin/go_runtime.rs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[path = "shared/procs.rs"]
mod shared;

use rt_core::time::sleep;
use rt_core::{
    chan, goexit, gomaxprocs, gosched, num_goroutine, set_gomaxprocs, spawn, Runtime,
    SetGomaxprocsError, WaitGroup,
};

#[test]
fn num_goroutine_counts_the_living() {
    let (before, during, after) = Runtime::new(2).block_on(|| {
        let before = num_goroutine();
        let gate = chan::make::<()>(0);
        let wg = Arc::new(WaitGroup::new());
        for _ in 0..10 {
            let (g, wg) = (gate.clone(), wg.clone());
            wg.add(1);
            spawn(move || {
                g.recv();
                wg.done();
            });
        }
        let during = num_goroutine();
        gate.close();
        wg.wait();
        // The workers end just after `done`: give them the moment to.
        let mut after = num_goroutine();
        for _ in 0..1000 {
            if after == 1 {
                break;
            }
            sleep(Duration::from_millis(1));
            after = num_goroutine();
        }
        (before, during, after)
    });
    assert_eq!(before, 1, "main alone");
    assert_eq!(during, 11, "main and 10 parked");
    assert_eq!(after, 1, "the 10 ended");
    assert_eq!(num_goroutine(), 0, "outside a runtime");
}

/// Goroutines that each count work in slices with no yield inside, and record how many of
/// them are inside a slice at once.
///
/// Per phase (the value of `phase` when a slice starts): how many slices are inside at once
/// and the most seen. Counting by the phase a slice *started* in keeps a slice that began
/// before a change (on a thread or vCPU the host then left unscheduled for a while) out of
/// the next phase's count.
struct Load {
    phase: AtomicUsize,
    inside: [AtomicUsize; 8],
    most: [AtomicUsize; 8],
    work: AtomicUsize,
    stop: AtomicBool,
}

impl Load {
    fn new() -> Load {
        Load {
            phase: AtomicUsize::new(0),
            inside: Default::default(),
            most: Default::default(),
            work: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        }
    }
}

fn worker(l: Arc<Load>, wg: Arc<WaitGroup>) {
    while !l.stop.load(Ordering::Relaxed) {
        let ph = l.phase.load(Ordering::SeqCst);
        let n = l.inside[ph].fetch_add(1, Ordering::SeqCst) + 1;
        l.most[ph].fetch_max(n, Ordering::SeqCst);
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_micros(50) {
            std::hint::spin_loop();
        }
        l.inside[ph].fetch_sub(1, Ordering::SeqCst);
        l.work.fetch_add(1, Ordering::Relaxed);
        gosched();
    }
    wg.done();
}

#[test]
fn set_gomaxprocs_shrinks_and_grows_while_goroutines_run() {
    let (phases, err0, err_big) = Runtime::new(4).max_procs(4).block_on(|| {
        let l = Arc::new(Load::new());
        let wg = Arc::new(WaitGroup::new());
        for _ in 0..16 {
            let (l, wg) = (l.clone(), wg.clone());
            wg.add(1);
            spawn(move || worker(l, wg));
        }
        let mut phases = Vec::new();
        for (i, n) in [1usize, 3, 1, 2, 4, 1].into_iter().enumerate() {
            let old = set_gomaxprocs(n).unwrap();
            // Retiring Ps give up at their next look for work (each worker yields every 50 µs).
            sleep(Duration::from_millis(20));
            l.phase.store(i + 1, Ordering::SeqCst);
            let w0 = l.work.load(Ordering::Relaxed);
            sleep(Duration::from_millis(60));
            phases.push((
                old,
                n,
                gomaxprocs(),
                l.most[i + 1].load(Ordering::SeqCst),
                l.work.load(Ordering::Relaxed) - w0,
            ));
        }
        l.stop.store(true, Ordering::Relaxed);
        wg.wait();
        (phases, set_gomaxprocs(0), set_gomaxprocs(5))
    });
    let mut prev = 4;
    for &(old, n, now, most, work) in &phases {
        assert_eq!(old, prev, "set_gomaxprocs returns the previous value");
        assert_eq!(now, n, "gomaxprocs() after set_gomaxprocs({n})");
        assert!(
            work > 0,
            "no work done at GOMAXPROCS {n}: goroutines were lost"
        );
        if n == 1 {
            // Main sleeps meanwhile, so only workers run: one P, at most one inside.
            assert!(
                most <= 1,
                "{most} goroutines ran at once at GOMAXPROCS 1: the removed Ps still run: {phases:?}"
            );
        }
        prev = n;
    }
    // With 2 cores a measured overlap above 1 is likely at GOMAXPROCS >= 2, not certain:
    // so only the one-P phases are asserted on it, and at least one wider phase must show it.
    assert!(
        phases.iter().any(|&(_, n, _, most, _)| n > 1 && most > 1),
        "no phase with several Ps ran goroutines in parallel: {phases:?}"
    );
    assert_eq!(
        err0,
        Err(SetGomaxprocsError::OutOfRange { asked: 0, max: 4 })
    );
    assert_eq!(
        err_big,
        Err(SetGomaxprocsError::OutOfRange { asked: 5, max: 4 })
    );
    assert_eq!(set_gomaxprocs(2), Err(SetGomaxprocsError::NoRuntime));
    println!("phases (old, new, gomaxprocs(), most at once, work): {phases:?}");
}

/// Timers and queued goroutines of removed Ps are moved, not lost: 200 goroutines asleep on
/// four Ps when three of them go.
#[test]
fn sleepers_on_removed_ps_still_wake() {
    shared::sleepers_on_removed_ps_still_wake()
}

struct SetOnDrop(Arc<AtomicBool>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn deep(n: u32, after: &AtomicBool) {
    if n == 0 {
        goexit();
    }
    deep(n - 1, after);
    after.store(true, Ordering::SeqCst);
}

#[test]
fn goexit_runs_the_goroutines_drops_and_nothing_after_it() {
    let (dropped, ran_after, others_fine) = Runtime::new(2).block_on(|| {
        let dropped = Arc::new(AtomicBool::new(false));
        let after = Arc::new(AtomicBool::new(false));
        let wg = Arc::new(WaitGroup::new());
        wg.add(1);
        let (d, a, w) = (dropped.clone(), after.clone(), wg.clone());
        spawn(move || {
            struct Done(Arc<WaitGroup>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.done();
                }
            }
            let _done = Done(w);
            let _guard = SetOnDrop(d);
            deep(20, &a);
            a.store(true, Ordering::SeqCst);
        });
        wg.wait();
        // The runtime carries on: another goroutine runs normally afterwards.
        let c = chan::make::<u32>(1);
        let c2 = c.clone();
        spawn(move || c2.send(7));
        (
            dropped.load(Ordering::SeqCst),
            after.load(Ordering::SeqCst),
            c.recv() == Some(7),
        )
    });
    assert!(dropped, "goexit did not run the goroutine's drops");
    assert!(!ran_after, "code after goexit ran");
    assert!(others_fine);
}

#[test]
fn goexit_in_main_waits_for_the_others_then_reports_go_s_deadlock() {
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        Runtime::new(2).block_on(move || {
            spawn(move || {
                sleep(Duration::from_millis(20));
                r.store(true, Ordering::SeqCst);
            });
            goexit();
        })
    }))
    .expect_err("block_on returned after main called goexit");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        ran.load(Ordering::SeqCst),
        "the other goroutine did not finish first"
    );
    assert_eq!(
        msg,
        "fatal error: no goroutines (main called runtime.Goexit) - deadlock!"
    );
}

/// Main's goexit with a goroutine left that can never run is an ordinary deadlock in Go
/// (checkdead counts the waiting goroutine, so "no goroutines" would be false): the report
/// names the blocked goroutine.
#[test]
fn goexit_in_main_beside_a_blocked_goroutine_is_the_ordinary_deadlock() {
    let err = std::panic::catch_unwind(|| {
        Runtime::new(2).block_on(|| {
            spawn(|| {
                let c = chan::make::<u32>(0);
                c.recv();
            });
            goexit();
        })
    })
    .expect_err("block_on returned after main called goexit");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.starts_with("fatal error: all goroutines are asleep - deadlock!"),
        "{msg}"
    );
    assert!(msg.contains("[chan receive]"), "{msg}");
}

//! First checks of the scheduler on host threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rt_core::{gosched, spawn, Runtime, WaitGroup};

#[test]
fn main_goroutine_returns_its_value() {
    assert_eq!(Runtime::new(1).block_on(|| 6 * 7), 42);
}

#[test]
fn spawned_goroutines_all_run_once_gomaxprocs_1() {
    let n = Runtime::new(1).block_on(|| {
        let count = Arc::new(AtomicUsize::new(0));
        let wg = Arc::new(WaitGroup::new());
        for _ in 0..1000 {
            wg.add(1);
            let (count, wg) = (count.clone(), wg.clone());
            spawn(move || {
                count.fetch_add(1, Ordering::Relaxed);
                wg.done();
            });
        }
        wg.wait();
        count.load(Ordering::Relaxed)
    });
    assert_eq!(n, 1000);
}

#[test]
fn gosched_interleaves_two_goroutines() {
    let log = Runtime::new(1).block_on(|| {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let wg = Arc::new(WaitGroup::new());
        for id in 0..2 {
            wg.add(1);
            let (log, wg) = (log.clone(), wg.clone());
            spawn(move || {
                for i in 0..100 {
                    log.lock().unwrap().push((id, i));
                    gosched();
                }
                wg.done();
            });
        }
        wg.wait();
        let v = log.lock().unwrap().clone();
        v
    });
    // With one P and gosched after every step, the two alternate. A few repeats are allowed:
    // the 61-tick fairness rule looks at the global queue first when schedtick % 61 == 0 and
    // can pick the yielder straight back, and the survivor repeats once the other is done.
    // (Without a working gosched, one goroutine would run all its steps in a row: 198 repeats.)
    assert_eq!(log.len(), 200);
    let repeats = log.windows(2).filter(|w| w[0].0 == w[1].0).count();
    assert!(repeats <= 12, "{repeats} repeats: {log:?}");
}

#[test]
fn goroutines_spread_over_four_ps() {
    Runtime::new(4).block_on_with(
        |sched| {
            let stats = sched.per_p_stats();
            assert!(
                stats.iter().all(|&(ran, _)| ran > 0),
                "every P ran something: {stats:?}"
            );
        },
        || {
            // Long enough (~0.1 s of work) that every M's thread gets a CPU even when the test
            // binary's other tests load the machine.
            let wg = Arc::new(WaitGroup::new());
            for _ in 0..100_000 {
                wg.add(1);
                let wg = wg.clone();
                spawn(move || {
                    let mut x = 0u64;
                    for i in 0..2_000 {
                        x = x.wrapping_mul(31).wrapping_add(i);
                    }
                    std::hint::black_box(x);
                    wg.done();
                });
            }
            wg.wait();
        },
    );
}

/// Go's order in findRunnable: a goroutine that yields goes to the global queue, and the P
/// runs its local queue first (runnext, then the ring in order), looking at the global queue
/// first only on every 61st schedule. With one P and ten goroutines queued, the yielder is the
/// last to run. (A scheduler that always looks at the global queue first runs it at once.)
#[test]
fn a_yielder_waits_behind_the_local_queue() {
    let order = Runtime::new(1).without_sysmon().block_on(|| {
        // Move the P's schedtick off 0 (a multiple of 61, where the global queue rightly comes
        // first): as in Go, a G taken from runnext inherits the time slice and leaves the tick
        // alone, so run two goroutines, the second of which comes from the ring.
        let first = Arc::new(WaitGroup::new());
        for _ in 0..2 {
            first.add(1);
            let f = first.clone();
            spawn(move || f.done());
        }
        first.wait();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let wg = Arc::new(WaitGroup::new());
        for i in 0..10 {
            wg.add(1);
            let (log, wg) = (log.clone(), wg.clone());
            spawn(move || {
                log.lock().unwrap().push(i);
                wg.done();
            });
        }
        gosched();
        log.lock().unwrap().push(-1);
        wg.wait();
        let v = log.lock().unwrap().clone();
        v
    });
    // The last spawned sat in runnext; the others follow in the order they were queued.
    assert_eq!(order, [9, 0, 1, 2, 3, 4, 5, 6, 7, 8, -1]);
}

#[test]
#[should_panic(expected = "goroutine says no")]
fn a_goroutine_panic_reaches_block_on() {
    Runtime::new(2).block_on(|| {
        let wg = Arc::new(WaitGroup::new());
        wg.add(1);
        spawn(|| panic!("goroutine says no"));
        wg.wait(); // never done: the panic ends the program first
    });
}

#[test]
#[should_panic(expected = "all goroutines are asleep - deadlock!")]
fn deadlock_is_detected() {
    Runtime::new(2).block_on(|| {
        let wg = WaitGroup::new();
        wg.add(1);
        wg.wait();
    });
}

/// Spawns `n` goroutines one at a time (each exits before the next starts) and returns the
/// runtime's (stacks asked of the platform, stacks given back).
fn stack_traffic(rt: Runtime, n: usize) -> (u64, u64) {
    let out = Arc::new(std::sync::Mutex::new((0, 0)));
    let o = out.clone();
    rt.block_on_with(
        move |sched| {
            let c = sched.counters();
            *o.lock().unwrap() = (c.stack_allocs, c.stack_frees)
        },
        move || {
            for _ in 0..n {
                let wg = Arc::new(WaitGroup::new());
                wg.add(1);
                let w = wg.clone();
                spawn(move || w.done());
                wg.wait();
            }
        },
    );
    let r = *out.lock().unwrap();
    r
}

#[test]
fn exited_stacks_are_reused_through_the_cache() {
    let (allocs, frees) = stack_traffic(Runtime::new(1), 500);
    // The main goroutine's stack and one reused by every spawned goroutine, give or take.
    assert!(
        allocs <= 4,
        "{allocs} stacks made for 500 sequential goroutines"
    );
    assert_eq!(frees, 0, "a cached stack went back to the platform");
}

#[test]
fn without_the_cache_every_goroutine_maps_and_unmaps_a_stack() {
    let (allocs, frees) = stack_traffic(Runtime::new(1).without_stack_cache(), 500);
    assert!(
        allocs >= 501,
        "{allocs} stacks made for 500 goroutines and main"
    );
    assert!(frees >= 500, "{frees} stacks given back");
}

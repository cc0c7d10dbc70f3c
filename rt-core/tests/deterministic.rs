//! The deterministic mode (`Runtime::deterministic`, rt-core/src/host/det.rs): the same seed
//! replays the same schedule, different seeds make different ones, and the channel, select,
//! sync, timer and GOMAXPROCS tests' bodies (tests/shared/, which chan.rs, select.rs,
//! select_go.rs, sync_go.rs, time_sync.rs and runtime_go.rs run too) pass under many seeds.
//!
//! `GORT_SEEDS=N` sets how many seeds each body gets (default below); `GORT_SEED=S` runs each
//! body under seed S alone, to rerun a failure (README, "Debugging with a seed").

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rt_core::host::det::{self, DetRun};
use rt_core::{chan, gosched, spawn, Runtime, WaitGroup};

#[path = "shared/chan.rs"]
mod chan_bodies;
#[path = "shared/procs.rs"]
mod procs_bodies;
#[path = "shared/select.rs"]
mod select_bodies;
#[path = "shared/select_go.rs"]
mod select_go_bodies;
#[path = "shared/sync_go.rs"]
mod sync_go_bodies;
#[path = "shared/time_sync.rs"]
mod time_sync_bodies;

/// Held by each test here: runtimes that run at the same time in one process share a little
/// global state (leak.rs's count of finders, which a channel's drop waits on), so another
/// runtime running beside a deterministic one can add steps to its schedule.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// Seeds per body when `GORT_SEEDS` does not say.
const SEEDS: u64 = 400;

/// A run whose order of events is its schedule: three producers and a consumer on four Ps,
/// each goroutine logging its id as it runs; returns the log and what the world did.
fn logged_run(seed: u64) -> (Vec<u64>, DetRun) {
    let log = Runtime::new(4).deterministic(seed).block_on(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let ch = chan::make::<u64>(1);
        let wg = Arc::new(WaitGroup::new());
        for p in 0..3u64 {
            let (ch, wg, log) = (ch.clone(), wg.clone(), log.clone());
            wg.add(1);
            spawn(move || {
                for i in 0..20 {
                    log.lock().unwrap().push(rt_core::goid());
                    ch.send(p * 100 + i);
                    if i % 7 == 0 {
                        gosched();
                    }
                }
                wg.done();
            });
        }
        for _ in 0..60 {
            let v = ch.recv().unwrap();
            log.lock().unwrap().push(1000 + v);
        }
        wg.wait();
        let l = log.lock().unwrap().clone();
        l
    });
    (
        log,
        det::last_run().expect("a deterministic run ended on this thread"),
    )
}

#[test]
fn the_same_seed_replays_the_same_schedule_and_other_seeds_differ() {
    let _one = one_at_a_time();
    let mut distinct = std::collections::HashSet::new();
    for seed in 0..20u64 {
        let (a, ra) = logged_run(seed);
        let (b, rb) = logged_run(seed);
        assert_eq!(ra, rb, "seed {seed:#x}: two runs made different schedules");
        assert_eq!(a, b, "seed {seed:#x}: two runs logged different orders");
        assert!(
            ra.steps > 10,
            "seed {seed:#x}: {ra:?}: the threads hardly took turns"
        );
        distinct.insert((a, ra.schedule_hash));
    }
    assert!(
        distinct.len() >= 15,
        "20 seeds made only {} different schedules",
        distinct.len()
    );
}

/// Runs `body` under every seed in `seeds`, and on a failure names the seed. Every tenth
/// seed runs twice, and its two runs must have made the same schedule.
fn under_seeds(name: &str, body: fn(), seeds: &[u64], covered: &AtomicU64) {
    let run = |seed: u64| {
        let r = catch_unwind(AssertUnwindSafe(|| det::scope(seed, body)));
        if r.is_err() {
            // The schedule's fingerprint shows that a rerun failed the same way.
            let run = det::last_run();
            panic!("{name} failed ({run:?}) under {}", det::failure_line(seed));
        }
        covered.fetch_add(1, Ordering::Relaxed);
        det::last_run().expect("the body ran a runtime")
    };
    for (i, &seed) in seeds.iter().enumerate() {
        let first = run(seed);
        if i % 10 == 0 {
            assert_eq!(
                first,
                run(seed),
                "{name}, seed {seed:#x}: a rerun made another schedule"
            );
        }
    }
}

#[test]
fn channel_select_sync_and_timer_bodies_pass_under_many_seeds() {
    let _one = one_at_a_time();
    let seeds = det::seeds(SEEDS).unwrap_or_else(|e| panic!("{e}"));
    let all: Vec<(&str, fn())> = [
        chan_bodies::ALL,
        procs_bodies::ALL,
        select_bodies::ALL,
        select_go_bodies::ALL,
        sync_go_bodies::ALL,
        time_sync_bodies::ALL,
    ]
    .concat();
    let covered = AtomicU64::new(0);
    let t0 = Instant::now();
    for (name, body) in &all {
        let t = Instant::now();
        under_seeds(name, *body, &seeds, &covered);
        println!("{name}: {} seeds in {:?}", seeds.len(), t.elapsed());
    }
    println!(
        "deterministic: {} bodies x {} seeds = {} runs in {:.1?}",
        all.len(),
        seeds.len(),
        covered.load(Ordering::Relaxed),
        t0.elapsed()
    );
}

//! Preemption scenarios shared by the `preempt*` test kernels (which differ in their kernel
//! arguments: the same scenario must pass with preemption on and fail with it off).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kernel::x86::tsc;
use rt_core::{gosched, spawn};

/// Rounds of 1 ms sleeps the sleeper makes beside the tight loop.
pub const ROUNDS: u64 = 20;
/// How long the tight loop spins at most (emulated ms) if the sleeper never finishes.
pub const SPIN_BUDGET_MS: u64 = 2_000;

/// Sleeps `ns` by yielding until the deadline (not `time::sleep`: a sleeper that stays
/// runnable isolates preemption from the timer path);
/// returns how late it woke, in ns. Beside a goroutine that never yields, the only way back
/// is a preemption of that goroutine.
pub fn sleep_yielding(ns: u64) -> u64 {
    let deadline = tsc::nanos() + ns;
    loop {
        let now = tsc::nanos();
        if now >= deadline {
            return now - deadline;
        }
        gosched();
    }
}

/// What [`tight_loop_beside_a_sleeper`] saw.
pub struct Starvation {
    /// How late each 1 ms sleep woke (ns), in order.
    pub lateness: Vec<u64>,
    /// Sleeper rounds done when the tight loop ended.
    pub rounds_while_spinning: u64,
    /// The tight loop ran its whole budget (the sleeper never finished).
    pub spinner_hit_budget: bool,
}

/// With GOMAXPROCS=1: one goroutine spins in a loop with no safe point (`loop_body` runs in
/// it: `spin_loop` for a tight loop, `preempt_point` for a cooperative one) until the sleeper
/// is done or its budget runs out; the main goroutine sleeps 1 ms `ROUNDS` times.
pub fn tight_loop_beside_a_sleeper(loop_body: fn()) -> Starvation {
    let out = Arc::new(spin::Mutex::new(None));
    let out2 = out.clone();
    kernel::rt::run::run(1, move || {
        let done = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let spinner_result = Arc::new(spin::Mutex::new(None));
        {
            let (done, rounds, res) = (done.clone(), rounds.clone(), spinner_result.clone());
            spawn(move || {
                let until = tsc::nanos() + SPIN_BUDGET_MS * 1_000_000;
                let mut hit_budget = false;
                while !done.load(Ordering::Relaxed) {
                    loop_body();
                    if tsc::nanos() > until {
                        hit_budget = true;
                        break;
                    }
                }
                *res.lock() = Some((rounds.load(Ordering::SeqCst), hit_budget));
            });
        }
        // Let the spinner start: it takes the P (runnext) as soon as main yields.
        gosched();
        let mut lateness = Vec::new();
        for _ in 0..ROUNDS {
            lateness.push(sleep_yielding(1_000_000));
            rounds.fetch_add(1, Ordering::SeqCst);
        }
        done.store(true, Ordering::SeqCst);
        // Wait for the spinner to record what it saw.
        while spinner_result.lock().is_none() {
            gosched();
        }
        let (seen, hit) = spinner_result.lock().unwrap();
        *out2.lock() = Some(Starvation {
            lateness,
            rounds_while_spinning: seen,
            spinner_hit_budget: hit,
        });
    });
    let r = out.lock().take().expect("the scenario ran");
    r
}

/// Median and max of `v` (ns), in ms with two decimals, for printing. The median is
/// [`kernel::testing::measure::median`]'s (the upper middle value for an even count); an empty
/// `v` panics.
pub fn median_max_ms(v: &[u64]) -> (f64, f64) {
    let mut s = v.to_vec();
    let median = kernel::testing::measure::median(&mut s);
    let ms = |ns: u64| ns as f64 / 1e6;
    (ms(median), ms(*s.last().unwrap()))
}

/// Asserts the sleeper was not starved, and prints the lateness figures.
pub fn assert_not_starved(r: &Starvation, how: &str) {
    assert!(
        !r.spinner_hit_budget && r.lateness.len() as u64 == ROUNDS,
        "the sleeper was starved: {} of {ROUNDS} wake-ups during {SPIN_BUDGET_MS} ms of a tight loop ({how})",
        r.rounds_while_spinning
    );
    let (median, max) = median_max_ms(&r.lateness);
    kernel::println!(
        "preempt: {how}: a 1 ms sleep beside a tight loop at GOMAXPROCS=1 woke late by median {median:.2} ms, max {max:.2} ms (emulated)"
    );
}

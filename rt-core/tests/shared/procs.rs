//! Bodies of runtime_go.rs's `set_gomaxprocs` tests that deterministic.rs also runs, each under
//! many seeds (shared rather than copied: runtime_go.rs calls them too).

#![allow(unused_imports)]

use rt_core::time::sleep;
use rt_core::{chan, set_gomaxprocs, spawn, Runtime, WaitGroup};
use std::sync::Arc;
use std::time::Duration;

/// 200 goroutines go to sleep on 4 Ps; GOMAXPROCS drops to 1 while they sleep (and while some
/// Ms still spin), so the timers of three Ps move to P 0, and every sleeper must still wake
/// once. A P retired while its M was spinning once left the moved timers to no poller: the M
/// counted itself as the spinner that would find them, and every M went to sleep for ever.
pub fn sleepers_on_removed_ps_still_wake() {
    let woke = Runtime::new(4).block_on(|| {
        let done = chan::make::<u32>(256);
        let wg = Arc::new(WaitGroup::new());
        for i in 0..200u32 {
            let (d, wg) = (done.clone(), wg.clone());
            wg.add(1);
            spawn(move || {
                sleep(Duration::from_millis(5 + (i % 20) as u64));
                d.send(i);
                wg.done();
            });
        }
        // Let them spread over the Ps and park, then remove three Ps.
        sleep(Duration::from_millis(2));
        set_gomaxprocs(1).unwrap();
        wg.wait();
        done.close();
        let mut seen: Vec<u32> = done.collect();
        seen.sort();
        seen
    });
    assert_eq!(
        woke,
        (0..200).collect::<Vec<_>>(),
        "every sleeper woke once"
    );
}

/// Every body here, by name (for deterministic.rs).
#[allow(dead_code)]
pub const ALL: &[(&str, fn())] = &[(
    "procs::sleepers_on_removed_ps_still_wake",
    sleepers_on_removed_ps_still_wake,
)];

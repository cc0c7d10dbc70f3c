//! Deadlock detection with timers that can ready nobody (Go 1.23): a stopped timer, and the
//! `after` of a `select` that took another case, do not keep a deadlock from being reported.
//!
//! The timers are an hour long, so without that rule a test would wait an hour, not fail:
//! each runs under a watchdog that fails it if no result comes within 30 s. Nothing is timed
//! otherwise.

use std::time::Duration;

use rt_core::chan;
use rt_core::time::{after, new_timer, new_timer_at, now, sleep};
use rt_core::{gosched, select, spawn, Runtime};

mod common;
use common::{assert_deadlock, watchdog};

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn a_stopped_timer_does_not_delay_deadlock_detection() {
    assert_deadlock(|| {
        let t = new_timer(HOUR);
        assert!(t.stop(), "the timer was pending");
        assert!(!t.stop(), "stopped once already");
        chan::make::<u32>(0).recv();
    });
}

#[test]
fn a_timer_stopped_while_a_goroutine_waits_on_it_does_not_delay_deadlock_detection() {
    assert_deadlock(|| {
        let t = new_timer(HOUR);
        let c = t.c.clone();
        spawn(move || {
            c.recv();
        });
        // Once the goroutine is blocked on the timer's channel, the timer is live...
        while t.c.waiting().1 == 0 {
            gosched();
        }
        // ...until it is stopped: then nothing can ever wake either goroutine.
        assert!(t.stop());
        chan::make::<u32>(0).recv();
    });
}

#[test]
fn an_abandoned_after_in_a_select_does_not_delay_deadlock_detection() {
    assert_deadlock(|| {
        let a = chan::make::<u32>(0);
        let a2 = a.clone();
        spawn(move || {
            // Send only once the select below is parked on `a` (and on the timer).
            while a2.waiting().1 == 0 {
                gosched();
            }
            a2.send(1);
        });
        let got = select! {
            recv(a) -> v => v,
            recv(after(HOUR)) -> _ => None,
        };
        assert_eq!(got, Some(1));
        chan::make::<u32>(0).recv();
    });
}

#[test]
fn an_unblocked_after_does_not_delay_deadlock_detection() {
    assert_deadlock(|| {
        let _t = after(HOUR);
        chan::make::<u32>(0).recv();
    });
}

/// The other side: a goroutine blocked on a pending timer's channel, or asleep, is not
/// deadlocked.
#[test]
fn a_goroutine_blocked_on_a_timer_or_asleep_is_not_deadlocked() {
    let r = watchdog(|| {
        Runtime::new(2).block_on(|| {
            let t = after(Duration::from_millis(2));
            let c = chan::make::<u32>(0);
            let c2 = c.clone();
            spawn(move || {
                sleep(Duration::from_millis(1));
                c2.send(1);
            });
            assert_eq!(c.recv(), Some(1));
            let fired = select! { recv(t) -> v => v };
            fired.is_some()
        })
    });
    assert!(r.expect("no deadlock"), "the timer fired");
}

/// A timer's channel past its deadline has its value at once, even before any M has run the
/// timer heap (Go 1.23's `maybeRunChan`), and the heap's firing then sends no second value.
#[test]
fn a_timer_channel_past_its_deadline_has_its_value_for_a_nonblocking_receive() {
    let r = watchdog(|| {
        Runtime::new(1).block_on(|| {
            let t = new_timer_at(now());
            let first = t.c.try_recv().is_ok();
            // Let the heap's entry run too.
            sleep(Duration::from_millis(1));
            let second = t.c.try_recv().is_err();
            (first, second, t.stop())
        })
    });
    assert_eq!(r.expect("no deadlock"), (true, true, false));
}

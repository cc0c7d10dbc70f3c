//! Faults that must end in a named error, never a hang: a goroutine that panics while holding
//! an rt-core `Mutex` others wait for, and a channel closed while goroutines are blocked in
//! selects on it (Go: receivers see it closed; a blocked sender panics "send on closed
//! channel"). A run that hung instead fails by the watchdog.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::watchdog;
use rt_core::sync::Mutex;
use rt_core::{chan, select, spawn, time, Runtime, WaitGroup};

fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(not a string)".into())
}

/// The holder panics with two goroutines queued on the lock and main waiting for them: the
/// run ends with the holder's panic (re-raised by `block_on`), not with the waiters asleep.
#[test]
fn a_panic_while_holding_a_mutex_ends_the_run_with_that_panic() {
    let r = watchdog(|| {
        Runtime::new(2).block_on(|| {
            let m = Arc::new(Mutex::new(0u32));
            let locked = chan::make::<()>(0);
            let wg = Arc::new(WaitGroup::new());
            {
                let (m, locked) = (m.clone(), locked.clone());
                spawn(move || {
                    let _g = m.lock();
                    locked.send(());
                    time::sleep(Duration::from_millis(20));
                    panic!("holder gave up with the lock held");
                });
            }
            locked.recv();
            for _ in 0..2 {
                wg.add(1);
                let (m, wg) = (m.clone(), wg.clone());
                spawn(move || {
                    *m.lock() += 1;
                    wg.done();
                });
            }
            wg.wait();
        })
    });
    let payload = r.expect_err("the run should end with the holder's panic");
    let msg = message(&*payload);
    assert!(msg.contains("holder gave up with the lock held"), "{msg}");
}

/// Three goroutines blocked in selects that receive from `ch` are woken by its close and see
/// it closed (None); then one blocked in a select that sends on another channel is woken by
/// that channel's close and panics with Go's message, which ends the run.
#[test]
fn a_channel_closed_under_blocked_selects_wakes_receivers_and_fails_the_sender() {
    let r = watchdog(|| {
        Runtime::new(2).block_on(|| {
            let ch = chan::make::<u32>(0);
            let never = chan::make::<u32>(0);
            let out = chan::make::<Option<u32>>(3);
            for _ in 0..3 {
                let (ch, never, out) = (ch.clone(), never.clone(), out.clone());
                spawn(move || {
                    let v = select! {
                        recv(ch) -> v => v,
                        recv(never) -> _ => Some(u32::MAX),
                    };
                    out.send(v);
                });
            }
            // Let them park in their selects, then close under them.
            time::sleep(Duration::from_millis(20));
            ch.close();
            for _ in 0..3 {
                assert_eq!(out.recv(), Some(None), "a receiver did not see the close");
            }
            let ch2 = chan::make::<u32>(0);
            {
                let (ch2, never) = (ch2.clone(), never.clone());
                spawn(move || {
                    select! {
                        send(ch2, 7) => (),
                        recv(never) -> _ => (),
                    }
                });
            }
            time::sleep(Duration::from_millis(20));
            ch2.close();
            // The sender's panic ends the run; main must not outlive it by much.
            time::sleep(Duration::from_secs(5));
        })
    });
    let payload = r.expect_err("the blocked sender should have panicked");
    let msg = message(&*payload);
    assert!(msg.contains("send on closed channel"), "{msg}");
}

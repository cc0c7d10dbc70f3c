//! Helpers shared by the host tests that expect a run to end in Go's deadlock report
//! (deadlock_timers.rs, select_go.rs, time_go.rs): a run that hangs instead fails by a watchdog.

#![allow(dead_code)] // each test binary uses its own part

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

use rt_core::Runtime;

/// How long a run that should end by itself may take before it is declared hung.
pub const WATCHDOG: Duration = Duration::from_secs(30);

/// Runs `f` on its own thread; its result, or a failure if none comes within `WATCHDOG`.
pub fn watchdog<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> std::thread::Result<R> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(r) => r,
        Err(_) => panic!("no result within {WATCHDOG:?}: the deadlock was not reported"),
    }
}

/// Runs `main` on a runtime and checks that it ends in Go's deadlock report.
pub fn assert_deadlock(main: impl FnOnce() + Send + 'static) {
    let r = watchdog(|| Runtime::new(2).block_on(main));
    let payload = r.expect_err("the run should end in a deadlock");
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(not a string)");
    assert!(
        msg.starts_with("fatal error: all goroutines are asleep - deadlock!"),
        "{msg}"
    );
}

//! What the loom models (tests/loom_*.rs) share: running a model with a stated preemption
//! bound and printing how many interleavings it explored (as `loom_runq` does), and running a
//! model of a broken variant to show that loom finds its bug.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Explores every interleaving of `f` with at most `preemptions` preemptions (loom's bound;
/// each file's header says why its bound suffices), and prints the count and the time taken.
pub fn model(name: &str, preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(preemptions);
    let iter = std::sync::Arc::new(AtomicUsize::new(0));
    let count = iter.clone();
    let start = Instant::now();
    b.check(move || {
        count.fetch_add(1, Ordering::Relaxed);
        f()
    });
    eprintln!(
        "{name}: iterations: {} (preemption bound {preemptions}), {:.2?}",
        iter.load(Ordering::Relaxed),
        start.elapsed()
    );
}

/// Runs the `#[ignore]`d test `test` of this test binary, the model of a deliberately broken
/// variant, in a child process, and returns loom's failure message: the model must find the
/// bug, with a message containing `expect` (loom's "deadlock" for a lost wake-up, or the
/// model's own assertion). A child process, because a loom failure may abort the process
/// (its deadlock panic unwinds through threads it then cannot drop).
pub fn expect_bug(test: &str, expect: &str) -> String {
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            test,
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("cannot run the test binary for the broken variant");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("running 1 test"),
        "{test}: no such test in this binary:\n{stdout}"
    );
    assert!(
        !out.status.success(),
        "{test}: loom found no failure in the broken variant: the model has no teeth\n{stderr}"
    );
    // The first panic's message: the line after the first "panicked at".
    let mut lines = stderr.lines().skip_while(|l| !l.contains("panicked at"));
    lines.next();
    let msg = lines.next().unwrap_or("").to_string();
    assert!(
        msg.contains(expect),
        "{test}: the broken variant failed, but not as expected ({expect:?}):\n{stderr}"
    );
    for l in stderr.lines().filter(|l| l.contains("iterations")) {
        eprintln!("{l}");
    }
    eprintln!("{test}: loom found the bug: {msg}");
    msg
}

/// A parked goroutine, as its wakers see it: `gopark` sleeps until `goready` (park.rs). Loom's
/// `Notify` may wake spuriously; `gopark` never returns before its `goready`, so the waiter
/// waits for the flag that `goready` sets (the G's status going from Waiting to Runnable).
pub struct Parked {
    ready: loom::sync::atomic::AtomicBool,
    note: loom::sync::Notify,
}

#[allow(dead_code)] // not every model uses every part
impl Parked {
    pub fn new() -> Self {
        Parked {
            ready: loom::sync::atomic::AtomicBool::new(false),
            note: loom::sync::Notify::new(),
        }
    }

    /// `gopark`'s wait: returns once readied.
    pub fn park(&self) {
        while !self.ready.load(Ordering::Acquire) {
            self.note.wait();
        }
    }

    /// `goready`: exactly once per park (a second one is a bug the models must report).
    pub fn ready(&self) {
        assert!(
            !self.ready.swap(true, Ordering::AcqRel),
            "goready of a goroutine that is not waiting (woken twice)"
        );
        self.note.notify();
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

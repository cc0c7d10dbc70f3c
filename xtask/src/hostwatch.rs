//! A watchdog for `cargo test` runs of host tests (`cargo xtask test`'s first step).
//!
//! A host test that hangs (a lost wake-up in the scheduler leaves every M asleep, say) never
//! prints a result: without a watchdog, `cargo xtask test` waits until CI's own limit kills
//! it, and nobody learns which test hung or where. libtest prints `test NAME has been running
//! for over 60 seconds` for a test that is slow; from that line on, the test has
//! [`HUNG_AFTER`] more to report its result. If it does not, its threads' stacks are printed
//! (gdb, which the image has; a missing gdb is said, not fatal), the test binary is killed,
//! and the test counts as failed, by name. cargo goes on with the other test binaries
//! (`--no-fail-fast`, which the caller passes).
//!
//! Invariants: only the test binary running the hung test is killed (cargo's direct child,
//! found through /proc), never cargo; a test that reports late but before the limit is
//! not touched.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long after libtest's 60-second warning a test may still take. The slowest host tests
/// now are xtask's harness tests, which boot kernels: about 280 s in all on a loaded 2-core CI
/// machine (the warning at 60 s, the result ~220 s later), so 9 more minutes is far beyond a
/// slow test and well within CI's limit.
pub const HUNG_AFTER: Duration = Duration::from_secs(9 * 60);

/// What the watchdog saw: tests past the 60-second warning without a result, and the ones it
/// declared hung.
#[derive(Default)]
pub struct Watch {
    slow: HashMap<String, Instant>,
    /// Tests killed as hung, with what gdb printed of their threads.
    pub hung: Vec<(String, String)>,
}

/// What one line of libtest's output says about a test.
#[derive(Debug, PartialEq)]
pub enum Line<'a> {
    /// `test NAME has been running for over 60 seconds`.
    Slow(&'a str),
    /// `test NAME ... ok` (or FAILED, ignored): the test is done.
    Done(&'a str),
    Other,
}

/// Reads one line of libtest's output.
pub fn parse(line: &str) -> Line<'_> {
    let Some(rest) = line.strip_prefix("test ") else {
        return Line::Other;
    };
    if let Some(name) = rest.strip_suffix(" has been running for over 60 seconds") {
        return Line::Slow(name);
    }
    match rest.split_once(" ... ") {
        // The 60-second warning names a should-panic test without this suffix.
        Some((name, _)) => Line::Done(name.strip_suffix(" - should panic").unwrap_or(name)),
        None => Line::Other,
    }
}

impl Watch {
    /// Takes in one line of output.
    pub fn see(&mut self, line: &str) {
        match parse(line) {
            Line::Slow(name) => {
                self.slow.insert(name.to_string(), Instant::now());
            }
            Line::Done(name) => {
                self.slow.remove(name);
            }
            Line::Other => {}
        }
    }

    /// The tests past their limit at `now`, taken off the slow list.
    pub fn overdue(&mut self, now: Instant, limit: Duration) -> Vec<String> {
        let late: Vec<String> = self
            .slow
            .iter()
            .filter(|(_, &t)| now.duration_since(t) >= limit)
            .map(|(n, _)| n.clone())
            .collect();
        for n in &late {
            self.slow.remove(n);
        }
        late
    }
}

/// Runs `cmd` (a `cargo test`), streaming its output, and sums libtest's counts. A run that
/// fails without a failed test (a build error) counts as one failure; a test without a result
/// `limit` after libtest's 60-second warning is killed and counts as one (the module's header).
pub fn cargo_test_counts(what: &str, cmd: &mut Command, limit: Duration) -> Result<(u32, u32)> {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run cargo test")?;
    let watch = std::sync::Arc::new(std::sync::Mutex::new(Watch::default()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dog = start(child.id(), limit, watch.clone(), done.clone());
    let (mut passed, mut failed) = (0, 0);
    use std::io::BufRead;
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line?;
        println!("{line}");
        watch.lock().unwrap().see(&line);
        if let Some(rest) = line.strip_prefix("test result: ") {
            // "ok. 3 passed; 0 failed; 0 ignored; ..."
            for part in rest.split(&['.', ';'][..]) {
                let mut w = part.split_whitespace();
                match (w.next().and_then(|n| n.parse::<u32>().ok()), w.next()) {
                    (Some(n), Some("passed")) => passed += n,
                    (Some(n), Some("failed")) => failed += n,
                    _ => {}
                }
            }
        }
    }
    let status = child.wait()?;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = dog.join();
    for (name, stacks) in &watch.lock().unwrap().hung {
        println!(
            "{what}: {name} ... FAILED (hung: no result {} s after libtest's 60-second \
             warning; its test binary was killed). Its threads were at:\n{stacks}",
            limit.as_secs()
        );
        failed += 1;
    }
    if !status.success() && failed == 0 {
        println!("{what} ... FAILED (cargo test exited with {status} before reporting a failed test: a build error?)");
        failed += 1;
    }
    Ok((passed, failed))
}

/// Starts the watchdog thread for the `cargo test` process `cargo_pid`; it stops when `done`
/// is set.
fn start(
    cargo_pid: u32,
    limit: Duration,
    watch: Arc<Mutex<Watch>>,
    done: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_secs(1));
            let late = watch.lock().unwrap().overdue(Instant::now(), limit);
            for name in late {
                let stacks = match test_binary(cargo_pid) {
                    Some(pid) => {
                        let s = stacks(pid);
                        kill(pid);
                        s
                    }
                    None => "(no test binary found under cargo to kill)".to_string(),
                };
                watch.lock().unwrap().hung.push((name, stacks));
            }
        }
    })
}

/// cargo's running child: the test binary (cargo runs one at a time).
fn test_binary(cargo_pid: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{cargo_pid}/task/{cargo_pid}/children"))
        .ok()
        .or_else(|| {
            let o = Command::new("pgrep")
                .args(["-P", &cargo_pid.to_string()])
                .output()
                .ok()?;
            Some(String::from_utf8_lossy(&o.stdout).into_owned())
        })?;
    children.split_whitespace().find_map(|p| p.parse().ok())
}

/// Every thread's stack, from gdb (the hung test's threads say where they wait).
fn stacks(pid: u32) -> String {
    let out = Command::new("timeout")
        .args(["60", "gdb", "-p", &pid.to_string(), "-batch", "-nx"])
        .args(["-ex", "thread apply all bt 12"])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() || !o.stdout.is_empty() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("Thread ") || l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n"),
        Ok(o) => format!("(gdb printed no stacks: {})", o.status),
        Err(e) => format!("(no stacks: cannot run gdb: {e})"),
    }
}

/// SIGKILL to one process.
fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole watchdog, on a stand-in for cargo: a shell that reports one test done and
    /// one slow, then waits on a child (the "test binary") that never ends. The child must be
    /// killed, the slow test named as hung, and the shell (cargo) left to finish.
    #[test]
    fn a_test_without_a_result_is_killed_and_counted() {
        let script = "echo 'test fine ... ok'; \
                      echo 'test stuck has been running for over 60 seconds'; \
                      sleep 90 & wait; echo 'test result: ok. 1 passed; 0 failed;'";
        let t = Instant::now();
        let (passed, failed) = cargo_test_counts(
            "stand-in",
            Command::new("sh").args(["-c", script]),
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the stuck child was not killed"
        );
        assert_eq!((passed, failed), (1, 1), "the hung test counts as failed");
    }

    #[test]
    fn libtest_lines_are_read() {
        assert_eq!(
            parse("test a::b has been running for over 60 seconds"),
            Line::Slow("a::b")
        );
        assert_eq!(parse("test a::b ... ok"), Line::Done("a::b"));
        assert_eq!(parse("test a::b - should panic ... ok"), Line::Done("a::b"));
        assert_eq!(parse("test result: ok. 3 passed"), Line::Other);
        assert_eq!(parse("running 3 tests"), Line::Other);
    }

    #[test]
    fn a_slow_test_is_overdue_only_after_the_limit_and_only_without_a_result() {
        let mut w = Watch::default();
        w.see("test slow_but_fine has been running for over 60 seconds");
        w.see("test hung has been running for over 60 seconds");
        w.see("test slow_but_fine ... ok");
        let t = Instant::now();
        assert!(w.overdue(t, Duration::from_secs(5)).is_empty(), "not yet");
        assert_eq!(
            w.overdue(t + Duration::from_secs(6), Duration::from_secs(5)),
            vec!["hung".to_string()]
        );
        assert!(
            w.overdue(t + Duration::from_secs(60), Duration::from_secs(5))
                .is_empty(),
            "a hung test is declared once"
        );
    }
}

//! Host goroutine stacks at scale (rt-core/src/host/stacks.rs): more goroutines than Linux's
//! mapping limit would allow with a mapping per stack, one committed page per parked
//! goroutine, and the two ways a stack can fail, each a named fatal error. Checked by counting
//! (mappings, resident bytes, exit codes and messages), never by time.
//!
//! The fatal cases end their process, so each runs in a child: the test binary runs itself
//! with `STACKS_CHILD` set to the case, and the parent checks the exit and the message.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rt_core::{chan, gosched, spawn, Runtime, WaitGroup};

fn max_map_count() -> usize {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65_530)
}

/// The tests of this binary run one at a time: the mapping and resident counts are the
/// process's, and another test's threads coming and going would move them.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 1024
}

/// Spawns `n` goroutines that each park on one channel receive; calls `while_parked` once all
/// are parked, then releases them and waits for all to exit.
fn park_many(n: usize, while_parked: impl FnOnce() + Send + 'static) {
    let c = chan::make::<()>(0);
    let parked = Arc::new(AtomicUsize::new(0));
    let wg = Arc::new(WaitGroup::new());
    wg.add(n as i32);
    for _ in 0..n {
        let (c, parked, wg) = (c.clone(), parked.clone(), wg.clone());
        spawn(move || {
            parked.fetch_add(1, Ordering::Relaxed);
            assert!(c.recv().is_none(), "nothing is ever sent");
            wg.done();
        });
    }
    while parked.load(Ordering::Relaxed) < n {
        gosched();
    }
    while_parked();
    c.close();
    wg.wait();
}

/// More parked goroutines than `vm.max_map_count / 2` (the most a mapping plus a guard per
/// stack allowed), at least 200,000: the mappings grow by a few regions, not by the
/// goroutines, and each parked goroutine holds one stack page plus its G.
#[test]
fn more_parked_goroutines_than_the_mapping_limit_allows() {
    let _serial = serial();
    let n = (max_map_count() / 2 + 1_000).clamp(200_000, 1_000_000);
    for procs in [1, 2] {
        let report = Arc::new(std::sync::Mutex::new((0, 0)));
        let r = report.clone();
        Runtime::new(procs).block_on(move || {
            let (maps0, rss0) = (mappings(), rss_bytes());
            park_many(n, move || {
                let new_maps = mappings() as i64 - maps0 as i64;
                let bytes = rss_bytes() as i64 - rss0 as i64;
                *r.lock().unwrap() = (new_maps, bytes / n as i64);
            });
        });
        let (new_maps, bytes_per_g) = *report.lock().unwrap();
        eprintln!(
            "{n} parked goroutines at GOMAXPROCS={procs}: {new_maps} new mappings, \
             {bytes_per_g} resident bytes each"
        );
        assert!(
            new_maps < (n / 100) as i64,
            "{n} parked goroutines added {new_maps} mappings: the stacks are not sharing regions"
        );
        assert!(
            bytes_per_g <= 4096 + 1024,
            "a parked goroutine holds {bytes_per_g} resident bytes, more than its one stack page \
             and its G"
        );
    }
}

/// Runs this test binary's `test` with `STACKS_CHILD=case`, returning (exit code, stderr).
fn child(test: &str, case: &str) -> (Option<i32>, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("STACKS_CHILD", case)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn child_case() -> Option<String> {
    std::env::var("STACKS_CHILD").ok()
}

/// With one mapping per stack (what a kernel without `MADV_GUARD_INSTALL` gets), running out
/// of mappings is a fatal error that names `vm.max_map_count` and how to raise it, printed
/// once even when both Ms fail together, and exits with Go's status 2.
#[test]
fn one_mapping_per_stack_fails_naming_vm_max_map_count() {
    let _serial = serial();
    if child_case().as_deref() == Some("mappings") {
        rt_core::host::use_one_mapping_per_stack();
        Runtime::new(2).block_on(|| park_many(max_map_count() / 2 + 1_000, || ()));
        unreachable!("all goroutines got a mapping of their own");
    }
    let (code, stderr) = child(
        "one_mapping_per_stack_fails_naming_vm_max_map_count",
        "mappings",
    );
    assert_eq!(code, Some(2), "exit code; stderr:\n{stderr}");
    assert!(
        stderr.contains("fatal error: cannot map a goroutine stack")
            && stderr.contains(&format!("vm.max_map_count is {}", max_map_count()))
            && stderr.contains("sysctl -w vm.max_map_count="),
        "stderr does not name the mapping limit:\n{stderr}"
    );
    assert_eq!(
        stderr.matches("fatal error").count(),
        1,
        "the fatal error is printed once:\n{stderr}"
    );
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    // A frame of about 1 KiB that the compiler cannot drop, and no runtime call (so no safe
    // point catches the overflow first): only the guard page stops it.
    let frame = std::hint::black_box([depth; 128]);
    if frame[0] == u64::MAX {
        return 0;
    }
    std::hint::black_box(recurse(depth + 1)) + frame[(depth % 128) as usize]
}

/// A goroutine that runs through its stack into the guard page is Go's "stack overflow", with
/// the goroutine named, exit status 2: not a bare segmentation fault.
#[test]
fn running_into_the_guard_page_is_a_stack_overflow() {
    let _serial = serial();
    if child_case().as_deref() == Some("overflow") {
        Runtime::new(1).block_on(|| {
            let wg = Arc::new(WaitGroup::new());
            wg.add(1);
            let w = wg.clone();
            spawn(move || {
                std::hint::black_box(recurse(0));
                w.done();
            });
            wg.wait();
        });
        unreachable!("the recursion returned");
    }
    let (code, stderr) = child(
        "running_into_the_guard_page_is_a_stack_overflow",
        "overflow",
    );
    assert_eq!(code, Some(2), "exit code; stderr:\n{stderr}");
    assert!(
        stderr.contains("runtime: goroutine stack exceeds 262144-byte limit")
            && stderr.contains("fatal error: stack overflow")
            && stderr.contains("goroutine 2 [running]"),
        "not reported as a goroutine's stack overflow:\n{stderr}"
    );
    // Go's traceback of the overflowing goroutine: the recursing function, its 100 frames
    // around the elision, and where it was created.
    assert!(
        stderr.contains("goroutine 2 [running]:\nstacks::recurse(...)\n\trt-core/tests/stacks.rs:")
            && (90..=100).contains(&stderr.matches("stacks::recurse(...)").count())
            && stderr.contains(" frames elided...")
            && stderr.contains(
                "created by stacks::running_into_the_guard_page_is_a_stack_overflow::{closure#0} in goroutine 1"
            ),
        "no traceback of the recursion:\n{stderr}"
    );
}

#[inline(never)]
fn recurse_through_safe_points(depth: u64) -> u64 {
    // The same frame, with a safe point in each: the stack check there (SP below
    // stackguard0) must report the overflow before the guard page is reached.
    rt_core::preempt_point();
    let frame = std::hint::black_box([depth; 128]);
    if frame[0] == u64::MAX {
        return 0;
    }
    std::hint::black_box(recurse_through_safe_points(depth + 1)) + frame[(depth % 128) as usize]
}

/// Recursion through safe points is caught by the safe point's stack check, with room left
/// (Go's `stackGuard`), not by the guard page: the report's SP lies inside the stack. A
/// `morestack` that took the real overflow for a false alarm (cargo-mutants' `>=` -> `<`) let
/// the recursion run on into the guard page, where SP is below the stack.
#[test]
fn a_safe_point_reports_the_overflow_before_the_guard_page() {
    let _serial = serial();
    if child_case().as_deref() == Some("safepoint") {
        Runtime::new(1).block_on(|| {
            let wg = Arc::new(WaitGroup::new());
            wg.add(1);
            let w = wg.clone();
            spawn(move || {
                std::hint::black_box(recurse_through_safe_points(0));
                w.done();
            });
            wg.wait();
        });
        unreachable!("the recursion returned");
    }
    let (code, stderr) = child(
        "a_safe_point_reports_the_overflow_before_the_guard_page",
        "safepoint",
    );
    assert_eq!(code, Some(2), "exit code; stderr:\n{stderr}");
    // "runtime: sp=0x... stack=[0x..., 0x...)"
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("runtime: sp="))
        .unwrap_or_else(|| panic!("no 'runtime: sp=' line:\n{stderr}"));
    let sp = line["runtime: sp=".len()..].split(' ').next().and_then(hex);
    let lo = line
        .split_once("stack=[")
        .and_then(|(_, r)| r.split_once(','))
        .and_then(|(l, _)| hex(l));
    let (Some(sp), Some(lo)) = (sp, lo) else {
        panic!("unreadable {line:?}");
    };
    assert!(
        sp >= lo,
        "the overflow was caught below the stack (sp {sp:#x} < lo {lo:#x}): by the guard page, \
         not the safe point:\n{stderr}"
    );
    assert!(stderr.contains("fatal error: stack overflow"), "{stderr}");
}

#[inline(never)]
fn parked_in_a_named_function(c: rt_core::Chan<u32>) -> u32 {
    std::hint::black_box(&c);
    c.recv().unwrap_or(0) + 1
}

/// SIGQUIT does what Go's does: every goroutine's traceback on stderr, then exit status 2.
#[test]
fn sigquit_dumps_every_goroutine_and_exits_2() {
    let _serial = serial();
    if child_case().as_deref() == Some("sigquit") {
        Runtime::new(2).block_on(|| {
            let c = rt_core::chan::make::<u32>(0);
            let c2 = c.clone();
            spawn(move || {
                parked_in_a_named_function(c2);
            });
            rt_core::time::sleep(std::time::Duration::from_millis(50));
            // SAFETY: raise(3) sends a signal to this process.
            unsafe { libc::raise(libc::SIGQUIT) };
            rt_core::time::sleep(std::time::Duration::from_secs(10));
        });
        unreachable!("SIGQUIT did not end the program");
    }
    let (code, stderr) = child("sigquit_dumps_every_goroutine_and_exits_2", "sigquit");
    assert_eq!(code, Some(2), "exit code; stderr:\n{stderr}");
    assert!(
        stderr.starts_with("SIGQUIT: quit\n")
            && stderr.contains("goroutine 1 [")
            && stderr.contains(
                "goroutine 2 [chan receive]:\nstacks::parked_in_a_named_function(...)\n\trt-core/tests/stacks.rs:"
            ),
        "no goroutine dump:\n{stderr}"
    );
}

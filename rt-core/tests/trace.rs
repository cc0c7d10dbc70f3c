//! The scheduler trace (Go's schedtrace / scheddetail lines) read from a running runtime.

use std::sync::Arc;

use rt_core::trace::{schedtrace_current, TraceArgs};
use rt_core::{goid, gosched, spawn, Runtime, WaitGroup};

fn trace(detailed: bool) -> String {
    let mut out = String::new();
    let args = TraceArgs {
        now_ms: 1000,
        idlethreads: None,
        detailed,
        lock_tries: 1000,
    };
    let complete = schedtrace_current(&mut out, &args)
        .expect("called on an M")
        .expect("writing to a String cannot fail");
    assert!(
        complete,
        "no list should stay locked in a quiet runtime:\n{out}"
    );
    out
}

#[test]
fn summary_line_has_gos_fields_and_one_queue_length_per_p() {
    let out = Runtime::new(3).block_on(|| trace(false));
    let line = out.lines().next().unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        line.starts_with("SCHED 1000ms: gomaxprocs=3 idleprocs="),
        "{line}"
    );
    for field in ["threads=", "spinningthreads=", "idlethreads=", "runqueue="] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
    let queues = line.rsplit_once('[').unwrap().1.trim_end_matches(']');
    assert_eq!(queues.split(' ').count(), 3, "{line}");
}

#[test]
fn detail_lists_every_p_every_m_and_parked_goroutines_with_their_reason() {
    let out = Runtime::new(2).block_on(|| {
        let wg = Arc::new(WaitGroup::new());
        wg.add(1);
        let mut waiters = Vec::new();
        for _ in 0..3 {
            let wg = wg.clone();
            waiters.push(spawn(move || wg.wait()));
        }
        // Let the three park: yield until the detail shows them waiting (bounded).
        let mut out = String::new();
        for _ in 0..100_000 {
            out = trace(true);
            if out.matches("(sync.WaitGroup.Wait)").count() == 3 {
                break;
            }
            gosched();
        }
        let me = goid();
        wg.done();
        (out, waiters, me)
    });
    let (out, waiters, me) = out;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("SCHED 1000ms: gomaxprocs=2 "), "{out}");
    assert!(lines[0].ends_with(" gcwaiting=false nmidlelocked=0 stopwait=0 sysmonwait=false"));
    for p in 0..2 {
        let l = lines
            .iter()
            .find(|l| l.starts_with(&format!("  P{p}: status=")))
            .unwrap_or_else(|| panic!("no P{p} line:\n{out}"));
        for field in [
            "schedtick=",
            "syscalltick=",
            " m=",
            "runqsize=",
            "gfreecnt=",
            "timerslen=0",
        ] {
            assert!(l.contains(field), "{field} missing: {l}");
        }
    }
    // The tracing goroutine runs on an M that holds a P, and that M says so.
    let running = format!("  G{me}: status=2() m=");
    let mine = lines
        .iter()
        .find(|l| l.starts_with(&running))
        .unwrap_or_else(|| panic!("no running line for G{me}:\n{out}"));
    let m_id = mine[running.len()..].split(' ').next().unwrap();
    let m_line = lines
        .iter()
        .find(|l| l.starts_with(&format!("  M{m_id}: p=")))
        .unwrap_or_else(|| panic!("no line for M{m_id}:\n{out}"));
    assert!(m_line.contains(&format!(" curg={me} ")), "{m_line}");
    assert!(!m_line.contains("p=nil"), "{m_line}");
    assert!(m_line.contains(" blocked=false "), "{m_line}");
    // Each waiter is listed as Go lists a parked goroutine.
    for id in waiters {
        let want = format!("  G{id}: status=4(sync.WaitGroup.Wait) m=nil lockedm=nil");
        assert!(lines.contains(&want.as_str()), "missing {want:?}:\n{out}");
    }
}

#[test]
fn outside_a_runtime_there_is_nothing_to_trace() {
    let mut out = String::new();
    let args = TraceArgs {
        now_ms: 0,
        idlethreads: Some(0),
        detailed: true,
        lock_tries: 1,
    };
    assert!(schedtrace_current(&mut out, &args).is_none());
    assert!(out.is_empty());
}

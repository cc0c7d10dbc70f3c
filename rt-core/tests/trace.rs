//! The host's execution trace (`Runtime::trace`): a program's run written as Perfetto JSON,
//! and as raw records that rt-trace decodes and checks against the runtime's own counters.
//! One test function: a process records one trace at a time.

use std::sync::Arc;

use rt_core::chan::make;
use rt_core::{gosched, spawn, Runtime, WaitGroup};
use rt_trace::format::Counter;

/// Ping-pong across goroutines, yields and a burst of spawns: every kind of event but the
/// kernel's own (halts, the timer interrupt).
fn workload() -> u64 {
    let wg = Arc::new(WaitGroup::new());
    wg.add(50);
    for _ in 0..50 {
        let wg = wg.clone();
        spawn(move || {
            for _ in 0..3 {
                gosched();
            }
            wg.done();
        });
    }
    let (to, from) = (make::<u64>(0), make::<u64>(0));
    {
        let (to, from) = (to.clone(), from.clone());
        spawn(move || {
            while let Some(v) = to.recv() {
                from.send(v + 1);
            }
        });
    }
    let mut v = 0;
    for _ in 0..200 {
        to.send(v);
        v = from.recv().expect("the echo goroutine answers");
    }
    to.close();
    wg.wait();
    v
}

#[test]
fn a_traced_run_is_written_as_perfetto_json_and_as_records_that_check_out() {
    let dir = std::env::temp_dir().join(format!("rt-core-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // JSON: one named thread per M, a slice per goroutine run, named after its creator.
    let json = dir.join("run.json");
    assert_eq!(Runtime::new(2).trace(&json).block_on(workload), 200);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the trace was written"))
            .expect("the trace is JSON");
    let events = v["traceEvents"].as_array().expect("a traceEvents array");
    let threads: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .filter_map(|e| e["args"]["name"].as_str())
        .collect();
    assert!(
        threads
            .iter()
            .any(|t| t.starts_with("thread ") && t.ends_with("(M0)")),
        "no track for M0 among {threads:?}"
    );
    let runs: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] == "goroutine")
        .filter_map(|e| e["name"].as_str())
        .collect();
    // 52 goroutines (main, 50 yielders, the echo), each yielder running at least 4 times.
    assert!(
        runs.len() >= 52 + 50 * 3,
        "only {} goroutine runs",
        runs.len()
    );
    assert!(
        runs.iter().any(|n| n.contains("workload")),
        "no run named after its creating function `workload`: {:?}",
        &runs[..runs.len().min(5)]
    );

    // Raw records: decoded, checked, and the counts equal the runtime's.
    let bin = dir.join("run.bin");
    assert_eq!(Runtime::new(2).trace(&bin).block_on(workload), 200);
    let t = rt_trace::decode::decode(&std::fs::read(&bin).unwrap()).expect("the trace decodes");
    let model = rt_trace::model::build(&t, &|_| None);
    let report = rt_trace::check::check(&t, &model);
    assert!(report.problems.is_empty(), "{report}");
    assert_eq!(t.lost_total(), 0, "events were lost");
    assert_eq!(t.counter(Counter::GoCreated), Some(52));
    let creates = t
        .events
        .iter()
        .filter(|r| r.kind() == Some(rt_trace::format::Kind::GoCreate))
        .count();
    assert_eq!(creates, 52);
    let _ = std::fs::remove_dir_all(&dir);
}

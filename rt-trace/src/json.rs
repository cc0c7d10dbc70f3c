//! A [`Model`] as Chrome Trace Event JSON (the JSON Object Format), for Perfetto
//! (ui.perfetto.dev) and chrome://tracing.
//!
//! Layout: process 1 "CPUs" has one thread per [`Track`](crate::model::Track), named exactly
//! by its label and sorted in track order; each goroutine run is an "X" slice named by the
//! goroutine's label, halts and spins are "X" slices of their own categories on the same
//! thread (or, if they would not nest with the runs, on a companion thread "<label> idle"),
//! marks are thread-scoped "i" instants. Process 2 "Ps" has one thread per P whose slices
//! say which M held it, and a counter "P{n} runqueue" per P.
//!
//! Invariants kept here:
//! - Times are microseconds as floats chosen so that Perfetto, which reads `ts * 1000`
//!   truncated to an integer, gets back the model's exact nanoseconds (see [`us`]): nesting in
//!   the model is nesting in the viewer, and no slice is dropped as overlapping.
//! - Every flow is drawn with Perfetto's v2 flow binding (`bind_id` + `flow_out`/`flow_in` on
//!   "X" events), which binds to the very slice carrying it rather than to whatever slice
//!   encloses a timestamp. The source is a zero-length "wake" slice at the GoUnblock (it
//!   exists even when no goroutine ran there, e.g. an interrupt on an idle CPU, and a run
//!   that wakes several goroutines gets one each); the target is the woken goroutine's run
//!   itself (or a zero-length "woken" slice if that run already has a flow in, or the run is
//!   not in the model). Every `bind_id` appears exactly once with `flow_out` and once with
//!   `flow_in`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use serde_json::{json, Map, Value};

use crate::format::SYSMON;
use crate::model::{Mark, Model, Span};
use crate::svg::{end_reason, format_duration, goroutine_label, mark_text};

/// The pid of the CPU tracks' process.
pub const PID_CPUS: u32 = 1;
/// The pid of the P tracks' process.
pub const PID_PS: u32 = 2;

/// Thread ids: track `i` is `TID_CPU + i`, its companion idle thread `TID_IDLE + i`, P `n`
/// is `TID_P + n` (distinct across both processes, none 0).
const TID_CPU: u64 = 1;
const TID_IDLE: u64 = 100_001;
const TID_P: u64 = 200_001;

/// Nanoseconds to the microseconds written in `ts`/`dur`: the float nearest `ns / 1000` that
/// Perfetto's importer (`(int64)(value * 1000.0)`) turns back into exactly `ns`.
pub fn us(ns: u64) -> f64 {
    let mut d = ns as f64 / 1000.0;
    // Rounding can leave d * 1000 a hair under ns, which truncation would make ns - 1.
    for _ in 0..4 {
        if (d * 1000.0) as u64 >= ns {
            break;
        }
        d = f64::from_bits(d.to_bits() + 1);
    }
    d
}

fn meta(pid: u32, tid: u64, name: &str, args: Value) -> Value {
    json!({"ph": "M", "pid": pid, "tid": tid, "ts": 0, "name": name, "args": args})
}

fn complete(pid: u32, tid: u64, span: Span, name: &str, cat: &str, args: Value) -> Value {
    json!({
        "ph": "X", "pid": pid, "tid": tid,
        "ts": us(span.start_ns),
        "dur": us(span.end_ns.saturating_sub(span.start_ns)),
        "name": name, "cat": cat, "args": args,
    })
}

fn set_flow(ev: &mut Value, id: u64, out: bool) {
    if let Value::Object(o) = ev {
        o.insert("bind_id".into(), json!(id));
        o.insert(if out { "flow_out" } else { "flow_in" }.into(), json!(true));
    }
}

/// Whether the track's runs, halts and spins nest properly (no two partially overlap), so
/// they can share one thread in the viewer.
fn nests(spans: &mut [(u64, u64)]) -> bool {
    spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut stack: Vec<u64> = Vec::new();
    for &(s, e) in spans.iter() {
        while stack.last().is_some_and(|&top| top <= s) {
            stack.pop();
        }
        if stack.last().is_some_and(|&top| e > top) {
            return false;
        }
        stack.push(e);
    }
    true
}

fn mark_args(mk: &Mark) -> Value {
    use crate::model::MarkKind::*;
    let mut a = Map::new();
    if mk.goid != 0 {
        a.insert("goid".into(), json!(mk.goid));
    }
    match mk.kind {
        Steal { victim, n } => {
            a.insert("victim".into(), json!(victim));
            a.insert("n".into(), json!(n));
        }
        Preempt(r) => {
            a.insert("reason".into(), json!(r.as_str()));
        }
        Retake { p } => {
            a.insert("p".into(), json!(p));
        }
        TimerFire { n } | GlobalRunqGet { n } => {
            a.insert("n".into(), json!(n));
        }
        Create | PreemptRequest => {}
    }
    Value::Object(a)
}

fn mark_cat(mk: &Mark) -> &'static str {
    use crate::model::MarkKind::*;
    match mk.kind {
        Create => "create",
        Steal { .. } => "steal",
        Preempt(_) | PreemptRequest => "preempt",
        Retake { .. } => "retake",
        TimerFire { .. } => "timer",
        GlobalRunqGet { .. } => "globalrunq",
    }
}

/// The whole trace as a Chrome Trace Event JSON object.
pub fn chrome_trace(m: &Model) -> Value {
    let mut ev: Vec<Value> = Vec::new();
    ev.push(meta(PID_CPUS, 0, "process_name", json!({"name": "CPUs"})));
    ev.push(meta(
        PID_CPUS,
        0,
        "process_sort_index",
        json!({"sort_index": 0}),
    ));
    ev.push(meta(PID_PS, 0, "process_name", json!({"name": "Ps"})));
    ev.push(meta(
        PID_PS,
        0,
        "process_sort_index",
        json!({"sort_index": 1}),
    ));

    let track_of: BTreeMap<u16, usize> =
        m.tracks.iter().enumerate().map(|(i, t)| (t.m, i)).collect();
    let label_of_m = |mm: u16| {
        track_of
            .get(&mm)
            .map_or_else(|| format!("M{mm}"), |&i| m.tracks[i].label.clone())
    };

    // Runs, indexed so flows can find their target: (track, start, goid) -> event index.
    let mut run_at: HashMap<(usize, u64, u64), usize> = HashMap::new();

    for (i, t) in m.tracks.iter().enumerate() {
        let tid = TID_CPU + i as u64;
        ev.push(meta(PID_CPUS, tid, "thread_name", json!({"name": t.label})));
        ev.push(meta(
            PID_CPUS,
            tid,
            "thread_sort_index",
            json!({"sort_index": i}),
        ));

        let mut spans: Vec<(u64, u64)> = t
            .slices
            .iter()
            .map(|s| (s.start_ns, s.end_ns))
            .chain(
                t.halts
                    .iter()
                    .chain(t.spins.iter())
                    .map(|s| (s.start_ns, s.end_ns)),
            )
            .filter(|(s, e)| e > s)
            .collect();
        let idle_tid = if nests(&mut spans) {
            tid
        } else {
            let idle = TID_IDLE + i as u64;
            let name = format!("{} idle", t.label);
            ev.push(meta(PID_CPUS, idle, "thread_name", json!({"name": name})));
            ev.push(meta(
                PID_CPUS,
                idle,
                "thread_sort_index",
                json!({"sort_index": i}),
            ));
            idle
        };

        for s in &t.slices {
            let p = s.p.map_or(json!("none"), |p| json!(p));
            let args = json!({"goid": s.goid, "p": p, "end": end_reason(s.end)});
            let span = Span {
                start_ns: s.start_ns,
                end_ns: s.end_ns,
            };
            run_at.insert((i, s.start_ns, s.goid), ev.len());
            ev.push(complete(
                PID_CPUS,
                tid,
                span,
                &goroutine_label(m, s.goid),
                "goroutine",
                args,
            ));
        }
        for h in &t.halts {
            ev.push(complete(
                PID_CPUS,
                idle_tid,
                *h,
                "halted",
                "halt",
                json!({}),
            ));
        }
        for s in &t.spins {
            ev.push(complete(
                PID_CPUS,
                idle_tid,
                *s,
                "spinning",
                "spin",
                json!({}),
            ));
        }
        for mk in &t.marks {
            ev.push(json!({
                "ph": "i", "s": "t", "pid": PID_CPUS, "tid": tid, "ts": us(mk.ts_ns),
                "name": mark_text(m, mk), "cat": mark_cat(mk), "args": mark_args(mk),
            }));
        }
    }
    // Runs that already carry a flow in (an event has one bind_id).
    let mut taken: HashSet<usize> = HashSet::new();

    for (k, f) in m.flows.iter().enumerate() {
        let (Some(&from), Some(&to)) = (track_of.get(&f.from_m), track_of.get(&f.to_m)) else {
            continue;
        };
        let id = k as u64 + 1;
        let label = goroutine_label(m, f.goid);
        let mut args = json!({"goid": f.goid, "source": f.source.as_str()});
        if f.waker != 0 {
            args["waker"] = json!(f.waker);
            args["waker_label"] = json!(goroutine_label(m, f.waker));
        }
        let at = |ns| Span {
            start_ns: ns,
            end_ns: ns,
        };
        let mut wake = complete(
            PID_CPUS,
            TID_CPU + from as u64,
            at(f.from_ns),
            &format!("wake {label}"),
            "wake",
            args,
        );
        set_flow(&mut wake, id, true);
        ev.push(wake);
        match run_at.get(&(to, f.to_ns, f.goid)) {
            Some(&j) if taken.insert(j) => set_flow(&mut ev[j], id, false),
            _ => {
                let mut woken = complete(
                    PID_CPUS,
                    TID_CPU + to as u64,
                    at(f.to_ns),
                    &format!("woken {label}"),
                    "wake",
                    json!({"goid": f.goid}),
                );
                set_flow(&mut woken, id, false);
                ev.push(woken);
            }
        }
    }

    for pt in &m.procs {
        let tid = TID_P + pt.p as u64;
        ev.push(meta(
            PID_PS,
            tid,
            "thread_name",
            json!({"name": format!("P{}", pt.p)}),
        ));
        ev.push(meta(
            PID_PS,
            tid,
            "thread_sort_index",
            json!({"sort_index": pt.p}),
        ));
        for (mm, span) in &pt.held {
            let args = json!({"m": mm, "track": label_of_m(*mm)});
            ev.push(complete(PID_PS, tid, *span, &format!("M{mm}"), "p", args));
        }
        let name = format!("P{} runqueue", pt.p);
        for &(ts, len) in &pt.runq {
            ev.push(json!({
                "ph": "C", "pid": PID_PS, "tid": tid, "ts": us(ts), "name": name,
                "args": {"len": len},
            }));
        }
    }

    let lost_total: u64 = m.lost.values().fold(0, |a, &n| a.saturating_add(n));
    let lost_by_m: Map<String, Value> = m
        .lost
        .iter()
        .map(|(mm, n)| (label_of_m(*mm), json!(n)))
        .collect();
    let cpus = m.tracks.iter().filter(|t| t.m != SYSMON).count();
    json!({
        "traceEvents": ev,
        "displayTimeUnit": "ns",
        "otherData": {
            "generator": "rt-trace",
            "platform": if m.kernel { "kernel" } else { "host" },
            "gomaxprocs": m.gomaxprocs,
            "duration_ns": m.duration_ns,
            "duration": format_duration(m.duration_ns),
            "cpus": cpus,
            "goroutines": m.goroutines.len(),
            "flows": m.flows.len(),
            "lost_events": lost_total,
            "lost_events_by_m": lost_by_m,
            "unflushed_ms": m.unflushed_ms,
            "summary": summary_line(m),
        },
    })
}

/// One line saying what the trace is, e.g. "GOMAXPROCS 4, 12.3 ms, 4 CPUs (kernel)".
pub fn summary_line(m: &Model) -> String {
    let cpus = m.tracks.iter().filter(|t| t.m != SYSMON).count();
    let mut s = format!(
        "GOMAXPROCS {}, {}, {} {} ({})",
        m.gomaxprocs,
        format_duration(m.duration_ns),
        cpus,
        if m.kernel { "CPUs" } else { "threads" },
        if m.kernel { "kernel" } else { "host" },
    );
    let lost: u64 = m.lost.values().fold(0, |a, &n| a.saturating_add(n));
    if lost > 0 {
        s += &format!(", {lost} events lost");
    }
    if m.unflushed_ms > 0 {
        s += &format!(", {} Ms never flushed", m.unflushed_ms);
    }
    s
}

/// [`chrome_trace`] as compact JSON text.
pub fn to_string(m: &Model) -> String {
    chrome_trace(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Slice, SliceEnd};
    use crate::svg::sample_model;

    fn events(m: &Model) -> Vec<Value> {
        let text = to_string(m);
        let v: Value = serde_json::from_str(&text).expect("the output is JSON");
        assert_eq!(v["displayTimeUnit"], "ns");
        v["traceEvents"]
            .as_array()
            .expect("traceEvents is an array")
            .clone()
    }

    /// Nanoseconds of a parsed time (serde_json's default float parsing may be an ulp off,
    /// so this rounds; [`times_come_back_to_the_exact_nanosecond_in_perfetto`] checks the
    /// exact text with a correctly rounding parser, as Perfetto's is).
    fn ns(v: &Value) -> i64 {
        (v.as_f64().unwrap() * 1000.0).round() as i64
    }

    fn thread_names(ev: &[Value], pid: u32) -> BTreeMap<u64, String> {
        ev.iter()
            .filter(|e| e["ph"] == "M" && e["name"] == "thread_name" && e["pid"] == pid)
            .map(|e| {
                (
                    e["tid"].as_u64().unwrap(),
                    e["args"]["name"].as_str().unwrap().into(),
                )
            })
            .collect()
    }

    #[test]
    fn every_event_has_the_fields_its_phase_needs() {
        let ev = events(&sample_model());
        let mut phases = BTreeMap::<String, usize>::new();
        for e in &ev {
            for k in ["ph", "pid", "tid", "ts", "name"] {
                assert!(e.get(k).is_some(), "{k} missing in {e}");
            }
            assert!(
                e["name"].is_string() && e["pid"].is_u64() && e["tid"].is_u64(),
                "{e}"
            );
            assert!(e["ts"].is_number(), "{e}");
            let ph = e["ph"].as_str().unwrap();
            *phases.entry(ph.into()).or_default() += 1;
            match ph {
                "X" => assert!(e["dur"].as_f64().is_some_and(|d| d >= 0.0), "{e}"),
                "C" => {
                    let a = e["args"].as_object().expect("a counter has args");
                    assert!(!a.is_empty() && a.values().all(Value::is_number), "{e}");
                }
                "i" => assert_eq!(e["s"], "t", "{e}"),
                "M" => assert!(e["args"].is_object(), "{e}"),
                _ => panic!("unexpected phase {ph}"),
            }
            if e.get("bind_id").is_some() {
                assert_eq!(ph, "X", "flows ride on complete slices: {e}");
                assert!(e["flow_in"] == true || e["flow_out"] == true, "{e}");
            }
        }
        for ph in ["X", "C", "i", "M"] {
            assert!(phases.contains_key(ph), "no {ph} events");
        }
    }

    #[test]
    fn threads_are_named_by_the_track_labels_and_ps_by_number() {
        let m = sample_model();
        let ev = events(&m);
        let cpus: Vec<String> = thread_names(&ev, PID_CPUS).into_values().collect();
        let want: Vec<String> = m.tracks.iter().map(|t| t.label.clone()).collect();
        assert_eq!(cpus, want);
        let ps: Vec<String> = thread_names(&ev, PID_PS).into_values().collect();
        assert_eq!(ps, ["P0", "P1"]);
        let procs: Vec<&str> = ev
            .iter()
            .filter(|e| e["name"] == "process_name")
            .map(|e| e["args"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(procs, ["CPUs", "Ps"]);
        // Sorted in track order.
        let sort: Vec<u64> = ev
            .iter()
            .filter(|e| e["name"] == "thread_sort_index" && e["pid"] == PID_CPUS)
            .map(|e| e["args"]["sort_index"].as_u64().unwrap())
            .collect();
        assert_eq!(sort, [0, 1, 2, 3]);
    }

    #[test]
    fn runs_marks_and_counters_say_what_happened() {
        let m = sample_model();
        let ev = events(&m);
        let names = thread_names(&ev, PID_CPUS);
        let on = |e: &Value| names[&e["tid"].as_u64().unwrap()].clone();
        let runs: Vec<&Value> = ev.iter().filter(|e| e["cat"] == "goroutine").collect();
        assert_eq!(
            runs.len(),
            m.tracks.iter().map(|t| t.slices.len()).sum::<usize>()
        );
        let first = runs.iter().find(|e| e["name"] == "G1 main").unwrap();
        assert_eq!(first["args"]["end"], "blocked: chan receive");
        assert_eq!(first["args"]["p"], 0);
        assert_eq!((ns(&first["ts"]), ns(&first["dur"])), (0, 300_000));
        let ends: Vec<&str> = runs
            .iter()
            .map(|e| e["args"]["end"].as_str().unwrap())
            .collect();
        for want in [
            "preempted by the timer interrupt",
            "preempted at a safe point",
            "exited",
            "entered a blocking call",
            "still running at the end",
            "blocked: sleep",
        ] {
            assert!(ends.contains(&want), "{want} in {ends:?}");
        }
        let no_p = runs
            .iter()
            .find(|e| e["args"]["end"] == "entered a blocking call")
            .unwrap();
        assert_eq!(no_p["args"]["p"], "none");
        let steal = ev.iter().find(|e| e["cat"] == "steal").unwrap();
        assert_eq!(steal["name"], "steal 3 Gs from P0");
        assert_eq!(on(steal), "CPU 1 (M1)");
        for (cat, n) in [
            ("preempt", 3),
            ("retake", 1),
            ("timer", 1),
            ("globalrunq", 1),
            ("create", 2),
        ] {
            assert_eq!(ev.iter().filter(|e| e["cat"] == cat).count(), n, "{cat}");
        }
        let halted = ev.iter().filter(|e| e["name"] == "halted").count();
        assert_eq!(halted, 4);
        assert!(ev
            .iter()
            .all(|e| e["name"] != "spinning" || e["cat"] == "spin"));
        let q: Vec<u64> = ev
            .iter()
            .filter(|e| e["ph"] == "C" && e["name"] == "P0 runqueue")
            .map(|e| e["args"]["len"].as_u64().unwrap())
            .collect();
        assert_eq!(q, [0, 1, 2, 1, 1]);
        let held: Vec<&str> = ev
            .iter()
            .filter(|e| e["pid"] == PID_PS && e["ph"] == "X")
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(held, ["M0", "M1"]);
        let v: Value = serde_json::from_str(&to_string(&m)).unwrap();
        let o = &v["otherData"];
        assert_eq!(
            (o["gomaxprocs"].as_u64(), o["duration_ns"].as_u64()),
            (Some(2), Some(2_000_000))
        );
        assert_eq!(o["lost_events"], 5);
        assert_eq!(o["lost_events_by_m"]["CPU 2 (M2)"], 5);
    }

    #[test]
    fn flows_pair_up_from_the_wake_to_the_woken_run() {
        let m = sample_model();
        let ev = events(&m);
        let names = thread_names(&ev, PID_CPUS);
        let mut outs = BTreeMap::new();
        let mut ins = BTreeMap::new();
        for e in ev.iter().filter(|e| e.get("bind_id").is_some()) {
            let id = e["bind_id"].as_u64().unwrap();
            let side = if e["flow_out"] == true {
                &mut outs
            } else {
                &mut ins
            };
            assert!(
                side.insert(id, e.clone()).is_none(),
                "bind_id {id} used twice on one side"
            );
        }
        assert_eq!(outs.len(), m.flows.len());
        assert_eq!(
            outs.keys().collect::<Vec<_>>(),
            ins.keys().collect::<Vec<_>>()
        );
        for (f, (id, out)) in m.flows.iter().zip(&outs) {
            let inn = &ins[id];
            let track = |mm: u16| m.tracks.iter().find(|t| t.m == mm).unwrap().label.clone();
            assert_eq!(names[&out["tid"].as_u64().unwrap()], track(f.from_m));
            assert_eq!(names[&inn["tid"].as_u64().unwrap()], track(f.to_m));
            assert_eq!(ns(&out["ts"]), f.from_ns as i64);
            assert_eq!(ns(&inn["ts"]), f.to_ns as i64);
            assert_eq!(out["cat"], "wake");
            // The arrow lands on the woken goroutine's run itself.
            assert_eq!(inn["cat"], "goroutine", "{inn}");
            assert_eq!(inn["args"]["goid"], f.goid);
        }
        // The timer's wake-up on halted CPU 2 has its own slice to start from.
        let timer = &outs[&1];
        assert_eq!(timer["args"]["source"], "timer");
        assert_eq!(names[&timer["tid"].as_u64().unwrap()], "CPU 2 (M2)");
    }

    #[test]
    fn a_second_flow_into_one_run_gets_its_own_landing_slice() {
        let mut m = sample_model();
        let mut again = m.flows[1];
        again.from_ns = 1_050_000;
        m.flows.push(again);
        let ev = events(&m);
        let ins: Vec<&Value> = ev.iter().filter(|e| e["flow_in"] == true).collect();
        assert_eq!(ins.len(), m.flows.len());
        assert_eq!(ins.iter().filter(|e| e["cat"] == "wake").count(), 1);
    }

    /// Perfetto's rule for complete slices on one thread: nested or disjoint (touching ends
    /// count as disjoint), else the later one is dropped.
    fn assert_nests(ev: &[Value]) {
        let mut by_tid: BTreeMap<(u64, u64), Vec<(i64, i64)>> = BTreeMap::new();
        for e in ev.iter().filter(|e| e["ph"] == "X") {
            let (s, d) = (ns(&e["ts"]), ns(&e["dur"]));
            let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
            by_tid.entry(key).or_default().push((s, s + d));
        }
        for (tid, mut v) in by_tid {
            v.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            let mut stack: Vec<(i64, i64)> = Vec::new();
            for (s, e) in v {
                while stack
                    .last()
                    .is_some_and(|t| t.1 <= s && !(t.1 == s && t.0 == t.1 && s == e))
                {
                    stack.pop();
                }
                if let Some(top) = stack.last() {
                    assert!(e <= top.1, "on {tid:?} [{s}, {e}) overlaps {top:?}");
                }
                stack.push((s, e));
            }
        }
    }

    #[test]
    fn slices_nest_as_perfetto_requires_and_idle_time_moves_aside_when_it_would_not() {
        let m = sample_model();
        let ev = events(&m);
        assert_nests(&ev);
        assert_eq!(
            thread_names(&ev, PID_CPUS).len(),
            m.tracks.len(),
            "no companion threads"
        );

        // A halt that overlaps a run (a broken model) goes to "<label> idle".
        let mut bad = sample_model();
        bad.tracks[0].halts.push(Span {
            start_ns: 250_000,
            end_ns: 320_000,
        });
        let ev = events(&bad);
        assert_nests(&ev);
        let names = thread_names(&ev, PID_CPUS);
        let idle = names
            .iter()
            .find(|(_, n)| *n == "CPU 0 (M0) idle")
            .map(|(t, _)| *t);
        let idle = idle.expect("a companion thread");
        assert_eq!(
            ev.iter()
                .filter(|e| e["name"] == "halted" && e["tid"] == idle)
                .count(),
            2
        );
    }

    #[test]
    fn times_come_back_to_the_exact_nanosecond_in_perfetto() {
        for n in
            (0..200_000u64).chain([1_001, 4_294_967_297, 3_600_000_000_123, 86_400_000_000_999])
        {
            let d = us(n);
            // What Perfetto does: parse the text (strtod, correctly rounded), times 1000,
            // truncated.
            let back: f64 = serde_json::to_string(&d).unwrap().parse().unwrap();
            assert_eq!((back * 1000.0) as u64, n, "{n} ns written as {d}");
            assert!(
                (d - n as f64 / 1000.0).abs() <= 1e-9 * d.max(1.0),
                "{n}: {d}"
            );
        }
        // A run whose ends are not whole microseconds keeps its exact length (in the text).
        let mut m = sample_model();
        m.tracks[0].slices = std::vec![Slice {
            goid: 1,
            p: Some(0),
            start_ns: 1_001,
            end_ns: 2_003,
            end: SliceEnd::Destroy,
        }];
        let ev = events(&m);
        let r = ev
            .iter()
            .find(|e| e["cat"] == "goroutine" && e["tid"] == TID_CPU)
            .unwrap();
        assert_eq!((ns(&r["ts"]), ns(&r["dur"])), (1_001, 1_002));
        let text = to_string(&m);
        let ts = serde_json::to_string(&us(1_001)).unwrap();
        assert!(text.contains(&format!("\"ts\":{ts}")), "{ts}");
    }
}

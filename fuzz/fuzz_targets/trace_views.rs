//! Everything a decoded trace goes through after the decoder (rt-trace's `model::build`,
//! `check::check`, `summary::summarize` and the JSON, SVG and HTML views, as xtask's
//! `trace::analyze` runs them). Input: records; each record with an unknown kind byte gets a
//! known one, the first becomes the Header (format version and a clock of at least 1 Hz
//! kept, GOMAXPROCS at most 256) and one End is added, so that every input decodes and reaches the views (seeds:
//! traces recorded by test kernels).
//!
//! Properties: never panics, and what `build` returns keeps model.rs's invariants: each
//! track's slices, halts and spins in time order, ending by `duration_ns`, slices not
//! overlapping; every flow ends at or after it starts; `procs` has one track per P; the JSON
//! view parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rt_trace::format::{Kind, Record, RECORD_BYTES, VERSION};

fn fixed_up(bytes: &[u8]) -> Vec<u8> {
    let mut records: Vec<Record> = bytes
        .chunks_exact(RECORD_BYTES)
        .map(|c| Record::from_bytes(c.try_into().unwrap()))
        .collect();
    for r in &mut records {
        if r.kind().is_none_or(|k| k == Kind::Header) {
            let k = Kind::ALL[r.kind_byte() as usize % Kind::ALL.len()];
            let k = if k == Kind::Header { Kind::End } else { k };
            r.head = (r.head & !0xff) | k as u64;
        }
    }
    let first = records.first().copied().unwrap_or_default();
    let header = Record {
        head: (first.head & !0xff) | Kind::Header as u64,
        a: first.a.max(1),
        // GOMAXPROCS at most 256, the kernel's own limit (`gomaxprocs=`): the views take time
        // in proportion to it (a P track each), and the decoder's limit, 65535, takes seconds
        // an input here.
        b: first.b % 257,
        c: VERSION,
        ..first
    };
    let end = Record {
        head: Kind::End as u64,
        ..records.last().copied().unwrap_or_default()
    };
    let mut all = vec![header];
    all.extend(records.iter().skip(1));
    all.push(end);
    all.iter().flat_map(|r| r.to_bytes()).collect()
}

/// Spans in time order (each starts no earlier than the last started; with `disjoint`, no
/// earlier than it ended), each ending by `end`.
fn in_order(spans: impl Iterator<Item = (u64, u64)>, end: u64, disjoint: bool) -> bool {
    let mut last = (0, 0);
    spans.into_iter().all(|(s, e)| {
        let after = if disjoint { last.1 } else { last.0 };
        let ok = after <= s && s <= e && e <= end;
        last = (s, e);
        ok
    })
}

fuzz_target!(|bytes: &[u8]| {
    let stream = fixed_up(bytes);
    let t = rt_trace::decode::decode(&stream).expect("a fixed-up stream decodes");
    let name_of =
        |pc: u64| (!pc.is_multiple_of(3)).then(|| format!("tests::fuzz::f{pc}::{{{{closure}}}}"));
    let m = rt_trace::model::build(&t, &name_of);
    let end = m.duration_ns;
    for track in &m.tracks {
        assert!(
            in_order(
                track.slices.iter().map(|s| (s.start_ns, s.end_ns)),
                end,
                true
            ),
            "slices of M{} out of order or overlapping: {:?}",
            track.m,
            track.slices
        );
        let spans = |v: &[rt_trace::model::Span]| {
            v.iter().map(|s| (s.start_ns, s.end_ns)).collect::<Vec<_>>()
        };
        assert!(
            in_order(spans(&track.halts).into_iter(), end, false),
            "halts: {:?}",
            track.halts
        );
        assert!(
            in_order(spans(&track.spins).into_iter(), end, false),
            "spins: {:?}",
            track.spins
        );
    }
    assert!(
        m.flows.iter().all(|f| f.from_ns <= f.to_ns),
        "a flow back in time"
    );
    assert_eq!(m.procs.len(), m.gomaxprocs as usize);
    let _ = rt_trace::check::check(&t, &m);
    let _ = rt_trace::summary::summarize(&m);
    let json = rt_trace::json::to_string(&m);
    let parsed: Result<serde_json::Value, _> = serde_json::from_str(&json);
    assert!(parsed.is_ok(), "the JSON view does not parse: {parsed:?}");
    let _ = rt_trace::svg::svg(&m);
    let _ = rt_trace::html::html(&m);
});

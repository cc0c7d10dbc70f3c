//! The execution trace's decoder (rt-trace/src/decode.rs): the bytes a kernel wrote into its
//! trace window, or a host run's trace file, as they come. Input: a trace's bytes (seeds:
//! traces recorded by test kernels, and cut or concatenated ones).
//!
//! Properties: never panics; an error is a `DecodeError` whose offset, where it has one, is a
//! record inside the input and shows what the error says (the unknown kind byte, a Header);
//! a decoded run has its events in time order, no meta records among them, at most one event
//! per record, and an end no earlier than any event; `decode_runs` gives one run per Header,
//! and for a stream with one Header it is `decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rt_trace::decode::{decode, decode_runs, DecodeError, Trace};
use rt_trace::format::{Kind, Record, RECORD_BYTES};

fn check_error(bytes: &[u8], e: &DecodeError) {
    match *e {
        DecodeError::UnknownKind { offset, kind } => {
            assert_eq!(offset % RECORD_BYTES, 0);
            assert!(offset + RECORD_BYTES <= bytes.len(), "{e:?} past the input");
            assert_eq!(bytes[offset + 8], kind);
            assert!(Kind::from_u8(kind).is_none());
        }
        DecodeError::TwoHeaders { offset } => {
            assert_eq!(offset % RECORD_BYTES, 0);
            assert!(offset + RECORD_BYTES <= bytes.len(), "{e:?} past the input");
            assert_eq!(bytes[offset + 8], Kind::Header as u8);
        }
        DecodeError::Length { bytes: n } => {
            assert_eq!(n % RECORD_BYTES, bytes.len() % RECORD_BYTES)
        }
        _ => {}
    }
    assert!(!e.to_string().is_empty());
}

fn check_run(t: &Trace, records: usize) {
    assert!(t.hz > 0);
    assert!(t.events.len() <= records);
    assert!(
        t.events.windows(2).all(|w| w[0].ts <= w[1].ts),
        "events out of order"
    );
    assert!(t
        .events
        .iter()
        .all(|r| !r.kind().expect("a known kind").is_meta()));
    assert!(t.events.last().is_none_or(|r| r.ts <= t.end));
}

fuzz_target!(|bytes: &[u8]| {
    let records = bytes.len() / RECORD_BYTES;
    // The format itself: every record's bytes read back to the same bytes.
    for chunk in bytes.chunks_exact(RECORD_BYTES) {
        let r = Record::from_bytes(chunk.try_into().unwrap());
        assert_eq!(&r.to_bytes()[..], chunk);
    }
    let one = decode(bytes);
    match &one {
        Ok(t) => check_run(t, records),
        Err(e) => check_error(bytes, e),
    }
    let headers = bytes
        .chunks_exact(RECORD_BYTES)
        .filter(|c| c[8] == Kind::Header as u8)
        .count();
    match decode_runs(bytes) {
        Ok(runs) => {
            assert_eq!(runs.len(), headers);
            for t in &runs {
                check_run(t, records);
            }
            if headers == 1 {
                assert_eq!(one.as_ref().ok(), runs.first(), "decode_runs is not decode");
            }
        }
        Err(e) => {
            check_error(bytes, &e);
            if headers == 1 {
                assert!(
                    one.is_err(),
                    "decode_runs failed where decode did not: {e:?}"
                );
            }
        }
    }
});

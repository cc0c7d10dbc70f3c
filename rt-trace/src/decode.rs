//! Reading a trace's bytes (format.rs) into records in time order, with its meta records
//! taken apart. Every way a stream can be wrong is a named [`DecodeError`]: a length that is
//! not a whole number of records, a kind this decoder does not know, no header (not a trace),
//! no end (the run was cut short).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use crate::format::{Counter, Kind, Record, NO_P, RECORD_BYTES, VERSION};

/// A decoded trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Clock ticks per second.
    pub hz: u64,
    pub gomaxprocs: u32,
    /// The header's and the end's timestamps (ticks).
    pub start: u64,
    pub end: u64,
    /// The scheduler events (no meta records), by timestamp; records with equal timestamps
    /// keep their order in the stream (an M's own records are in the order it wrote them).
    pub events: Vec<Record>,
    /// M → (CPU or thread number, whether it is a CPU), from MInfo.
    pub ms: BTreeMap<u16, (u64, bool)>,
    /// Events lost per M (the largest count any of its Lost records gave).
    pub lost: BTreeMap<u16, u64>,
    /// Ms whose buffers were never written out (End's `a`).
    pub unflushed_ms: u64,
    /// The runtime's counts at the end.
    pub counters: BTreeMap<u8, u64>,
}

impl Trace {
    /// Ticks to nanoseconds since the start, saturating: a slow clock and a late timestamp
    /// wrapped past u64 here and made a later event earlier (found by fuzzing, trace_views: a
    /// slice past the trace's end).
    pub fn ns(&self, ts: u64) -> u64 {
        let d = ts.saturating_sub(self.start) as u128;
        u64::try_from(d * 1_000_000_000 / self.hz.max(1) as u128).unwrap_or(u64::MAX)
    }

    pub fn counter(&self, c: Counter) -> Option<u64> {
        self.counters.get(&(c as u8)).copied()
    }

    /// Events lost in all (saturating: the counts are the trace's word, and a sum of them
    /// overflowed, found by fuzzing).
    pub fn lost_total(&self) -> u64 {
        self.lost.values().fold(0, |a, &n| a.saturating_add(n))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The stream is not a whole number of records.
    Length { bytes: usize },
    /// A record's kind byte is not one of format.rs's.
    UnknownKind { offset: usize, kind: u8 },
    /// No Header record: not a trace, or its start was lost.
    NoHeader,
    /// Two Header records: two traces concatenated.
    TwoHeaders { offset: usize },
    /// A version this decoder does not read.
    Version { found: u64 },
    /// No End record: the run was cut short before the trace was finished.
    NoEnd,
    /// The header says the clock has no ticks.
    ZeroClock,
    /// The header's GOMAXPROCS is more Ps than a record can name (P numbers are 16 bits,
    /// [`NO_P`] excluded).
    TooManyPs { found: u64 },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Length { bytes } => write!(
                f,
                "trace is {bytes} bytes, not a whole number of {RECORD_BYTES}-byte records"
            ),
            DecodeError::UnknownKind { offset, kind } => {
                write!(f, "unknown record kind {kind:#04x} at byte {offset}")
            }
            DecodeError::NoHeader => {
                f.write_str("no trace header: not a trace, or its start was lost")
            }
            DecodeError::TwoHeaders { offset } => {
                write!(f, "a second trace header at byte {offset}")
            }
            DecodeError::Version { found } => {
                write!(
                    f,
                    "trace format version {found}, this decoder reads {VERSION}"
                )
            }
            DecodeError::NoEnd => {
                f.write_str("no trace end record: the run stopped before the trace was finished")
            }
            DecodeError::ZeroClock => f.write_str("the trace header gives a clock of 0 Hz"),
            DecodeError::TooManyPs { found } => write!(
                f,
                "the trace header gives GOMAXPROCS {found}; records name at most {NO_P} Ps"
            ),
        }
    }
}

/// Decodes a stream that holds the traces of one or more runs, one after another (a kernel
/// may run several runtimes in a boot; each writes its Header first and its End last).
pub fn decode_runs(bytes: &[u8]) -> Result<Vec<Trace>, DecodeError> {
    if !bytes.len().is_multiple_of(RECORD_BYTES) {
        return Err(DecodeError::Length { bytes: bytes.len() });
    }
    let mut starts = Vec::new();
    for (i, chunk) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        if chunk[8] == Kind::Header as u8 {
            starts.push(i * RECORD_BYTES);
        }
    }
    if starts.first() != Some(&0) {
        return Err(DecodeError::NoHeader);
    }
    let mut runs = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let e = starts.get(k + 1).copied().unwrap_or(bytes.len());
        runs.push(decode(&bytes[s..e]).map_err(|err| shift(err, s))?);
    }
    Ok(runs)
}

/// An error found in a piece of a stream, with its offsets made the stream's.
fn shift(e: DecodeError, by: usize) -> DecodeError {
    match e {
        DecodeError::UnknownKind { offset, kind } => DecodeError::UnknownKind {
            offset: offset + by,
            kind,
        },
        DecodeError::TwoHeaders { offset } => DecodeError::TwoHeaders {
            offset: offset + by,
        },
        other => other,
    }
}

/// Decodes the trace of one run.
pub fn decode(bytes: &[u8]) -> Result<Trace, DecodeError> {
    if !bytes.len().is_multiple_of(RECORD_BYTES) {
        return Err(DecodeError::Length { bytes: bytes.len() });
    }
    let mut header = None;
    let mut end = None;
    let mut unflushed_ms = 0;
    let mut events = Vec::new();
    let mut ms = BTreeMap::new();
    let mut lost: BTreeMap<u16, u64> = BTreeMap::new();
    let mut counters = BTreeMap::new();
    for (i, chunk) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        let offset = i * RECORD_BYTES;
        let r = Record::from_bytes(chunk.try_into().expect("chunks_exact gives whole records"));
        let Some(kind) = r.kind() else {
            return Err(DecodeError::UnknownKind {
                offset,
                kind: r.kind_byte(),
            });
        };
        if i == 0 && kind != Kind::Header {
            // The recorder writes its Header first (found by fuzzing: a stream whose Header
            // came later decoded here and not in `decode_runs`).
            return Err(DecodeError::NoHeader);
        }
        match kind {
            Kind::Header => {
                if header.is_some() {
                    return Err(DecodeError::TwoHeaders { offset });
                }
                if r.c != VERSION {
                    return Err(DecodeError::Version { found: r.c });
                }
                header = Some(r);
            }
            Kind::End => {
                end = Some(r.ts);
                unflushed_ms = r.a;
            }
            Kind::MInfo => {
                ms.insert(r.m(), (r.a, r.arg() == 1));
            }
            Kind::Lost => {
                let e = lost.entry(r.m()).or_default();
                *e = (*e).max(r.a);
            }
            Kind::Counter => {
                counters.insert(r.a as u8, r.b);
            }
            _ => events.push(r),
        }
    }
    let header = header.ok_or(DecodeError::NoHeader)?;
    let end = end.ok_or(DecodeError::NoEnd)?;
    if header.a == 0 {
        return Err(DecodeError::ZeroClock);
    }
    // Found by the fuzzer (trace_views): a header with GOMAXPROCS in the hundreds of
    // thousands made the model a track per P, and the views ran for seconds or out of memory.
    if header.b > NO_P as u64 {
        return Err(DecodeError::TooManyPs { found: header.b });
    }
    // Stable: an M's records keep the order it wrote them in when their timestamps tie.
    events.sort_by_key(|r| r.ts);
    Ok(Trace {
        hz: header.a,
        gomaxprocs: header.b as u32,
        start: header.ts,
        end: end.max(events.last().map_or(0, |r| r.ts)),
        events,
        ms,
        lost,
        unflushed_ms,
        counters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SYSMON;

    fn rec(ts: u64, kind: Kind, m: u16, a: u64) -> Record {
        Record {
            ts,
            head: Record::head(kind as u8, m, NO_P, 0, 0),
            a,
            ..Record::default()
        }
    }

    fn bytes(rs: &[Record]) -> Vec<u8> {
        rs.iter().flat_map(|r| r.to_bytes()).collect()
    }

    fn header(ts: u64) -> Record {
        Record {
            ts,
            head: Record::head(Kind::Header as u8, SYSMON, NO_P, 0, 0),
            a: 1_000_000_000,
            b: 2,
            c: VERSION,
        }
    }

    #[test]
    fn events_come_out_in_time_order_and_meta_records_are_taken_apart() {
        let mut lost = rec(0, Kind::Lost, 1, 7);
        lost.ts = 50;
        let s = bytes(&[
            header(10),
            rec(30, Kind::GoStart, 1, 5),
            rec(20, Kind::GoStart, 0, 4),
            lost,
            rec(40, Kind::End, SYSMON, 0),
        ]);
        let t = decode(&s).unwrap();
        assert_eq!(t.events.iter().map(|r| r.a).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(t.lost_total(), 7);
        assert_eq!(t.ns(30), 20);
        // A 1 Hz clock: ns past u64 saturate, and stay in order.
        let slow = Trace { hz: 1, ..t.clone() };
        assert!(slow.ns(u64::MAX / 2) <= slow.ns(u64::MAX));
        assert_eq!(slow.ns(u64::MAX), u64::MAX);
        assert_eq!(t.end, 40);
    }

    #[test]
    fn a_cut_or_foreign_stream_is_a_named_error() {
        let whole = bytes(&[header(1), rec(2, Kind::End, SYSMON, 0)]);
        assert!(decode(&whole).is_ok());
        assert_eq!(
            decode(&whole[..whole.len() - 1]),
            Err(DecodeError::Length {
                bytes: whole.len() - 1
            })
        );
        assert_eq!(decode(&whole[..RECORD_BYTES]), Err(DecodeError::NoEnd));
        assert_eq!(decode(&whole[RECORD_BYTES..]), Err(DecodeError::NoHeader));
        // The fuzzer's: a Header after an event is a stream whose start was lost, for decode
        // as for decode_runs.
        let late = bytes(&[
            rec(1, Kind::GoStart, 0, 1),
            header(2),
            rec(3, Kind::End, SYSMON, 0),
        ]);
        assert_eq!(decode(&late), Err(DecodeError::NoHeader));
        assert_eq!(decode_runs(&late), Err(DecodeError::NoHeader));
        // Lost counts that do not fit a sum (the fuzzer's, through check.rs).
        let lost = |m, n| Record {
            head: Record::head(Kind::Lost as u8, m, NO_P, 0, 0),
            a: n,
            ..Record::default()
        };
        let t = decode(&bytes(&[
            header(1),
            lost(0, u64::MAX),
            lost(1, 9),
            rec(2, Kind::End, SYSMON, 0),
        ]))
        .unwrap();
        assert_eq!(t.lost_total(), u64::MAX);
        // GOMAXPROCS past what a P number can be (the fuzzer's 327680).
        let mut many = header(1);
        many.b = 327_680;
        let many = bytes(&[many, rec(2, Kind::End, SYSMON, 0)]);
        assert_eq!(
            decode(&many),
            Err(DecodeError::TooManyPs { found: 327_680 })
        );
        let mut most = header(1);
        most.b = NO_P as u64;
        assert!(decode(&bytes(&[most, rec(2, Kind::End, SYSMON, 0)])).is_ok());
        let mut bad = whole.clone();
        bad[RECORD_BYTES + 8] = 0x77;
        assert_eq!(
            decode(&bad),
            Err(DecodeError::UnknownKind {
                offset: RECORD_BYTES,
                kind: 0x77
            })
        );
    }

    #[test]
    fn runs_one_after_another_come_apart_at_their_headers() {
        let one = bytes(&[
            header(1),
            rec(2, Kind::GoStart, 0, 1),
            rec(3, Kind::End, SYSMON, 0),
        ]);
        let two = bytes(&[header(10), rec(11, Kind::End, SYSMON, 0)]);
        let both = [one.clone(), two.clone()].concat();
        let runs = decode_runs(&both).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].events.len(), runs[1].start), (1, 10));
        assert_eq!(
            decode(&both),
            Err(DecodeError::TwoHeaders { offset: one.len() })
        );
        // The first run cut short: its End is missing.
        let cut = [one[..2 * RECORD_BYTES].to_vec(), two].concat();
        assert_eq!(decode_runs(&cut), Err(DecodeError::NoEnd));
    }
}

//! Checking a trace for what a correct scheduler never records: two runs at once on one M, a
//! goroutine stopped where it was not running, a run that never ends, a goroutine whose life
//! goes out of order (started while blocked, unblocked while running, anything after it
//! exited), a flow that does not end at the run it caused, and event counts that disagree with
//! the runtime's own counters.
//!
//! Invariants: [`check`] only reads; every problem and warning is one sentence that names the
//! M, the goroutine and the time (ns since the trace's start) it is about. A report with no
//! problems ([`Report::is_ok`]) may still carry warnings: events the trace says it lost (which
//! are always reported) and count mismatches those losses can explain. Events with equal
//! timestamps on different Ms are treated as concurrent: a goroutine's life is accepted in
//! whichever order of them makes it valid.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::decode::Trace;
use crate::format::{Counter, Kind, StopReason, UnblockSource, WAIT_REASONS};
use crate::model::{self, m_name, GState, MIssue, Model, SliceEnd};

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Things a correct trace of a correct scheduler cannot contain.
    pub problems: Vec<String>,
    /// Things worth knowing that do not make the trace wrong (lost events, and what they
    /// may explain).
    pub warnings: Vec<String>,
}

impl Report {
    /// No problems (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ok() {
            writeln!(f, "trace check: ok ({} warnings)", self.warnings.len())?;
        } else {
            writeln!(
                f,
                "trace check: {} problems, {} warnings",
                self.problems.len(),
                self.warnings.len()
            )?;
        }
        for p in &self.problems {
            writeln!(f, "  problem: {p}")?;
        }
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        Ok(())
    }
}

/// Checks a trace and the model built from it ([`model::build`]).
pub fn check(t: &Trace, m: &Model) -> Report {
    let mut r = Report::default();
    check_tracks(m, &mut r.problems);
    check_ms(t, &mut r.problems);
    check_lives(t, &mut r.problems);
    check_codes(t, &mut r.problems);
    check_flows(t, m, &mut r.problems);
    check_counts(t, &mut r);
    r
}

/// "GoStop of G5 on M1 at 1200 ns".
fn event(t: &Trace, i: usize) -> String {
    let e = &t.events[i];
    let name = e.kind().map_or("?", Kind::name);
    format!(
        "{name} of G{} on {} at {} ns",
        e.a,
        m_name(e.m()),
        t.ns(e.ts)
    )
}

/// The model's tracks: no two runs overlap, every run ended.
fn check_tracks(m: &Model, problems: &mut Vec<String>) {
    for tr in &m.tracks {
        for w in tr.slices.windows(2) {
            if w[0].end_ns > w[1].start_ns {
                problems.push(format!(
                    "on {}: G{}'s run from {} ns to {} ns overlaps G{}'s run from {} ns",
                    tr.label, w[0].goid, w[0].start_ns, w[0].end_ns, w[1].goid, w[1].start_ns
                ));
            }
        }
        for s in tr.slices.iter().filter(|s| s.end == SliceEnd::Unfinished) {
            if s.end_ns >= m.duration_ns {
                problems.push(format!(
                    "on {}: G{} started at {} ns and never stopped (a GoStart without a \
                     matching stop: no GoStop, GoBlock, GoDestroy or GoSyscallBegin before the \
                     trace ended)",
                    tr.label, s.goid, s.start_ns
                ));
            } else {
                problems.push(format!(
                    "on {}: G{} started at {} ns and never stopped (a GoStart without a \
                     matching stop: another run began on the M at {} ns)",
                    tr.label, s.goid, s.start_ns, s.end_ns
                ));
            }
        }
    }
}

/// Each M's own sequence: a run starts only when none is open, ends only if it is the one
/// running.
fn check_ms(t: &Trace, problems: &mut Vec<String>) {
    for issue in model::walk_ms(t).1 {
        match issue {
            MIssue::StartWhileOpen {
                idx,
                open,
                since_ns,
            } => problems.push(format!(
                "{} while G{open}'s run there (since {since_ns} ns) had not ended",
                event(t, idx)
            )),
            MIssue::NotRunning { idx, running } => {
                let e = &t.events[idx];
                let who = match running {
                    Some(g) => format!("G{g} was running there"),
                    None => String::from("nothing was running there"),
                };
                problems.push(format!(
                    "{}, but G{} was not running on {} ({who})",
                    event(t, idx),
                    e.a,
                    m_name(e.m())
                ));
            }
        }
    }
}

/// Each goroutine's life, across Ms.
fn check_lives(t: &Trace, problems: &mut Vec<String>) {
    for (goid, life) in model::lives(t) {
        for (i, state) in life.errors {
            let Some(kind) = t.events[i].kind() else {
                continue;
            };
            let what = event(t, i);
            let msg = if state == GState::Dead {
                format!("G{goid}: {what}, after G{goid} was destroyed")
            } else if kind == Kind::GoCreate {
                format!(
                    "G{goid}: {what}, but G{goid} was already {} (a goroutine is created \
                     once, before anything else happens to it)",
                    state.as_str()
                )
            } else {
                format!(
                    "G{goid}: {what} while G{goid} was {} (a {} needs it {})",
                    state.as_str(),
                    kind.name(),
                    model::life_transition(kind).0.as_str()
                )
            };
            problems.push(msg);
        }
    }
}

/// Reason codes this decoder does not know, and Ps beyond GOMAXPROCS.
fn check_codes(t: &Trace, problems: &mut Vec<String>) {
    let mut bad_p = BTreeSet::new();
    for (i, e) in t.events.iter().enumerate() {
        let arg = e.arg();
        match e.kind() {
            Some(Kind::GoStop) if StopReason::from_u8(arg).is_none() => {
                problems.push(format!("{} has an unknown stop reason {arg}", event(t, i)));
            }
            Some(Kind::GoBlock) if arg as usize >= WAIT_REASONS.len() => {
                problems.push(format!("{} has an unknown wait reason {arg}", event(t, i)));
            }
            Some(Kind::GoUnblock) if UnblockSource::from_u8(arg).is_none() => {
                problems.push(format!(
                    "{} has an unknown unblock source {arg}",
                    event(t, i)
                ));
            }
            _ => {}
        }
        if let Some(p) = e.p() {
            if p as u32 >= t.gomaxprocs && bad_p.insert((e.m(), p)) {
                problems.push(format!(
                    "{} held P{p} at {} ns, but GOMAXPROCS is {}",
                    m_name(e.m()),
                    t.ns(e.ts),
                    t.gomaxprocs
                ));
            }
        }
    }
}

/// Every flow goes from a GoUnblock to a later (or simultaneous) GoStart of that goroutine.
fn check_flows(t: &Trace, m: &Model, problems: &mut Vec<String>) {
    let at = |kind: Kind| -> BTreeSet<(u64, u16, u64)> {
        t.events
            .iter()
            .filter(|e| e.kind() == Some(kind))
            .map(|e| (e.a, e.m(), t.ns(e.ts)))
            .collect()
    };
    let starts = at(Kind::GoStart);
    let unblocks = at(Kind::GoUnblock);
    for f in &m.flows {
        let what = format!(
            "the wake-up flow of G{} from {} at {} ns to {} at {} ns",
            f.goid,
            m_name(f.from_m),
            f.from_ns,
            m_name(f.to_m),
            f.to_ns
        );
        if f.to_ns < f.from_ns {
            problems.push(format!("{what} ends before it starts"));
        }
        if !starts.contains(&(f.goid, f.to_m, f.to_ns)) {
            problems.push(format!("{what} does not end at a GoStart of G{}", f.goid));
        }
        if !unblocks.contains(&(f.goid, f.from_m, f.from_ns)) {
            problems.push(format!(
                "{what} does not start at a GoUnblock of G{}",
                f.goid
            ));
        }
    }
}

/// The trace's event counts against the runtime's counters, and what the trace lost.
fn check_counts(t: &Trace, r: &mut Report) {
    for (&m, &n) in t.lost.iter().filter(|(_, &n)| n > 0) {
        r.warnings.push(format!(
            "{n} events lost on {} (its trace buffer was full and could not be written out)",
            m_name(m)
        ));
    }
    if t.unflushed_ms > 0 {
        r.warnings.push(format!(
            "{} Ms never wrote out their trace buffers (still running when the runtime \
             ended): their events are missing",
            t.unflushed_ms
        ));
    }
    let lossy = t.lost_total() > 0 || t.unflushed_ms > 0;
    let count = |f: &dyn Fn(Kind, u8) -> bool| -> u64 {
        t.events
            .iter()
            .filter(|e| e.kind().is_some_and(|k| f(k, e.arg())))
            .count() as u64
    };
    let stop = |why: StopReason| count(&|k, a| k == Kind::GoStop && a == why as u8);
    let timers: u64 = t
        .events
        .iter()
        .filter(|e| e.kind() == Some(Kind::TimerFire))
        .fold(0, |a, e| a.saturating_add(e.a));
    let traced = [
        (
            Counter::GoCreated,
            count(&|k, _| k == Kind::GoCreate),
            "GoCreate events",
        ),
        (
            Counter::Steals,
            count(&|k, _| k == Kind::ProcSteal),
            "ProcSteal events",
        ),
        (
            Counter::PreemptSync,
            stop(StopReason::PreemptSync),
            "GoStop events preempted at a safe point",
        ),
        (
            Counter::PreemptAsync,
            stop(StopReason::PreemptAsync),
            "GoStop events preempted by the timer interrupt",
        ),
        (
            Counter::PreemptRequests,
            count(&|k, _| k == Kind::PreemptRequest),
            "PreemptRequest events",
        ),
        (
            Counter::Retakes,
            count(&|k, _| k == Kind::ProcRetake),
            "ProcRetake events",
        ),
        (Counter::TimersRun, timers, "timers run in TimerFire events"),
    ];
    for (c, have, what) in traced {
        let Some(want) = t.counter(c) else { continue };
        if have == want {
            continue;
        }
        let msg = format!(
            "{}: the trace has {have} {what}, the runtime counted {want} (at the trace's end, {} ns)",
            c.name(),
            t.ns(t.end)
        );
        if !lossy {
            r.problems
                .push(format!("{msg}, and the trace lost no events"));
        } else if have < want {
            r.warnings.push(format!(
                "{msg}; the trace lost {} events and {} Ms' buffers, which may account for it",
                t.lost_total(),
                t.unflushed_ms
            ));
        } else {
            r.problems.push(format!(
                "{msg}: more than the runtime counted, which lost events cannot explain"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::build;
    use crate::model::tests::{counter, ev, names, sample, sample_records, trace, With};
    use Kind::*;

    fn check_of(records: &[crate::format::Record], end_ns: u64) -> Report {
        let t = trace(records, end_ns);
        check(&t, &build(&t, &names))
    }

    /// Whether some problem contains every one of `parts`.
    fn has(list: &[String], parts: &[&str]) -> bool {
        list.iter().any(|p| parts.iter().all(|s| p.contains(s)))
    }

    #[test]
    fn the_correct_sample_is_ok_with_no_warnings() {
        let (t, m) = sample();
        let r = check(&t, &m);
        assert_eq!(r, Report::default(), "{r}");
        assert!(r.is_ok());
    }

    #[test]
    fn overlapping_runs_on_a_track_are_a_problem() {
        let (t, mut m) = sample();
        // G1's first run on M0 now ends after G2's began.
        m.tracks[0].slices[0].end_ns = 35;
        let r = check(&t, &m);
        assert!(!r.is_ok());
        assert!(
            has(
                &r.problems,
                &[
                    "CPU 0 (M0)",
                    "G1's run from 10 ns to 35 ns overlaps G2's run from 30 ns"
                ]
            ),
            "{r}"
        );
    }

    #[test]
    fn a_start_while_a_run_is_open_is_a_problem() {
        let r = check_of(
            &[
                ev(10, GoStart, 0, 1).with_p(0, 0),
                ev(20, GoStart, 0, 2).with_p(0, 0),
                ev(30, GoDestroy, 0, 2).with_p(0, 0),
            ],
            40,
        );
        assert!(
            has(
                &r.problems,
                &["GoStart of G2 on M0 at 20 ns while G1's run there (since 10 ns) had not ended"]
            ),
            "{r}"
        );
        // The model cut G1's run off there.
        assert!(
            has(
                &r.problems,
                &["G1 started at 10 ns and never stopped", "at 20 ns"]
            ),
            "{r}"
        );
    }

    #[test]
    fn a_stop_without_a_start_is_a_problem() {
        let r = check_of(
            &[
                ev(0, GoCreate, 0, 1).with_p(0, 0),
                ev(10, GoStop, 0, 1).with_p(0, 0),
                ev(20, GoStart, 1, 2).with_p(1, 0),
                ev(30, GoBlock, 0, 2).with_p(0, 0),
                ev(40, GoDestroy, 1, 2).with_p(1, 0),
            ],
            50,
        );
        assert!(
            has(&r.problems, &["GoStop of G1 on M0 at 10 ns, but G1 was not running on M0 (nothing was running there)"]),
            "{r}"
        );
        assert!(
            has(&r.problems, &["G1: GoStop", "while G1 was runnable"]),
            "{r}"
        );
        // G2 runs on M1, not on M0; by its own life it blocked there, so M1's GoDestroy of
        // it is out of order too.
        assert!(
            has(
                &r.problems,
                &["GoBlock of G2 on M0 at 30 ns", "not running on M0"]
            ),
            "{r}"
        );
        assert!(
            has(
                &r.problems,
                &["G2: GoDestroy of G2 on M1 at 40 ns while G2 was waiting"]
            ),
            "{r}"
        );
        assert_eq!(r.problems.len(), 4, "{r}");
    }

    #[test]
    fn a_start_without_a_stop_is_a_problem() {
        let r = check_of(&[ev(10, GoStart, 1, 4).with_p(0, 0)], 50);
        assert_eq!(r.problems.len(), 1, "{r}");
        assert!(
            has(
                &r.problems,
                &[
                    "on M1: G4 started at 10 ns and never stopped",
                    "GoStart without a matching stop"
                ]
            ),
            "{r}"
        );
    }

    #[test]
    fn an_unblock_of_a_running_goroutine_is_a_problem() {
        let r = check_of(
            &[
                ev(0, GoCreate, 0, 1).with_p(0, 0),
                ev(10, GoStart, 0, 1).with_p(0, 0),
                ev(20, GoUnblock, 1, 1).with_b(3),
                ev(30, GoDestroy, 0, 1).with_p(0, 0),
            ],
            40,
        );
        assert_eq!(r.problems.len(), 1, "{r}");
        assert!(
            has(
                &r.problems,
                &[
                    "G1: GoUnblock of G1 on M1 at 20 ns while G1 was running",
                    "needs it waiting"
                ]
            ),
            "{r}"
        );
    }

    #[test]
    fn a_refused_park_and_concurrent_equal_timestamps_are_fine() {
        // G1 parks on M0 and is readied at once (the park was refused), on the same M at the
        // same instant; G2's GoStart on M1 is in the stream before the GoUnblock on M0 at the
        // same instant that made it runnable.
        let r = check_of(
            &[
                ev(40, GoStart, 1, 2).with_p(1, 0),
                ev(50, GoDestroy, 1, 2).with_p(1, 0),
                ev(0, GoCreate, 0, 1).with_p(0, 0),
                ev(0, GoCreate, 0, 2).with_p(0, 0),
                ev(5, GoStart, 0, 2).with_p(0, 0),
                ev(8, GoBlock, 0, 2).with_p(0, 0).with_arg(2),
                ev(10, GoStart, 0, 1).with_p(0, 0),
                ev(20, GoBlock, 0, 1).with_p(0, 0).with_arg(3),
                ev(20, GoUnblock, 0, 1).with_p(0, 0),
                ev(20, GoStart, 0, 1).with_p(0, 0),
                ev(40, GoUnblock, 0, 2).with_p(0, 0).with_b(1),
                ev(60, GoDestroy, 0, 1).with_p(0, 0),
            ],
            70,
        );
        assert!(r.is_ok(), "{r}");
    }

    #[test]
    fn anything_after_destroy_and_a_second_create_are_problems() {
        let r = check_of(
            &[
                ev(0, GoCreate, 0, 1).with_p(0, 0),
                ev(10, GoStart, 0, 1).with_p(0, 0),
                ev(20, GoDestroy, 0, 1).with_p(0, 0),
                ev(30, GoStart, 0, 1).with_p(0, 0),
                ev(40, GoStop, 0, 1).with_p(0, 0),
                ev(50, GoCreate, 0, 1).with_p(0, 0),
            ],
            60,
        );
        assert!(
            has(
                &r.problems,
                &["G1: GoStart of G1 on M0 at 30 ns, after G1 was destroyed"]
            ),
            "{r}"
        );
        assert!(
            has(
                &r.problems,
                &["G1: GoCreate of G1 on M0 at 50 ns, but G1 was already runnable"]
            ),
            "{r}"
        );
    }

    #[test]
    fn a_flow_that_does_not_end_at_a_start_is_a_problem() {
        let (t, mut m) = sample();
        m.flows[0].to_ns = 75;
        let r = check(&t, &m);
        assert!(
            has(
                &r.problems,
                &["flow of G1 from M0 at 60 ns to M1 at 75 ns does not end at a GoStart of G1"]
            ),
            "{r}"
        );
        m.flows[0].to_ns = 50;
        let r = check(&t, &m);
        assert!(has(&r.problems, &["ends before it starts"]), "{r}");
    }

    #[test]
    fn unknown_reasons_and_ps_beyond_gomaxprocs_are_problems() {
        let r = check_of(
            &[
                ev(10, GoStart, 0, 1).with_p(5, 0),
                ev(20, GoStop, 0, 1).with_p(5, 0).with_arg(9),
                ev(30, GoUnblock, 0, 2).with_arg(9),
            ],
            40,
        );
        assert!(
            has(&r.problems, &["M0 held P5 at 10 ns, but GOMAXPROCS is 2"]),
            "{r}"
        );
        assert!(
            has(
                &r.problems,
                &["GoStop of G1 on M0 at 20 ns has an unknown stop reason 9"]
            ),
            "{r}"
        );
        assert!(
            has(
                &r.problems,
                &["GoUnblock of G2", "unknown unblock source 9"]
            ),
            "{r}"
        );
        assert_eq!(r.problems.len(), 3, "{r}");
    }

    /// The sample with the runtime's steal counter at 2 (the trace has 1 ProcSteal), and
    /// `extra` records.
    fn miscounted(extra: &[crate::format::Record]) -> Report {
        let mut rs = sample_records();
        rs.push(counter(crate::format::Counter::Steals, 2));
        rs.extend_from_slice(extra);
        let t = trace(&rs, 300);
        check(&t, &build(&t, &names))
    }

    #[test]
    fn a_count_mismatch_without_loss_is_a_problem() {
        let r = miscounted(&[]);
        assert_eq!(r.problems.len(), 1, "{r}");
        assert!(
            has(
                &r.problems,
                &[
                    "steals: the trace has 1 ProcSteal events, the runtime counted 2",
                    "lost no events"
                ]
            ),
            "{r}"
        );
        assert_eq!(r.warnings, Vec::<String>::new());
    }

    #[test]
    fn a_count_mismatch_with_lost_events_is_a_warning() {
        let lost = ev(100, Lost, 1, 4);
        let r = miscounted(&[lost]);
        assert!(r.is_ok(), "{r}");
        assert!(has(&r.warnings, &["4 events lost on M1"]), "{r}");
        assert!(
            has(
                &r.warnings,
                &["steals: the trace has 1", "counted 2", "lost 4 events"]
            ),
            "{r}"
        );
        assert_eq!(r.warnings.len(), 2, "{r}");
    }

    #[test]
    fn losses_are_always_warned_about_and_cannot_explain_extra_events() {
        let mut rs = sample_records();
        rs.push(counter(crate::format::Counter::TimersRun, 1));
        let mut t = trace(&rs, 300);
        t.unflushed_ms = 2;
        let r = check(&t, &build(&t, &names));
        assert!(
            has(&r.warnings, &["2 Ms never wrote out their trace buffers"]),
            "{r}"
        );
        // Two timers ran in the trace, the runtime counted one: loss cannot explain that.
        assert!(
            has(
                &r.problems,
                &[
                    "timers run: the trace has 2",
                    "counted 1",
                    "lost events cannot explain"
                ]
            ),
            "{r}"
        );
    }
}

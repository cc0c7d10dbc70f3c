//! A trace's figures in a few lines of text: how each CPU spent the trace (running
//! goroutines, halted, idle otherwise), and the scheduler's totals (goroutines run, steals,
//! migrations, yields and preemptions, how long runs lasted, how long a woken goroutine waited
//! to run, events lost).
//!
//! Invariants: [`summarize`] reads only the [`Model`]; per CPU, `busy_ns + halted_ns +
//! idle_ns == duration_ns` unless runs and halts overlap (a broken trace), in which case idle
//! is clamped to 0; shares are those times over the duration (0 for an empty trace). Means
//! are truncated to whole nanoseconds, p99 is the nearest-rank percentile; both are `None`
//! when there is nothing to measure.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::format::{StopReason, SYSMON};
use crate::model::{MarkKind, Model, SliceEnd};

/// How one CPU (an M's track, not sysmon's) spent the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuRow {
    pub m: u16,
    pub label: String,
    /// Time in goroutine runs.
    pub busy_ns: u64,
    /// Time halted (MSleep..MWake).
    pub halted_ns: u64,
    /// The rest: in the scheduler, spinning, or in a blocking call.
    pub idle_ns: u64,
    /// The same as shares of the trace's duration (0..=1).
    pub busy: f64,
    pub halted: f64,
    pub idle: f64,
}

/// A trace's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub duration_ns: u64,
    pub cpus: Vec<CpuRow>,
    /// Distinct goroutines with at least one run.
    pub goroutines_run: usize,
    /// Run-queue steals (ProcSteal marks).
    pub steals: u64,
    /// Runs that began on a different M than the goroutine's previous run.
    pub migrations: u64,
    /// Runs ended by a yield, a preemption at a safe point, a preemption from the timer.
    pub yields: u64,
    pub preempt_sync: u64,
    pub preempt_async: u64,
    /// Finished runs (not `Unfinished`), and their mean and p99 length.
    pub runs: usize,
    pub run_mean_ns: Option<u64>,
    pub run_p99_ns: Option<u64>,
    /// Wake-ups (flows), and the mean and p99 time from GoUnblock to GoStart.
    pub wakes: usize,
    pub wake_mean_ns: Option<u64>,
    pub wake_p99_ns: Option<u64>,
    /// Events lost in all, and Ms whose buffers were never written out.
    pub lost: u64,
    pub unflushed_ms: u64,
}

/// The mean (truncated) and the nearest-rank p99 of `v`.
fn mean_p99(mut v: Vec<u64>) -> (Option<u64>, Option<u64>) {
    if v.is_empty() {
        return (None, None);
    }
    v.sort_unstable();
    let n = v.len();
    let sum: u128 = v.iter().map(|&x| x as u128).sum();
    let rank = (99 * n).div_ceil(100); // 1-based
    (Some((sum / n as u128) as u64), Some(v[rank - 1]))
}

/// Figures from a model.
pub fn summarize(m: &Model) -> Summary {
    let dur = m.duration_ns;
    let share = |ns: u64| {
        if dur == 0 {
            0.0
        } else {
            ns as f64 / dur as f64
        }
    };
    let cpus = m
        .tracks
        .iter()
        .filter(|t| t.m != SYSMON)
        .map(|t| {
            let busy_ns: u64 = t
                .slices
                .iter()
                .map(|s| s.end_ns.saturating_sub(s.start_ns))
                .sum();
            let halted_ns: u64 = t
                .halts
                .iter()
                .map(|s| s.end_ns.saturating_sub(s.start_ns))
                .sum();
            let idle_ns = dur.saturating_sub(busy_ns).saturating_sub(halted_ns);
            CpuRow {
                m: t.m,
                label: t.label.clone(),
                busy_ns,
                halted_ns,
                idle_ns,
                busy: share(busy_ns),
                halted: share(halted_ns),
                idle: share(idle_ns),
            }
        })
        .collect();

    // Every run, by goroutine, in time order (for migrations).
    let mut runs_of: BTreeMap<u64, Vec<(u64, u16)>> = BTreeMap::new();
    let mut run_lens = Vec::new();
    let (mut yields, mut preempt_sync, mut preempt_async, mut steals) = (0, 0, 0, 0);
    for t in &m.tracks {
        for s in &t.slices {
            runs_of.entry(s.goid).or_default().push((s.start_ns, t.m));
            match s.end {
                SliceEnd::Unfinished => continue,
                SliceEnd::Stop(StopReason::Yield) => yields += 1,
                SliceEnd::Stop(StopReason::PreemptSync) => preempt_sync += 1,
                SliceEnd::Stop(StopReason::PreemptAsync) => preempt_async += 1,
                _ => {}
            }
            run_lens.push(s.end_ns.saturating_sub(s.start_ns));
        }
        steals += t
            .marks
            .iter()
            .filter(|k| matches!(k.kind, MarkKind::Steal { .. }))
            .count() as u64;
    }
    let mut migrations = 0;
    for runs in runs_of.values_mut() {
        runs.sort_unstable();
        migrations += runs.windows(2).filter(|w| w[0].1 != w[1].1).count() as u64;
    }
    let goroutines_run = runs_of.len();
    let runs = run_lens.len();
    let (run_mean_ns, run_p99_ns) = mean_p99(run_lens);
    let wake_lens: Vec<u64> = m
        .flows
        .iter()
        .map(|f| f.to_ns.saturating_sub(f.from_ns))
        .collect();
    let wakes = wake_lens.len();
    let (wake_mean_ns, wake_p99_ns) = mean_p99(wake_lens);
    Summary {
        duration_ns: dur,
        cpus,
        goroutines_run,
        steals,
        migrations,
        yields,
        preempt_sync,
        preempt_async,
        runs,
        run_mean_ns,
        run_p99_ns,
        wakes,
        wake_mean_ns,
        wake_p99_ns,
        lost: m.lost.values().fold(0, |a, &n| a.saturating_add(n)),
        unflushed_ms: m.unflushed_ms,
    }
}

/// A duration for people: "850 ns", "12.3 µs", "4.56 ms", "1.234 s".
pub(crate) struct Dur(pub u64);

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        let s = if ns < 1_000 {
            alloc::format!("{ns} ns")
        } else if ns < 1_000_000 {
            alloc::format!("{:.1} µs", ns as f64 / 1e3)
        } else if ns < 1_000_000_000 {
            alloc::format!("{:.2} ms", ns as f64 / 1e6)
        } else {
            alloc::format!("{:.3} s", ns as f64 / 1e9)
        };
        f.pad(&s)
    }
}

fn opt_dur(v: Option<u64>) -> String {
    v.map_or_else(|| String::from("-"), |ns| alloc::format!("{}", Dur(ns)))
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self
            .cpus
            .iter()
            .map(|c| c.label.chars().count())
            .chain([3, "wake-up latency".len()])
            .max()
            .unwrap_or(0);
        writeln!(
            f,
            "{:<w$}  {:>7}  {:>7}  {:>7}",
            "CPU", "busy", "idle", "halted"
        )?;
        for c in &self.cpus {
            writeln!(
                f,
                "{:<w$}  {:>6.1}%  {:>6.1}%  {:>6.1}%",
                c.label,
                c.busy * 100.0,
                c.idle * 100.0,
                c.halted * 100.0
            )?;
        }
        writeln!(f)?;
        let rows: [(&str, String); 9] = [
            ("duration", alloc::format!("{}", Dur(self.duration_ns))),
            ("goroutines run", alloc::format!("{}", self.goroutines_run)),
            ("steals", alloc::format!("{}", self.steals)),
            ("migrations", alloc::format!("{}", self.migrations)),
            ("yields", alloc::format!("{}", self.yields)),
            (
                "preemptions",
                alloc::format!(
                    "{} at a safe point, {} by the timer interrupt",
                    self.preempt_sync,
                    self.preempt_async
                ),
            ),
            (
                "run length",
                alloc::format!(
                    "mean {}, p99 {} ({} runs)",
                    opt_dur(self.run_mean_ns),
                    opt_dur(self.run_p99_ns),
                    self.runs
                ),
            ),
            (
                "wake-up latency",
                alloc::format!(
                    "mean {}, p99 {} ({} wake-ups)",
                    opt_dur(self.wake_mean_ns),
                    opt_dur(self.wake_p99_ns),
                    self.wakes
                ),
            ),
            (
                "events lost",
                if self.unflushed_ms > 0 {
                    alloc::format!(
                        "{}, and {} Ms never written out",
                        self.lost,
                        self.unflushed_ms
                    )
                } else {
                    alloc::format!("{}", self.lost)
                },
            ),
        ];
        for (k, v) in rows {
            writeln!(f, "{k:<w$}  {v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::sample;
    use alloc::string::ToString;

    #[test]
    fn the_samples_figures_are_exact() {
        let (_, m) = sample();
        let s = summarize(&m);
        assert_eq!(s.duration_ns, 300);
        let rows: Vec<_> = s
            .cpus
            .iter()
            .map(|c| (c.m, c.label.as_str(), c.busy_ns, c.idle_ns, c.halted_ns))
            .collect();
        // M0: runs 20+70+50+50+5+5+10, halts 60+10. M1: runs 10+30, halts 45+110.
        assert_eq!(
            rows,
            [
                (0, "CPU 0 (M0)", 210, 20, 70),
                (1, "CPU 3 (M1)", 40, 105, 155)
            ]
        );
        assert_eq!((s.cpus[0].busy, s.cpus[0].halted), (0.7, 70.0 / 300.0));
        assert_eq!(s.cpus[1].idle, 0.35);
        assert_eq!(s.goroutines_run, 3);
        assert_eq!(s.steals, 1);
        // G1: M0 → M1 (after the steal) → M1 → M0 (from the global queue).
        assert_eq!(s.migrations, 2);
        assert_eq!((s.yields, s.preempt_sync, s.preempt_async), (1, 1, 1));
        // Nine runs, 250 ns in all; the longest is G2's 70 ns.
        assert_eq!(
            (s.runs, s.run_mean_ns, s.run_p99_ns),
            (9, Some(27), Some(70))
        );
        assert_eq!(
            (s.wakes, s.wake_mean_ns, s.wake_p99_ns),
            (1, Some(10), Some(10))
        );
        assert_eq!((s.lost, s.unflushed_ms), (0, 0));
    }

    #[test]
    fn the_table_is_aligned_and_names_every_figure() {
        let (_, mut m) = sample();
        m.lost.insert(1, 4);
        let text = summarize(&m).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "CPU                 busy     idle   halted");
        assert_eq!(lines[1], "CPU 0 (M0)         70.0%     6.7%    23.3%");
        assert_eq!(lines[2], "CPU 3 (M1)         13.3%    35.0%    51.7%");
        assert_eq!(lines[3], "");
        for want in [
            "duration         300 ns",
            "goroutines run   3",
            "steals           1",
            "migrations       2",
            "yields           1",
            "preemptions      1 at a safe point, 1 by the timer interrupt",
            "run length       mean 27 ns, p99 70 ns (9 runs)",
            "wake-up latency  mean 10 ns, p99 10 ns (1 wake-ups)",
            "events lost      4",
        ] {
            assert!(lines.contains(&want), "{want:?} not in\n{text}");
        }
    }

    #[test]
    fn percentiles_durations_and_an_empty_trace() {
        let v: Vec<u64> = (1..=200).collect();
        assert_eq!(mean_p99(v), (Some(100), Some(198)));
        assert_eq!(mean_p99(alloc::vec![5]), (Some(5), Some(5)));
        assert_eq!(mean_p99(Vec::new()), (None, None));
        let d = |ns| Dur(ns).to_string();
        assert_eq!(
            [d(999), d(1_500), d(2_345_678), d(3_210_000_000)],
            ["999 ns", "1.5 µs", "2.35 ms", "3.210 s"]
        );
        let empty = Model {
            kernel: false,
            gomaxprocs: 1,
            duration_ns: 0,
            tracks: Vec::new(),
            procs: Vec::new(),
            flows: Vec::new(),
            goroutines: BTreeMap::new(),
            lost: BTreeMap::new(),
            unflushed_ms: 2,
        };
        let s = summarize(&empty);
        assert_eq!((s.runs, s.run_mean_ns, s.wake_p99_ns), (0, None, None));
        let text = s.to_string();
        assert!(
            text.contains("run length       mean -, p99 - (0 runs)"),
            "{text}"
        );
        assert!(
            text.contains("events lost      0, and 2 Ms never written out"),
            "{text}"
        );
    }
}

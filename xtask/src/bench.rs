//! `cargo xtask bench`: rt-core's scheduler benchmarks beside Go's runtime, on this machine,
//! in the same run. The machine is shared and noisy, so the two are interleaved (rounds of
//! ours, then Go's) and each figure is the median over rounds (each round already a median of
//! 7 runs); results are reported as ratios, never as absolute targets.
//!
//! Ours: `rt-core/benches/sched.rs` (`cargo bench`). Go's: `xtask/bench/go/main.go`, built with
//! the Go found on this machine (Debian's golang-1.23, docs/platform.md). Without Go, our
//! figures are still reported, and the table says Go was not found.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// One measurement: (benchmark, GOMAXPROCS) → ns per operation.
type Figures = BTreeMap<(String, u32), Vec<f64>>;

/// One line of a benchmark program's output, as both `rt-core/benches/sched.rs` and
/// `xtask/bench/go/main.go` print it. Any other field on the line is ignored.
#[derive(Debug, Deserialize)]
struct BenchLine {
    name: String,
    procs: u32,
    ns_per_op: f64,
}

/// Reads every line of `out` that starts with `{` as a [`BenchLine`] (other lines are the
/// programs' chatter) and adds its figure to `into`.
fn parse_lines(out: &str, into: &mut Figures) -> Result<()> {
    for line in out.lines().filter(|l| l.trim_start().starts_with('{')) {
        let b: BenchLine = serde_json::from_str(line)
            .with_context(|| format!("unreadable benchmark line: {line}"))?;
        into.entry((b.name, b.procs)).or_default().push(b.ns_per_op);
    }
    Ok(())
}

/// One row of `target/bench/results.json`, an array of these. The field names, their order
/// and the nulls are the file's schema, which its consumers read: keep them.
#[derive(Debug, Serialize)]
struct ResultRow<'a> {
    name: &'a str,
    procs: u32,
    /// rt-core's median, ns per operation, to 2 decimals.
    rt_core_ns: f64,
    /// What the ratio is against, "Go" or "corosensei", named even where its figure is missing.
    reference: &'a str,
    /// The reference's median, ns per operation, to 2 decimals; null where there is none.
    reference_ns: Option<f64>,
    /// `rt_core_ns / reference_ns` (of the unrounded medians), to 3 decimals; null likewise.
    ratio: Option<f64>,
}

/// `x` to `decimals` places, as the file has always held its figures.
fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The Go toolchain: Debian's golang-1.23 first, else `go` on PATH.
pub fn find_go() -> Option<PathBuf> {
    let debian = PathBuf::from("/usr/lib/go-1.23/bin/go");
    if debian.is_file() {
        return Some(debian);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("go"))
        .find(|p| p.is_file())
}

fn build_go(go: &Path, out: &Path) -> Result<()> {
    let root = crate::root();
    let status = Command::new(go)
        .current_dir(root.join("xtask/bench/go"))
        .args(["build", "-o"])
        .arg(out)
        .arg("main.go")
        // Never download a toolchain or modules; keep Go's caches inside target/.
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-buildvcs=false")
        .env("GOCACHE", root.join("target/bench/gocache"))
        .env("GOPATH", root.join("target/bench/gopath"))
        .status()
        .context("cannot run go build")?;
    if !status.success() {
        bail!("go build of xtask/bench/go failed");
    }
    Ok(())
}

fn run_capture(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The performance targets the project holds itself to: (benchmark, ratio limit, against what).
const TARGETS: &[(&str, f64, &str)] = &[
    ("switch", 2.0, "the corosensei floor"),
    ("gosched", 0.5, "Go"),
    ("gosched_pingpong", 0.5, "Go"),
    ("spawn", 0.7, "Go"),
    ("chan_pingpong", 0.7, "Go"),
];

pub fn run(rounds: usize, quick: bool) -> Result<()> {
    let root = crate::root();
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let go = find_go();
    let gobin = out_dir.join("gobench");
    match &go {
        Some(go) => {
            println!("== Go: {}", run_capture(Command::new(go).arg("version"))?.trim());
            build_go(go, &gobin)?;
        }
        None => println!(
            "== Go not found: reporting rt-core's figures alone. Install Go 1.23 from Debian's bookworm-backports \
             (docs/platform.md): apt-get install -y golang-1.23-go"
        ),
    }
    println!("== building rt-core's benchmark (cargo bench -p rt-core --bench sched)");
    let status = Command::new(crate::cargo())
        .current_dir(&root)
        .args([
            "bench",
            "--package",
            "rt-core",
            "--bench",
            "sched",
            "--no-run",
        ])
        .status()?;
    if !status.success() {
        bail!("building rt-core's benchmark failed");
    }
    let extra: &[&str] = if quick { &["--quick"] } else { &[] };
    let (mut ours, mut theirs) = (Figures::new(), Figures::new());
    for r in 1..=rounds {
        println!("== round {r}/{rounds}: rt-core");
        let out = run_capture(
            Command::new(crate::cargo())
                .current_dir(&root)
                .args([
                    "bench",
                    "--quiet",
                    "--package",
                    "rt-core",
                    "--bench",
                    "sched",
                    "--",
                ])
                .args(extra),
        )?;
        parse_lines(&out, &mut ours)?;
        if go.is_some() {
            println!("== round {r}/{rounds}: Go");
            parse_lines(
                &run_capture(
                    Command::new(&gobin).args(extra.iter().map(|a| a.replace("--", "-"))),
                )?,
                &mut theirs,
            )?;
        }
    }
    report(&ours, &theirs, go.is_some(), &out_dir.join("results.json"))
}

fn report(ours: &Figures, theirs: &Figures, have_go: bool, json_path: &Path) -> Result<()> {
    let floor = ours
        .get(&("floor_switch".to_string(), 1))
        .map(|v| median(v));
    println!();
    println!(
        "{:<20} {:>5} {:>14} {:>18} {:>7}  target",
        "benchmark", "procs", "rt-core ns/op", "reference ns/op", "ratio"
    );
    let mut rows = Vec::new();
    for ((name, procs), v) in ours {
        if name == "floor_switch" {
            continue;
        }
        let ns = median(v);
        let (reference, label) = if name == "switch" {
            (floor, "corosensei")
        } else if name == "spawn_nocache" {
            // Go has no switch for its stack cache: the reference is Go's ordinary spawn.
            (
                theirs
                    .get(&("spawn".to_string(), *procs))
                    .map(|v| median(v)),
                "Go",
            )
        } else {
            (theirs.get(&(name.clone(), *procs)).map(|v| median(v)), "Go")
        };
        let ratio = reference.map(|r| ns / r);
        let target = TARGETS.iter().find(|t| t.0 == name);
        let verdict = match (ratio, target) {
            (Some(r), Some(t)) => format!(
                "<= {:.1}x {} {}",
                t.1,
                t.2,
                if r <= t.1 { "met" } else { "MISSED" }
            ),
            (None, Some(_)) if !have_go => "(no Go here)".into(),
            _ => String::new(),
        };
        println!(
            "{:<20} {:>5} {:>14.1} {:>18} {:>7}  {}",
            name,
            procs,
            ns,
            reference.map_or("-".into(), |r| format!("{r:.1} ({label})")),
            ratio.map_or("-".into(), |r| format!("{r:.2}")),
            verdict
        );
        rows.push(ResultRow {
            name,
            procs: *procs,
            rt_core_ns: round_to(ns, 2),
            reference: label,
            reference_ns: reference.map(|r| round_to(r, 2)),
            ratio: ratio.map(|r| round_to(r, 3)),
        });
    }
    let mut json = serde_json::to_string_pretty(&rows)?;
    json.push('\n');
    std::fs::write(json_path, json)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    println!(
        "\n(medians over interleaved rounds; JSON in {})",
        json_path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmark_lines_parse_and_accumulate() {
        let mut f = Figures::new();
        parse_lines(
            "noise\n{\"name\": \"spawn\", \"procs\": 2, \"ns_per_op\": 12.50}\n",
            &mut f,
        )
        .unwrap();
        parse_lines(
            "{\"name\": \"spawn\", \"procs\": 2, \"ns_per_op\": 10}\n",
            &mut f,
        )
        .unwrap();
        assert_eq!(f[&("spawn".to_string(), 2)], vec![12.5, 10.0]);
        assert!(parse_lines("{\"name\": \"x\"}\n", &mut f).is_err());
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn benchmark_line_parses_with_any_spacing_and_field_order() {
        let mut f = Figures::new();
        parse_lines(
            "{\"ns_per_op\":7.25,\"procs\":1,\"name\":\"gosched\"}\n  \
             {  \"procs\" :2 ,\t\"name\":\"gosched\",\"ns_per_op\": 8 }\n",
            &mut f,
        )
        .unwrap();
        assert_eq!(f[&("gosched".to_string(), 1)], vec![7.25]);
        assert_eq!(f[&("gosched".to_string(), 2)], vec![8.0]);
    }

    #[test]
    fn benchmark_line_with_unknown_fields_parses() {
        let mut f = Figures::new();
        parse_lines(
            "{\"name\": \"spawn\", \"procs\": 1, \"ns_per_op\": 3.5, \"runs\": 7, \
             \"go\": \"go1.23.5\", \"samples\": [1, 2], \"cfg\": {\"stack_cache\": true}}\n",
            &mut f,
        )
        .unwrap();
        assert_eq!(f[&("spawn".to_string(), 1)], vec![3.5]);
    }

    #[test]
    fn broken_benchmark_line_is_an_error_naming_it() {
        for line in [
            "{\"name\": \"spawn\", \"procs\": 2, \"ns_per_op\": 1.5",
            "{\"name\": \"spawn\", \"procs\": 2}",
            "{\"name\": \"spawn\", \"procs\": \"two\", \"ns_per_op\": 1.5}",
            "{\"name\": \"spawn\", \"procs\": -1, \"ns_per_op\": 1.5}",
            "{\"name\": 3, \"procs\": 2, \"ns_per_op\": 1.5}",
            "{name: spawn}",
        ] {
            let err = parse_lines(&format!("noise\n{line}\n"), &mut Figures::new())
                .expect_err(line)
                .to_string();
            assert!(err.contains(line), "{err:?} does not name {line:?}");
        }
    }

    /// results.json as `report` has always written it for these figures (one object a line,
    /// 2 decimals for ns, 3 for the ratio). Whatever writes the file, consumers must read the
    /// same array: the same fields, in the same order, with the same values and nulls.
    const RESULTS_BEFORE: &str = r#"[
  {"name": "gosched", "procs": 1, "rt_core_ns": 50.00, "reference": "Go", "reference_ns": 100.00, "ratio": 0.500},
  {"name": "preempt_point", "procs": 1, "rt_core_ns": 1.23, "reference": "Go", "reference_ns": null, "ratio": null},
  {"name": "spawn_nocache", "procs": 2, "rt_core_ns": 300.00, "reference": "Go", "reference_ns": 150.00, "ratio": 2.000},
  {"name": "switch", "procs": 1, "rt_core_ns": 3.00, "reference": "corosensei", "reference_ns": 2.00, "ratio": 1.500}
]
"#;

    #[test]
    fn results_json_keeps_its_schema() {
        let mut ours = Figures::new();
        ours.insert(("floor_switch".into(), 1), vec![2.0]);
        ours.insert(("switch".into(), 1), vec![3.0, 4.0, 3.0]);
        ours.insert(("gosched".into(), 1), vec![50.0]);
        ours.insert(("spawn_nocache".into(), 2), vec![300.0]);
        ours.insert(("preempt_point".into(), 1), vec![1.234]);
        let mut theirs = Figures::new();
        theirs.insert(("gosched".into(), 1), vec![100.0]);
        theirs.insert(("spawn".into(), 2), vec![150.0]);
        let path = std::env::temp_dir().join(format!(
            "xtask-results_json_keeps_its_schema-{}.json",
            std::process::id()
        ));
        report(&ours, &theirs, true, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let got: serde_json::Value = serde_json::from_str(&text).unwrap();
        let want: serde_json::Value = serde_json::from_str(RESULTS_BEFORE).unwrap();
        assert_eq!(got, want, "results.json now reads:\n{text}");
        // serde_json's map is sorted, so the field order is checked on the text itself.
        let keys = [
            "\"name\"",
            "\"procs\"",
            "\"rt_core_ns\"",
            "\"reference\"",
            "\"reference_ns\"",
            "\"ratio\"",
        ];
        let first = &text[..text.find('}').unwrap()];
        let at: Vec<usize> = keys.iter().map(|k| first.find(k).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "field order: {first}");
    }
}

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

/// One measurement: (benchmark, GOMAXPROCS) → ns per operation.
type Figures = BTreeMap<(String, u32), Vec<f64>>;

fn parse_lines(out: &str, into: &mut Figures) -> Result<()> {
    for line in out.lines().filter(|l| l.trim_start().starts_with('{')) {
        let field = |key: &str| -> Option<&str> {
            let at = line.find(&format!("\"{key}\": "))? + key.len() + 4;
            let rest = &line[at..];
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            Some(rest[..end].trim().trim_matches('"'))
        };
        let (Some(name), Some(procs), Some(ns)) =
            (field("name"), field("procs"), field("ns_per_op"))
        else {
            bail!("unreadable benchmark line: {line}");
        };
        into.entry((name.to_string(), procs.parse()?))
            .or_default()
            .push(ns.parse()?);
    }
    Ok(())
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

/// The targets from the rt-core scheduler issue: (benchmark, ratio limit, against what).
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
    let mut json = Vec::new();
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
        json.push(format!(
            "{{\"name\": \"{name}\", \"procs\": {procs}, \"rt_core_ns\": {ns:.2}, \"reference\": \"{label}\", \"reference_ns\": {}, \"ratio\": {}}}",
            reference.map_or("null".into(), |r| format!("{r:.2}")),
            ratio.map_or("null".into(), |r| format!("{r:.3}"))
        ));
    }
    std::fs::write(json_path, format!("[\n  {}\n]\n", json.join(",\n  ")))?;
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
}

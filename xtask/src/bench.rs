//! `cargo xtask bench`: rt-core's scheduler benchmarks beside its peers, on this machine, in
//! the same run: Go's runtime, and the two runtimes a Rust user would pick instead of rt-core,
//! `may` (stackful coroutines) and `tokio` (multi-thread scheduler). The machine is shared and
//! noisy, so the programs are interleaved (each row's runs of ours, then Go's, may's and
//! tokio's, round after round) and each figure is the median over rounds (each round's figure
//! already a median of several runs); results are reported as ratios, never as absolute
//! targets.
//!
//! Ours: `rt-core/benches/sched.rs` (built by `cargo bench --no-run`, run directly). Go's:
//! `xtask/bench/go/main.go`, built with the Go found on this machine (Debian's golang-1.23,
//! docs/platform.md). may's and tokio's: the crate `xtask/bench/peers/` (outside the workspace,
//! its own Cargo.lock), built here with `cargo build --release --locked`. A peer that cannot be
//! built or found is named in the table with why, and the others are still reported.
//!
//! Every program takes `[--quick] [--procs P] [--only skynet|ring|parked [--n N]]`: the
//! micro-benchmarks run once per GOMAXPROCS (`--procs`), each whole-program row alone in its
//! own process, so that a row that fails (1M parked goroutines on mmap'd stacks, say) loses
//! that cell alone, with its reason.
//!
//! Two files: `target/bench/results.json`, rt-core against its reference (Go, or corosensei
//! for `switch`), whose schema its consumers read; and `target/bench/peers.json`, the whole
//! table, a column per peer.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// One measurement: (benchmark, GOMAXPROCS) → its figures, one a round.
type Figures = BTreeMap<(String, u32), Vec<f64>>;

/// What one program measured over the rounds.
#[derive(Debug, Default)]
struct Measured {
    /// ns per operation.
    ns: Figures,
    /// Resident bytes per goroutine (the parked rows).
    bytes: Figures,
    /// Rows that could not be measured, with why (the last reason seen).
    failed: BTreeMap<(String, u32), String>,
}

/// One line of a benchmark program's output, as `rt-core/benches/sched.rs`,
/// `xtask/bench/go/main.go` and the peers print it: a figure (`ns_per_op`, and `bytes_per_g`
/// on the parked rows) or, for a row the program could not measure, `failed` with why. Any
/// other field on the line is ignored.
#[derive(Debug, Deserialize)]
struct BenchLine {
    name: String,
    procs: u32,
    ns_per_op: Option<f64>,
    bytes_per_g: Option<f64>,
    failed: Option<String>,
}

/// Reads every line of `out` that starts with `{` as a [`BenchLine`] (other lines are the
/// programs' chatter) and adds its figure, or its failure, to `into`.
fn parse_lines(out: &str, into: &mut Measured) -> Result<()> {
    for line in out.lines().filter(|l| l.trim_start().starts_with('{')) {
        let b: BenchLine = serde_json::from_str(line)
            .with_context(|| format!("unreadable benchmark line: {line}"))?;
        let key = (b.name, b.procs);
        match (b.ns_per_op, b.failed) {
            (Some(ns), _) => {
                into.ns.entry(key.clone()).or_default().push(ns);
                if let Some(bytes) = b.bytes_per_g {
                    into.bytes.entry(key).or_default().push(bytes);
                }
            }
            (None, Some(why)) => {
                into.failed.insert(key, why);
            }
            (None, None) => bail!("benchmark line with neither ns_per_op nor failed: {line}"),
        }
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

/// Builds the peers' crate (xtask/bench/peers, target dir target/bench/peers) and returns the
/// directory of its binaries, or why it could not be built (the first error cargo printed).
fn build_peers(root: &Path) -> Result<PathBuf, String> {
    let target = root.join("target/bench/peers");
    let out = Command::new(crate::cargo())
        .current_dir(root)
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(root.join("xtask/bench/peers/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        // The peers as their projects ship them: without the frame pointers that the
        // workspace's .cargo/config.toml forces on rt-core (an empty value overrides it).
        .env("CARGO_BUILD_RUSTFLAGS", "")
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err
            .lines()
            .find(|l| l.trim_start().starts_with("error"))
            .unwrap_or("cargo build failed");
        return Err(shorten(first.trim()));
    }
    Ok(target.join("release"))
}

/// rt-core's benchmark executable, as `cargo bench --no-run` reports it.
fn build_ours(root: &Path) -> Result<PathBuf> {
    let out = run_capture(
        Command::new(crate::cargo())
            .current_dir(root)
            .args([
                "bench",
                "--package",
                "rt-core",
                "--bench",
                "sched",
                "--no-run",
                "--message-format=json-render-diagnostics",
            ])
            .stderr(Stdio::inherit()),
        None,
    )?;
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "sched")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo bench --no-run named no executable for rt-core's benchmark")
}

/// `s` cut to a table note's length.
fn shorten(s: &str) -> String {
    const MAX: usize = 140;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Why a benchmark program failed, from its stderr: the first panic's message, else Go's or
/// rt-core's `fatal error:` line, else the last line it printed, else `otherwise`.
fn failure_reason(stderr: &str, otherwise: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).collect();
    let panic = lines
        .iter()
        .position(|l| l.contains("panicked at"))
        .and_then(|i| lines.get(i + 1));
    let why = panic
        .copied()
        .or_else(|| {
            lines
                .iter()
                .copied()
                .find(|l| l.starts_with("fatal error:"))
        })
        .or_else(|| {
            lines
                .iter()
                .copied()
                .rfind(|l| !l.is_empty() && !l.starts_with("note: run with"))
        })
        .unwrap_or(otherwise);
    shorten(why)
}

/// Runs `cmd` to its end (or kills it after `timeout`) and returns its stdout; on failure, an
/// error whose message is [`failure_reason`].
fn run_capture(cmd: &mut Command, timeout: Option<Duration>) -> Result<String> {
    use std::os::unix::process::CommandExt;
    // Its own process group, so that a kill after the timeout ends whatever it started too
    // (which would otherwise keep its output pipes open).
    let mut child = cmd
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let mut stderr = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_end(&mut s);
        }
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if timeout.is_some_and(|t| start.elapsed() > t) {
            // The group's id is the child's.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = String::from_utf8(reader.join().expect("the stdout reader"))?;
    let err = String::from_utf8_lossy(&err_reader.join().expect("the stderr reader")).into_owned();
    match status {
        None => bail!(
            "killed after {} s (hung?)",
            timeout.unwrap_or_default().as_secs()
        ),
        Some(s) if !s.success() => bail!("{}", failure_reason(&err, &format!("exited with {s}"))),
        Some(_) => Ok(out),
    }
}

/// The performance targets the project holds itself to: (benchmark, ratio limit, against what).
const TARGETS: &[(&str, f64, &str)] = &[
    ("switch", 2.0, "the corosensei floor"),
    ("gosched", 0.5, "Go"),
    ("gosched_pingpong", 0.5, "Go"),
    ("spawn", 0.7, "Go"),
    ("chan_pingpong", 0.7, "Go"),
];

/// The peers' columns, in the table's order.
const PEERS: [&str; 3] = ["Go", "may", "tokio"];

/// How each peer's rows differ from ours where the runtime has no exact equivalent (the
/// programs' headers say more); printed under the table.
const PEER_NOTES: &[(&str, &str)] = &[
    (
        "may",
        "procs = may::config().set_workers(n), one count per process; no bounded channel, so \
         chan_pingpong, chan_buffered, skynet and ring use unbounded mpsc; select! runs each arm \
         in a coroutine; each live coroutine is an mmap'd stack + guard page, so past ~32k live \
         ones it fails at vm.max_map_count (spawn, skynet, parked_100k/1m)",
    ),
    (
        "tokio",
        "procs = Builder::new_multi_thread().worker_threads(n), also for 1 (not current_thread) \
         so both rows measure one scheduler; no unbuffered channel, so mpsc::channel(1); timers \
         have 1 ms granularity (select_timeout, sleep_late); parked tasks await a shared watch \
         receiver's changed()",
    ),
];

/// The whole-program rows: (`--only` value, `--n`), each run alone in its process.
const WHOLE: &[(&str, Option<u64>)] = &[
    ("skynet", None),
    ("ring", None),
    ("parked", Some(10_000)),
    ("parked", Some(100_000)),
    ("parked", Some(1_000_000)),
];

/// The table's order of rows (any other row follows, by name).
const ROW_ORDER: &[&str] = &[
    "switch",
    "gosched",
    "gosched_pingpong",
    "spawn",
    "spawn_nocache",
    "chan_pingpong",
    "chan_buffered",
    "select_timeout",
    "sleep_late",
    "sleep_late_max",
    "preempt_point",
    "preempt_latency",
    "preempt_latency_max",
    "skynet",
    "ring",
    "parked_10k",
    "parked_100k",
    "parked_1m",
];

/// How long one whole-program run may take before it is declared hung.
const WHOLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one micro-benchmark run (every row at one GOMAXPROCS) may take.
const MICRO_TIMEOUT: Duration = Duration::from_secs(1200);

/// The row name a whole-program run reports (and is noted as failed under).
fn whole_name(only: &str, n: Option<u64>) -> String {
    match n {
        Some(1_000_000) => format!("{only}_1m"),
        Some(n) if n % 1000 == 0 => format!("{only}_{}k", n / 1000),
        Some(n) => format!("{only}_{n}"),
        None => only.to_string(),
    }
}

/// One benchmark program: ours or a peer's.
struct Program {
    name: &'static str,
    /// The program to run, or why there is none (not found, not built).
    exe: Result<PathBuf, String>,
    measured: Measured,
    /// Micro-benchmark runs that failed as a whole: (procs, why).
    run_failures: Vec<(u32, String)>,
}

impl Program {
    fn new(name: &'static str, exe: Result<PathBuf, String>) -> Program {
        Program {
            name,
            exe,
            measured: Measured::default(),
            run_failures: Vec::new(),
        }
    }
}

pub fn run(rounds: usize, quick: bool) -> Result<()> {
    let root = crate::root();
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let gobin = out_dir.join("gobench");
    let go = match find_go() {
        Some(go) => {
            println!(
                "== Go: {}",
                run_capture(Command::new(&go).arg("version"), None)?.trim()
            );
            build_go(&go, &gobin)
                .map(|()| gobin)
                .map_err(|e| e.to_string())
        }
        None => {
            println!(
                "== Go not found. Install Go 1.23 from Debian's bookworm-backports \
                 (docs/platform.md): apt-get install -y golang-1.23-go"
            );
            Err("not found (apt-get install -y golang-1.23-go)".into())
        }
    };
    println!("== building may's and tokio's benchmarks (xtask/bench/peers)");
    let peers = build_peers(&root);
    if let Err(why) = &peers {
        println!("== the peers were not built: {why}");
    }
    let peer = |bin: &str| {
        peers
            .as_ref()
            .map(|dir| dir.join(bin))
            .map_err(|why| format!("not built ({why})"))
    };
    println!("== building rt-core's benchmark (cargo bench -p rt-core --bench sched)");
    let ours = build_ours(&root)?;
    let mut programs = [
        Program::new("rt-core", Ok(ours.clone())),
        Program::new("Go", go),
        Program::new("may", peer("may")),
        Program::new("tokio", peer("tokio")),
        // Ours again with the execution trace on (RT_CORE_TRACE): what tracing costs, per row.
        Program::new(TRACED, Ok(ours)),
    ];
    let trace_file = out_dir.join("trace.bin");
    let traced = |p: &Program, cmd: &mut Command| {
        if p.name == TRACED {
            cmd.env("RT_CORE_TRACE", &trace_file);
        }
    };
    let quick_arg: &[&str] = if quick { &["--quick"] } else { &[] };
    for r in 1..=rounds {
        for procs in [1u32, 2] {
            for p in programs.iter_mut() {
                let Ok(exe) = &p.exe else { continue };
                println!("== round {r}/{rounds}: {} at procs {procs}", p.name);
                let mut cmd = Command::new(exe);
                cmd.args(quick_arg)
                    .args(["--procs", &procs.to_string()])
                    .stderr(Stdio::piped());
                traced(p, &mut cmd);
                let got = run_capture(&mut cmd, Some(MICRO_TIMEOUT));
                match got {
                    Ok(out) => parse_lines(&out, &mut p.measured)?,
                    Err(e) if p.name == "rt-core" => {
                        bail!("rt-core's benchmark at procs {procs} failed: {e}")
                    }
                    Err(e) => p.run_failures.push((procs, e.to_string())),
                }
            }
        }
        for &(only, n) in WHOLE {
            let name = whole_name(only, n);
            for procs in [1u32, 2] {
                for p in programs.iter_mut() {
                    let Ok(exe) = &p.exe else { continue };
                    println!("== round {r}/{rounds}: {} {name} at procs {procs}", p.name);
                    let mut cmd = Command::new(exe);
                    cmd.args(quick_arg)
                        .args(["--only", only, "--procs", &procs.to_string()])
                        .stderr(Stdio::piped());
                    if let Some(n) = n {
                        cmd.args(["--n", &n.to_string()]);
                    }
                    traced(p, &mut cmd);
                    match run_capture(&mut cmd, Some(WHOLE_TIMEOUT)) {
                        Ok(out) => parse_lines(&out, &mut p.measured)?,
                        Err(e) => {
                            p.measured
                                .failed
                                .insert((name.clone(), procs), e.to_string());
                        }
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_file(&trace_file);
    let (ours, rest) = programs
        .split_first()
        .expect("rt-core is the first program");
    let (traced, peers) = rest
        .split_last()
        .expect("the traced run is the last program");
    report(
        ours,
        peers,
        &out_dir.join("results.json"),
        &out_dir.join("peers.json"),
    )?;
    let overhead = trace_overhead(ours, traced);
    print!("\n{}", render_overhead(&overhead));
    let mut json = serde_json::to_string_pretty(&overhead)?;
    json.push('\n');
    let path = out_dir.join("trace_overhead.json");
    std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
    println!("(JSON in {})", path.display());
    Ok(())
}

/// The traced run of our benchmark ([`run`]).
const TRACED: &str = "rt-core traced";

/// One row of the tracing-overhead table: ours with tracing off and on, in the same rounds.
#[derive(Debug, Serialize, PartialEq)]
struct OverheadRow {
    name: String,
    procs: u32,
    off_ns: f64,
    on_ns: f64,
    /// on / off - 1, in percent.
    overhead_pct: f64,
}

fn trace_overhead(ours: &Program, traced: &Program) -> Vec<OverheadRow> {
    let mut rows: Vec<OverheadRow> = ours
        .measured
        .ns
        .iter()
        .filter(|(k, _)| k.0 != "floor_switch")
        .filter_map(|(k, off)| {
            let on = traced.measured.ns.get(k)?;
            let (off, on) = (median(off), median(on));
            Some(OverheadRow {
                name: k.0.clone(),
                procs: k.1,
                off_ns: off,
                on_ns: on,
                overhead_pct: round_to((on / off - 1.0) * 100.0, 1),
            })
        })
        .collect();
    rows.sort_by_key(|r| {
        let at = ROW_ORDER.iter().position(|n| *n == r.name);
        (at.unwrap_or(ROW_ORDER.len()), r.name.clone(), r.procs)
    });
    rows
}

fn render_overhead(rows: &[OverheadRow]) -> String {
    let mut out =
        String::from("execution trace overhead (ours, RT_CORE_TRACE on vs off, same rounds)\n");
    out.push_str(&format!(
        "{:<28} {:>5} {:>12} {:>12} {:>9}\n",
        "benchmark", "procs", "off ns/op", "on ns/op", "overhead"
    ));
    for r in rows {
        out.push_str(&format!(
            "{:<28} {:>5} {:>12} {:>12} {:>8.1}%\n",
            r.name,
            r.procs,
            fmt_value(r.off_ns),
            fmt_value(r.on_ns),
            r.overhead_pct
        ));
    }
    out
}

/// One peer's cell in a row of the table.
#[derive(Debug, Serialize, PartialEq)]
struct Cell {
    /// The peer's median, ns per operation (or bytes per goroutine on a `bytes_per_g` row).
    value: Option<f64>,
    /// What the figure is of, where it is not the same row of the same peer: "corosensei" for
    /// `switch`, "spawn" for `spawn_nocache`.
    #[serde(skip_serializing_if = "Option::is_none")]
    of: Option<&'static str>,
    /// Ours / theirs.
    ratio: Option<f64>,
    /// "ahead" (ours is lower: faster, or less memory) or "behind".
    verdict: Option<&'static str>,
    /// Why there is no figure, where the peer has one for neither this row nor its reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    missing: Option<String>,
}

/// One row of the table (and of peers.json).
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    procs: u32,
    /// "ns_per_op" or "bytes_per_g".
    unit: &'static str,
    rt_core: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rt_core_failed: Option<String>,
    /// One per [`PEERS`], in order.
    peers: Vec<(String, Cell)>,
    /// The TARGETS verdict, where the row has a target.
    target: String,
}

/// "ahead" where ours is lower than theirs, else "behind" (every row is a cost: time,
/// lateness or memory).
fn verdict(ratio: f64) -> &'static str {
    if ratio < 1.0 {
        "ahead"
    } else {
        "behind"
    }
}

/// The table: every (row, procs) that any program measured or failed, ns rows and, for the
/// rows with memory figures, a `bytes_per_g` row after each.
fn table(ours: &Program, peers: &[Program]) -> Vec<Row> {
    let mut keys: Vec<(String, u32)> = std::iter::once(ours)
        .chain(peers)
        .flat_map(|p| p.measured.ns.keys().chain(p.measured.failed.keys()))
        .filter(|k| k.0 != "floor_switch")
        .cloned()
        .collect();
    keys.sort_by_key(|(name, procs)| {
        let at = ROW_ORDER.iter().position(|r| r == name);
        (at.unwrap_or(ROW_ORDER.len()), name.clone(), *procs)
    });
    keys.dedup();
    let floor = ours
        .measured
        .ns
        .get(&("floor_switch".to_string(), 1))
        .map(|v| median(v));
    let mut rows = Vec::new();
    for key in keys {
        let (name, procs) = (&key.0, key.1);
        for unit in ["ns_per_op", "bytes_per_g"] {
            fn pick<'m>(m: &'m Measured, unit: &str) -> &'m Figures {
                if unit == "ns_per_op" {
                    &m.ns
                } else {
                    &m.bytes
                }
            }
            let figures = |m| pick(m, unit);
            let has_bytes = std::iter::once(ours)
                .chain(peers)
                .any(|p| p.measured.bytes.contains_key(&key));
            if unit == "bytes_per_g" && !has_bytes {
                continue;
            }
            let mine = figures(&ours.measured).get(&key).map(|v| median(v));
            let mut cells = Vec::new();
            for peer_name in PEERS {
                let peer = peers.iter().find(|p| p.name == peer_name);
                let (value, of) = match peer {
                    Some(p) if unit == "ns_per_op" && name == "switch" => {
                        // The switch row is against the corosensei floor, in Go's column.
                        if p.name == "Go" {
                            (floor, Some("corosensei"))
                        } else {
                            (None, None)
                        }
                    }
                    Some(p) if name == "spawn_nocache" => (
                        // No peer has a switch for a stack cache: theirs is ordinary spawn.
                        figures(&p.measured)
                            .get(&("spawn".to_string(), procs))
                            .map(|v| median(v)),
                        Some("spawn"),
                    ),
                    Some(p) => (figures(&p.measured).get(&key).map(|v| median(v)), None),
                    None => (None, None),
                };
                let ratio = mine.zip(value).map(|(a, b)| a / b);
                let missing = match peer {
                    None => Some("not run".to_string()),
                    Some(p) if value.is_none() => match &p.exe {
                        Err(why) => Some(why.clone()),
                        Ok(_) => p.measured.failed.get(&key).map(|w| format!("failed: {w}")),
                    },
                    Some(_) => None,
                };
                cells.push((
                    peer_name.to_string(),
                    Cell {
                        value,
                        of,
                        ratio,
                        verdict: ratio.map(verdict),
                        missing,
                    },
                ));
            }
            let target = if unit == "ns_per_op" {
                let go_ratio = cells[0].1.ratio;
                let go_missing = peers
                    .iter()
                    .find(|p| p.name == "Go")
                    .is_none_or(|p| p.exe.is_err());
                match (go_ratio, TARGETS.iter().find(|t| t.0 == name)) {
                    (Some(r), Some(t)) => format!(
                        "<= {:.1}x {} {}",
                        t.1,
                        t.2,
                        if r <= t.1 { "met" } else { "MISSED" }
                    ),
                    (None, Some(_)) if go_missing && name != "switch" => "(no Go here)".into(),
                    _ => String::new(),
                }
            } else {
                String::new()
            };
            rows.push(Row {
                name: name.clone(),
                procs,
                unit,
                rt_core: mine,
                rt_core_failed: if mine.is_none() {
                    ours.measured.failed.get(&key).cloned()
                } else {
                    None
                },
                peers: cells,
                target,
            });
        }
    }
    rows
}

/// A figure for the table: one decimal below 10^5, none above.
fn fmt_value(v: f64) -> String {
    if v >= 100_000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The number of `note` under the table, added if it is new.
fn note_number(notes: &mut Vec<String>, note: String) -> usize {
    let n = notes.iter().position(|x| *x == note).unwrap_or_else(|| {
        notes.push(note);
        notes.len() - 1
    });
    n + 1
}

/// One peer's cell as the table prints it: "118.1 0.20 ahead", "-" where the peer has no such
/// row, "failed [n]" / "not built [n]" with the reason in note n under the table.
fn fmt_cell(cell: &Cell, notes: &mut Vec<String>, peer: &str, row: &Row) -> String {
    match (cell.value, &cell.missing) {
        (Some(v), _) => {
            let of = cell.of.map_or(String::new(), |o| format!(" ({o})"));
            match (cell.ratio, cell.verdict) {
                (Some(r), Some(verdict)) => format!("{}{of} {r:.2} {verdict}", fmt_value(v)),
                _ => format!("{}{of}", fmt_value(v)),
            }
        }
        (None, Some(why)) if why.starts_with("failed") => {
            let note = format!("{peer} {} at procs {}: {why}", row.name, row.procs);
            format!("failed [{}]", note_number(notes, note))
        }
        (None, Some(why)) if why.starts_with("not built") => "not built".into(),
        _ => "-".into(),
    }
}

/// The table as text: a column for rt-core, one per peer (its figure, ours/theirs and
/// ahead/behind), the target; then the notes (failures, peers not built, how peers differ).
fn render(rows: &[Row], peers: &[Program]) -> String {
    use std::fmt::Write;
    let mut notes = Vec::new();
    let mut out = String::new();
    let w = 27;
    let _ = write!(out, "{:<24} {:>5} {:>13}", "benchmark", "procs", "rt-core");
    for p in PEERS {
        let _ = write!(out, "  {:<w$}", format!("{p} (ours/theirs)"));
    }
    let _ = writeln!(out, "  target");
    for row in rows {
        let label = if row.unit == "bytes_per_g" {
            format!("{} bytes/g", row.name)
        } else {
            row.name.clone()
        };
        let mine = match (row.rt_core, &row.rt_core_failed) {
            (Some(v), _) => fmt_value(v),
            (None, Some(why)) => {
                let note = format!("rt-core {} at procs {}: failed: {why}", row.name, row.procs);
                format!("failed [{}]", note_number(&mut notes, note))
            }
            (None, None) => "-".into(),
        };
        let mut line = format!("{label:<24} {:>5} {mine:>13}", row.procs);
        for (peer, cell) in &row.peers {
            let _ = write!(line, "  {:<w$}", fmt_cell(cell, &mut notes, peer, row));
        }
        let _ = write!(line, "  {}", row.target);
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(out);
    for p in peers {
        if let Err(why) = &p.exe {
            let _ = writeln!(out, "{}: {why}", p.name);
        }
        for (procs, why) in &p.run_failures {
            let _ = writeln!(out, "{}: its run at procs {procs} failed: {why}", p.name);
        }
    }
    for (i, n) in notes.iter().enumerate() {
        let _ = writeln!(out, "[{}] {n}", i + 1);
    }
    for (peer, note) in PEER_NOTES {
        let _ = writeln!(out, "{peer}: {note}");
    }
    out
}

/// `target/bench/peers.json`: which programs ran (or why not) and every row of the table.
#[derive(Serialize)]
struct PeersFile<'a> {
    programs: Vec<ProgramStatus<'a>>,
    rows: &'a [Row],
}

#[derive(Serialize)]
struct ProgramStatus<'a> {
    name: &'a str,
    /// "ok", or why it did not run.
    status: String,
    /// Its micro-benchmark runs that failed as a whole: (procs, why).
    run_failures: &'a [(u32, String)],
}

/// results.json's rows: rt-core against Go (corosensei for `switch`), as always, in the
/// order of (name, procs).
fn result_rows(rows: &[Row]) -> Vec<ResultRow<'_>> {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by_key(|r| (&r.name, r.procs));
    sorted
        .into_iter()
        .filter(|r| r.unit == "ns_per_op")
        .filter_map(|r| {
            let go = &r.peers[0].1;
            Some(ResultRow {
                name: &r.name,
                procs: r.procs,
                rt_core_ns: round_to(r.rt_core?, 2),
                reference: if r.name == "switch" {
                    "corosensei"
                } else {
                    "Go"
                },
                reference_ns: go.value.map(|v| round_to(v, 2)),
                ratio: go.ratio.map(|v| round_to(v, 3)),
            })
        })
        .collect()
}

fn report(ours: &Program, peers: &[Program], json_path: &Path, peers_path: &Path) -> Result<()> {
    let rows = table(ours, peers);
    println!();
    print!("{}", render(&rows, peers));
    let mut json = serde_json::to_string_pretty(&result_rows(&rows))?;
    json.push('\n');
    std::fs::write(json_path, json)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    let file = PeersFile {
        programs: peers
            .iter()
            .map(|p| ProgramStatus {
                name: p.name,
                status: p.exe.as_ref().map_or_else(|e| e.clone(), |_| "ok".into()),
                run_failures: &p.run_failures,
            })
            .collect(),
        rows: &rows,
    };
    let mut json = serde_json::to_string_pretty(&file)?;
    json.push('\n');
    std::fs::write(peers_path, json)
        .with_context(|| format!("cannot write {}", peers_path.display()))?;
    println!(
        "\n(medians over interleaved rounds; ours/theirs < 1 is ahead; JSON in {} and {})",
        json_path.display(),
        peers_path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_overhead_pairs_each_row_of_ours_with_its_traced_run() {
        let off = program(
            "rt-core",
            &[("spawn", 1, 100.0), ("chan_unbuffered", 2, 50.0)],
        );
        let on = program(TRACED, &[("spawn", 1, 103.0)]);
        let rows = trace_overhead(&off, &on);
        assert_eq!(rows.len(), 1, "a row without a traced figure is left out");
        assert_eq!((rows[0].name.as_str(), rows[0].procs), ("spawn", 1));
        assert_eq!(rows[0].overhead_pct, 3.0);
        assert!(render_overhead(&rows).contains("3.0%"));
    }

    #[test]
    fn benchmark_lines_parse_and_accumulate() {
        let mut f = Measured::default();
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
        assert_eq!(f.ns[&("spawn".to_string(), 2)], vec![12.5, 10.0]);
        assert!(parse_lines("{\"name\": \"x\"}\n", &mut f).is_err());
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn benchmark_line_parses_with_any_spacing_and_field_order() {
        let mut f = Measured::default();
        parse_lines(
            "{\"ns_per_op\":7.25,\"procs\":1,\"name\":\"gosched\"}\n  \
             {  \"procs\" :2 ,\t\"name\":\"gosched\",\"ns_per_op\": 8 }\n",
            &mut f,
        )
        .unwrap();
        assert_eq!(f.ns[&("gosched".to_string(), 1)], vec![7.25]);
        assert_eq!(f.ns[&("gosched".to_string(), 2)], vec![8.0]);
    }

    #[test]
    fn benchmark_line_with_unknown_fields_parses() {
        let mut f = Measured::default();
        parse_lines(
            "{\"name\": \"spawn\", \"procs\": 1, \"ns_per_op\": 3.5, \"runs\": 7, \
             \"go\": \"go1.23.5\", \"samples\": [1, 2], \"cfg\": {\"stack_cache\": true}}\n",
            &mut f,
        )
        .unwrap();
        assert_eq!(f.ns[&("spawn".to_string(), 1)], vec![3.5]);
        assert!(f.bytes.is_empty() && f.failed.is_empty());
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
            let err = parse_lines(&format!("noise\n{line}\n"), &mut Measured::default())
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
        let mut ours = program("rt-core", &[]);
        let f = &mut ours.measured.ns;
        f.insert(("floor_switch".into(), 1), vec![2.0]);
        f.insert(("switch".into(), 1), vec![3.0, 4.0, 3.0]);
        f.insert(("gosched".into(), 1), vec![50.0]);
        f.insert(("spawn_nocache".into(), 2), vec![300.0]);
        f.insert(("preempt_point".into(), 1), vec![1.234]);
        let go = program("Go", &[("gosched", 1, 100.0), ("spawn", 2, 150.0)]);
        // The peers' figures and a row only a peer has stay out of results.json.
        let tokio = program("tokio", &[("gosched", 1, 40.0), ("skynet", 1, 9.0)]);
        let dir = std::env::temp_dir();
        let tag = format!("xtask-results_json_keeps_its_schema-{}", std::process::id());
        let (path, peers_path) = (
            dir.join(format!("{tag}.json")),
            dir.join(format!("{tag}-peers.json")),
        );
        report(&ours, &[go, tokio], &path, &peers_path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let peers: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&peers_path).unwrap()).unwrap();
        std::fs::remove_file(&peers_path).unwrap();
        let gosched = peers["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "gosched")
            .unwrap();
        assert_eq!(gosched["peers"][2][1]["value"], 40.0);
        assert_eq!(gosched["peers"][2][1]["verdict"], "behind");
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

    /// A program that ran, with these (row, procs, ns) figures.
    fn program(name: &'static str, figures: &[(&str, u32, f64)]) -> Program {
        let mut p = Program::new(name, Ok(PathBuf::from(name)));
        for &(row, procs, ns) in figures {
            p.measured.ns.insert((row.into(), procs), vec![ns]);
        }
        p
    }

    fn cell<'a>(rows: &'a [Row], name: &str, procs: u32, unit: &str, peer: &str) -> &'a Cell {
        let row = rows
            .iter()
            .find(|r| r.name == name && r.procs == procs && r.unit == unit)
            .unwrap_or_else(|| panic!("no row {name} {procs} {unit}"));
        &row.peers.iter().find(|(p, _)| p == peer).unwrap().1
    }

    #[test]
    fn failed_and_memory_lines_parse() {
        let mut f = Measured::default();
        parse_lines(
            "{\"name\":\"parked_1m\",\"procs\":2,\"ns_per_op\":480.5,\"bytes_per_g\":2678.3}\n\
             {\"name\":\"spawn\",\"procs\":1,\"failed\":\"failed to alloc sys stack\"}\n",
            &mut f,
        )
        .unwrap();
        assert_eq!(f.ns[&("parked_1m".to_string(), 2)], vec![480.5]);
        assert_eq!(f.bytes[&("parked_1m".to_string(), 2)], vec![2678.3]);
        assert_eq!(
            f.failed[&("spawn".to_string(), 1)],
            "failed to alloc sys stack"
        );
        assert!(!f.ns.contains_key(&("spawn".to_string(), 1)));
    }

    #[test]
    fn verdict_is_ahead_only_where_ours_is_lower() {
        let ours = program("rt-core", &[("gosched", 1, 20.0), ("spawn", 2, 600.0)]);
        let go = program("Go", &[("gosched", 1, 100.0), ("spawn", 2, 300.0)]);
        let rows = table(&ours, &[go]);
        let c = cell(&rows, "gosched", 1, "ns_per_op", "Go");
        assert_eq!((c.ratio, c.verdict), (Some(0.2), Some("ahead")));
        let c = cell(&rows, "spawn", 2, "ns_per_op", "Go");
        assert_eq!((c.ratio, c.verdict), (Some(2.0), Some("behind")));
        assert_eq!(verdict(1.0), "behind");
        assert_eq!(verdict(0.999), "ahead");
        // The targets still judge against Go.
        let row = rows.iter().find(|r| r.name == "spawn").unwrap();
        assert_eq!(row.target, "<= 0.7x Go MISSED");
        let row = rows.iter().find(|r| r.name == "gosched").unwrap();
        assert_eq!(row.target, "<= 0.5x Go met");
    }

    #[test]
    fn peer_not_built_shows_its_reason() {
        let ours = program("rt-core", &[("gosched", 1, 20.0)]);
        let go = program("Go", &[("gosched", 1, 100.0)]);
        let may = Program::new("may", Err("not built (no network: crates.io)".into()));
        let tokio = program("tokio", &[("gosched", 1, 10.0)]);
        let peers = [go, may, tokio];
        let rows = table(&ours, &peers);
        let c = cell(&rows, "gosched", 1, "ns_per_op", "may");
        assert_eq!(c.value, None);
        assert_eq!(
            c.missing.as_deref(),
            Some("not built (no network: crates.io)")
        );
        let c = cell(&rows, "gosched", 1, "ns_per_op", "tokio");
        assert_eq!((c.ratio, c.verdict), (Some(2.0), Some("behind")));
        let text = render(&rows, &peers);
        assert!(
            text.contains("may: not built (no network: crates.io)"),
            "{text}"
        );
        let line = text.lines().find(|l| l.starts_with("gosched")).unwrap();
        assert!(line.contains("not built"), "{line}");
        assert!(line.contains("100.0 0.20 ahead"), "{line}");
        assert!(line.contains("10.0 2.00 behind"), "{line}");
    }

    #[test]
    fn failed_rows_and_rows_without_equivalent_show_why() {
        let mut ours = program("rt-core", &[("preempt_point", 1, 1.2)]);
        ours.measured.failed.insert(
            ("parked_1m".into(), 1),
            "fatal error: out of memory allocating a 262144-byte goroutine stack".into(),
        );
        let mut go = program("Go", &[("parked_1m", 1, 5800.0)]);
        go.measured
            .bytes
            .insert(("parked_1m".into(), 1), vec![2678.0]);
        let mut may = program("may", &[]);
        may.measured
            .failed
            .insert(("parked_1m".into(), 1), "failed to alloc sys stack".into());
        let mut tokio = program("tokio", &[("parked_1m", 1, 1000.0)]);
        tokio
            .measured
            .bytes
            .insert(("parked_1m".into(), 1), vec![439.0]);
        let peers = [go, may, tokio];
        let rows = table(&ours, &peers);
        // No peer has preempt_point: "-", no reason.
        let c = cell(&rows, "preempt_point", 1, "ns_per_op", "tokio");
        assert_eq!((c.value, c.missing.as_deref()), (None, None));
        let c = cell(&rows, "parked_1m", 1, "ns_per_op", "may");
        assert_eq!(
            c.missing.as_deref(),
            Some("failed: failed to alloc sys stack")
        );
        let c = cell(&rows, "parked_1m", 1, "bytes_per_g", "tokio");
        assert_eq!((c.value, c.ratio), (Some(439.0), None));
        let text = render(&rows, &peers);
        let line = text
            .lines()
            .find(|l| l.starts_with("preempt_point"))
            .unwrap();
        assert_eq!(
            line.matches(" - ").count() + line.ends_with(" -") as usize,
            3,
            "{line}"
        );
        let line = text.lines().find(|l| l.starts_with("parked_1m ")).unwrap();
        assert!(line.contains("failed [1]"), "{line}");
        assert!(line.contains("failed [2]"), "{line}");
        assert!(line.contains("5800.0"), "{line}");
        assert!(text.contains("parked_1m bytes/g"), "{text}");
        assert!(
            text.contains("[1] rt-core parked_1m at procs 1: failed: fatal error: out of memory"),
            "{text}"
        );
        assert!(
            text.contains("[2] may parked_1m at procs 1: failed: failed to alloc sys stack"),
            "{text}"
        );
    }

    #[test]
    fn failure_reason_names_the_cause() {
        let rust = "\nthread '<unnamed>' (27606) panicked at src/stack/mod.rs:588:45:\n\
                    failed to alloc sys stack: IoError\nnote: run with `RUST_BACKTRACE=1`\n\
                    thread 'main' panicked at src/bin/may.rs:42:24:\nthe benchmark coroutine\n";
        assert_eq!(
            failure_reason(rust, "x"),
            "failed to alloc sys stack: IoError"
        );
        let go = "fatal error: out of memory allocating a 262144-byte goroutine stack\n\n\
                  goroutine 1 [running]:\n";
        assert_eq!(
            failure_reason(go, "x"),
            "fatal error: out of memory allocating a 262144-byte goroutine stack"
        );
        assert_eq!(
            failure_reason("memory allocation of 1088 bytes failed\n", "x"),
            "memory allocation of 1088 bytes failed"
        );
        assert_eq!(
            failure_reason("", "exited with signal 6"),
            "exited with signal 6"
        );
        assert_eq!(whole_name("parked", Some(1_000_000)), "parked_1m");
        assert_eq!(whole_name("parked", Some(100_000)), "parked_100k");
        assert_eq!(whole_name("skynet", None), "skynet");
    }

    #[test]
    fn a_hung_program_is_killed_and_a_failing_one_says_why() {
        let err = run_capture(
            Command::new("sh")
                .args(["-c", "sleep 30"])
                .stderr(Stdio::piped()),
            Some(Duration::from_millis(200)),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("killed after"), "{err}");
        let err = run_capture(
            Command::new("sh")
                .args(["-c", "echo '{}'; echo 'fatal error: boom' >&2; exit 2"])
                .stderr(Stdio::piped()),
            Some(Duration::from_secs(30)),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "fatal error: boom");
        let out = run_capture(Command::new("sh").args(["-c", "echo hi"]), None).unwrap();
        assert_eq!(out, "hi\n");
    }
}

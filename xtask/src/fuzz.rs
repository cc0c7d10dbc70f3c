//! `cargo xtask fuzz`: runs the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer), one per
//! parser of outside input (the kernel's arguments, the harness's directives and its reading
//! of serial output, the execution trace's decoder and views, the trace window, the raw
//! traceback lines and their symbolizer), each for a given time, and reports per target how
//! many inputs it ran and whether one failed.
//!
//! Invariants: cargo-fuzz is installed at most once however many xtasks start together (the
//! set-up lock, [`crate::setup::once_under_lock`]); the committed seeds (`fuzz/corpus/T`) are
//! only read, and what libFuzzer learns goes to `target/fuzz/corpus/T` (kept between runs); a
//! failing input is written where cargo-fuzz puts it (`fuzz/artifacts/T/`, ignored by git)
//! and makes the exit status non-zero. Go's counterpart is `go test -fuzz`.
//!
//! Not part of `cargo xtask test`: CI runs in a fresh clone, and the instrumented build of the
//! fuzz crate (xtask and its SVG checker included, at opt-level 3 with coverage counters)
//! takes far longer than the few minutes the CI budget has left, before a target has run a
//! second. What fuzzing finds stays tested there: each fix comes with a unit test in the
//! parser's own crate.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::setup;

/// The fuzz crate, from the workspace root.
pub const FUZZ_DIR: &str = "fuzz";

/// What one target's run came to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// Inputs run (libFuzzer's `stat::number_of_executed_units`, else its `Done N runs`).
    pub execs: Option<u64>,
    /// The failing input libFuzzer wrote (crash, leak, out-of-memory or timeout), if any.
    pub artifact: Option<String>,
    /// Why it failed, in one line: the panic's message, else libFuzzer's `ERROR:` line.
    pub error: Option<String>,
}

/// Reads libFuzzer's output (its stderr) into a [`Summary`].
pub fn read_log(log: &str) -> Summary {
    let mut s = Summary::default();
    let lines: Vec<&str> = log.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let l = l.trim();
        if let Some(n) = l.strip_prefix("stat::number_of_executed_units:") {
            s.execs = n.trim().parse().ok().or(s.execs);
        } else if let Some(rest) = l.strip_prefix("Done ") {
            if s.execs.is_none() {
                s.execs = rest.split_whitespace().next().and_then(|n| n.parse().ok());
            }
        } else if let Some((_, path)) = l.split_once("Test unit written to ") {
            s.artifact = Some(path.trim().to_string());
        } else if l.contains(" panicked at ") && s.error.is_none() {
            // `thread '<unnamed>' panicked at src/x.rs:1:2:` and the message on the next line.
            let msg = lines.get(i + 1).map_or("", |m| m.trim());
            let at = l.split_once(" panicked at ").map_or("", |(_, a)| a);
            s.error = Some(format!("panicked at {} {msg}", at.trim_end_matches(':')));
        } else if let Some((_, what)) = l.split_once("ERROR: libFuzzer: ") {
            if s.error.is_none() {
                s.error = Some(format!("libFuzzer: {what}"));
            }
        }
    }
    s
}

/// The targets, by name (`fuzz/fuzz_targets/*.rs`), sorted.
pub fn targets(root: &Path) -> Result<Vec<String>> {
    let dir = root.join(FUZZ_DIR).join("fuzz_targets");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .collect();
    names.sort();
    Ok(names)
}

fn cargo_fuzz_present() -> bool {
    Command::new(crate::cargo())
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs cargo-fuzz unless `cargo fuzz` already works, once per machine.
pub fn ensure_cargo_fuzz() -> Result<()> {
    setup::once_under_lock(
        &setup::lock_path(),
        "cargo-fuzz",
        &cargo_fuzz_present,
        &mut || {
            eprintln!("xtask: installing cargo-fuzz (cargo install cargo-fuzz --locked)");
            let status = Command::new(crate::cargo())
                .args(["install", "cargo-fuzz", "--locked"])
                .status()
                .context("cannot run cargo install")?;
            if !status.success() || !cargo_fuzz_present() {
                bail!("cargo install cargo-fuzz --locked failed ({status})");
            }
            Ok(())
        },
    )
}

/// cargo-fuzz's build options, the same for the build and every run so that a run does not
/// rebuild: `-a`, debug assertions and overflow checks on (an overflow is a finding).
const BUILD_OPTS: &[&str] = &["--fuzz-dir", FUZZ_DIR, "--debug-assertions"];

/// Runs `only` (or every target) for `seconds` each; prints a line per target and returns
/// the exit status: 0 if no target failed, 1 if one did.
pub fn run(seconds: u64, only: Option<&str>) -> Result<u8> {
    if seconds == 0 {
        bail!("--seconds must be at least 1");
    }
    let root = crate::root();
    let all = targets(&root)?;
    let chosen: Vec<String> = match only {
        Some(t) if all.iter().any(|a| a == t) => vec![t.to_string()],
        Some(t) => bail!("no fuzz target `{t}`; the targets are: {}", all.join(", ")),
        None => all,
    };
    ensure_cargo_fuzz()?;
    println!("== fuzz: building {} target(s)", chosen.len());
    let mut build = Command::new(crate::cargo());
    build
        .current_dir(&root)
        .args(["fuzz", "build"])
        .args(BUILD_OPTS);
    if let [one] = &chosen[..] {
        build.arg(one);
    }
    let status = build.status().context("cannot run cargo fuzz build")?;
    if !status.success() {
        bail!("cargo fuzz build failed ({status})");
    }
    let mut failed = 0;
    for t in &chosen {
        let learned = root.join("target/fuzz/corpus").join(t);
        let seeds = root.join(FUZZ_DIR).join("corpus").join(t);
        fs::create_dir_all(&learned)
            .with_context(|| format!("cannot create {}", learned.display()))?;
        let log_path = root.join("target/fuzz").join(format!("{t}.log"));
        let log = fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut cmd = Command::new(crate::cargo());
        cmd.current_dir(&root)
            .args(["fuzz", "run"])
            .args(BUILD_OPTS)
            .arg(t)
            .arg(&learned)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            // A hang is a finding too, and should show within a short run.
            .arg("-timeout=10")
            .arg("-print_final_stats=1")
            .stdout(log.try_clone()?)
            .stderr(log);
        println!(
            "fuzz {t}: cargo fuzz run {} {t} {} {} -- -max_total_time={seconds} -timeout=10",
            BUILD_OPTS.join(" "),
            rel(&root, &learned),
            rel(&root, &seeds)
        );
        let status = cmd.status().context("cannot run cargo fuzz run")?;
        let text = fs::read_to_string(&log_path).unwrap_or_default();
        let s = read_log(&text);
        let execs = s
            .execs
            .map_or("? executions".into(), |n| format!("{n} executions"));
        if status.success() && s.artifact.is_none() {
            println!("fuzz {t} ... ok ({execs} in {seconds} s, no crash)");
        } else {
            failed += 1;
            println!(
                "fuzz {t} ... FAILED ({execs}; {}; input: {}; log: {})",
                s.error.as_deref().unwrap_or("no error message"),
                s.artifact.as_deref().unwrap_or("none written"),
                rel(&root, &log_path)
            );
            if let Some(a) = &s.artifact {
                println!(
                    "    reproduce: cargo fuzz run {} {t} {a}",
                    BUILD_OPTS.join(" ")
                );
            }
        }
    }
    println!("fuzz: {} target(s), {} failed", chosen.len(), failed);
    Ok(u8::from(failed > 0))
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .map_or_else(|_| p.to_path_buf(), PathBuf::from)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_run_gives_its_count_and_no_failure() {
        let log = "INFO: Seed: 1\n#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                   Done 123456 runs in 61 second(s)\nstat::number_of_executed_units: 123457\n\
                   stat::average_exec_per_sec:     2023\n";
        assert_eq!(
            read_log(log),
            Summary {
                execs: Some(123457),
                artifact: None,
                error: None
            }
        );
        assert_eq!(read_log("Done 5 runs in 1 second(s)\n").execs, Some(5));
    }

    #[test]
    fn a_crash_gives_its_message_and_input() {
        let log = "#1024\tpulse  cov: 3\n\
                   thread '<unnamed>' panicked at fuzz_targets/x.rs:10:5:\n\
                   assertion failed: a < b\n\
                   ==77== ERROR: libFuzzer: deadly signal\n\
                   artifact_prefix='/w/fuzz/artifacts/x/'; Test unit written to /w/fuzz/artifacts/x/crash-abc\n\
                   stat::number_of_executed_units: 1500\n";
        assert_eq!(
            read_log(log),
            Summary {
                execs: Some(1500),
                artifact: Some("/w/fuzz/artifacts/x/crash-abc".into()),
                error: Some("panicked at fuzz_targets/x.rs:10:5 assertion failed: a < b".into())
            }
        );
        let oom = "==9== ERROR: libFuzzer: out-of-memory (malloc(4294967296))\n\
                   Test unit written to fuzz/artifacts/y/oom-1\n";
        let s = read_log(oom);
        assert_eq!(
            (s.error.as_deref(), s.artifact.as_deref()),
            (
                Some("libFuzzer: out-of-memory (malloc(4294967296))"),
                Some("fuzz/artifacts/y/oom-1")
            )
        );
    }

    #[test]
    fn every_target_has_seeds() {
        let root = crate::tool_root();
        let names = targets(&root).unwrap();
        assert!(names.len() >= 8, "{names:?}");
        for t in &names {
            let seeds = root.join(FUZZ_DIR).join("corpus").join(t);
            let n = fs::read_dir(&seeds).map_or(0, |d| d.count());
            assert!(n > 0, "fuzz target {t} has no seeds in {}", seeds.display());
        }
    }
}

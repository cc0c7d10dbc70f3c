//! `cargo xtask mutants`: mutation testing of rt-core's core files with cargo-mutants.
//!
//! cargo-mutants changes one thing at a time in the chosen files (a function body replaced by
//! a default value, `<` by `<=`, a `&&` by `||`, ...), rebuilds, and runs the tests: a mutant
//! the tests still pass on ("missed") is a change in behaviour no test notices, or a change
//! that is no change at all (an equivalent mutant: docs/mutants.md lists those, with why).
//! Which tests judge the mutants, and in which profile, is cargo-mutants' own configuration,
//! `.cargo/mutants.toml`; here: which files, the timeout, and the summary (per file: caught of
//! all, with missed, timeouts, unviable) read back from cargo-mutants' output directory.
//!
//! Invariants: the run happens in cargo-mutants' scratch copy of the tree, never in place; it
//! runs one mutant at a time under `nice` (the machine is shared); the summary counts exactly
//! the lines of cargo-mutants' `caught.txt`, `missed.txt`, `timeout.txt` and `unviable.txt`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// rt-core's core files: run queue, scheduling loop, idle and spinning Ms, preemption,
/// channels, select.
pub const DEFAULT_FILES: &[&str] = &[
    "runq.rs",
    "sched.rs",
    "idle.rs",
    "preempt.rs",
    "chan.rs",
    "select.rs",
];

/// Seeds per body for the deterministic tests while judging a mutant (`GORT_SEEDS`).
pub const MUTANT_SEEDS: u32 = 60;

fn cargo_mutants_present() -> bool {
    Command::new(crate::cargo())
        .args(["mutants", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs cargo-mutants unless `cargo mutants` already works, once per machine (under the
/// same lock as every other install, [`crate::setup::once_under_lock`]).
pub fn ensure_cargo_mutants() -> Result<()> {
    crate::setup::once_under_lock(
        &crate::setup::lock_path(),
        "cargo-mutants",
        &cargo_mutants_present,
        &mut || {
            eprintln!("xtask: installing cargo-mutants (cargo install cargo-mutants --locked)");
            let status = Command::new(crate::cargo())
                .args(["install", "cargo-mutants", "--locked"])
                .status()
                .context("cannot run cargo install")?;
            if !status.success() || !cargo_mutants_present() {
                bail!("cargo install cargo-mutants --locked failed ({status})");
            }
            Ok(())
        },
    )
}

/// Where the run's output goes (cargo-mutants adds `mutants.out/`).
pub fn out_dir(root: &Path) -> PathBuf {
    root.join("target/mutants")
}

/// `runq.rs`, `rt-core/src/runq.rs` or `sync/mutex.rs` -> the path below the tree's root, which
/// must name an existing file of rt-core.
pub fn resolve_file(root: &Path, f: &str) -> Result<String> {
    let rel = if f.starts_with("rt-core/") {
        f.to_string()
    } else {
        format!("rt-core/src/{f}")
    };
    if !root.join(&rel).is_file() {
        bail!("mutants: no such rt-core file: {f} (looked for {rel})");
    }
    Ok(rel)
}

/// What happened to the mutants of one file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Score {
    pub caught: usize,
    pub missed: usize,
    pub timeout: usize,
    pub unviable: usize,
}

impl Score {
    pub fn total(&self) -> usize {
        self.caught + self.missed + self.timeout + self.unviable
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "caught {}/{} (missed {}, timeouts {}, unviable {})",
            self.caught,
            self.total(),
            self.missed,
            self.timeout,
            self.unviable
        )
    }
}

/// The file a line of cargo-mutants' outcome lists names (`rt-core/src/runq.rs:80:9: replace
/// ...` -> `rt-core/src/runq.rs`).
fn file_of(line: &str) -> Option<&str> {
    let (file, rest) = line.split_once(':')?;
    rest.split(':').next()?.parse::<u32>().ok()?;
    Some(file)
}

/// Per-file scores from the four outcome lists' text: (caught, missed, timeout, unviable).
pub fn scores(lists: [&str; 4]) -> BTreeMap<String, Score> {
    let mut out: BTreeMap<String, Score> = BTreeMap::new();
    for (k, text) in lists.iter().enumerate() {
        for file in text.lines().filter_map(file_of) {
            let s = out.entry(file.to_string()).or_default();
            match k {
                0 => s.caught += 1,
                1 => s.missed += 1,
                2 => s.timeout += 1,
                _ => s.unviable += 1,
            }
        }
    }
    out
}

/// Runs cargo-mutants over `files` (default: [`DEFAULT_FILES`]) with each test run limited
/// to `timeout` seconds, prints the scores and writes the missed mutants to
/// target/mutants/missed.txt. Exit status: 0 when no mutant was missed or timed out, 1 when
/// some were.
pub fn run(root: &Path, files: &[String], timeout: u64) -> Result<u8> {
    let files: Vec<String> = if files.is_empty() {
        DEFAULT_FILES
            .iter()
            .map(|f| resolve_file(root, f))
            .collect::<Result<_>>()?
    } else {
        files
            .iter()
            .map(|f| resolve_file(root, f))
            .collect::<Result<_>>()?
    };
    ensure_cargo_mutants()?;
    let out = out_dir(root);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut cmd = Command::new("nice");
    cmd.current_dir(root)
        .args([
            "-n",
            "10",
            &crate::cargo(),
            "mutants",
            "--package",
            "rt-core",
        ])
        .args(["--jobs", "1", "--timeout", &timeout.to_string(), "--output"])
        .arg(&out)
        // The deterministic replayer's seeds per body (tests/deterministic.rs): 60 instead of
        // 400 keeps its binary at ~1 s per mutant and still runs every body under many orders.
        .env("GORT_SEEDS", MUTANT_SEEDS.to_string());
    for f in &files {
        cmd.args(["--file", f]);
    }
    println!("mutants: {}", files.join(" "));
    let status = cmd.status().context("running cargo mutants")?;
    // cargo-mutants: 0 all caught, 2 some missed, 3 some timed out, 4 the unmutated tree
    // failed its tests (nothing was judged), 1 bad usage.
    match status.code() {
        Some(0 | 2 | 3) => {}
        Some(4) => bail!(
            "mutants: the tests fail on the unmutated tree (see {}/mutants.out/log)",
            out.display()
        ),
        _ => bail!("mutants: cargo mutants failed ({status})"),
    }
    let read = |name: &str| {
        std::fs::read_to_string(out.join("mutants.out").join(name)).unwrap_or_default()
    };
    let lists = [
        read("caught.txt"),
        read("missed.txt"),
        read("timeout.txt"),
        read("unviable.txt"),
    ];
    let per_file = scores([&lists[0], &lists[1], &lists[2], &lists[3]]);
    let mut all = Score::default();
    for (file, s) in &per_file {
        println!("{file}: {s}");
        all.caught += s.caught;
        all.missed += s.missed;
        all.timeout += s.timeout;
        all.unviable += s.unviable;
    }
    println!("all: {all}");
    let missed = out.join("missed.txt");
    std::fs::write(&missed, &lists[1]).with_context(|| format!("writing {}", missed.display()))?;
    if all.missed > 0 {
        println!("missed mutants: {}", missed.display());
    }
    Ok(u8::from(all.missed + all.timeout > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_count_each_list_per_file() {
        let caught = "rt-core/src/runq.rs:80:9: replace RunQueue::len -> usize with 0\n\
                      rt-core/src/runq.rs:81:9: replace < with <=\n\
                      rt-core/src/idle.rs:10:5: replace wakep with ()\n";
        let missed = "rt-core/src/runq.rs:90:13: replace + with -\n";
        let s = scores([
            caught,
            missed,
            "",
            "rt-core/src/idle.rs:12:1: replace f -> X with Default::default()\n",
        ]);
        let runq = &s["rt-core/src/runq.rs"];
        assert_eq!((runq.caught, runq.missed, runq.total()), (2, 1, 3));
        assert_eq!(
            runq.to_string(),
            "caught 2/3 (missed 1, timeouts 0, unviable 0)"
        );
        let idle = &s["rt-core/src/idle.rs"];
        assert_eq!((idle.caught, idle.unviable), (1, 1));
    }

    #[test]
    fn a_file_is_named_briefly_or_by_its_path_and_must_exist() {
        let root = crate::tool_root();
        assert_eq!(
            resolve_file(&root, "runq.rs").unwrap(),
            "rt-core/src/runq.rs"
        );
        assert_eq!(
            resolve_file(&root, "rt-core/src/chan.rs").unwrap(),
            "rt-core/src/chan.rs"
        );
        let e = resolve_file(&root, "nosuch.rs").unwrap_err().to_string();
        assert!(e.contains("no such rt-core file: nosuch.rs"), "{e}");
    }
}

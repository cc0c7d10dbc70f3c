//! `cargo xtask lab`: the course's labs (docs/book/, each chapter's "Lab" section).
//!
//! A lab is one or more regions of the real source, marked in place with comments that the
//! compiler ignores, so nothing in the normal build depends on them:
//!
//! ```text
//!     // LAB(runq) begin: runqput
//!     // LAB(runq) hint: Go's runqput (proc.go): with `next`, swap the item into runnext ...
//!     // LAB(runq) stub: todo!("LAB(runq): runqput")
//!     ... the solution: the code the project runs ...
//!     // LAB(runq) end
//! ```
//!
//! Hints and stub lines come first, right after `begin`. `start` replaces each region's
//! solution with its stub (the stub lines uncommented, the hints as comments; the `begin` and
//! `end` lines stay, to show where to write), after saving the original files under
//! `target/lab/NAME/orig/` and the stubbed ones under `target/lab/NAME/stub/`. `reset` puts the
//! originals back; a student's changed version is kept under `target/lab/NAME/attempt/`.
//! `grade` runs the lab's checks — host tests of rt-core (`cargo test`) and test kernels in
//! QEMU (the harness) — and prints them the xv6 way (`== Test NAME == OK (1.2 s)`, `FAIL`
//! with the reason, `Score: T/P`), exiting non-zero below full marks.
//!
//! Graders are proven honest by [`prove`] (a step of `cargo xtask test`): in a scratch copy of
//! the tree, every lab gets full marks untouched and less than full marks once started.
//!
//! Invariants: a lab's stubs compile (a student starts from a tree that builds, and the
//! graders then fail on behaviour, not on a build error); every region belongs to a lab in
//! [`LABS`]; every lab has at least one region and is described in its chapter (book.rs checks
//! both).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::build::{self, Firmware, Kernels};
use crate::harness::{self, Outcome, RunOptions};
use crate::qemu::Accel;

/// One thing a grader runs.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    /// A host test of rt-core: `cargo test -p rt-core --test FILE -- --exact NAME`.
    Host {
        file: &'static str,
        name: &'static str,
    },
    /// A test kernel (tests/src/bin/BIN.rs) at `smp` CPUs, judged by the harness.
    Qemu { bin: &'static str, smp: u32 },
}

impl Check {
    pub fn name(&self) -> String {
        match self {
            Check::Host { file, name } => format!("{file}::{name}"),
            Check::Qemu { bin, smp } => format!("qemu {bin} (smp {smp})"),
        }
    }
}

/// A lab: what it is, where the book describes it, and what grades it.
#[derive(Debug)]
pub struct Lab {
    pub name: &'static str,
    pub title: &'static str,
    /// The chapter (docs/book/src/…) whose "Lab" section describes it.
    pub chapter: &'static str,
    pub checks: &'static [Check],
}

const fn host(file: &'static str, name: &'static str) -> Check {
    Check::Host { file, name }
}

const fn qemu(bin: &'static str, smp: u32) -> Check {
    Check::Qemu { bin, smp }
}

/// The labs, easiest first (the order of the book's chapters).
pub const LABS: &[Lab] = &[
    Lab {
        name: "switch",
        title: "the context switch and a new goroutine's first frame (swtch, prepare_new)",
        chapter: "ch02-switch.md",
        checks: &[
            host(
                "pieces",
                "raw_switch_runs_the_other_context_on_its_own_stack_and_comes_back",
            ),
            host("sched_basic", "gosched_interleaves_two_goroutines"),
            host(
                "sched_basic",
                "spawned_goroutines_all_run_once_gomaxprocs_1",
            ),
            qemu("sched", 2),
        ],
    },
    Lab {
        name: "runq",
        title: "the local run queue: runqput/runqget with runnext, runqgrab stealing half",
        chapter: "ch03-runqueues.md",
        checks: &[
            host("runq", "the_ring_is_fifo"),
            host(
                "runq",
                "runnext_runs_first_and_kicks_its_old_item_to_the_tail",
            ),
            host(
                "runq",
                "a_full_ring_gives_up_its_older_half_and_the_new_item",
            ),
            host("runq", "a_thief_takes_half_rounded_up_and_runs_the_last"),
            host(
                "runq",
                "runnext_is_stolen_only_on_request_from_an_empty_ring",
            ),
            host(
                "runq",
                "an_owner_and_two_thieves_lose_and_duplicate_nothing",
            ),
            host(
                "sched_stress",
                "an_idle_p_steals_from_a_p_that_never_yields",
            ),
            qemu("sched", 4),
        ],
    },
    Lab {
        name: "findrunnable",
        title: "find_runnable's order: the local queue first, the global queue every 61st tick",
        chapter: "ch04-finding-work.md",
        checks: &[
            host("sched_stress", "global_queue_is_checked_every_61_ticks"),
            host("sched_basic", "a_yielder_waits_behind_the_local_queue"),
            host("sched_basic", "gosched_interleaves_two_goroutines"),
            qemu("sched_gomaxprocs1", 4),
        ],
    },
    Lab {
        name: "park",
        title: "parking and waking Ms without losing a wake-up (wakep, the last look)",
        chapter: "ch05-spinning.md",
        checks: &[
            host("sched_basic", "goroutines_spread_over_four_ps"),
            host("sched_stress", "waitgroup_chains_across_ps"),
            host("time_sync", "mutex_excludes_across_ms_and_loses_no_update"),
            qemu("idle_m", 4),
        ],
    },
    Lab {
        name: "preempt",
        title:
            "preemption: the tick's request, the safe-point check, the async-safe-point decision",
        chapter: "ch07-preemption.md",
        checks: &[
            host(
                "sched_stress",
                "sysmon_preempts_a_spinning_goroutine_at_a_safe_point",
            ),
            qemu("preempt_sync", 2),
            qemu("preempt", 2),
        ],
    },
    Lab {
        name: "chan",
        title: "a channel's send and receive, with direct hand-off to a parked goroutine",
        chapter: "ch09-channels.md",
        checks: &[
            host(
                "chan",
                "unbuffered_send_waits_for_a_receiver_and_keeps_order",
            ),
            host(
                "chan",
                "a_full_buffer_blocks_the_sender_and_order_is_fifo_across_the_handoff",
            ),
            host(
                "chan",
                "many_senders_many_receivers_lose_and_duplicate_nothing",
            ),
            host("chan", "the_prime_sieve_finds_the_first_1000_primes"),
            qemu("chan", 2),
        ],
    },
    Lab {
        name: "stackgrow",
        title: "(harder) the page-fault handler that grows a goroutine's stack on demand",
        chapter: "ch08-stacks.md",
        checks: &[
            qemu("stacks", 2),
            qemu("stack_overflow_guard", 2),
            qemu("chan", 2),
        ],
    },
];

pub fn find(name: &str) -> Result<&'static Lab> {
    LABS.iter().find(|l| l.name == name).ok_or_else(|| {
        let names: Vec<&str> = LABS.iter().map(|l| l.name).collect();
        anyhow::anyhow!(
            "no lab named {name:?} (the labs: {}; `cargo xtask lab list`)",
            names.join(", ")
        )
    })
}

// ---------------------------------------------------------------------------------------
// Regions

/// Where labs may have regions (relative to the tree's root).
const SOURCE_DIRS: &[&str] = &["rt-core/src", "kernel/src"];

/// One marked region of a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub lab: String,
    /// Relative to the tree's root.
    pub file: String,
    /// 1-based lines of `begin` and `end`.
    pub begin: usize,
    pub end: usize,
    /// What the region is (after `begin:`).
    pub what: String,
    pub hints: Vec<String>,
    pub stub: Vec<String>,
    /// The `begin` line's indentation, given to the stub.
    pub indent: String,
}

/// A marker line: `// LAB(name) word[: text]`. Returns (name, word, text).
fn marker(line: &str) -> Option<(&str, &str, &str)> {
    let rest = line.trim_start().strip_prefix("// LAB(")?;
    let (name, rest) = rest.split_once(')')?;
    let rest = rest.strip_prefix(' ')?;
    let (word, text) = match rest.split_once(':') {
        Some((w, t)) => (w, t.strip_prefix(' ').unwrap_or(t)),
        None => (rest.trim_end(), ""),
    };
    Some((name, word, text))
}

/// The regions of one file's text. Malformed markers are errors that name the line.
pub fn regions_in(file: &str, text: &str) -> Result<Vec<Region>> {
    let mut out = Vec::new();
    let mut open: Option<(Region, bool)> = None; // (region, still in its hints/stub header)
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let Some((lab, word, body)) = marker(line) else {
            if let Some((_, header)) = open.as_mut() {
                *header = false;
            }
            continue;
        };
        match (word, open.as_mut()) {
            ("begin", None) => {
                let indent = line[..line.len() - line.trim_start().len()].to_string();
                open = Some((
                    Region {
                        lab: lab.into(),
                        file: file.into(),
                        begin: n,
                        end: 0,
                        what: body.trim().into(),
                        hints: Vec::new(),
                        stub: Vec::new(),
                        indent,
                    },
                    true,
                ));
            }
            ("begin", Some((r, _))) => bail!(
                "{file}:{n}: LAB({lab}) begins inside LAB({}) (begun at line {})",
                r.lab,
                r.begin
            ),
            ("hint" | "stub", Some((r, header))) if r.lab == lab => {
                if !*header {
                    bail!("{file}:{n}: LAB({lab}) {word} after the solution began: hints and stub lines come right after `begin`");
                }
                if word == "hint" {
                    r.hints.push(body.to_string());
                } else {
                    r.stub.push(body.to_string());
                }
            }
            ("end", Some((r, _))) if r.lab == lab => {
                let (mut r, _) = open.take().unwrap();
                if r.stub.is_empty() {
                    bail!("{file}:{}: LAB({lab}) has no stub line", r.begin);
                }
                r.end = n;
                out.push(r);
            }
            (_, Some((r, _))) if r.lab != lab => bail!(
                "{file}:{n}: LAB({lab}) {word} inside LAB({}) (begun at line {})",
                r.lab,
                r.begin
            ),
            (w, _) => bail!("{file}:{n}: unexpected LAB({lab}) {w:?} (begin, hint, stub, end)"),
        }
    }
    if let Some((r, _)) = open {
        bail!("{file}:{}: LAB({}) begins and never ends", r.begin, r.lab);
    }
    Ok(out)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every region in the tree at `root`, by file and line.
pub fn regions(root: &Path) -> Result<Vec<Region>> {
    let mut files = Vec::new();
    for d in SOURCE_DIRS {
        rust_files(&root.join(d), &mut files)?;
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        let text = fs::read_to_string(&f).with_context(|| format!("cannot read {rel}"))?;
        if text.contains("// LAB(") {
            out.extend(regions_in(&rel, &text)?);
        }
    }
    Ok(out)
}

/// `text` with `lab`'s regions replaced by their stubs (markers kept).
pub fn stubbed(text: &str, regions: &[Region]) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    for r in regions {
        while i < r.begin {
            out.push_str(lines[i]);
            out.push('\n');
            i += 1;
        }
        // lines[r.begin - 1] is `begin`, already copied.
        for h in &r.hints {
            out.push_str(&format!("{}// {h}\n", r.indent).replace("// \n", "//\n"));
        }
        for s in &r.stub {
            out.push_str(&format!("{}{s}\n", r.indent));
        }
        i = r.end - 1; // the `end` line is copied next
    }
    while i < lines.len() {
        out.push_str(lines[i]);
        out.push('\n');
        i += 1;
    }
    if !text.ends_with('\n') {
        out.pop();
    }
    out
}

// ---------------------------------------------------------------------------------------
// start, reset, list

fn state_dir(root: &Path, lab: &str) -> PathBuf {
    root.join("target/lab").join(lab)
}

pub fn is_started(root: &Path, lab: &str) -> bool {
    state_dir(root, lab).join("orig").is_dir()
}

fn lab_regions(root: &Path, lab: &Lab) -> Result<Vec<Region>> {
    let all: Vec<Region> = regions(root)?
        .into_iter()
        .filter(|r| r.lab == lab.name)
        .collect();
    if all.is_empty() {
        bail!(
            "lab {} has no LAB({}) region in the source",
            lab.name,
            lab.name
        );
    }
    Ok(all)
}

fn files_of(regions: &[Region]) -> Vec<String> {
    let mut files: Vec<String> = regions.iter().map(|r| r.file.clone()).collect();
    files.dedup();
    files
}

/// `cargo xtask lab start NAME`.
pub fn start(root: &Path, name: &str) -> Result<()> {
    let lab = find(name)?;
    if is_started(root, name) {
        bail!("lab {name} is already started (`cargo xtask lab reset {name}` first)");
    }
    let regions = lab_regions(root, lab)?;
    let dir = state_dir(root, name);
    for file in files_of(&regions) {
        let text = fs::read_to_string(root.join(&file))?;
        let mine: Vec<Region> = regions.iter().filter(|r| r.file == file).cloned().collect();
        let stub = stubbed(&text, &mine);
        for (sub, content) in [("orig", &text), ("stub", &stub)] {
            let p = dir.join(sub).join(&file);
            fs::create_dir_all(p.parent().unwrap())?;
            fs::write(&p, content)?;
        }
        fs::write(root.join(&file), &stub)?;
        for r in &mine {
            println!("  {}:{}  {}", file, r.begin, r.what);
        }
    }
    println!(
        "lab {name} started: {}. Write the regions above (their hints are in place), then \
         `cargo xtask lab grade {name}`; the book's {} says what to do. `cargo xtask lab \
         reset {name}` puts the original back.",
        lab.title, lab.chapter
    );
    Ok(())
}

fn walk_files(dir: &Path, base: &Path, out: &mut Vec<String>) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            walk_files(&p, base, out)?;
        } else {
            out.push(p.strip_prefix(base).unwrap().display().to_string());
        }
    }
    Ok(())
}

/// `cargo xtask lab reset NAME`.
pub fn reset(root: &Path, name: &str) -> Result<()> {
    find(name)?;
    if !is_started(root, name) {
        bail!("lab {name} is not started");
    }
    let dir = state_dir(root, name);
    let mut files = Vec::new();
    walk_files(&dir.join("orig"), &dir.join("orig"), &mut files)?;
    for file in &files {
        let now = fs::read(root.join(file)).unwrap_or_default();
        let stub = fs::read(dir.join("stub").join(file))?;
        if now != stub {
            let keep = dir.join("attempt").join(file);
            fs::create_dir_all(keep.parent().unwrap())?;
            fs::write(&keep, &now)?;
            println!("  your {file} is kept in {}", keep.display());
        }
        fs::copy(dir.join("orig").join(file), root.join(file))
            .with_context(|| format!("cannot restore {file}"))?;
    }
    fs::remove_dir_all(dir.join("orig"))?;
    fs::remove_dir_all(dir.join("stub"))?;
    println!("lab {name} reset: {} restored", files.join(", "));
    Ok(())
}

/// `cargo xtask lab list`.
pub fn list(root: &Path) -> Result<()> {
    let regions = regions(root)?;
    for lab in LABS {
        let n = regions.iter().filter(|r| r.lab == lab.name).count();
        let points: usize = lab.checks.len();
        println!(
            "{:<13} {:<8} {}",
            lab.name,
            if is_started(root, lab.name) {
                "started"
            } else {
                ""
            },
            lab.title
        );
        println!(
            "{:<22} docs/book/src/{}; {n} region(s); {points} test(s)",
            "", lab.chapter
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// grade

/// How a grade run goes.
#[derive(Debug, Clone)]
pub struct GradeOptions {
    pub accel: Accel,
    /// QEMU tests at once.
    pub jobs: usize,
    /// Seconds before a host test counts as hung.
    pub host_timeout: u64,
    /// Print each failing check's output tail.
    pub verbose: bool,
}

/// A check's result.
#[derive(Debug, Clone)]
pub struct Graded {
    pub check: String,
    pub ok: bool,
    pub reason: String,
    pub secs: f64,
}

/// The xv6 line for one check.
pub fn line(g: &Graded) -> String {
    if g.ok {
        format!("== Test {} == OK ({:.1} s)", g.check, g.secs)
    } else {
        format!(
            "== Test {} == FAIL ({:.1} s)\n    {}",
            g.check, g.secs, g.reason
        )
    }
}

/// Runs a command with a deadline, its stdout and stderr together. None: it timed out (and
/// was killed, with its children).
fn run_with_deadline(cmd: &mut Command, limit: Duration) -> Result<Option<(bool, String)>> {
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .context("cannot run cargo")?;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if start.elapsed() > limit {
            // The whole process group: cargo and the test binary it runs.
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut text = String::from_utf8_lossy(&t_out.join().unwrap()).into_owned();
    text.push_str(&String::from_utf8_lossy(&t_err.join().unwrap()));
    Ok(status.map(|st| (st.success(), text)))
}

/// Why a host test failed, in one line, from its output.
fn host_reason(out: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if let Some(at) = l.find("panicked at") {
            // `thread 'name' (id) panicked at file:line:col:` then the message.
            let msg = lines.get(i + 1).map(|m| m.trim()).unwrap_or("");
            return format!("{} {msg}", l[at..].trim());
        }
    }
    for l in &lines {
        let t = l.trim();
        if t.starts_with("fatal error:") || t.starts_with("error[") || t.starts_with("error:") {
            return t.to_string();
        }
    }
    lines
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map_or("no output".into(), |l| l.trim().to_string())
}

fn grade_host(root: &Path, file: &'static str, name: &'static str, opts: &GradeOptions) -> Graded {
    let check = host(file, name).name();
    let t = Instant::now();
    let mut cmd = Command::new(crate::cargo());
    cmd.current_dir(root)
        .args([
            "test",
            "--quiet",
            "--package",
            "rt-core",
            "--test",
            file,
            "--",
        ])
        .args(["--exact", name, "--test-threads", "1"]);
    let (ok, reason) = match run_with_deadline(&mut cmd, Duration::from_secs(opts.host_timeout)) {
        Err(e) => (false, format!("could not run: {e:#}")),
        Ok(None) => (
            false,
            format!("hung: no verdict after {} s (killed)", opts.host_timeout),
        ),
        Ok(Some((true, out))) if out.contains("1 passed") => (true, String::new()),
        Ok(Some((true, out))) => (
            false,
            format!(
                "the test did not run (is it still called {name}?): {}",
                host_reason(&out)
            ),
        ),
        Ok(Some((false, out))) => (false, host_reason(&out)),
    };
    Graded {
        check,
        ok,
        reason,
        secs: t.elapsed().as_secs_f64(),
    }
}

/// Builds and runs the QEMU checks of `checks`, in order of `checks`.
fn grade_qemu(root: &Path, checks: &[(&'static str, u32)], opts: &GradeOptions) -> Vec<Graded> {
    let fail_all = |why: String| -> Vec<Graded> {
        checks
            .iter()
            .map(|&(bin, smp)| Graded {
                check: qemu(bin, smp).name(),
                ok: false,
                reason: why.clone(),
                secs: 0.0,
            })
            .collect()
    };
    let over = harness::Overrides::default();
    let mut specs = Vec::new();
    for &(bin, smp) in checks {
        let found = harness::discover(&root.join("tests/src/bin"), Some(bin), &over)
            .ok()
            .and_then(|all| {
                // The instance at this CPU count on QEMU's default CPU model.
                all.into_iter().find(|s| {
                    s.bin == bin && s.smp == smp && s.cpu.as_deref().is_none_or(|c| c == "qemu64")
                })
            });
        match found {
            Some(s) => specs.push(s),
            None => {
                return fail_all(format!(
                    "no test kernel {bin} at smp {smp} in tests/src/bin"
                ))
            }
        }
    }
    let mut bins: Vec<String> = specs.iter().map(|s| s.bin.clone()).collect();
    bins.sort();
    bins.dedup();
    let t = Instant::now();
    let elves = match build::build_kernels(Kernels::Tests(&bins), false)
        .and_then(|e| build::make_images(&e, Firmware::Bios).map(|_| e))
    {
        Ok(e) => e,
        Err(e) => return fail_all(format!("the test kernels do not build: {e:#}")),
    };
    let build_secs = t.elapsed().as_secs_f64();
    let ropts = RunOptions {
        accel: opts.accel,
        firmware: Firmware::Bios,
        jobs: opts.jobs,
        verbose: false,
        tail: 0,
        quiet: true,
    };
    let dir = elves[0].parent().unwrap().to_path_buf();
    let results = harness::run_all(
        &specs,
        &|bin| build::image_path(&dir.join(bin), Firmware::Bios),
        &ropts,
    );
    specs
        .iter()
        .zip(checks)
        .map(|(spec, &(bin, smp))| {
            let r = results.iter().find(|r| r.spec.name == spec.name);
            let (ok, reason, secs) = match r {
                Some(r) => {
                    let secs = r.elapsed.as_secs_f64();
                    match &r.outcome {
                        Outcome::Passed { .. } => (true, String::new(), secs),
                        Outcome::Failed { reason } => (false, reason.clone(), secs),
                        Outcome::Skipped { reason } => {
                            (false, format!("could not run here: {reason}"), secs)
                        }
                    }
                }
                None => (false, "did not run".into(), 0.0),
            };
            Graded {
                check: qemu(bin, smp).name(),
                ok,
                reason,
                secs: secs + build_secs / checks.len() as f64,
            }
        })
        .collect()
}

/// Grades one lab of the tree at [`crate::root`]: every check, printed as it ends. Returns
/// (score, possible).
pub fn grade_lab(lab: &Lab, opts: &GradeOptions) -> Result<(u32, u32)> {
    let root = &crate::root();
    println!("== lab {}: {} ==", lab.name, lab.title);
    let hosts: Vec<(&'static str, &'static str)> = lab
        .checks
        .iter()
        .filter_map(|c| match *c {
            Check::Host { file, name } => Some((file, name)),
            _ => None,
        })
        .collect();
    let qemus: Vec<(&'static str, u32)> = lab
        .checks
        .iter()
        .filter_map(|c| match *c {
            Check::Qemu { bin, smp } => Some((bin, smp)),
            _ => None,
        })
        .collect();
    let mut graded = Vec::new();
    let mut report = |g: Graded| {
        println!("{}", line(&g));
        graded.push(g);
    };
    if !hosts.is_empty() {
        // Build once: a build failure fails every host check with the compiler's first error.
        let mut files: Vec<&str> = hosts.iter().map(|h| h.0).collect();
        files.dedup();
        let mut cmd = Command::new(crate::cargo());
        cmd.current_dir(root)
            .args(["test", "--quiet", "--no-run", "--package", "rt-core"]);
        for f in &files {
            cmd.args(["--test", f]);
        }
        let built = run_with_deadline(&mut cmd, Duration::from_secs(1800))?;
        match built {
            Some((true, _)) => {
                for (file, name) in &hosts {
                    report(grade_host(root, file, name, opts));
                }
            }
            other => {
                let why = match &other {
                    Some((_, out)) => {
                        // The student needs the compiler's whole message, not one line.
                        println!("{out}");
                        format!(
                            "does not build: {} (the compiler's messages are above)",
                            host_reason(out)
                        )
                    }
                    None => "the build hung".into(),
                };
                for (file, name) in &hosts {
                    report(Graded {
                        check: host(file, name).name(),
                        ok: false,
                        reason: why.clone(),
                        secs: 0.0,
                    });
                }
            }
        }
    }
    if !qemus.is_empty() {
        for g in grade_qemu(root, &qemus, opts) {
            report(g);
        }
    }
    let score = graded.iter().filter(|g| g.ok).count() as u32;
    let possible = graded.len() as u32;
    println!("Score: {score}/{possible}");
    Ok((score, possible))
}

/// `cargo xtask lab grade [NAME]`: the named lab; without a name, the started labs, or every
/// lab if none is started. Exit status 0 only with full marks.
pub fn grade(name: Option<&str>, opts: &GradeOptions) -> Result<u8> {
    let root = &crate::root();
    let labs: Vec<&Lab> = match name {
        Some(n) => vec![find(n)?],
        None => {
            let started: Vec<&Lab> = LABS.iter().filter(|l| is_started(root, l.name)).collect();
            if started.is_empty() {
                LABS.iter().collect()
            } else {
                started
            }
        }
    };
    crate::setup::ensure_all(false)?;
    let t = Instant::now();
    let (mut score, mut possible) = (0, 0);
    for lab in &labs {
        let (s, p) = grade_lab(lab, opts)?;
        score += s;
        possible += p;
    }
    if labs.len() > 1 {
        println!(
            "Total score: {score}/{possible} ({:.1} s)",
            t.elapsed().as_secs_f64()
        );
    }
    Ok(if score == possible { 0 } else { 1 })
}

// ---------------------------------------------------------------------------------------
// The graders' honesty

/// The tracked files of the tree at `root` (git ls-files), or every file outside `target/` and
/// `.git/` when it is not a git checkout.
fn tracked_files(root: &Path) -> Result<Vec<String>> {
    let out = Command::new("git")
        .current_dir(root)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(o
            .stdout
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .filter(|f| root.join(f).is_file())
            .collect()),
        _ => bail!(
            "cannot list the tree's files with git ls-files in {}",
            root.display()
        ),
    }
}

/// Copies the tree at `from` into `to` (its tracked and untracked, not ignored, files),
/// leaving `to/target` (its build cache) alone.
pub fn copy_tree(from: &Path, to: &Path) -> Result<Vec<String>> {
    let files = tracked_files(from)?;
    for f in &files {
        let dst = to.join(f);
        fs::create_dir_all(dst.parent().unwrap())?;
        let src = fs::read(from.join(f))?;
        // Unchanged files keep their modification time, so cargo rebuilds only what changed.
        if fs::read(&dst).ok().as_deref() != Some(&src[..]) {
            fs::write(&dst, &src)?;
        }
    }
    Ok(files)
}

/// The files of `snapshot` whose content in the tree at `root` is no longer what it was.
fn differing(root: &Path, snapshot: &[(String, Vec<u8>)]) -> Vec<String> {
    snapshot
        .iter()
        .filter(|(f, bytes)| fs::read(root.join(f)).ok().as_ref() != Some(bytes))
        .map(|(f, _)| f.clone())
        .collect()
}

/// The check that every grader is honest (run by `cargo xtask test`): in a scratch copy of
/// the tree (target/lab-check/tree, its own build cache), the untouched tree gets full marks
/// from every lab; then each lab is started, graded (it must lose points) and reset, and the
/// tree must be byte for byte what it was. Returns one (name, Ok or the reason) per claim.
pub fn prove(opts: &GradeOptions) -> Result<Vec<(String, std::result::Result<String, String>)>> {
    let root = crate::root();
    let scratch = crate::tool_root().join("target/lab-check/tree");
    println!(
        "== lab graders: a scratch copy of the tree in {}",
        scratch.display()
    );
    let files = copy_tree(&root, &scratch)?;
    // Left-over lab state from an interrupted run would make `start` refuse.
    let _ = fs::remove_dir_all(scratch.join("target/lab"));
    // Everything below works on the scratch copy: builds, the harness, QEMU's scratch files.
    // (`set_var` is safe in edition 2021, and sound here: no other thread runs now, the QEMU
    // tests have ended.) The variable is put back before returning.
    let before = std::env::var_os("GORT_TREE");
    std::env::set_var("GORT_TREE", &scratch);
    let claims = prove_in(&scratch, &files, opts);
    match before {
        Some(v) => std::env::set_var("GORT_TREE", v),
        None => std::env::remove_var("GORT_TREE"),
    }
    claims
}

fn prove_in(
    scratch: &Path,
    files: &[String],
    opts: &GradeOptions,
) -> Result<Vec<(String, std::result::Result<String, String>)>> {
    // What every file holds before any lab starts: reset must bring back exactly this.
    let snapshot: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| Ok((f.clone(), fs::read(scratch.join(f))?)))
        .collect::<Result<_>>()?;
    let mut claims = Vec::new();
    for lab in LABS {
        let (s, p) = grade_lab(lab, opts)?;
        claims.push((
            format!("lab {}: the untouched tree gets full marks", lab.name),
            if s == p && p > 0 {
                Ok(format!("{s}/{p}"))
            } else {
                Err(format!("{s}/{p}"))
            },
        ));
    }
    for lab in LABS {
        println!("== lab graders: cargo xtask lab start {}", lab.name);
        start(scratch, lab.name)?;
        let (s, p) = grade_lab(lab, opts)?;
        reset(scratch, lab.name)?;
        claims.push((
            format!("lab {}: its stubs lose points", lab.name),
            if s < p {
                Ok(format!("{s}/{p}"))
            } else {
                Err(format!("{s}/{p}: the grader does not notice the stubs"))
            },
        ));
    }
    let changed = differing(scratch, &snapshot);
    claims.push((
        "lab reset restores every file".into(),
        if changed.is_empty() {
            Ok(format!("{} files as they were", files.len()))
        } else {
            Err(format!("changed: {}", changed.join(", ")))
        },
    ));
    Ok(claims)
}

//! The integration-test harness: one kernel per test, booted in QEMU with a deadline, several at
//! once, each judged from how QEMU ended and what the kernel printed on its serial port.
//!
//! A test is a file `tests/src/bin/NAME.rs` (a kernel built on `kernel::test_kernel!`). Lines
//! at its top of the form `//! @directive value` set how it runs:
//!
//! | directive | meaning | default |
//! |---|---|---|
//! | `@smp 1 2 4` | run once per CPU count (instances `NAME[smp=N]`) | `2` |
//! | `@cpu qemu64 qemu64,+x2apic` | run once per QEMU CPU model (instances `NAME[cpu=M]`, or `NAME[smp=N,cpu=M]` with several CPU counts); a model that turns on `x2apic` must boot the kernel in x2APIC mode | QEMU's default |
//! | `@mem 512M` | guest memory | `1G` |
//! | `@timeout 30` | seconds before the run counts as hung | `60` |
//! | `@args k=v k=v` | kernel arguments | none |
//! | `@expect-fail TEXT` | the kernel must fail and print TEXT (repeatable: all must appear) | must pass |
//! | `@expect-output TEXT` | the kernel must pass and print TEXT (repeatable) | — |
//! | `@expect-hang` | the kernel must still be running at its `@timeout`, and (with `@expect-fail`) have printed each TEXT by then, the goroutine dump it is asked for included | — |
//!
//! In an expected TEXT, `\n` and `\t` are a newline and a tab, and ` ... ` separates parts that
//! must appear in this order (a traceback's frames: `a(...) ... b(...)`).
//! | `@input TEXT` | typed on the serial port once the kernel prints `[serial: waiting for input]`; the Nth `@input` at the Nth such line (`\n`, `\r`: newline, return; `\x1c`: Ctrl-\\) | none |
//! | `@input-repeat N TEXT` | an `@input` of TEXT N times over (a flood of input) | none |
//!
//! The verdict ([`judge`]) trusts nothing by default: a test passes only if the kernel wrote
//! the success code *and* printed its runner's result line with at least one case passed.
//!
//! An instance whose CPU model asks for a feature the installed QEMU cannot offer with the
//! chosen accelerator (QEMU 7.2's TCG has no x2APIC) is *skipped*, with QEMU's words as the
//! reason: QEMU would boot it without the feature, and passing it would claim a test that did
//! not happen. [`run_all`] asks QEMU once per model before booting anything.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::build::Firmware;
use crate::qemu::{self, Accel, Ending, Machine, Serial, KERNEL_FAILURE, KERNEL_SUCCESS};

/// One QEMU run to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSpec {
    /// Display name (`NAME`, or `NAME[smp=N]` when a test runs at several CPU counts).
    pub name: String,
    /// The kernel binary (the file stem).
    pub bin: String,
    pub smp: u32,
    /// QEMU `-cpu` model; None: QEMU's default.
    pub cpu: Option<String>,
    pub mem: String,
    pub timeout: Duration,
    pub args: Vec<String>,
    pub expect_fail: Vec<String>,
    pub expect_output: Vec<String>,
    pub input: Vec<String>,
    /// `@trace`: boot with `trace=1` and the debug console, then decode and check the
    /// execution trace and its views (trace.rs `verify`).
    pub trace: bool,
    /// `@expect-hang`: the run must end at its deadline (the harness's own hang handling under
    /// test: the dump asked of a hung kernel, qemu.rs `wait_with_deadline`).
    pub expect_hang: bool,
}

pub const DEFAULT_SMP: u32 = 2;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads the `//! @...` directives of a test source into its runs.
pub fn parse_spec(bin: &str, source: &str, over: &Overrides) -> Result<Vec<TestSpec>> {
    let mut smps = vec![DEFAULT_SMP];
    let mut cpus: Vec<Option<String>> = vec![None];
    let mut base = TestSpec {
        name: bin.to_string(),
        bin: bin.to_string(),
        smp: DEFAULT_SMP,
        cpu: None,
        mem: "1G".into(),
        timeout: DEFAULT_TIMEOUT,
        args: Vec::new(),
        expect_fail: Vec::new(),
        expect_output: Vec::new(),
        input: Vec::new(),
        trace: false,
        expect_hang: false,
    };
    for line in source.lines() {
        let Some(rest) = line.trim().strip_prefix("//! @") else {
            continue;
        };
        let (directive, value) = rest
            .split_once(' ')
            .map_or((rest, ""), |(d, v)| (d, v.trim()));
        match directive {
            "smp" => {
                smps = value
                    .split_whitespace()
                    .map(|n| n.parse::<u32>().ok().filter(|&n| (1..=255).contains(&n)))
                    .collect::<Option<Vec<_>>>()
                    .filter(|v| !v.is_empty())
                    .with_context(|| {
                        format!("{bin}: `@smp {value}`: expected CPU counts from 1 to 255")
                    })?;
                if let Some(n) = repeated(&smps) {
                    bail!("{bin}: `@smp {value}`: {n} is given twice (two runs with one name)");
                }
            }
            "cpu" => {
                let models: Vec<Option<String>> = value
                    .split_whitespace()
                    .map(|m| Some(m.to_string()))
                    .collect();
                if models.is_empty() {
                    bail!(
                        "{bin}: `@cpu` needs QEMU CPU models (e.g. `@cpu qemu64 qemu64,+x2apic`)"
                    );
                }
                if let Some(Some(m)) = repeated(&models) {
                    bail!("{bin}: `@cpu {value}`: {m} is given twice (two runs with one name)");
                }
                cpus = models;
            }
            "mem" => {
                // QEMU's `-m` syntax: a number and an optional unit (found by the fuzzer,
                // harness_directives: a bare `@mem` gave QEMU an empty size).
                let digits = value.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
                let units = value.len() - digits.len();
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || units > 1 {
                    bail!("{bin}: `@mem {value}`: expected a memory size (e.g. `@mem 512M`)");
                }
                base.mem = value.to_string();
            }
            "expect-hang" => {
                if !value.is_empty() {
                    bail!("{bin}: `@expect-hang` takes no value");
                }
                base.expect_hang = true;
            }
            "trace" => {
                if !value.is_empty() {
                    bail!("{bin}: `@trace` takes no value");
                }
                base.trace = true;
                base.args.push("trace=1".into());
            }
            "timeout" => {
                // At most a day: the harness adds it to the clock (qemu.rs `run`), and a
                // number of seconds past what an Instant can hold panicked there.
                let secs: u64 = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=86_400).contains(s))
                    .with_context(|| {
                        format!("{bin}: `@timeout {value}`: expected seconds from 1 to 86400")
                    })?;
                base.timeout = Duration::from_secs(secs);
            }
            "args" => base.args.extend(value.split_whitespace().map(String::from)),
            "expect-fail" => {
                if value.is_empty() {
                    bail!("{bin}: `@expect-fail` needs the text the failure must print");
                }
                base.expect_fail.push(unescape(value));
            }
            "expect-output" => {
                if value.is_empty() {
                    bail!("{bin}: `@expect-output` needs the text the kernel must print");
                }
                base.expect_output.push(unescape(value));
            }
            "input" => base.input.push(unescape_input(value)),
            "input-repeat" => {
                let (n, text) = value.split_once(' ').unwrap_or((value, ""));
                let n = n
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n) && !text.is_empty())
                    .with_context(|| {
                        format!("{bin}: `@input-repeat {value}`: expected a count from 1 to 1000000, then the text")
                    })?;
                base.input.push(unescape_input(text).repeat(n));
            }
            other => bail!("{bin}: unknown harness directive `@{other}`"),
        }
    }
    if let Some(n) = over.smp {
        smps = vec![n];
    }
    if let Some(cpu) = &over.cpu {
        cpus = vec![Some(cpu.clone())];
    }
    let (several_smp, several_cpu) = (smps.len() > 1, cpus.len() > 1);
    let mut specs = Vec::new();
    for &smp in &smps {
        for cpu in &cpus {
            let mut label = Vec::new();
            if several_smp {
                label.push(format!("smp={smp}"));
            }
            if let (true, Some(c)) = (several_cpu, cpu) {
                label.push(format!("cpu={c}"));
            }
            specs.push(TestSpec {
                name: if label.is_empty() {
                    bin.to_string()
                } else {
                    format!("{bin}[{}]", label.join(","))
                },
                smp,
                cpu: cpu.clone(),
                ..base.clone()
            });
        }
    }
    Ok(specs)
}

/// The first item of `items` that appears again later.
fn repeated<T: PartialEq>(items: &[T]) -> Option<&T> {
    items
        .iter()
        .enumerate()
        .find(|(i, x)| items[i + 1..].contains(x))
        .map(|(_, x)| x)
}

/// What the command line sets for every test, over its own directives.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--smp N`.
    pub smp: Option<u32>,
    /// `--cpu MODEL`.
    pub cpu: Option<String>,
}

/// Whether a run of `spec` must find the kernel in x2APIC mode: its CPU model turns x2APIC on
/// and its arguments do not turn it off.
pub fn wants_x2apic(spec: &TestSpec) -> bool {
    spec.cpu
        .as_deref()
        .is_some_and(|c| qemu::cpu_features_on(c).contains(&"x2apic"))
        && !spec.args.iter().any(|a| a == "x2apic=0")
}

/// The line the kernel prints at boot in x2APIC mode (kernel/src/lib.rs).
pub const X2APIC_LINE: &str = "apic: x2APIC";

/// Every test in `dir` (`*.rs`), sorted, filtered by substring of the run's name.
pub fn discover(dir: &Path, filter: Option<&str>, over: &Overrides) -> Result<Vec<TestSpec>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    let mut specs = Vec::new();
    for f in files {
        let bin = f.file_stem().unwrap().to_string_lossy().into_owned();
        let source = fs::read_to_string(&f)?;
        specs.extend(parse_spec(&bin, &source, over)?);
    }
    specs.retain(|s| filter.is_none_or(|f| s.name.contains(f)));
    Ok(specs)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed {
        cases: u32,
    },
    Failed {
        reason: String,
    },
    /// Not run: the installed QEMU cannot make the machine the test asks for.
    Skipped {
        reason: String,
    },
}

/// `[gort-test] result: N passed, 0 failed, ...`: the in-kernel runner's last word
/// (kernel/src/testing/mod.rs), read as the runner writes it: a line that says something else
/// after `result:` (found by the fuzzer, harness_serial: `result:  7 case(s)` counted as 7
/// passed, and so would `result: 3 failed`) is no result.
fn cases_passed(serial: &str) -> Option<u32> {
    serial.lines().rev().find_map(|l| {
        let rest = l.trim().strip_prefix("[gort-test] result: ")?;
        let (n, after) = rest.split_once(' ')?;
        if !after.starts_with("passed, 0 failed") || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n.parse().ok()
    })
}

/// The case that started and did not finish (`test NAME ... ` with no `ok`).
fn unfinished_case(serial: &str) -> Option<&str> {
    let last = serial.lines().rev().find(|l| l.starts_with("test "))?;
    let name = last.strip_prefix("test ")?.split(" ... ").next()?;
    (!last.trim_end().ends_with("... ok")).then_some(name)
}

/// Why a kernel failed, in one line, from its serial output and how QEMU ended.
pub fn failure_reason(ending: &Ending, serial: &str) -> String {
    let case = unfinished_case(serial)
        .map(|c| format!(" in case `{c}`"))
        .unwrap_or_default();
    match ending {
        Ending::Kernel(KERNEL_FAILURE) => {
            let lines: Vec<&str> = serial.lines().collect();
            if let Some(i) = lines.iter().position(|l| l.starts_with("KERNEL PANIC on cpu ")) {
                let msg = lines[i].split_once(": ").map_or("", |(_, m)| m);
                // An assertion's message runs on (left/right values); keep it on one line.
                let more: Vec<&str> =
                    lines[i + 1..].iter().take_while(|l| !l.trim_start().starts_with("at ")).map(|l| l.trim()).collect();
                let full = std::iter::once(msg).chain(more).collect::<Vec<_>>().join("; ");
                let kind = if msg.starts_with("assertion") { "assertion failed" } else { "panic" };
                return format!("{kind}{case}: {full}");
            }
            if let Some(l) = lines.iter().find(|l| l.starts_with("EXCEPTION: ")) {
                let rip = lines.iter().find_map(|l| l.trim().strip_prefix("RIP: ")).map(|r| {
                    format!(", RIP {}", r.split_whitespace().next().unwrap_or("?"))
                });
                return format!("CPU exception{case}: {}{}", &l["EXCEPTION: ".len()..], rip.unwrap_or_default());
            }
            if let Some(l) = lines.iter().find(|l| l.starts_with("kernel argument error: ")) {
                return l.to_string();
            }
            // The runtime's and the kernel's own fatal errors, in Go's words.
            if let Some(l) = lines.iter().find(|l| l.starts_with("fatal error: ")) {
                return format!("{l}{case}");
            }
            format!("the kernel reported failure{case} without a panic or exception message")
        }
        Ending::Kernel(KERNEL_SUCCESS) => match cases_passed(serial) {
            None => "the kernel exited with success but printed no test result (did its test runner run?)".into(),
            Some(0) => "the kernel ran no test case".into(),
            Some(_) => unreachable!("a passing run is not a failure"),
        },
        Ending::Reset { triple_fault: true } => format!("triple fault{case}"),
        Ending::Timeout(_) if serial.contains(DUMP_START) => format!(
            "{}{case}; the goroutine dump it printed when asked (Ctrl-\\) is below",
            ending.describe()
        ),
        Ending::Timeout(_) => format!(
            "{}{case}; it printed no goroutine dump when asked (Ctrl-\\): is CPU 0, which takes \
             the serial interrupt, stuck with interrupts off?",
            ending.describe()
        ),
        other => format!("{}{case}", other.describe()),
    }
}

/// The verdict on one run.
/// An expected text as written in a directive: `\n` and `\t` escapes.
fn unescape(v: &str) -> String {
    v.replace("\\n", "\n").replace("\\t", "\t")
}

/// Input as written in `@input`: `\n`, `\r` and `\x1c` escapes.
fn unescape_input(v: &str) -> String {
    v.replace("\\n", "\n")
        .replace("\\r", "\r")
        .replace("\\x1c", "\x1c")
}

/// Whether `serial` shows `text`: each ` ... `-separated part, in order.
pub fn printed(serial: &str, text: &str) -> bool {
    let mut rest = serial;
    for part in text.split(" ... ") {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

pub fn judge(ending: &Ending, serial: &str, expect_fail: &[String]) -> Outcome {
    let passed = match (ending, cases_passed(serial)) {
        (Ending::Kernel(KERNEL_SUCCESS), Some(n)) if n > 0 => Some(n),
        _ => None,
    };
    if expect_fail.is_empty() {
        return match passed {
            Some(cases) => Outcome::Passed { cases },
            None => Outcome::Failed {
                reason: failure_reason(ending, serial),
            },
        };
    }
    let wanted = expect_fail
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(" and ");
    if passed.is_some() {
        return Outcome::Failed {
            reason: format!("expected a failure that prints {wanted}, but the kernel passed"),
        };
    }
    let missing: Vec<&String> = expect_fail.iter().filter(|t| !printed(serial, t)).collect();
    if *ending == Ending::Kernel(KERNEL_FAILURE) && missing.is_empty() {
        return Outcome::Passed { cases: 0 };
    }
    Outcome::Failed {
        reason: format!(
            "expected a failure that prints {wanted}, got: {}",
            failure_reason(ending, serial)
        ),
    }
}

/// The verdict on an `@expect-hang` run: it passes only if it was still running at its deadline
/// and printed every text in `expected`.
pub fn judge_hang(ending: &Ending, serial: &str, expected: &[String]) -> Outcome {
    if !matches!(ending, Ending::Timeout(_)) {
        let why = match ending {
            Ending::Kernel(KERNEL_SUCCESS) => ending.describe(),
            _ => failure_reason(ending, serial),
        };
        return Outcome::Failed {
            reason: format!("expected a hang, but: {why}"),
        };
    }
    match expected.iter().find(|t| !printed(serial, t)) {
        Some(missing) => Outcome::Failed {
            reason: format!(
                "hung as expected, but did not print `{missing}`: {}",
                failure_reason(ending, serial)
            ),
        },
        None => Outcome::Passed { cases: 0 },
    }
}

/// How to run the tests (the parts that are not per test).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub accel: Accel,
    pub firmware: Firmware,
    pub jobs: usize,
    pub verbose: bool,
    /// Lines of serial output shown under a failure.
    pub tail: usize,
    /// Print nothing (the caller reports the results: lab.rs).
    pub quiet: bool,
}

/// The result of one run, with everything needed to report it.
#[derive(Debug, Clone)]
pub struct TestResult {
    pub spec: TestSpec,
    pub outcome: Outcome,
    pub elapsed: Duration,
    pub serial: String,
}

/// Boots one test kernel image and judges it.
pub fn run_one(spec: &TestSpec, image: &Path, opts: &RunOptions) -> Result<TestResult> {
    let machine = Machine {
        smp: spec.smp,
        cpu: spec.cpu.clone(),
        mem: spec.mem.clone(),
        accel: opts.accel,
        firmware: opts.firmware,
        kernel_args: spec.args.clone(),
        timeout: spec.timeout,
        input: spec.input.clone(),
        trace_window: None,
    };
    let scratch = qemu::scratch(&spec.bin);
    let trace_bin = scratch.with_extension("trace.window");
    let mut machine = machine;
    if spec.trace {
        qemu::trace_window(&trace_bin)?;
        machine.trace_window = Some(trace_bin.clone());
    }
    let serial_path = scratch.with_extension("serial");
    let run = qemu::run(image, &machine, Serial::File(&serial_path), &scratch)?;
    let raw = fs::read(&serial_path).unwrap_or_default();
    let serial = String::from_utf8_lossy(&raw).replace('\r', "");
    let mut outcome = if spec.expect_hang {
        judge_hang(&run.ending, &serial, &spec.expect_fail)
    } else {
        judge(&run.ending, &serial, &spec.expect_fail)
    };
    if let Outcome::Passed { .. } = outcome {
        if let Some(missing) = spec.expect_output.iter().find(|t| !printed(&serial, t)) {
            outcome = Outcome::Failed {
                reason: format!("passed, but did not print `{missing}`"),
            };
        } else if wants_x2apic(spec) && !serial.contains(X2APIC_LINE) {
            outcome = Outcome::Failed {
                reason: format!(
                    "passed, but the CPU model `{}` asks for x2APIC and the kernel did not print `{X2APIC_LINE}`",
                    spec.cpu.as_deref().unwrap_or("")
                ),
            };
        }
    }
    if let (true, Outcome::Passed { .. }) = (spec.trace, &outcome) {
        let elf = image.with_file_name(&spec.bin);
        let stem = spec.name.replace(['[', ']', '=', ','], "_");
        let stem = stem.trim_end_matches('_');
        let verdict = crate::trace::verify(&trace_bin, &elf, stem, spec.smp, true);
        let _ = fs::remove_file(&trace_bin);
        if let Err(why) = verdict {
            outcome = Outcome::Failed {
                reason: format!("passed, but its execution trace is wrong: {why}"),
            };
        }
    }
    // QEMU booted the CPU without a feature its model asked for: the test did not happen.
    if let Some(l) = run
        .stderr
        .lines()
        .find(|l| l.contains(qemu::UNSUPPORTED_FEATURE))
    {
        outcome = Outcome::Skipped {
            reason: format!(
                "QEMU could not offer the CPU model `{}`: {}",
                spec.cpu.as_deref().unwrap_or("default"),
                l.trim()
            ),
        };
    }
    if let (Outcome::Failed { reason }, Ending::QemuError(_)) = (&mut outcome, &run.ending) {
        if let Some(last) = run.stderr.lines().rev().find(|l| !l.trim().is_empty()) {
            reason.push_str(&format!(": {last}"));
        }
    }
    Ok(TestResult {
        spec: spec.clone(),
        outcome,
        elapsed: run.elapsed,
        serial,
    })
}

/// Where the serial output shown for a failure starts: its last `tail` lines, or, for a
/// kernel that hung and printed its goroutine dump when asked (qemu.rs `wait_with_deadline`),
/// `tail` lines before that dump, and the dump whole (up to [`DUMP_LINES`]).
pub fn shown_from(lines: &[&str], tail: usize) -> usize {
    let last = lines.len().saturating_sub(tail);
    match lines.iter().rposition(|l| l.contains(DUMP_START)) {
        Some(d) if lines.len() - d <= DUMP_LINES => d.saturating_sub(tail).min(last),
        Some(_) => lines.len() - DUMP_LINES,
        None => last,
    }
}

/// The first line of the kernel's Ctrl-\ goroutine dump (kernel/src/rt/dump.rs).
pub const DUMP_START: &str = "SIGQUIT: goroutine dump";

/// The most lines of a goroutine dump a failure shows (the whole of it is in the run's log).
pub const DUMP_LINES: usize = 400;

/// Prints one result line (and, for a failure or with `verbose`, the serial output).
pub fn report(r: &TestResult, opts: &RunOptions) {
    if opts.quiet {
        return;
    }
    let secs = r.elapsed.as_secs_f64();
    let mut out = match &r.outcome {
        Outcome::Passed { .. } => format!("{} ... ok ({secs:.1} s)\n", r.spec.name),
        Outcome::Failed { reason } => {
            format!("{} ... FAILED ({reason}) ({secs:.1} s)\n", r.spec.name)
        }
        Outcome::Skipped { reason } => format!("{} ... skipped ({reason})\n", r.spec.name),
    };
    let failed = matches!(r.outcome, Outcome::Failed { .. });
    if opts.verbose || failed {
        let lines: Vec<&str> = r.serial.lines().collect();
        let shown = if opts.verbose {
            &lines[..]
        } else {
            &lines[shown_from(&lines, opts.tail)..]
        };
        if !shown.is_empty() {
            out.push_str(&format!(
                "    --- serial output{} ---\n",
                if shown.len() < lines.len() {
                    format!(" (last {} lines)", shown.len())
                } else {
                    String::new()
                }
            ));
            for l in shown {
                out.push_str(&format!("    | {l}\n"));
            }
        }
    }
    print!("{out}");
}

/// Runs `specs` (images keyed by binary name), `opts.jobs` at a time, reporting each as it ends.
pub fn run_all(
    specs: &[TestSpec],
    image_of: &(dyn Fn(&str) -> PathBuf + Sync),
    opts: &RunOptions,
) -> Vec<TestResult> {
    // Ask QEMU once per CPU model whether it can make that CPU: instances it cannot are
    // skipped; a model it does not know fails them.
    let mut verdicts: Vec<(&str, Option<Outcome>)> = Vec::new();
    for cpu in specs.iter().filter_map(|s| s.cpu.as_deref()) {
        if verdicts.iter().all(|(c, _)| *c != cpu) {
            let verdict = match qemu::cpu_unavailable(opts.accel, cpu) {
                Ok(None) => None,
                Ok(Some(reason)) => Some(Outcome::Skipped { reason }),
                Err(e) => Some(Outcome::Failed {
                    reason: format!("could not run: {e:#}"),
                }),
            };
            verdicts.push((cpu, verdict));
        }
    }
    let mut runnable = VecDeque::new();
    let results = Mutex::new(Vec::new());
    for spec in specs {
        let verdict = spec
            .cpu
            .as_deref()
            .and_then(|cpu| verdicts.iter().find(|(c, _)| *c == cpu)?.1.clone());
        match verdict {
            Some(outcome) => {
                let r = TestResult {
                    spec: spec.clone(),
                    outcome,
                    elapsed: Duration::ZERO,
                    serial: String::new(),
                };
                report(&r, opts);
                results.lock().unwrap().push(r);
            }
            None => runnable.push_back(spec),
        }
    }
    let queue = Mutex::new(runnable);
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1) {
            s.spawn(|| loop {
                let Some(spec) = queue.lock().unwrap().pop_front() else {
                    break;
                };
                let result =
                    run_one(spec, &image_of(&spec.bin), opts).unwrap_or_else(|e| TestResult {
                        spec: spec.clone(),
                        outcome: Outcome::Failed {
                            reason: format!("could not run: {e:#}"),
                        },
                        elapsed: Duration::ZERO,
                        serial: String::new(),
                    });
                report(&result, opts);
                results.lock().unwrap().push(result);
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASS: &str = "[gort-test] running 2 case(s)\ntest a ... ok\ntest b ... ok\n[gort-test] result: 2 passed, 0 failed, 0 filtered out\n";

    #[test]
    fn passing_needs_both_the_code_and_the_result_line() {
        assert_eq!(
            judge(&Ending::Kernel(KERNEL_SUCCESS), PASS, &[]),
            Outcome::Passed { cases: 2 }
        );
        let Outcome::Failed { reason } = judge(&Ending::Kernel(KERNEL_SUCCESS), "booted\n", &[])
        else {
            panic!()
        };
        assert!(reason.contains("printed no test result"), "{reason}");
        let zero = "[gort-test] running 0 case(s)\n[gort-test] result: 0 passed, 0 failed, 2 filtered out\n";
        let Outcome::Failed { reason } = judge(&Ending::Kernel(KERNEL_SUCCESS), zero, &[]) else {
            panic!()
        };
        assert!(reason.contains("ran no test case"), "{reason}");
        // Found by the fuzzer: only the runner's own words are a result.
        for not_a_result in [
            "[gort-test] result:  7 case(s)\n",
            "[gort-test] result: 3 failed\n",
            "[gort-test] result: 2 passed, 1 failed, 0 filtered out\n",
            "[gort-test] result: +2 passed, 0 failed, 0 filtered out\n",
        ] {
            let Outcome::Failed { reason } =
                judge(&Ending::Kernel(KERNEL_SUCCESS), not_a_result, &[])
            else {
                panic!("{not_a_result:?} passed")
            };
            assert!(reason.contains("printed no test result"), "{reason}");
        }
        // The result line alone is not enough either.
        assert!(matches!(
            judge(&Ending::Kernel(KERNEL_FAILURE), PASS, &[]),
            Outcome::Failed { .. }
        ));
        assert!(matches!(
            judge(
                &Ending::Reset {
                    triple_fault: false
                },
                PASS,
                &[]
            ),
            Outcome::Failed { .. }
        ));
    }

    #[test]
    fn reasons_name_what_happened() {
        let assert = "test a ... ok\ntest b ... \ntest b ... FAILED\n\nKERNEL PANIC on cpu 0: assertion `left == right` failed\n  left: 2\n right: 3\n  at tests/x.rs:3:5\n";
        let r = failure_reason(&Ending::Kernel(KERNEL_FAILURE), assert);
        assert_eq!(
            r,
            "assertion failed in case `b`: assertion `left == right` failed; left: 2; right: 3"
        );
        let panic = "test boom ... FAILED\nKERNEL PANIC on cpu 1: boom\n  at x.rs:1:1\n";
        assert_eq!(
            failure_reason(&Ending::Kernel(KERNEL_FAILURE), panic),
            "panic in case `boom`: boom"
        );
        let exc = "test pf ... \nEXCEPTION: page fault (#PF) (vector 14) on cpu 0\n  error code: 0x2\n  RIP: 0x0000000000201234  RSP: 0x10\n";
        assert_eq!(
            failure_reason(&Ending::Kernel(KERNEL_FAILURE), exc),
            "CPU exception in case `pf`: page fault (#PF) (vector 14) on cpu 0, RIP 0x0000000000201234"
        );
        let hang = "test spin ... ";
        assert_eq!(
            failure_reason(&Ending::Timeout(Duration::from_secs(5)), hang),
            "timed out after 5 s (hung kernel) in case `spin`; it printed no goroutine dump \
             when asked (Ctrl-\\): is CPU 0, which takes the serial interrupt, stuck with \
             interrupts off?"
        );
        let dumped = format!("test spin ... \n\n{DUMP_START} (Ctrl-\\)\ngoroutine 1 [running]:\n");
        assert!(
            failure_reason(&Ending::Timeout(Duration::from_secs(5)), &dumped)
                .ends_with("the goroutine dump it printed when asked (Ctrl-\\) is below")
        );
        // A failure shows the dump whole, with `tail` lines before it...
        let mut lines: Vec<String> = (0..50).map(|i| format!("line {i}")).collect();
        lines.push(format!("{DUMP_START} (Ctrl-\\)"));
        lines.extend((0..30).map(|i| format!("goroutine {i} [chan receive]:")));
        let l: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
        assert_eq!(shown_from(&l, 10), 40);
        // ...but not more than DUMP_LINES of it, and no dump: the last `tail` lines.
        lines.extend((0..DUMP_LINES).map(|i| format!("goroutine {i} [select]:")));
        let l: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
        assert_eq!(shown_from(&l, 10), l.len() - DUMP_LINES);
        assert_eq!(shown_from(&l[..50], 10), 40);
        assert_eq!(
            failure_reason(&Ending::Reset { triple_fault: true }, "test tf ... "),
            "triple fault in case `tf`"
        );
        let fatal = "test t ... stacks: 128 deep\n\nfatal error: TLB shootdown: cpu 0 did not flush within 1 s\n";
        assert_eq!(
            failure_reason(&Ending::Kernel(KERNEL_FAILURE), fatal),
            "fatal error: TLB shootdown: cpu 0 did not flush within 1 s in case `t`"
        );
        let args = "kernel argument error: unknown kernel argument `x`\nknown kernel arguments:\n";
        assert_eq!(
            failure_reason(&Ending::Kernel(KERNEL_FAILURE), args),
            "kernel argument error: unknown kernel argument `x`"
        );
    }

    #[test]
    fn an_expected_hang_must_hang_and_print_its_dump() {
        let want = vec!["goroutine 1 [running]:".to_string()];
        let dumped = format!("test spin ... \n{DUMP_START}\ngoroutine 1 [running]:\n");
        let timeout = Ending::Timeout(Duration::from_secs(5));
        assert!(matches!(
            judge_hang(&timeout, &dumped, &want),
            Outcome::Passed { .. }
        ));
        let Outcome::Failed { reason } = judge_hang(&timeout, "test spin ... ", &want) else {
            panic!("a hang without its dump passed");
        };
        assert!(
            reason.contains("did not print `goroutine 1 [running]:`"),
            "{reason}"
        );
        for e in [
            Ending::Kernel(KERNEL_SUCCESS),
            Ending::Kernel(KERNEL_FAILURE),
        ] {
            let Outcome::Failed { reason } = judge_hang(&e, PASS, &want) else {
                panic!("{e:?} passed as a hang");
            };
            assert!(reason.starts_with("expected a hang, but"), "{reason}");
        }
        let spec = parse_spec("h", "//! @expect-hang\n", &Overrides::default()).unwrap();
        assert!(spec[0].expect_hang);
        assert!(parse_spec("h", "//! @expect-hang yes\n", &Overrides::default()).is_err());
    }

    #[test]
    fn expected_failures_must_fail_with_their_text() {
        let out = "kernel argument error: unknown kernel argument `x`\n";
        let e = Ending::Kernel(KERNEL_FAILURE);
        let want = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            judge(&e, out, &want(&["unknown kernel argument `x`"])),
            Outcome::Passed { cases: 0 }
        );
        assert_eq!(
            judge(&e, out, &want(&["kernel argument error", "`x`"])),
            Outcome::Passed { cases: 0 }
        );
        assert!(matches!(
            judge(&e, out, &want(&["kernel argument error", "`y`"])),
            Outcome::Failed { .. }
        ));
        assert!(matches!(
            judge(&e, out, &want(&["something else"])),
            Outcome::Failed { .. }
        ));
        assert!(matches!(
            judge(&Ending::Kernel(KERNEL_SUCCESS), PASS, &want(&["x"])),
            Outcome::Failed { .. }
        ));
        let timeout = Ending::Timeout(Duration::from_secs(1));
        assert!(matches!(
            judge(&timeout, out, &want(&["x"])),
            Outcome::Failed { .. }
        ));
    }

    #[test]
    fn expected_texts_take_escapes_and_an_order() {
        let serial = "goroutine 2 [running]:\na::third(...)\n\tx.rs:3 +0x1\na::second(...)\n";
        assert!(printed(serial, &unescape("a::third(...)\\n\\tx.rs:3 +0x")));
        assert!(printed(serial, "a::third(...) ... a::second(...)"));
        assert!(!printed(serial, "a::second(...) ... a::third(...)"));
        assert!(!printed(serial, "a::third(...) ... a::first(...)"));
    }

    #[test]
    fn directives_shape_the_runs() {
        let src =
            "//! A test.\n//! @smp 1 4\n//! @timeout 9\n//! @args test=x memmap=1\n//! @mem 256M\n";
        let specs = parse_spec("boot", src, &Overrides::default()).unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].name, "boot[smp=1]");
        assert_eq!(specs[1].smp, 4);
        assert_eq!(specs[1].timeout, Duration::from_secs(9));
        assert_eq!(specs[0].args, vec!["test=x", "memmap=1"]);
        assert_eq!(specs[0].mem, "256M");
        let one = parse_spec(
            "boot",
            src,
            &Overrides {
                smp: Some(3),
                cpu: None,
            },
        )
        .unwrap();
        assert_eq!(
            (one.len(), one[0].name.as_str(), one[0].smp),
            (1, "boot", 3)
        );
        let none = Overrides::default();
        assert!(parse_spec("x", "//! @smpp 2\n", &none).is_err());
        assert!(parse_spec("x", "//! @smp 0\n", &none).is_err());
        assert!(parse_spec("x", "//! @expect-fail\n", &none).is_err());
        assert!(parse_spec("x", "//! @expect-output\n", &none).is_err());
        assert!(parse_spec("x", "//! @cpu\n", &none).is_err());
        // Found by the fuzzer (harness_directives): a bare `@mem`.
        for bad in [
            "//! @mem\n",
            "//! @mem 1X\n",
            "//! @mem 1GG\n",
            "//! @mem G\n",
        ] {
            let e = parse_spec("x", bad, &none).unwrap_err();
            assert!(
                format!("{e:#}").contains("expected a memory size"),
                "{bad}: {e:#}"
            );
        }
        assert_eq!(
            parse_spec("x", "//! @mem 512M\n", &none).unwrap()[0].mem,
            "512M"
        );
        for bad in ["//! @timeout 0\n", "//! @timeout 18446744073709551615\n"] {
            let e = parse_spec("x", bad, &none).unwrap_err();
            assert!(format!("{e:#}").contains("from 1 to 86400"), "{bad}: {e:#}");
        }
        // Found by the fuzzer (harness_directives): a count or a model given twice made two
        // runs with one name.
        let twice = parse_spec("x", "//! @smp 2 4 2\n", &none).unwrap_err();
        assert!(
            format!("{twice:#}").contains("2 is given twice"),
            "{twice:#}"
        );
        let twice = parse_spec("x", "//! @cpu max qemu64 max\n", &none).unwrap_err();
        assert!(
            format!("{twice:#}").contains("max is given twice"),
            "{twice:#}"
        );
        let out = parse_spec(
            "x",
            "//! @expect-output SCHED \n//! @expect-output gomaxprocs=2\n",
            &none,
        )
        .unwrap();
        assert_eq!(out[0].expect_output, ["SCHED", "gomaxprocs=2"]);
        let plain = parse_spec("x", "fn main() {}\n", &none).unwrap();
        assert_eq!((plain[0].smp, plain[0].cpu.as_deref()), (DEFAULT_SMP, None));
    }

    #[test]
    fn cpu_models_multiply_the_runs() {
        let src = "//! @smp 1 4\n//! @cpu qemu64 qemu64,+x2apic\n";
        let specs = parse_spec("boot", src, &Overrides::default()).unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "boot[smp=1,cpu=qemu64]",
                "boot[smp=1,cpu=qemu64,+x2apic]",
                "boot[smp=4,cpu=qemu64]",
                "boot[smp=4,cpu=qemu64,+x2apic]"
            ]
        );
        assert_eq!(specs[3].cpu.as_deref(), Some("qemu64,+x2apic"));
        assert!(!wants_x2apic(&specs[2]) && wants_x2apic(&specs[3]));
        // Turned off by the kernel's own argument: no x2APIC expected.
        let off = parse_spec(
            "b",
            "//! @cpu qemu64,+x2apic\n//! @args x2apic=0\n",
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(off[0].name, "b");
        assert!(!wants_x2apic(&off[0]));
        // The command line's model replaces the test's list.
        let over = Overrides {
            smp: None,
            cpu: Some("max".into()),
        };
        let one = parse_spec("boot", src, &over).unwrap();
        assert_eq!(
            one.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["boot[smp=1]", "boot[smp=4]"]
        );
        assert!(one.iter().all(|s| s.cpu.as_deref() == Some("max")));
    }
}

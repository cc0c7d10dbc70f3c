//! The harness is proven able to fail: deliberately broken kernels (tests/fixtures/) are built,
//! booted and judged by the same code `cargo xtask test` uses, and each must be reported as
//! failed with the right reason; the passing fixture must be reported as passed.
//!
//! These fixtures are not in tests/src/bin, so the normal integration run never boots them.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use xtask::build::{self, Firmware, Kernels};
use xtask::harness::{self, Outcome, RunOptions, TestResult, TestSpec};
use xtask::qemu::Accel;

const FIXTURES: &[&str] = &[
    "fixture_pass",
    "fixture_assert",
    "fixture_panic",
    "fixture_exception",
    "fixture_triple_fault",
    "fixture_hang",
    "fixture_no_result",
];

fn spec(bin: &str) -> TestSpec {
    // Long enough to boot and reach the case: several seconds under TCG, over 20 s on a
    // machine also running a 4-CPU soak (the reason then had no case in it).
    let timeout = if bin == "fixture_hang" {
        Duration::from_secs(45)
    } else {
        harness::DEFAULT_TIMEOUT
    };
    TestSpec {
        name: bin.to_string(),
        bin: bin.to_string(),
        smp: 1,
        cpu: None,
        mem: "256M".into(),
        timeout,
        args: Vec::new(),
        expect_fail: Vec::new(),
        expect_output: Vec::new(),
        input: Vec::new(),
        trace: false,
        expect_hang: false,
    }
}

/// Builds the `bins` kernels and boots `specs` (of those kernels) through the real harness.
/// One caller at a time: two tests boot `fixture_pass`, and a test rewriting its image while
/// the other's QEMU reads it makes that QEMU hang in the BIOS stage.
fn boot(bins: &[&str], specs: &[TestSpec]) -> Vec<TestResult> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let names: Vec<String> = bins.iter().map(|s| s.to_string()).collect();
    let elves = build::build_kernels(Kernels::Tests(&names), false).expect("fixtures build");
    build::make_images(&elves, Firmware::Bios).expect("fixture images");
    let dir: PathBuf = elves[0].parent().unwrap().to_path_buf();
    let opts = RunOptions {
        accel: Accel::Tcg,
        firmware: Firmware::Bios,
        jobs: 2,
        verbose: false,
        tail: 10,
        quiet: false,
    };
    harness::run_all(
        specs,
        &|bin| build::image_path(&dir.join(bin), Firmware::Bios),
        &opts,
    )
}

fn run_fixtures() -> Vec<TestResult> {
    let specs: Vec<TestSpec> = FIXTURES.iter().map(|b| spec(b)).collect();
    boot(FIXTURES, &specs)
}

fn reason(results: &[TestResult], bin: &str) -> String {
    let r = results
        .iter()
        .find(|r| r.spec.bin == bin)
        .expect("fixture ran");
    match &r.outcome {
        Outcome::Failed { reason } => reason.clone(),
        Outcome::Passed { cases } => panic!(
            "{bin} was reported as passed ({cases} cases):\n{}",
            r.serial
        ),
        Outcome::Skipped { reason } => panic!("{bin} was skipped: {reason}"),
    }
}

#[test]
fn every_kind_of_failure_is_reported_with_its_reason() {
    let results = run_fixtures();
    assert_eq!(results.len(), FIXTURES.len());

    let pass = results
        .iter()
        .find(|r| r.spec.bin == "fixture_pass")
        .unwrap();
    assert_eq!(
        pass.outcome,
        Outcome::Passed { cases: 2 },
        "serial:\n{}",
        pass.serial
    );

    let r = reason(&results, "fixture_assert");
    assert!(
        r.starts_with("assertion failed in case `arithmetic_is_broken`"),
        "{r}"
    );
    assert!(
        r.contains("deliberately false") && r.contains("left: 4") && r.contains("right: 5"),
        "{r}"
    );

    let r = reason(&results, "fixture_panic");
    assert_eq!(r, "panic in case `explode`: fixture panic 42");

    let r = reason(&results, "fixture_exception");
    assert!(r.starts_with("CPU exception in case `undefined_instruction`: invalid opcode (#UD) (vector 6) on cpu 0, RIP 0x"), "{r}");

    let r = reason(&results, "fixture_triple_fault");
    assert_eq!(r, "triple fault in case `empty_idt_then_breakpoint`");

    let r = reason(&results, "fixture_hang");
    // Asked for its goroutine dump at the deadline (Ctrl-\), it cannot answer: a test case
    // runs with interrupts off until it starts the runtime (kernel/src/rt/run.rs), and the
    // reason says what that silence suggests. (tests/src/bin/hang_dump.rs is the hang that
    // answers.)
    assert_eq!(
        r,
        "timed out after 45 s (hung kernel) in case `spin_forever`; it printed no goroutine \
         dump when asked (Ctrl-\\): is CPU 0, which takes the serial interrupt, stuck with \
         interrupts off?"
    );

    let r = reason(&results, "fixture_no_result");
    assert!(r.contains("printed no test result"), "{r}");
}

/// A CPU model the installed QEMU cannot fully offer is reported as skipped, with QEMU's words,
/// never as passed; a model QEMU does not know fails; an x2APIC model boots in x2APIC mode
/// (or, on a QEMU whose TCG lacks x2APIC, is skipped).
#[test]
fn cpu_models_are_checked_before_they_are_trusted() {
    let on = |cpu: &str, name: &str| TestSpec {
        name: name.into(),
        cpu: Some(cpu.into()),
        ..spec("fixture_pass")
    };
    // No TCG offers AVX-512 (QEMU's target/i386/cpu.c TCG_7_0_EBX_FEATURES).
    let specs = [
        on("qemu64,+avx512f", "avx512"),
        on("no-such-model", "unknown"),
        on("qemu64,+x2apic", "x2apic"),
    ];
    let results = boot(&["fixture_pass"], &specs);
    let outcome = |name: &str| {
        results
            .iter()
            .find(|r| r.spec.name == name)
            .map(|r| (r.outcome.clone(), r.serial.clone()))
            .unwrap()
    };
    match outcome("avx512").0 {
        Outcome::Skipped { reason } => assert!(
            reason.contains("cannot offer `qemu64,+avx512f`") && reason.contains("avx512f"),
            "{reason}"
        ),
        other => panic!("a model QEMU cannot offer was not skipped: {other:?}"),
    }
    match outcome("unknown").0 {
        Outcome::Failed { reason } => {
            assert!(reason.contains("unable to find CPU model"), "{reason}")
        }
        other => panic!("an unknown model did not fail: {other:?}"),
    }
    let x2apic_possible = xtask::qemu::cpu_unavailable(Accel::Tcg, "qemu64,+x2apic")
        .unwrap()
        .is_none();
    match outcome("x2apic") {
        (Outcome::Passed { .. }, serial) if x2apic_possible => {
            assert!(serial.contains("apic: x2APIC"), "{serial}")
        }
        (Outcome::Skipped { .. }, _) if !x2apic_possible => {}
        other => panic!("x2APIC model (possible here: {x2apic_possible}): {other:?}"),
    }
}

/// The main job's command line: its exit status is the kernel's verdict, bad kernel arguments
/// and unknown flags are errors.
#[test]
fn xtask_qemu_exits_with_the_kernels_status() {
    let xtask = env!("CARGO_BIN_EXE_xtask");
    let run = |args: &[&str]| {
        let out = Command::new(xtask).args(args).output().expect("xtask runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, stdout, stderr) = run(&["qemu", "--smp", "1", "--mem", "256M"]);
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("boot complete"), "{stdout}");
    assert!(stderr.contains("accelerator TCG"), "{stderr}");

    let (code, stdout, stderr) =
        run(&["qemu", "--smp", "1", "--mem", "256M", "--", "no-such-key=1"]);
    assert_eq!(code, Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("kernel argument error: unknown kernel argument `no-such-key`"),
        "{stdout}"
    );

    let (code, _, stderr) = run(&["qemu", "--no-such-flag"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("unexpected argument '--no-such-flag'"),
        "{stderr}"
    );

    let (code, _, stderr) = run(&["qemu", "--accel", "hvf"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("invalid value 'hvf'"), "{stderr}");
}

//! `cargo xtask`: the one entry point for building, booting and testing (README).

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use xtask::build::{self, Firmware, Kernels};
use xtask::harness::{self, Outcome, RunOptions};
use xtask::qemu::{self, Accel, Machine, Serial};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, boot and test the gort kernel and rt-core"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the kernel, boot it in QEMU with the serial console on stdout, and exit with the
    /// kernel's own status (0 success, 1 failure, 2 no verdict: hang, triple fault, QEMU error).
    Qemu {
        /// Number of CPUs.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=255))]
        smp: u32,
        /// QEMU CPU model and features, in QEMU's `-cpu` syntax (`qemu64,+x2apic` for x2APIC
        /// mode); default: QEMU's own (qemu64, xAPIC only under TCG).
        #[arg(long, value_name = "MODEL")]
        cpu: Option<String>,
        /// Guest memory, in QEMU's syntax (512M, 2G).
        #[arg(long, default_value = "1G")]
        mem: String,
        /// Accelerator: tcg (default) or kvm (only where real KVM exists).
        #[arg(long, value_enum, default_value_t = Accel::Tcg)]
        accel: Accel,
        /// Build the kernel with optimisations.
        #[arg(long)]
        release: bool,
        /// Boot firmware: bios (default) or uefi (needs OVMF, installed if missing).
        #[arg(long, value_enum, default_value_t = Firmware::Bios)]
        firmware: Firmware,
        /// Seconds before the run is declared hung and QEMU is killed.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Kernel arguments, `key=value` (after `--`).
        #[arg(last = true)]
        kernel_args: Vec<String>,
    },
    /// Boot the kernel (or a test kernel) under QEMU's gdb stub, stopped at its entry, and
    /// attach gdb with the ELF and the project's extension (`info goroutines`,
    /// `goroutine N bt`).
    Gdb {
        /// A test kernel, tests/src/bin/NAME.rs (default: the showcase kernel).
        #[arg(long, value_name = "NAME")]
        test: Option<String>,
        /// Number of CPUs.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=255))]
        smp: u32,
        /// Run the gdb commands in FILE without a terminal, print gdb's output, and stop.
        #[arg(long, value_name = "FILE")]
        batch: Option<std::path::PathBuf>,
        /// Seconds before a batch run is declared hung.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Kernel arguments, `key=value` (after `--`).
        #[arg(last = true)]
        kernel_args: Vec<String>,
    },
    /// Boot the kernel (or a test kernel) with an execution trace of every CPU, and write it
    /// under target/trace/ as NAME.json (Perfetto, chrome://tracing), NAME.svg (a timeline)
    /// and NAME.html (the timeline with zoom and hover cards), with a summary.
    Trace {
        /// A test kernel, tests/src/bin/NAME.rs (default: the showcase kernel).
        #[arg(long, value_name = "NAME")]
        test: Option<String>,
        /// Number of CPUs.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=255))]
        smp: u32,
        /// Accelerator: tcg (default) or kvm.
        #[arg(long, value_enum, default_value_t = Accel::Tcg)]
        accel: Accel,
        /// Seconds before the run is declared hung and QEMU is killed.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Also render the SVG and the page as PNG pictures (NAME.svg.png, NAME.html.png)
        /// with headless Chromium (installed if missing).
        #[arg(long)]
        png: bool,
        /// Kernel arguments, `key=value` (after `--`).
        #[arg(last = true)]
        kernel_args: Vec<String>,
    },
    /// Check the course book's code references (docs/book/) and build it into target/book/
    /// (mdBook, installed if missing).
    Book {
        /// Serve it on localhost and rebuild on change, instead of building once.
        #[arg(long)]
        serve: bool,
    },
    /// The course's labs: list them, start one (its regions of the source become stubs with
    /// hints), grade it (its tests, xv6-style: `== Test ... == OK`, `Score: T/P`), reset it.
    Lab {
        #[command(subcommand)]
        action: LabCmd,
    },
    /// Benchmark rt-core's scheduler beside Go's runtime, may and tokio on this machine
    /// (ratios; JSON in target/bench/results.json and target/bench/peers.json).
    Bench {
        /// Interleaved rounds of ours and the peers' (each a median of several runs).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// A tenth of the iterations (a smoke run).
        #[arg(long)]
        quick: bool,
    },
    /// Boot the soak kernel (tests/src/bin/soak.rs) for N minutes: every kind of runtime work
    /// at once, its books checked each round, and resources (frames, heap, live goroutines,
    /// stacks) printed each minute and required not to grow. The tick and the time slice are
    /// drawn from the seed (printed; `--seed` repeats a run's choices).
    Soak {
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=10000))]
        minutes: u64,
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=255))]
        smp: u32,
        /// The seed of the soak's choices (default: from the clock).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        seed: Option<u64>,
        #[arg(long, value_enum, default_value_t = Accel::Tcg)]
        accel: Accel,
    },
    /// Mutation testing (cargo-mutants) of rt-core's core files against its host tests
    /// (selected in .cargo/mutants.toml): per-file scores, missed mutants in
    /// target/mutants/missed.txt. Exits 1 if a mutant was missed or timed out.
    Mutants {
        /// A file of rt-core to mutate (`runq.rs`, `sync/mutex.rs` or `rt-core/src/...`);
        /// repeatable. Default: runq, sched, idle, preempt, chan and select.
        #[arg(long = "file", value_name = "F")]
        files: Vec<String>,
        /// Seconds a mutant's test run may take before it counts as a timeout (a hang the
        /// tests detect; the unmutated run takes about 6 s).
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Fuzz every parser of outside input (fuzz/, cargo-fuzz and libFuzzer; cargo-fuzz is
    /// installed if missing) for N seconds per target; exits 1 if an input made one fail.
    Fuzz {
        /// Seconds to fuzz each target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only this target (fuzz/fuzz_targets/TARGET.rs).
        target: Option<String>,
    },
    /// Run the host tests (rt-core, xtask) and every integration-test kernel in tests/ in QEMU.
    Test {
        /// Run only the QEMU tests whose name contains this text (host tests are skipped).
        filter: Option<String>,
        /// Run every QEMU test at this CPU count (instead of each test's own `@smp`).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=255))]
        smp: Option<u32>,
        /// Run every QEMU test on this QEMU CPU model (instead of each test's own `@cpu`).
        #[arg(long, value_name = "MODEL")]
        cpu: Option<String>,
        #[arg(long, value_enum, default_value_t = Accel::Tcg)]
        accel: Accel,
        #[arg(long, value_enum, default_value_t = Firmware::Bios)]
        firmware: Firmware,
        /// Print every test kernel's whole serial output.
        #[arg(long)]
        verbose: bool,
        /// QEMU tests at once (default: the number of host CPUs).
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Skip the host tests.
        #[arg(long)]
        no_host: bool,
    },
}

#[derive(Subcommand)]
enum LabCmd {
    /// Every lab, its chapter, and whether it is started.
    List,
    /// Replace the lab's solution regions with their stubs and hints (the original is kept
    /// under target/lab/NAME/ for `reset`).
    Start { name: String },
    /// Run the lab's tests (host and QEMU) and print its score; without NAME, the started
    /// labs (or all). Exits 1 below full marks.
    Grade {
        name: Option<String>,
        #[arg(long, value_enum, default_value_t = Accel::Tcg)]
        accel: Accel,
        /// QEMU tests at once (default: the number of host CPUs).
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Seconds before a host test counts as hung.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Put the lab's original code back (your version is kept under target/lab/NAME/attempt/).
    Reset { name: String },
    /// Prove every grader honest (a step of `cargo xtask test`): in a scratch copy of the tree,
    /// full marks untouched, less than full marks for each lab once started, and every file
    /// as it was after reset.
    Check {
        #[arg(long, value_enum, default_value_t = Accel::Tcg)]
        accel: Accel,
    },
}

/// How the lab graders run inside `cargo xtask test` and `lab check`.
fn lab_options(accel: Accel) -> xtask::lab::GradeOptions {
    xtask::lab::GradeOptions {
        accel,
        jobs: host_jobs(),
        host_timeout: 120,
        verbose: false,
    }
}

/// Prints the graders' claims as test lines; returns how many failed.
fn report_claims(claims: &[(String, Result<String, String>)]) -> u32 {
    let mut bad = 0;
    for (what, r) in claims {
        match r {
            Ok(how) => println!("{what} ... ok ({how})"),
            Err(why) => {
                println!("{what} ... FAILED ({why})");
                bad += 1;
            }
        }
    }
    bad
}

fn host_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Qemu {
            smp,
            cpu,
            mem,
            accel,
            release,
            firmware,
            timeout,
            kernel_args,
        } => {
            let machine = Machine {
                smp,
                cpu,
                mem,
                accel,
                firmware,
                kernel_args,
                timeout: Duration::from_secs(timeout),
                input: Vec::new(),
                trace_window: None,
            };
            cmd_qemu(&machine, release)
        }
        Cmd::Gdb {
            test,
            smp,
            batch,
            timeout,
            kernel_args,
        } => {
            let machine = xtask::gdb::machine(smp, kernel_args, Duration::from_secs(timeout));
            let r = xtask::gdb::GdbRun {
                test: test.as_deref(),
                machine,
                batch: batch.as_deref(),
            };
            xtask::gdb::run(&r).map(|(ok, out)| {
                if let Some(out) = out {
                    print!("{out}");
                }
                if ok {
                    0
                } else {
                    1
                }
            })
        }
        Cmd::Trace {
            test,
            smp,
            accel,
            timeout,
            png,
            kernel_args,
        } => xtask::trace::check_args(&kernel_args).and_then(|()| {
            let machine = Machine {
                accel,
                ..xtask::gdb::machine(smp, kernel_args, Duration::from_secs(timeout))
            };
            xtask::trace::run(&xtask::trace::TraceRun {
                test: test.as_deref(),
                machine,
                pictures: png,
            })
        }),
        Cmd::Book { serve } => xtask::book::run(serve),
        Cmd::Lab { action } => {
            let root = xtask::root();
            match action {
                LabCmd::List => xtask::lab::list(&root).map(|()| 0),
                LabCmd::Start { name } => xtask::lab::start(&root, &name).map(|()| 0),
                LabCmd::Reset { name } => xtask::lab::reset(&root, &name).map(|()| 0),
                LabCmd::Check { accel } => xtask::setup::ensure_all(false)
                    .and_then(|()| xtask::lab::prove(&lab_options(accel)))
                    .map(|claims| {
                        let bad = report_claims(&claims);
                        println!("{} passed, {bad} failed", claims.len() as u32 - bad);
                        u8::from(bad > 0)
                    }),
                LabCmd::Grade {
                    name,
                    accel,
                    jobs,
                    timeout,
                } => xtask::lab::grade(
                    name.as_deref(),
                    &xtask::lab::GradeOptions {
                        accel,
                        jobs: jobs.unwrap_or_else(host_jobs),
                        host_timeout: timeout,
                        verbose: false,
                    },
                ),
            }
        }
        Cmd::Soak {
            minutes,
            smp,
            seed,
            accel,
        } => cmd_soak(minutes, smp, seed, accel),
        Cmd::Mutants { files, timeout } => xtask::mutants::run(&xtask::root(), &files, timeout),
        Cmd::Bench { rounds, quick } => xtask::bench::run(rounds.max(1), quick).map(|()| 0),
        Cmd::Fuzz { seconds, target } => xtask::fuzz::run(seconds, target.as_deref()),
        Cmd::Test {
            filter,
            smp,
            cpu,
            accel,
            firmware,
            verbose,
            jobs,
            no_host,
        } => {
            let jobs =
                jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            let opts = RunOptions {
                accel,
                firmware,
                jobs,
                verbose,
                tail: 20,
                quiet: false,
            };
            let over = harness::Overrides { smp, cpu };
            cmd_test(filter.as_deref(), &over, &opts, no_host || filter.is_some())
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn cmd_qemu(m: &Machine, release: bool) -> Result<u8> {
    for a in &m.kernel_args {
        if a.contains('\n') {
            bail!("kernel argument {a:?} contains a newline");
        }
    }
    xtask::setup::ensure_all(m.firmware == Firmware::Uefi)?;
    if let Some(cpu) = &m.cpu {
        if let Some(why) = qemu::cpu_unavailable(m.accel, cpu)? {
            eprintln!("xtask: warning: {why}; the kernel will run on a CPU without it");
        }
    }
    let elves = build::build_kernels(Kernels::Main, release)?;
    let images = build::make_images(&elves, m.firmware)?;
    eprintln!(
        "xtask: booting {} under {}: accelerator {}, {} CPU(s){}, {} memory, {} firmware",
        images[0].display(),
        xtask::setup::qemu_short_version().unwrap_or_else(|| "QEMU".into()),
        m.accel.describe(),
        m.smp,
        m.cpu
            .as_ref()
            .map(|c| format!(" of model {c}"))
            .unwrap_or_default(),
        m.mem,
        if m.firmware == Firmware::Bios {
            "BIOS"
        } else {
            "UEFI (OVMF)"
        }
    );
    let run = qemu::run(&images[0], m, Serial::Inherit, &qemu::scratch("kernel"))?;
    eprintln!(
        "xtask: {} after {:.1} s",
        run.ending.describe(),
        run.elapsed.as_secs_f64()
    );
    if !run.stderr.trim().is_empty() {
        eprintln!("xtask: QEMU said:\n{}", run.stderr.trim_end());
    }
    Ok(run.ending.exit_code() as u8)
}

/// `cargo test` with its counts summed and a hung test killed and named (xtask/src/hostwatch.rs).
fn cargo_test_counts(what: &str, cmd: &mut Command) -> Result<(u32, u32)> {
    xtask::hostwatch::cargo_test_counts(what, cmd, xtask::hostwatch::HUNG_AFTER)
}

/// The lints the workspace keeps (`[workspace.lints]` in Cargo.toml: `unsafe_op_in_unsafe_fn`,
/// clippy's `undocumented_unsafe_blocks`, and clippy's defaults), as warnings-are-errors
/// clippy runs: one for the host crates, one for the kernel and the test kernels on their
/// target. Each counts as one test.
fn lint_checks() -> Result<(u32, u32)> {
    let root = xtask::root();
    let runs: [(&str, &[&str]); 2] = [
        (
            "lints (host: rt-core, rt-trace, kernel-args, xtask)",
            &[
                "clippy",
                "--package",
                "rt-core",
                "--package",
                "rt-trace",
                "--package",
                "kernel-args",
                "--package",
                "xtask",
                "--all-targets",
            ],
        ),
        (
            "lints (kernel and test kernels)",
            &[
                "clippy",
                "--target",
                xtask::setup::KERNEL_TARGET,
                "--package",
                "kernel",
                "--package",
                "tests",
            ],
        ),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (what, args) in runs {
        println!("== {what}: cargo {}", args.join(" "));
        let status = Command::new(xtask::cargo())
            .current_dir(&root)
            .args(args)
            .args(["--", "--deny", "warnings"])
            .status()
            .context("cannot run cargo clippy")?;
        if status.success() {
            println!("{what} ... ok");
            passed += 1;
        } else {
            println!(
                "{what} ... FAILED (cargo clippy exited with {status}; its messages are above)"
            );
            failed += 1;
        }
    }
    Ok((passed, failed))
}

/// The loom models (rt-core/tests/loom_*.rs): the run queue, the park/wake protocol of idle
/// Ms, channels, select's claim and WaitGroup.
const LOOM_MODELS: [&str; 5] = [
    "loom_runq",
    "loom_park",
    "loom_chan",
    "loom_select",
    "loom_waitgroup",
];

/// Host tests: `cargo test` for rt-core and xtask, then the loom models ([`LOOM_MODELS`],
/// built with `--cfg loom` in their own target directory, so they do not disturb the others).
fn host_tests() -> Result<(u32, u32)> {
    println!("== host tests: cargo test -p rt-core -p rt-trace -p kernel-args -p xtask");
    // xtask's own tests boot kernels: make sure the toolchain is complete first.
    xtask::setup::ensure_toolchain()?;
    let root = xtask::root();
    let (p1, f1) = cargo_test_counts(
        "host tests",
        Command::new(xtask::cargo()).current_dir(&root).args([
            "test",
            // A failing (or hung, killed) test binary does not keep the others from running.
            "--no-fail-fast",
            "--package",
            "rt-core",
            "--package",
            "rt-trace",
            "--package",
            "kernel-args",
            "--package",
            "xtask",
        ]),
    )?;
    println!(
        "== host tests: loom models {} (RUSTFLAGS=--cfg loom)",
        LOOM_MODELS.join(", ")
    );
    let mut loom = Command::new(xtask::cargo());
    loom.current_dir(&root)
        .args([
            "test",
            "--release",
            "--no-fail-fast",
            "--package",
            "rt-core",
        ])
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", root.join("target/loom"));
    for t in LOOM_MODELS {
        loom.args(["--test", t]);
    }
    let (p2, f2) = cargo_test_counts("loom models", &mut loom)?;
    Ok((p1 + p2, f1 + f2))
}

/// Builds the test kernels and their images, then boots them all.
fn qemu_tests(specs: &[harness::TestSpec], opts: &RunOptions) -> Result<Vec<harness::TestResult>> {
    let mut bins: Vec<String> = specs.iter().map(|s| s.bin.clone()).collect();
    bins.dedup();
    println!("== QEMU tests: building {} test kernel(s)", bins.len());
    let elves = build::build_kernels(Kernels::Tests(&bins), false)?;
    build::make_images(&elves, opts.firmware)?;
    println!(
        "== QEMU tests: {} run(s), {} at a time, accelerator {}",
        specs.len(),
        opts.jobs,
        opts.accel.describe()
    );
    let dir = elves[0].parent().unwrap().to_path_buf();
    Ok(harness::run_all(
        specs,
        &|bin| build::image_path(&dir.join(bin), opts.firmware),
        opts,
    ))
}

/// `cargo xtask soak`: the soak kernel with the run's minutes, CPUs, and a tick and time slice
/// drawn from the seed.
fn cmd_soak(minutes: u64, smp: u32, seed: Option<u64>, accel: Accel) -> Result<u8> {
    let seed = seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        (t ^ (u64::from(std::process::id()) << 32)) | 1
    });
    // splitmix64 (Steele, Lea, Flood): two draws from the seed, for the tick and the slice.
    let mut state = seed;
    let mut draw = |n: u64| {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    };
    let tick = 1 + draw(4);
    let timeslice = 1 + draw(20);
    let over = harness::Overrides {
        smp: Some(smp),
        cpu: None,
    };
    let mut specs = harness::discover(&xtask::root().join("tests/src/bin"), Some("soak"), &over)?;
    specs.retain(|s| s.bin == "soak");
    let Some(spec) = specs.first_mut() else {
        bail!("no soak kernel in tests/src/bin (soak.rs)");
    };
    spec.args.retain(|a| !a.starts_with("soak="));
    spec.args.extend([
        format!("soak={minutes}"),
        format!("tick={tick}"),
        format!("timeslice={timeslice}"),
        format!("seed={seed}"),
    ]);
    // The minutes, plus boot and the last round's checks.
    spec.timeout = Duration::from_secs(minutes * 60 + 240);
    let specs = &specs[..1];
    xtask::setup::ensure_all(false)?;
    println!(
        "== soak: {minutes} minute(s) at -smp {smp}, seed {seed}: tick={tick} ms, timeslice={timeslice} ms (cargo xtask soak --minutes {minutes} --smp {smp} --seed {seed} repeats these)"
    );
    let opts = RunOptions {
        accel,
        firmware: Firmware::Bios,
        jobs: 1,
        verbose: true,
        tail: 40,
        quiet: false,
    };
    let results = qemu_tests(specs, &opts)?;
    Ok(u8::from(
        results.is_empty()
            || results
                .iter()
                .any(|r| !matches!(r.outcome, Outcome::Passed { .. })),
    ))
}

fn cmd_test(
    filter: Option<&str>,
    over: &harness::Overrides,
    opts: &RunOptions,
    skip_host: bool,
) -> Result<u8> {
    let start = Instant::now();
    let specs = harness::discover(&xtask::root().join("tests/src/bin"), filter, over)?;
    if specs.is_empty() {
        bail!("no QEMU test matches {:?}", filter.unwrap_or(""));
    }
    // Everything is installed here, once, before the host tests start the xtasks and QEMUs
    // that run in parallel.
    xtask::setup::ensure_all(opts.firmware == Firmware::Uefi)?;
    if specs.iter().any(|s| s.trace) {
        // The traced kernels' pages are opened in it (trace.rs `check_html`).
        xtask::browser::ensure_chromium()?;
    }
    println!(
        "== set-up: {}",
        xtask::setup::qemu_version().unwrap_or_else(|| "QEMU (version unknown)".into())
    );
    let (mut passed, mut failed) = if skip_host {
        (0, 0)
    } else {
        let (p1, f1) = host_tests()?;
        let (p2, f2) = lint_checks()?;
        (p1 + p2, f1 + f2)
    };
    let results = match qemu_tests(&specs, opts) {
        Ok(results) => results,
        Err(e) => {
            // Still end with the count line: the run failed, and says why.
            println!("QEMU tests ... FAILED ({e:#})");
            failed += 1;
            Vec::new()
        }
    };
    // `cargo xtask gdb`'s extension, on the gdb test kernel (a full-run check only).
    if filter.is_none() || filter.is_some_and(|f| "gdb_goroutines".contains(f)) {
        match xtask::gdb::self_test(opts.accel) {
            Ok(()) => {
                println!("gdb: info goroutines and goroutine N bt ... ok");
                passed += 1;
            }
            Err(why) => {
                println!("gdb: info goroutines and goroutine N bt ... FAILED ({why})");
                failed += 1;
            }
        }
    }
    // The lab graders, proven honest in a scratch copy of the tree (a full-run check only).
    if filter.is_none() {
        match xtask::lab::prove(&lab_options(opts.accel)) {
            Ok(claims) => {
                let bad = report_claims(&claims);
                passed += claims.len() as u32 - bad;
                failed += bad;
            }
            Err(e) => {
                println!("lab graders ... FAILED ({e:#})");
                failed += 1;
            }
        }
    }
    let named = |pick: fn(&Outcome) -> bool| -> Vec<&str> {
        results
            .iter()
            .filter(|r| pick(&r.outcome))
            .map(|r| r.spec.name.as_str())
            .collect()
    };
    let bad = named(|o| matches!(o, Outcome::Failed { .. }));
    let skipped = named(|o| matches!(o, Outcome::Skipped { .. }));
    passed += (results.len() - bad.len() - skipped.len()) as u32;
    failed += bad.len() as u32;
    if !skipped.is_empty() {
        println!(
            "skipped QEMU tests (this QEMU cannot make their machine): {}",
            skipped.join(", ")
        );
    }
    if !bad.is_empty() {
        println!("failed QEMU tests: {}", bad.join(", "));
    }
    println!("(total {:.1} s)", start.elapsed().as_secs_f64());
    if skipped.is_empty() {
        println!("{passed} passed, {failed} failed");
    } else {
        println!(
            "{passed} passed, {failed} failed, {} skipped",
            skipped.len()
        );
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

//! `cargo xtask gdb`: a kernel under QEMU's gdb stub, with gdb attached, the unstripped ELF
//! loaded at the kernel's address (`KERNEL_BASE`, symbolize.rs) and the project's extension
//! (xtask/gdb/rt_core.py: `info goroutines`, `goroutine N bt`) sourced, stopped at the
//! kernel's entry. Interactive by default; `--batch FILE` runs gdb commands from a file
//! without a terminal (for tests), with a deadline.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::build::{self, Firmware, Kernels};
use crate::qemu::{self, Machine};

/// What to debug and how.
pub struct GdbRun<'a> {
    /// A test kernel's name (tests/src/bin/NAME.rs); None: the showcase kernel.
    pub test: Option<&'a str>,
    pub machine: Machine,
    /// gdb commands to run without a terminal; None: interactive.
    pub batch: Option<&'a Path>,
}

/// gdb's output in batch mode (None when interactive), and whether gdb succeeded.
pub fn run(r: &GdbRun) -> Result<(bool, Option<String>)> {
    crate::setup::ensure_qemu()?;
    crate::setup::ensure_gdb()?;
    let elves = match r.test {
        Some(t) => build::build_kernels(Kernels::Tests(&[t.to_string()]), false)?,
        None => build::build_kernels(Kernels::Main, false)?,
    };
    let images = build::make_images(&elves, Firmware::Bios)?;
    let elf = &elves[0];
    let scratch = qemu::scratch(&format!("gdb-{}", r.test.unwrap_or("kernel")));
    if let Some(d) = scratch.parent() {
        std::fs::create_dir_all(d)?;
    }
    let port = free_port()?;
    let mut cmd = qemu::command(&images[0], &r.machine, &scratch)?;
    cmd.args(["-gdb", &format!("tcp:127.0.0.1:{port}"), "-S"]);
    let serial = scratch.with_extension("serial");
    cmd.stdin(Stdio::null())
        .stdout(File::create(&serial)?)
        .stderr(File::create(scratch.with_extension("stderr"))?);
    let mut qemu_child = cmd.spawn().context("cannot start QEMU")?;
    eprintln!(
        "xtask: QEMU waits for gdb on 127.0.0.1:{port}; the serial console goes to {}",
        serial.display()
    );
    let ext = crate::root().join("xtask/gdb/rt_core.py");
    let mut gdb = Command::new("gdb");
    gdb.args(["-q", "-nx"]);
    for c in setup_commands(elf, &ext, port) {
        gdb.arg("-ex").arg(c);
    }
    let result = match r.batch {
        None => {
            let st = gdb.status().context("cannot run gdb")?;
            (st.success(), None)
        }
        Some(file) => {
            gdb.arg("-batch").arg("-x").arg(file);
            gdb.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let out_path = scratch.with_extension("gdb.out");
            let child = gdb.spawn().context("cannot run gdb")?;
            let deadline = Instant::now() + r.machine.timeout;
            let out = wait_output(child, deadline)?;
            std::fs::write(&out_path, &out.1)?;
            (out.0, Some(out.1))
        }
    };
    let _ = qemu_child.kill();
    let _ = qemu_child.wait();
    Ok(result)
}

/// The commands gdb runs first: symbols at the kernel's address, the extension, the stub, and
/// a hardware breakpoint at the entry (the bootloader maps the kernel before it jumps there).
fn setup_commands(elf: &Path, ext: &Path, port: u16) -> Vec<String> {
    vec![
        "set pagination off".into(),
        "set confirm off".into(),
        format!(
            "symbol-file -o {:#x} {}",
            crate::symbolize::KERNEL_BASE,
            elf.display()
        ),
        format!("source {}", ext.display()),
        format!("target remote 127.0.0.1:{port}"),
        "hbreak _start".into(),
        "continue".into(),
        "delete".into(),
    ]
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("no free TCP port")?;
    Ok(l.local_addr()?.port())
}

/// Waits for gdb, killing it at `deadline`; returns (success, stdout + stderr).
fn wait_output(mut child: std::process::Child, deadline: Instant) -> Result<(bool, String)> {
    use std::io::Read;
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = t1.join().unwrap_or_default();
    out.push_str(&t2.join().unwrap_or_default());
    match status {
        None => bail!("gdb did not finish before the deadline; its output:\n{out}"),
        Some(st) => Ok((st.success(), out)),
    }
}

/// The machine `cargo xtask gdb` boots: the default QEMU model, 1G, BIOS, TCG.
pub fn machine(smp: u32, kernel_args: Vec<String>, timeout: Duration) -> Machine {
    Machine {
        smp,
        cpu: None,
        mem: "1G".into(),
        accel: qemu::Accel::Tcg,
        firmware: Firmware::Bios,
        kernel_args,
        timeout,
        input: Vec::new(),
        trace_window: None,
    }
}

/// The `cargo xtask test` check: the gdb test kernel stopped with goroutines parked, and the
/// extension's `info goroutines` and `goroutine N bt` showing them. Returns why it failed.
pub fn self_test(accel: qemu::Accel) -> Result<(), String> {
    let batch: PathBuf = crate::root().join("tests/gdb/goroutines.gdb");
    let machine = Machine {
        accel,
        ..machine(2, Vec::new(), Duration::from_secs(180))
    };
    let r = GdbRun {
        test: Some("gdb_goroutines"),
        machine,
        batch: Some(&batch),
    };
    let (ok, out) = run(&r).map_err(|e| format!("{e:#}"))?;
    let out = out.unwrap_or_default();
    check_session(&out).map_err(|why| {
        format!(
            "{why}{}; gdb's output:\n{out}",
            if ok { "" } else { " (gdb failed)" }
        )
    })
}

/// What a session of tests/gdb/goroutines.gdb must show.
pub fn check_session(out: &str) -> Result<(), String> {
    let wanted = [
        "waiting (chan receive)",
        "gdb_goroutines::parked_receiver at ",
        "waiting (sleep)",
        "gdb_goroutines::sleeper at ",
        "in gdb_goroutines::parked_receiver at ",
        "tests/src/bin/gdb_goroutines.rs:",
    ];
    match wanted.iter().find(|w| !out.contains(*w)) {
        Some(w) => Err(format!("the session did not show `{w}`")),
        None => Ok(()),
    }
}

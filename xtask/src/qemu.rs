//! Running a kernel image in QEMU and reading its verdict.
//!
//! The kernel ends a run by writing to the `isa-debug-exit` device (kernel/src/dev/qemu.rs): QEMU
//! then exits with `(code << 1) | 1`, so 33 is the kernel's "success" (0x10) and 35 its
//! "failure" (0x11). Any other status is not the kernel's word: 0 means the machine reset or
//! powered off (`-no-reboot` turns a triple fault into an exit; QEMU's `cpu_reset` log says
//! "Triple fault"), 1 is QEMU's own error, and a run killed at its deadline hung.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::build::Firmware;
use crate::setup;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    /// QEMU's software emulation, multi-threaded (one host thread per vCPU). The default.
    Tcg,
    /// Hardware virtualisation; only where real KVM exists (not on this project's machines:
    /// docs/platform.md).
    Kvm,
}

impl Accel {
    /// QEMU's name for it (`-accel tcg`).
    pub fn qemu_name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Accel::Tcg => "TCG (software emulation, one host thread per vCPU)",
            Accel::Kvm => "KVM (hardware virtualisation)",
        }
    }
}

/// Exit codes the kernel writes to `isa-debug-exit` (kernel/src/dev/qemu.rs `ExitCode`).
pub const KERNEL_SUCCESS: i32 = 0x10;
pub const KERNEL_FAILURE: i32 = 0x11;

#[derive(Debug, Clone)]
pub struct Machine {
    pub smp: u32,
    /// QEMU's `-cpu` model (`qemu64`, `qemu64,+x2apic`); None: QEMU's default (qemu64).
    pub cpu: Option<String>,
    /// Guest memory in QEMU's syntax (`512M`, `1G`).
    pub mem: String,
    pub accel: Accel,
    pub firmware: Firmware,
    /// `key=value` kernel arguments, handed in through fw_cfg.
    pub kernel_args: Vec<String>,
    pub timeout: Duration,
    /// Texts typed on the serial port: the Nth once the kernel has printed [`INPUT_MARKER`]
    /// N times (tests only).
    pub input: Vec<String>,
    /// A file to back the trace window (an ivshmem device, kernel/src/dev/tracemem.rs): where
    /// a kernel with `trace=1` writes its execution trace ([`trace_window`] makes the file and
    /// [`read_trace_window`] reads it back). None: no window.
    pub trace_window: Option<PathBuf>,
}

/// What a kernel prints when it waits for serial input (kernel/src/dev/serial_in.rs
/// `WAITING_MARKER`).
pub const INPUT_MARKER: &str = "[serial: waiting for input]";

/// Types `texts[n]` into QEMU's serial port (its stdin) once `serial_path` shows
/// [`INPUT_MARKER`] n + 1 times; stops when `done` is set. Keeps stdin open until then (an
/// EOF on a chardev is not input).
fn feed_input(
    stdin: SharedStdin,
    serial_path: PathBuf,
    texts: Vec<String>,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    let mut sent = 0;
    while !done.load(Ordering::Relaxed) {
        let markers = fs::read(&serial_path)
            .map(|b| String::from_utf8_lossy(&b).matches(INPUT_MARKER).count())
            .unwrap_or(0);
        while sent < markers.min(texts.len()) {
            let mut stdin = stdin.lock().unwrap_or_else(|e| e.into_inner());
            let _ = stdin.write_all(texts[sent].as_bytes());
            let _ = stdin.flush();
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How a QEMU run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The kernel wrote this code to `isa-debug-exit`.
    Kernel(i32),
    /// The machine reset or powered off without a kernel verdict; `triple_fault` if QEMU logged one.
    Reset { triple_fault: bool },
    /// QEMU itself failed (status 1 or another status that is not a kernel code).
    QemuError(Option<i32>),
    /// Killed at the deadline.
    Timeout(Duration),
}

impl Ending {
    /// The exit status `cargo xtask qemu` passes on: the kernel's own verdict, else 2.
    pub fn exit_code(&self) -> i32 {
        match self {
            Ending::Kernel(KERNEL_SUCCESS) => 0,
            Ending::Kernel(KERNEL_FAILURE) => 1,
            _ => 2,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Ending::Kernel(KERNEL_SUCCESS) => "the kernel exited with success".into(),
            Ending::Kernel(KERNEL_FAILURE) => "the kernel exited with failure".into(),
            Ending::Kernel(c) => format!("the kernel exited with unknown code {c:#x}"),
            Ending::Reset { triple_fault: true } => "triple fault (the CPU reset itself)".into(),
            Ending::Reset {
                triple_fault: false,
            } => "the machine reset or powered off without a kernel verdict".into(),
            Ending::QemuError(Some(s)) => format!("QEMU failed (exit status {s})"),
            Ending::QemuError(None) => "QEMU was killed by a signal".into(),
            Ending::Timeout(t) => format!("timed out after {} s (hung kernel)", t.as_secs()),
        }
    }
}

pub struct RunResult {
    pub ending: Ending,
    pub elapsed: Duration,
    /// QEMU's own stderr (its errors), when captured.
    pub stderr: String,
}

/// Where the kernel's serial output goes.
pub enum Serial<'a> {
    /// Our stdout (for `cargo xtask qemu`).
    Inherit,
    /// A file (for the test harness, which reads it afterwards).
    File(&'a Path),
}

fn qemu_escape(s: &str) -> String {
    // QEMU's option syntax separates with commas; a literal comma is written twice.
    s.replace(',', ",,")
}

/// The trace window's size (a power of two, as ivshmem wants): 256 MiB, 6.7 million events.
/// The file is sparse: only what the kernel writes takes disk space.
pub const TRACE_WINDOW_BYTES: u64 = 256 << 20;

/// The window's header (kernel/src/dev/tracemem.rs): magic, size, reserved, end.
const TRACE_MAGIC: [u8; 8] = rt_trace::format::WINDOW_MAGIC.to_le_bytes();
const TRACE_HEADER: u64 = rt_trace::format::WINDOW_HEADER;

/// Creates the file that backs the trace window, with the header the kernel checks.
pub fn trace_window(path: &Path) -> Result<()> {
    let mut header = vec![0u8; TRACE_HEADER as usize];
    header[..8].copy_from_slice(&TRACE_MAGIC);
    header[8..16].copy_from_slice(&TRACE_WINDOW_BYTES.to_le_bytes());
    fs::write(path, &header).with_context(|| format!("cannot write {}", path.display()))?;
    let f = fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(TRACE_WINDOW_BYTES)
        .with_context(|| format!("cannot size {}", path.display()))?;
    Ok(())
}

/// The trace the kernel wrote into the window file: the data up to the header's `end`.
pub fn read_trace_window(path: &Path) -> Result<Vec<u8>> {
    let f = File::open(path).with_context(|| format!("no trace window at {}", path.display()))?;
    let (data, window) = read_window(f).with_context(|| format!("{}", path.display()))?;
    if window.reserved > window.end {
        // Writers that did not fit: the kernel counted their records as lost.
        eprintln!(
            "xtask: the trace window ({} MiB) filled up: {} bytes did not fit (counted as lost events)",
            window.size >> 20,
            window.reserved - window.end
        );
    }
    Ok(data)
}

/// A trace window's header, as the kernel left it (kernel/src/dev/tracemem.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowHeader {
    /// The window's size in bytes, header included.
    pub size: u64,
    /// Bytes of data writers reserved (past `end` when the window filled up).
    pub reserved: u64,
    /// Bytes of data written after the header.
    pub end: u64,
}

/// Reads a trace window (the file's bytes, from its start): checks its header and returns the
/// data up to the header's `end`.
pub fn read_window(mut f: impl std::io::Read + std::io::Seek) -> Result<(Vec<u8>, WindowHeader)> {
    use std::io::SeekFrom;
    let mut header = [0u8; 32];
    f.read_exact(&mut header)
        .context("too short for a trace window's header")?;
    if header[..8] != TRACE_MAGIC {
        bail!("not a trace window (bad magic)");
    }
    let word = |i: usize| u64::from_le_bytes(header[i * 8..i * 8 + 8].try_into().unwrap());
    let (size, reserved, end) = (word(1), word(2), word(3));
    // The fuzzer (trace_window) found a file cut short inside its header taken for an empty
    // window; the same checks keep a size below the header's own from underflowing and an
    // `end` the file does not hold from being allocated.
    let Some(room) = size.checked_sub(TRACE_HEADER) else {
        bail!("the header's size ({size}) is smaller than the header ({TRACE_HEADER} bytes)");
    };
    if end > room {
        bail!("the header's end ({end}) is past the window");
    }
    let len = f.seek(SeekFrom::End(0))?;
    if TRACE_HEADER + end > len {
        bail!("the header's end ({end}) is past the file's {len} bytes (a cut-short window)");
    }
    let mut data = vec![0u8; end as usize];
    f.seek(SeekFrom::Start(TRACE_HEADER))?;
    f.read_exact(&mut data)?;
    Ok((
        data,
        WindowHeader {
            size,
            reserved,
            end,
        },
    ))
}

/// Builds the QEMU command line for `image`. `scratch` is a unique path prefix for the run's
/// own files (argument file, QEMU log).
pub fn command(image: &Path, m: &Machine, scratch: &Path) -> Result<Command> {
    let mut cmd = Command::new(setup::QEMU);
    // `snapshot=on`: guest writes go to a temporary overlay, so the same image can boot in
    // several QEMUs at once (a test at several CPU counts) without QEMU's image lock refusing.
    cmd.arg("-drive").arg(format!(
        "format=raw,snapshot=on,file={}",
        qemu_escape(&image.display().to_string())
    ));
    if m.firmware == Firmware::Uefi {
        cmd.arg("-bios").arg(setup::OVMF);
    }
    cmd.args(["-smp", &m.smp.to_string(), "-m", &m.mem]);
    if let Some(cpu) = &m.cpu {
        cmd.args(["-cpu", cpu]);
    }
    // TCG: one host thread per vCPU.
    let threads = if m.accel == Accel::Tcg {
        ",thread=multi"
    } else {
        ""
    };
    cmd.arg("-accel")
        .arg(format!("{}{threads}", m.accel.qemu_name()));
    // Keep the default VGA: `-vga none` hangs the BIOS stage (docs/platform.md).
    cmd.args([
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
    ]);
    cmd.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    if let Some(path) = &m.trace_window {
        cmd.arg("-object").arg(format!(
            "memory-backend-file,id=gort-trace,size={TRACE_WINDOW_BYTES},share=on,mem-path={}",
            qemu_escape(&path.display().to_string())
        ));
        cmd.args(["-device", "ivshmem-plain,memdev=gort-trace"]);
    }
    let args_file = scratch.with_extension("args");
    fs::write(
        &args_file,
        m.kernel_args
            .iter()
            .map(|a| format!("{a}\n"))
            .collect::<String>(),
    )
    .with_context(|| format!("cannot write {}", args_file.display()))?;
    cmd.arg("-fw_cfg").arg(format!(
        "name=opt/gort/args,file={}",
        qemu_escape(&args_file.display().to_string())
    ));
    // QEMU logs "Triple fault" under `cpu_reset` (target/i386/tcg/excp_helper.c).
    cmd.args(["-d", "cpu_reset,guest_errors", "-D"])
        .arg(scratch.with_extension("qemu.log"));
    Ok(cmd)
}

/// QEMU's serial input (its stdin), shared by the input feeder and the hang handler.
type SharedStdin = std::sync::Arc<std::sync::Mutex<std::process::ChildStdin>>;

/// What the kernel prints at the end of its Ctrl-\ goroutine dump (kernel/src/rt/dump.rs).
pub const DUMP_END: &str = "end of goroutine dump";

/// How long a hung kernel gets to print its goroutine dump before QEMU is killed.
const DUMP_WAIT: Duration = Duration::from_secs(10);

/// Waits for QEMU to exit, at most `timeout`. A kernel still running then is hung: before it
/// is killed it is asked for its goroutine dump (Ctrl-\ on the serial port, as Go's SIGQUIT),
/// so the run's output says where every goroutine and M was; the dump is waited for (until
/// `serial` shows [`DUMP_END`] once more than before, or [`DUMP_WAIT`]) and may not come if
/// the CPU that takes the serial interrupt is the one that hangs with interrupts off.
fn wait_with_deadline(
    child: &mut Child,
    timeout: Duration,
    stdin: Option<&SharedStdin>,
    serial: Option<&Path>,
) -> Result<Option<ExitStatus>> {
    use std::io::Write;
    let dumps = |p: &Path| {
        fs::read(p)
            .map(|b| String::from_utf8_lossy(&b).matches(DUMP_END).count())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + timeout;
    let mut asked: Option<(Instant, usize)> = None;
    loop {
        if let Some(status) = child.try_wait()? {
            // Exited while dumping: still the deadline's doing, not a verdict in time.
            return Ok(if asked.is_some() { None } else { Some(status) });
        }
        let now = Instant::now();
        if now >= deadline {
            match (asked, stdin, serial) {
                (None, Some(stdin), Some(serial)) => {
                    let before = dumps(serial);
                    let mut stdin = stdin.lock().unwrap_or_else(|e| e.into_inner());
                    let _ = stdin.write_all(&[0x1c]);
                    let _ = stdin.flush();
                    asked = Some((now, before));
                }
                (Some((at, before)), _, Some(serial))
                    if now < at + DUMP_WAIT && dumps(serial) <= before => {}
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Ok(None);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Boots `image` and waits for the verdict (or the deadline).
pub fn run(image: &Path, m: &Machine, serial: Serial, scratch: &Path) -> Result<RunResult> {
    setup::ensure_qemu()?;
    if m.firmware == Firmware::Uefi {
        setup::ensure_ovmf()?;
    }
    if let Some(dir) = scratch.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut cmd = command(image, m, scratch)?;
    let serial_file = match &serial {
        Serial::File(path) => Some(path.to_path_buf()),
        Serial::Inherit => None,
    };
    let feed = match (m.input.is_empty(), &serial_file) {
        (false, Some(path)) => Some((m.input.clone(), path.clone())),
        _ => None,
    };
    // `cargo xtask qemu` is an interactive console: our stdin is the serial port's input (the
    // kernel reads lines, and Ctrl-\ asks for its goroutine dump, rt/dump.rs). A run into a
    // file (tests, soak) has its serial input piped: for `@input`, and for the dump asked of a
    // kernel that hangs (`wait_with_deadline`).
    cmd.stdin(if serial_file.is_some() {
        Stdio::piped()
    } else {
        Stdio::inherit()
    });
    let stderr_path = scratch.with_extension("stderr");
    // The serial stream goes through the symbolizer (symbolize.rs) on its way to our stdout or
    // the file, when the image's unstripped ELF is beside it (build.rs `image_path`).
    let elf = elf_of(image);
    let sink: Box<dyn std::io::Write + Send> = match serial {
        Serial::Inherit => Box::new(std::io::stdout()),
        Serial::File(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
    };
    cmd.stdout(Stdio::piped());
    cmd.stderr(File::create(&stderr_path)?);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", setup::QEMU))?;
    let serial_out = child.stdout.take().expect("QEMU's stdout is piped");
    let mut syms = crate::symbolize::Symbols::new(
        elf.as_deref().unwrap_or(image),
        crate::symbolize::KERNEL_BASE,
        &crate::root(),
    );
    let copier = std::thread::spawn(move || crate::symbolize::pipe(serial_out, sink, &mut syms));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stdin: Option<SharedStdin> = child
        .stdin
        .take()
        .map(|s| std::sync::Arc::new(std::sync::Mutex::new(s)));
    let feeder = match (feed, &stdin) {
        (Some((text, path)), Some(stdin)) => {
            let (d, stdin) = (done.clone(), stdin.clone());
            Some(std::thread::spawn(move || feed_input(stdin, path, text, d)))
        }
        _ => None,
    };
    let status = wait_with_deadline(
        &mut child,
        m.timeout,
        stdin.as_ref(),
        serial_file.as_deref(),
    )?;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let _ = copier.join();
    let elapsed = start.elapsed();
    let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
    let log = fs::read_to_string(scratch.with_extension("qemu.log")).unwrap_or_default();
    let ending = match status {
        None => Ending::Timeout(m.timeout),
        Some(s) => interpret(s.code(), &log),
    };
    Ok(RunResult {
        ending,
        elapsed,
        stderr,
    })
}

/// The unstripped ELF an image was made from: `<elf>.<firmware>.img` (build.rs).
fn elf_of(image: &Path) -> Option<std::path::PathBuf> {
    let name = image.file_name()?.to_str()?;
    let stem = name
        .strip_suffix(".bios.img")
        .or_else(|| name.strip_suffix(".uefi.img"))?;
    Some(image.with_file_name(stem)).filter(|p| p.is_file())
}

/// Maps QEMU's exit status (and its log) to an [`Ending`].
pub fn interpret(code: Option<i32>, qemu_log: &str) -> Ending {
    match code {
        Some(0) => Ending::Reset {
            triple_fault: qemu_log.contains("Triple fault"),
        },
        Some(c) if c >= 3 && c % 2 == 1 => Ending::Kernel(c >> 1),
        other => Ending::QemuError(other),
    }
}

/// What QEMU says when the accelerator cannot give the CPU model a feature it asks for (QEMU
/// 7.2 under TCG for `+x2apic`: "warning: TCG doesn't support requested feature:
/// CPUID.01H:ECX.x2apic [bit 21]"; target/i386/cpu.c `mark_unavailable_features`). QEMU then
/// boots the CPU *without* the feature.
pub const UNSUPPORTED_FEATURE: &str = "doesn't support requested feature";

/// The features a `-cpu` model string turns on (`qemu64,+x2apic,avx2=on` -> x2apic, avx2).
pub fn cpu_features_on(cpu: &str) -> Vec<&str> {
    cpu.split(',')
        .skip(1)
        .filter_map(|f| {
            if let Some(name) = f.strip_prefix('+') {
                return Some(name);
            }
            let (name, v) = f.split_once('=')?;
            matches!(v, "on" | "true" | "yes").then_some(name)
        })
        .collect()
}

/// Whether the installed QEMU, with `accel`, can give a CPU of model `cpu` every feature it
/// names: `Ok(None)` if so, `Ok(Some(why))` with QEMU's own words if not, an error if QEMU
/// does not know the model at all. Asks QEMU without booting anything: the machine is created paused (`-S`) and quit
/// from the monitor at once; the feature warnings come out while the CPUs are made.
pub fn cpu_unavailable(accel: Accel, cpu: &str) -> Result<Option<String>> {
    use std::io::Write;
    setup::ensure_qemu()?;
    let mut child = Command::new(setup::QEMU)
        .args([
            "-accel",
            accel.qemu_name(),
            "-cpu",
            cpu,
            "-nodefaults",
            "-display",
            "none",
            "-S",
        ])
        .args(["-monitor", "stdio", "-serial", "none"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", setup::QEMU))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"quit\n");
    }
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(UNSUPPORTED_FEATURE))
        .map(|l| {
            l.trim()
                .trim_start_matches("qemu-system-x86_64: ")
                .trim_start_matches("warning: ")
        })
        .collect();
    let version = setup::qemu_short_version().unwrap_or_else(|| setup::QEMU.to_string());
    if !complaints.is_empty() {
        return Ok(Some(format!(
            "{version} with {} cannot offer `{cpu}`: {}",
            accel.qemu_name().to_uppercase(),
            complaints.join("; ")
        )));
    }
    if !out.status.success() {
        // Not a limit of this QEMU but a model it does not know: a mistake, not a skip.
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        bail!(
            "{version} refused `-cpu {cpu}`: {}",
            last.trim().trim_start_matches("qemu-system-x86_64: ")
        );
    }
    Ok(None)
}

/// A scratch path prefix under `target/qemu/` that no other run uses.
pub fn scratch(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    crate::root()
        .join("target")
        .join("qemu")
        .join(format!("{name}-{}-{n}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_endings() {
        assert_eq!(interpret(Some(33), ""), Ending::Kernel(KERNEL_SUCCESS));
        assert_eq!(interpret(Some(35), ""), Ending::Kernel(KERNEL_FAILURE));
        assert_eq!(
            interpret(Some(0), "CPU Reset (CPU 0)\nTriple fault\n"),
            Ending::Reset { triple_fault: true }
        );
        assert_eq!(
            interpret(Some(0), "CPU Reset (CPU 0)\n"),
            Ending::Reset {
                triple_fault: false
            }
        );
        assert_eq!(interpret(Some(1), ""), Ending::QemuError(Some(1)));
        assert_eq!(interpret(None, ""), Ending::QemuError(None));
        assert_eq!(Ending::Kernel(KERNEL_SUCCESS).exit_code(), 0);
        assert_eq!(Ending::Kernel(KERNEL_FAILURE).exit_code(), 1);
        assert_eq!(Ending::Timeout(Duration::from_secs(1)).exit_code(), 2);
        assert_eq!(Ending::Reset { triple_fault: true }.exit_code(), 2);
    }

    #[test]
    fn cpu_models_name_their_features() {
        assert_eq!(cpu_features_on("qemu64"), Vec::<&str>::new());
        assert_eq!(cpu_features_on("qemu64,+x2apic"), ["x2apic"]);
        assert_eq!(
            cpu_features_on("max,-x2apic,avx2=on,pdpe1gb=off,+la57"),
            ["avx2", "la57"]
        );
    }

    #[test]
    fn a_trace_window_is_read_only_as_far_as_its_header_and_file_agree() {
        use std::io::Cursor;
        let window = |size: u64, reserved: u64, end: u64, data: &[u8]| {
            let mut f = TRACE_MAGIC.to_vec();
            for w in [size, reserved, end] {
                f.extend_from_slice(&w.to_le_bytes());
            }
            f.resize(TRACE_HEADER as usize, 0);
            f.extend_from_slice(data);
            Cursor::new(f)
        };
        let (data, h) = read_window(window(1 << 20, 5, 3, b"abcdef")).unwrap();
        assert_eq!((&data[..], h.reserved), (&b"abc"[..], 5));
        let err = |w| format!("{:#}", read_window(w).unwrap_err());
        assert!(err(window(1 << 20, 0, 7, b"abcdef")).contains("past the file"));
        assert!(err(window(TRACE_HEADER + 2, 0, 3, b"abcdef")).contains("past the window"));
        assert!(err(window(16, 0, 0, b"")).contains("smaller than the header"));
        // The fuzzer's: the 32 bytes of a header, no more, with an end of 0.
        let mut cut = window(1 << 20, 0, 0, b"").into_inner();
        cut.truncate(32);
        assert!(err(Cursor::new(cut)).contains("past the file's 32 bytes"));
        // A header cut short, and a file that is not a window.
        assert!(err(Cursor::new(TRACE_MAGIC.to_vec())).contains("too short"));
        assert!(err(Cursor::new(vec![0u8; 64])).contains("bad magic"));
    }

    #[test]
    fn commas_in_paths_are_escaped() {
        let m = Machine {
            smp: 2,
            cpu: Some("qemu64,+x2apic".into()),
            mem: "1G".into(),
            accel: Accel::Tcg,
            firmware: Firmware::Bios,
            kernel_args: vec!["test=a".into()],
            timeout: Duration::from_secs(1),
            input: Vec::new(),
            trace_window: None,
        };
        let dir = std::env::temp_dir().join(format!("xtask-cmd-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let cmd = command(Path::new("/x/a,b.img"), &m, &dir.join("run")).unwrap();
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            args.contains(&"format=raw,snapshot=on,file=/x/a,,b.img".to_string()),
            "{args:?}"
        );
        assert!(args.windows(2).any(|w| w[0] == "-smp" && w[1] == "2"));
        assert!(args
            .windows(2)
            .any(|w| w[0] == "-cpu" && w[1] == "qemu64,+x2apic"));
        assert_eq!(
            fs::read_to_string(dir.join("run.args")).unwrap(),
            "test=a\n"
        );
        fs::remove_dir_all(dir).unwrap();
    }
}

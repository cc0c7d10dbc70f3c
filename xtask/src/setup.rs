//! Installs what a fresh machine of this project's kind lacks, before anything needs it
//! (docs/platform.md): the nightly's `rust-src` and `llvm-tools` components and the
//! `x86_64-unknown-none` target (rustup will not add them: `RUSTUP_AUTO_INSTALL=0`), and QEMU
//! (Debian's `qemu-system-x86`, and `ovmf` for UEFI; where apt takes them from is apt.rs's
//! business).
//!
//! Invariants:
//! - Each check looks at files first, so a machine that has everything pays no rustup or apt
//!   call and takes no lock.
//! - Installing happens under one machine-wide lock file ([`lock_path`]): however many xtask
//!   processes start at once (`cargo xtask test` runs several: its own tests start xtasks that
//!   boot kernels), one installs and the others wait, then look again ([`once_under_lock`]).
//! - `cargo xtask test` and `cargo xtask qemu` call [`ensure_all`] first, before any parallel
//!   work starts, so on a fresh machine the install happens once, at the top of the output.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The sysroot of the toolchain that `rust-toolchain.toml` selects.
pub fn sysroot() -> Result<PathBuf> {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(crate::root())
        .output()
        .context("cannot run rustc")?;
    if !out.status.success() {
        bail!(
            "rustc --print sysroot failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// The toolchain name rustup resolves for the workspace (e.g. `nightly-x86_64-unknown-linux-gnu`).
fn active_toolchain() -> Result<String> {
    let out = Command::new("rustup")
        .args(["show", "active-toolchain"])
        .current_dir(crate::root())
        .output()
        .context("cannot run rustup")?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(name) if out.status.success() => Ok(name.to_string()),
        _ => bail!(
            "rustup show active-toolchain failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Host triple of the sysroot's own tools (llvm-tools live under it).
const HOST: &str = "x86_64-unknown-linux-gnu";
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// `llvm-objcopy` from the llvm-tools component.
pub fn objcopy(sysroot: &Path) -> PathBuf {
    sysroot
        .join("lib/rustlib")
        .join(HOST)
        .join("bin/llvm-objcopy")
}

/// Adds rust-src, llvm-tools, clippy (for the lint checks of `cargo xtask test`) and the kernel
/// target to the active toolchain if any is missing.
pub fn ensure_toolchain() -> Result<()> {
    let sysroot = sysroot()?;
    let has_src = || sysroot.join("lib/rustlib/src/rust/library/core").is_dir();
    let has_llvm = || objcopy(&sysroot).is_file();
    let has_clippy = || sysroot.join("bin/clippy-driver").is_file();
    let has_target = || {
        sysroot
            .join("lib/rustlib")
            .join(KERNEL_TARGET)
            .join("lib")
            .is_dir()
    };
    let present = || has_src() && has_llvm() && has_clippy() && has_target();
    once_under_lock(
        &lock_path(),
        "the toolchain's components",
        &present,
        &mut || {
            let toolchain = active_toolchain()?;
            let mut components = Vec::new();
            if !has_src() {
                components.push("rust-src");
            }
            if !has_llvm() {
                components.push("llvm-tools");
            }
            if !has_clippy() {
                components.push("clippy");
            }
            if !components.is_empty() {
                eprintln!(
                "xtask: adding {} to {toolchain} (needed by the kernel build and the lint checks; see rust-toolchain.toml)",
                components.join(", ")
            );
                run(Command::new("rustup")
                    .args(["component", "add", "--toolchain", &toolchain])
                    .args(&components))?;
            }
            if !has_target() {
                eprintln!("xtask: adding target {KERNEL_TARGET} to {toolchain}");
                run(Command::new("rustup").args([
                    "target",
                    "add",
                    "--toolchain",
                    &toolchain,
                    KERNEL_TARGET,
                ]))?;
            }
            Ok(())
        },
    )
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The machine-wide lock that serialises set-up between xtask processes (apt and rustup are
/// machine-wide too, so clones in other directories share it).
pub fn lock_path() -> PathBuf {
    std::env::temp_dir().join("gort-xtask-setup.lock")
}

/// Runs `install` unless `present()`, under the set-up lock at `lock`: however many xtasks
/// start together, the first installs, the others wait for it, look again, and find the thing
/// present. The holder's pid is written into the file so that a waiter can name it.
pub fn once_under_lock(
    lock: &Path,
    what: &str,
    present: &dyn Fn() -> bool,
    install: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    if present() {
        return Ok(());
    }
    // A lock file another user made (root's, say) may be read-only to us; flock works on a
    // read-only descriptor too.
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock)
        .or_else(|_| fs::File::open(lock))
        .with_context(|| format!("cannot open the set-up lock {}", lock.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(lock).unwrap_or_default();
            eprintln!(
                "xtask: another xtask ({}) is setting up this machine; waiting for it before checking for {what} again (lock {})",
                holder.trim().strip_prefix("pid ").map_or("pid unknown".to_string(), |p| format!("pid {p}")),
                lock.display()
            );
            file.lock()
                .with_context(|| format!("cannot take the set-up lock {}", lock.display()))?;
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(e)
                .with_context(|| format!("cannot take the set-up lock {}", lock.display()))
        }
    }
    // The lock is released when `file` is closed, whichever way this returns.
    if present() {
        return Ok(());
    }
    use std::io::{Seek, Write};
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "pid {}", std::process::id());
    install()
}

pub const QEMU: &str = "qemu-system-x86_64";
/// Debian's OVMF firmware image (package `ovmf`).
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

/// QEMU's first `--version` line (`QEMU emulator version 10.0.2 (Debian ...)`).
pub fn qemu_version() -> Option<String> {
    let out = Command::new(QEMU).arg("--version").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

/// `QEMU 10.0.2` from the `--version` line, for messages.
pub fn qemu_short_version() -> Option<String> {
    let v = qemu_version()?;
    let n = v
        .strip_prefix("QEMU emulator version ")?
        .split_whitespace()
        .next()?;
    Some(format!("QEMU {n}"))
}

/// Makes sure `qemu-system-x86_64` is on PATH, installing Debian's `qemu-system-x86` from the
/// suite that matches the QEMU packages the machine already has (apt.rs).
pub fn ensure_qemu() -> Result<()> {
    once_under_lock(&lock_path(), QEMU, &|| on_path(QEMU), &mut || {
        crate::apt::install(&["qemu-system-x86"], "qemu-*", QEMU)?;
        if !on_path(QEMU) {
            bail!("{QEMU} is still not on PATH after installing qemu-system-x86");
        }
        eprintln!(
            "xtask: installed {}",
            qemu_version().unwrap_or_else(|| QEMU.to_string())
        );
        Ok(())
    })
}

/// Makes sure gdb is on PATH (Debian's `gdb`), for `cargo xtask gdb`.
pub fn ensure_gdb() -> Result<()> {
    once_under_lock(&lock_path(), "gdb", &|| on_path("gdb"), &mut || {
        crate::apt::install(&["gdb"], "gdb", "gdb")?;
        if !on_path("gdb") {
            bail!("gdb is still not on PATH after installing Debian's gdb");
        }
        Ok(())
    })
}

/// Makes sure OVMF (UEFI firmware for QEMU) is installed.
pub fn ensure_ovmf() -> Result<()> {
    once_under_lock(
        &lock_path(),
        "UEFI firmware (OVMF)",
        &|| Path::new(OVMF).is_file(),
        &mut || crate::apt::install(&["ovmf"], "ovmf", "UEFI firmware (OVMF)"),
    )
}

/// Everything a run that boots kernels needs, installed once before any parallel work starts
/// (the toolchain's parts, QEMU, and OVMF for UEFI).
pub fn ensure_all(uefi: bool) -> Result<()> {
    ensure_toolchain()?;
    ensure_qemu()?;
    if uefi {
        ensure_ovmf()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn many_at_once_install_once() {
        let lock = std::env::temp_dir().join(format!("xtask-lock-test-{}", std::process::id()));
        let present = Arc::new(AtomicBool::new(false));
        let installs = Arc::new(AtomicU32::new(0));
        let inside = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (lock, present, installs, inside) = (
                    lock.clone(),
                    present.clone(),
                    installs.clone(),
                    inside.clone(),
                );
                std::thread::spawn(move || {
                    once_under_lock(
                        &lock,
                        "a thing",
                        &|| present.load(Ordering::SeqCst),
                        &mut || {
                            assert_eq!(
                                inside.fetch_add(1, Ordering::SeqCst),
                                0,
                                "two installers at once"
                            );
                            installs.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(200));
                            present.store(true, Ordering::SeqCst);
                            inside.fetch_sub(1, Ordering::SeqCst);
                            Ok(())
                        },
                    )
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        assert_eq!(installs.load(Ordering::SeqCst), 1);
        assert!(fs::read_to_string(&lock).unwrap().starts_with("pid "));
        fs::remove_file(&lock).unwrap();
    }

    #[test]
    fn a_failed_install_lets_the_next_one_try() {
        let lock = std::env::temp_dir().join(format!("xtask-lock-fail-{}", std::process::id()));
        let tries = AtomicU32::new(0);
        for _ in 0..2 {
            let r = once_under_lock(&lock, "a thing", &|| false, &mut || {
                tries.fetch_add(1, Ordering::SeqCst);
                bail!("apt said no")
            });
            assert_eq!(r.unwrap_err().to_string(), "apt said no");
        }
        assert_eq!(tries.load(Ordering::SeqCst), 2);
        fs::remove_file(&lock).unwrap();
    }
}

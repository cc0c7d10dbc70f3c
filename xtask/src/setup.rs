//! Installs what a fresh machine of this project's kind lacks, before anything needs it
//! (PLATFORM.md): the nightly's `rust-src` and `llvm-tools` components and the
//! `x86_64-unknown-none` target (rustup will not add them: `RUSTUP_AUTO_INSTALL=0`), and QEMU
//! (Debian's `qemu-system-x86`, and `ovmf` for UEFI).
//!
//! Each check looks at files first, so a machine that has everything pays no rustup or apt call.

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

/// Adds rust-src, llvm-tools and the kernel target to the active toolchain if any is missing.
pub fn ensure_toolchain() -> Result<()> {
    let sysroot = sysroot()?;
    let has_src = sysroot.join("lib/rustlib/src/rust/library/core").is_dir();
    let has_llvm = objcopy(&sysroot).is_file();
    let has_target = sysroot
        .join("lib/rustlib")
        .join(KERNEL_TARGET)
        .join("lib")
        .is_dir();
    if has_src && has_llvm && has_target {
        return Ok(());
    }
    let toolchain = active_toolchain()?;
    let mut components = Vec::new();
    if !has_src {
        components.push("rust-src");
    }
    if !has_llvm {
        components.push("llvm-tools");
    }
    if !components.is_empty() {
        eprintln!(
            "xtask: adding {} to {toolchain} (needed by the kernel build; see rust-toolchain.toml)",
            components.join(", ")
        );
        run(Command::new("rustup")
            .args(["component", "add", "--toolchain", &toolchain])
            .args(&components))?;
    }
    if !has_target {
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

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs Debian packages when we may (root, apt-get present); otherwise fails with the exact
/// command to run.
fn apt_install(packages: &[&str], why: &str) -> Result<()> {
    let command = format!("sudo apt-get install -y {}", packages.join(" "));
    if !is_root() || !on_path("apt-get") {
        bail!("{why} is missing; install it with:\n    {command}");
    }
    eprintln!(
        "xtask: {why} is missing; installing {} with apt-get",
        packages.join(" ")
    );
    run(Command::new("apt-get")
        .args(["update", "-qq"])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| format!("installing failed; try:\n    {command}"))
}

pub const QEMU: &str = "qemu-system-x86_64";
/// Debian's OVMF firmware image (package `ovmf`).
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

pub fn ensure_qemu() -> Result<()> {
    if on_path(QEMU) {
        return Ok(());
    }
    apt_install(&["qemu-system-x86"], "qemu-system-x86_64")?;
    if !on_path(QEMU) {
        bail!("{QEMU} is still not on PATH after installing qemu-system-x86");
    }
    Ok(())
}

pub fn ensure_ovmf() -> Result<()> {
    if Path::new(OVMF).is_file() {
        return Ok(());
    }
    apt_install(&["ovmf"], "UEFI firmware (OVMF)")
}

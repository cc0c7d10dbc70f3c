//! Building kernels and their disk images.
//!
//! A kernel is built for `x86_64-unknown-none`, stripped of debug info (the BIOS stage loads it
//! with slow disk reads: ~4 s to boot stripped against ~10 s unstripped, docs/platform.md) and put
//! on a disk image by the `imager` crate. The unstripped ELF stays beside it for symbolizing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::setup;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Firmware {
    Bios,
    Uefi,
}

impl Firmware {
    fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

/// Which cargo package and binaries to build.
pub enum Kernels<'a> {
    /// The showcase kernel (`kernel/src/main.rs`).
    Main,
    /// All the binaries of the `tests` package (integration tests and harness fixtures).
    Tests(&'a [String]),
}

fn profile_dir(release: bool) -> &'static str {
    if release {
        "release"
    } else {
        "debug"
    }
}

/// Builds kernels; returns the path of each requested binary's ELF.
pub fn build_kernels(kernels: Kernels, release: bool) -> Result<Vec<PathBuf>> {
    setup::ensure_toolchain()?;
    let root = crate::root();
    let mut cmd = Command::new(crate::cargo());
    cmd.current_dir(&root)
        .args(["build", "--target", setup::KERNEL_TARGET]);
    if release {
        cmd.arg("--release");
    }
    let names: Vec<String> = match kernels {
        Kernels::Main => {
            cmd.args(["--package", "kernel", "--bin", "kernel"]);
            vec!["kernel".into()]
        }
        Kernels::Tests(names) => {
            cmd.args(["--package", "tests"]);
            for n in names {
                cmd.args(["--bin", n]);
            }
            names.to_vec()
        }
    };
    let status = cmd.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("building the kernel failed ({status})");
    }
    let dir = root
        .join("target")
        .join(setup::KERNEL_TARGET)
        .join(profile_dir(release));
    Ok(names.iter().map(|n| dir.join(n)).collect())
}

/// The image of `elf` for `firmware`: `<elf>.<firmware>.img`.
pub fn image_path(elf: &Path, firmware: Firmware) -> PathBuf {
    let mut name = elf
        .file_name()
        .expect("kernel path has a file name")
        .to_os_string();
    name.push(format!(".{}.img", firmware.name()));
    elf.with_file_name(name)
}

/// Strips each ELF and makes its disk image. Returns the image paths, in order.
pub fn make_images(elves: &[PathBuf], firmware: Firmware) -> Result<Vec<PathBuf>> {
    let sysroot = setup::sysroot()?;
    let objcopy = setup::objcopy(&sysroot);
    let mut imager_args = vec![firmware.name().to_string()];
    let mut images = Vec::new();
    for elf in elves {
        let stripped = elf.with_extension("stripped");
        let status = Command::new(&objcopy)
            .arg("--strip-debug")
            .arg(elf)
            .arg(&stripped)
            .status()
            .with_context(|| format!("cannot run {}", objcopy.display()))?;
        if !status.success() {
            bail!("llvm-objcopy --strip-debug {} failed", elf.display());
        }
        let image = image_path(elf, firmware);
        imager_args.push(stripped.display().to_string());
        imager_args.push(image.display().to_string());
        images.push(image);
    }
    run_imager(&imager_args)?;
    Ok(images)
}

/// Runs the imager crate (built on first use: ~3 minutes cold, because `bootloader` builds its
/// boot stages in its build script).
fn run_imager(args: &[String]) -> Result<()> {
    let root = crate::tool_root();
    let imager_target = root.join("target").join("imager");
    let binary = imager_target.join("debug").join("imager");
    if !binary.is_file() {
        eprintln!("xtask: building the disk-image builder (xtask/imager, which links `bootloader`); the first time takes about 3 minutes");
    }
    let status = Command::new(crate::cargo())
        .current_dir(root.join("xtask").join("imager"))
        .args(["build", "--quiet", "--target-dir"])
        .arg(&imager_target)
        .status()
        .context("cannot run cargo for the imager")?;
    if !status.success() {
        bail!("building the imager (xtask/imager) failed ({status})");
    }
    let status = Command::new(&binary)
        .args(args)
        .status()
        .context("cannot run the imager")?;
    if !status.success() {
        bail!("making disk images failed ({status})");
    }
    Ok(())
}

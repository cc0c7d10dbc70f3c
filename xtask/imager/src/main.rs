//! `imager`: turns kernel ELF files into bootable disk images with the `bootloader` crate.
//!
//! Usage: `imager bios|uefi KERNEL IMAGE [KERNEL IMAGE ...]`
//!
//! xtask runs this (it does not link `bootloader` itself, because `bootloader`'s build script
//! needs llvm-tools and rust-src, which xtask first has to install; docs/platform.md). Several
//! kernels per call keep the per-process start-up off the test loop.

use std::path::PathBuf;
use std::process::ExitCode;

use bootloader::{BiosBoot, BootConfig, UefiBoot};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: imager bios|uefi KERNEL IMAGE [KERNEL IMAGE ...]";
    let Some((firmware, pairs)) = args.split_first() else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    if pairs.is_empty() || pairs.len() % 2 != 0 || !matches!(firmware.as_str(), "bios" | "uefi") {
        eprintln!("{usage}");
        return ExitCode::from(2);
    }
    let mut config = BootConfig::default();
    // The kernel owns the serial console; the bootloader speaks there only for warnings and
    // errors. Framebuffer logging is slow under TCG and nobody sees it (`-display none`).
    config.frame_buffer_logging = false;
    config.serial_logging = true;
    config.log_level = bootloader_boot_config::LevelFilter::Warn;
    for pair in pairs.chunks(2) {
        let (kernel, image) = (PathBuf::from(&pair[0]), PathBuf::from(&pair[1]));
        let result = if firmware == "bios" {
            BiosBoot::new(&kernel)
                .set_boot_config(&config)
                .create_disk_image(&image)
        } else {
            UefiBoot::new(&kernel)
                .set_boot_config(&config)
                .create_disk_image(&image)
        };
        if let Err(e) = result {
            eprintln!(
                "imager: cannot make a {firmware} image of {}: {e:#}",
                kernel.display()
            );
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

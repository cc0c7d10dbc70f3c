//! The showcase kernel that `cargo xtask qemu` boots: brings the machine up, prints the boot
//! banner, and exits QEMU with the verdict. Each later issue adds its demo here.

#![no_std]
#![no_main]

use bootloader_api::BootInfo;
use kernel::println;

bootloader_api::entry_point!(kernel_main, config = &kernel::BOOTLOADER_CONFIG);

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    let facts = kernel::init(boot_info);
    kernel::print_banner(facts);
    let (frames_used, frames_total) = kernel::memory::frame_stats();
    println!(
        "boot complete: {} of {} frames in use, {} KiB of heap in use",
        frames_used,
        frames_total,
        kernel::heap::used() >> 10
    );
    kernel::qemu::exit(kernel::qemu::ExitCode::Success)
}

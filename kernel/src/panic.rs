//! The kernel's panic handler: names the CPU, the message and the location, says which
//! in-kernel test case was running (if any), then ends the run with a failure exit.

use core::panic::PanicInfo;

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    if let Some(test) = crate::testing::current() {
        crate::console::print_fatal(format_args!("\ntest {test} ... FAILED\n"));
    }
    crate::console::print_fatal(format_args!(
        "\nKERNEL PANIC on cpu {}: {}\n",
        crate::cpu::id(),
        info.message()
    ));
    if let Some(loc) = info.location() {
        crate::console::print_fatal(format_args!(
            "  at {}:{}:{}\n",
            loc.file(),
            loc.line(),
            loc.column()
        ));
    }
    crate::qemu::exit(crate::qemu::ExitCode::Failure)
}

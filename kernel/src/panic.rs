//! The kernel's panic handler: names the CPU, the message, the location and the goroutine (if
//! the scheduler runs on that CPU), says which in-kernel test case was running (if any), then
//! ends the run with a failure exit. With the scheduler running, it adds the goroutine's
//! traceback (rt-core/src/traceback; the kernel prints raw frame addresses, which xtask
//! symbolizes from the ELF).

use core::panic::PanicInfo;

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    if let Some(test) = crate::testing::current() {
        crate::dev::console::print_fatal(format_args!("\ntest {test} ... FAILED\n"));
    }
    crate::dev::console::print_fatal(format_args!(
        "\nKERNEL PANIC on cpu {}: {}\n",
        crate::x86::cpu::index(),
        info.message()
    ));
    if let Some(loc) = info.location() {
        crate::dev::console::print_fatal(format_args!(
            "  at {}:{}:{}\n",
            loc.file(),
            loc.line(),
            loc.column()
        ));
    }
    // Which goroutine, if the scheduler runs on this CPU (read through GS: no locks).
    let on_runtime = crate::x86::percpu::current()
        .is_some_and(|p| !p.m.load(core::sync::atomic::Ordering::Relaxed).is_null());
    if on_runtime {
        match rt_core::goid() {
            0 => crate::dev::console::print_fatal(format_args!("  on the scheduler (g0)\n")),
            goid => crate::dev::console::print_fatal(format_args!("  in goroutine {goid}\n")),
        }
        // Go's `goroutine N [running]:` and its frames from here (raw addresses: xtask
        // symbolizes them), then every other goroutine at traceback=all.
        rt_core::traceback::print_failure(None, false);
    }
    crate::dev::qemu::exit(crate::dev::qemu::ExitCode::Failure)
}

//! Leaving QEMU with a status: the `isa-debug-exit` device (QEMU hw/misc/debugexit.c). xtask
//! starts QEMU with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`; a write of `v` to port
//! 0xf4 makes QEMU exit with status `(v << 1) | 1`. Status 0 or 1 therefore never comes from
//! here, which is how xtask tells a kernel's own verdict from QEMU's.

use x86_64::instructions::port::Port;

/// The I/O port of `isa-debug-exit` (must match xtask's `-device` line).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// The verdicts a kernel reports. xtask maps QEMU status 33 → exit 0 and 35 → exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    Success = 0x10,
    Failure = 0x11,
}

/// Ends the run. Without the debug-exit device (real hardware, or QEMU started by hand) the
/// write does nothing and the CPU halts instead.
pub fn exit(code: ExitCode) -> ! {
    // SAFETY: port 0xf4 is the debug-exit device xtask configures; on a machine without it an
    // `out` to an unclaimed ISA port is ignored.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(code as u32) };
    crate::x86::cpu::halt_forever()
}

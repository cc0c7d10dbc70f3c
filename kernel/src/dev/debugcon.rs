//! The trace channel: QEMU's ISA debug console (hw/char/debugcon.c), a write-only byte port
//! that QEMU copies to a chardev. `cargo xtask trace` starts QEMU with `-debugcon
//! file:target/trace/NAME.bin`, so the execution trace (rt-core/src/tracer.rs) leaves the
//! machine without touching the serial console, and xtask decodes the file afterwards.
//!
//! Facts used (hw/char/debugcon.c): the device sits at I/O port 0xe9 (its default `iobase`),
//! each byte written is one byte out, and a read returns its `readback` value, 0xe9 by
//! default: that is how [`present`] tells it from an unclaimed port (which reads 0xff).
//!
//! Invariant: one writer at a time ([`LOCK`]), so that the CPUs' buffers arrive whole, one
//! after another. A writer that may have interrupted the holder (the tick's sysmon) only
//! tries the lock.

use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::instructions::port::Port;

/// The debug console's I/O port (hw/char/debugcon.c, `iobase` default).
pub const PORT: u16 = 0xe9;

/// What a read of the port returns when the device is there (hw/char/debugcon.c,
/// `readback` default).
const READBACK: u8 = 0xe9;

/// Held while a CPU writes a piece of the trace.
static LOCK: AtomicBool = AtomicBool::new(false);

/// Whether QEMU was started with a debug console.
pub fn present() -> bool {
    // SAFETY: reading port 0xe9 has no side effect: the debug console answers its readback
    // value, and an unclaimed ISA port answers 0xff.
    unsafe { Port::<u8>::new(PORT).read() == READBACK }
}

/// Writes `bytes` to the debug console; false (nothing written) if `wait` is false and
/// another CPU, or the code this interrupt stopped, is writing.
pub fn write(bytes: &[u8], wait: bool) -> bool {
    while LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        if !wait {
            return false;
        }
        core::hint::spin_loop();
    }
    // SAFETY: `rep outsb` writes rcx bytes from [rsi] to port dx; rsi and rcx describe
    // `bytes`, which lives for the call, and the debug console only consumes them. The
    // direction flag is clear (the System V ABI guarantees it at calls and Rust keeps it so).
    unsafe {
        core::arch::asm!(
            "rep outsb",
            in("dx") PORT,
            inout("rsi") bytes.as_ptr() => _,
            inout("rcx") bytes.len() => _,
            options(nostack, preserves_flags, readonly)
        );
    }
    LOCK.store(false, Ordering::Release);
    true
}

//! The serial console (COM1, a 16550 UART driven through the `uart_16550` crate) and the
//! `print!`/`println!` macros.
//!
//! Safe from any CPU and from interrupt handlers:
//! - the console lock is held with interrupts disabled, so a hardware interrupt cannot arrive on
//!   the CPU that holds it;
//! - the lock records its owner CPU; if an exception or NMI on that same CPU prints while the
//!   interrupted code is mid-print, the nested print does not wait (it would wait forever) but
//!   writes through a second, independent UART handle. The two outputs may interleave by line;
//!   nothing deadlocks and nothing is lost;
//! - a panic waits only a bounded time for another CPU's print to finish, then writes anyway.

use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU32, Ordering};
use uart_16550::backend::PioBackend;
use uart_16550::{Config, Uart16550, Uart16550Tty};
use x86_64::instructions::interrupts;

/// COM1's I/O port base (the PC/AT standard; QEMU's `isa-serial` device at 0x3f8).
const COM1: u16 = 0x3f8;
const NO_OWNER: u32 = u32::MAX;

struct Console {
    owner: AtomicU32,
    uart: UnsafeCell<Option<Uart16550Tty<PioBackend>>>,
}

// SAFETY: `uart` is only touched by the CPU recorded in `owner` (set by compare-exchange).
unsafe impl Sync for Console {}

static CONSOLE: Console = Console {
    owner: AtomicU32::new(NO_OWNER),
    uart: UnsafeCell::new(None),
};

/// Initialises COM1. Called first thing at boot on the bootstrap processor.
pub fn init() {
    // SAFETY: COM1 is a standard PC port that nothing else in the kernel drives; this runs once
    // on the bootstrap processor before any other CPU or interrupt exists.
    let tty = unsafe { Uart16550Tty::new_port(COM1, Config::default()) };
    // SAFETY: as above, no other reference to `uart` exists yet.
    unsafe { *CONSOLE.uart.get() = tty.ok() };
}

/// A writer used when the console is re-entered on its owner CPU: a fresh handle with no state
/// shared with the interrupted one, converting `\n` to `\r\n` as the tty layer does.
struct Emergency(Uart16550<PioBackend>);

impl Write for Emergency {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for line in s.split_inclusive('\n') {
            match line.strip_suffix('\n') {
                Some(body) => {
                    self.0.send_bytes_exact(body.as_bytes());
                    self.0.send_bytes_exact(b"\r\n");
                }
                None => self.0.send_bytes_exact(line.as_bytes()),
            }
        }
        Ok(())
    }
}

/// Runs `f` with the console held, so that many writes come out as one block (the scheduler
/// trace). Interrupts are off meanwhile; on a CPU that already holds the console (an
/// exception in the middle of a print) `f` gets the emergency writer.
pub fn with_writer<R>(f: impl FnOnce(&mut dyn Write) -> R) -> R {
    let mut f = Some(f);
    let mut out = None;
    let mut run = |w: &mut dyn Write| out = Some((f.take().unwrap())(w));
    write_with(&mut run, None);
    out.unwrap()
}

/// Writes `args` to the console. `patience` bounds how long to wait for another CPU (None:
/// forever, the normal case; Some(n): n spins, for panics and fatal exceptions).
fn write_inner(args: fmt::Arguments, patience: Option<u64>) {
    write_with(
        &mut |w: &mut dyn Write| {
            let _ = w.write_fmt(args);
        },
        patience,
    );
}

fn emergency_with(f: &mut dyn FnMut(&mut dyn Write)) {
    // SAFETY: COM1 is a valid port; this handle only writes bytes to the transmit register.
    if let Ok(uart) = unsafe { Uart16550::new_port(COM1) } {
        f(&mut Emergency(uart));
    }
}

fn write_with(f: &mut dyn FnMut(&mut dyn Write), patience: Option<u64>) {
    let me = crate::x86::cpu::id();
    let were_enabled = interrupts::are_enabled();
    interrupts::disable();
    if CONSOLE.owner.load(Ordering::Relaxed) == me {
        // Re-entered on this CPU by an exception or NMI in the middle of a print.
        emergency_with(f);
    } else {
        let mut spins = 0u64;
        let mut acquired = true;
        while CONSOLE
            .owner
            .compare_exchange_weak(NO_OWNER, me, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
            spins += 1;
            if patience.is_some_and(|p| spins > p) {
                acquired = false;
                break;
            }
        }
        if acquired {
            // SAFETY: we own the console (owner == me), so this is the only reference to `uart`.
            match unsafe { &mut *CONSOLE.uart.get() } {
                Some(tty) => f(tty),
                None => emergency_with(f),
            }
            CONSOLE.owner.store(NO_OWNER, Ordering::Release);
        } else {
            emergency_with(f);
        }
    }
    if were_enabled {
        interrupts::enable();
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    write_inner(args, None);
}

/// For panics and fatal exceptions: never waits forever for a CPU that may never release.
pub fn print_fatal(args: fmt::Arguments) {
    write_inner(args, Some(50_000_000));
}

/// Holds the console lock on this CPU while `f` runs (for tests that check a nested print from
/// an interrupt handler does not deadlock).
pub fn with_console_held<R>(f: impl FnOnce() -> R) -> R {
    let me = crate::x86::cpu::id();
    while CONSOLE
        .owner
        .compare_exchange_weak(NO_OWNER, me, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    let r = f();
    CONSOLE.owner.store(NO_OWNER, Ordering::Release);
    r
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::dev::console::_print(format_args!($($arg)*)));
}

#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::dev::console::_print(format_args!("{}\n", format_args!($($arg)*))));
}

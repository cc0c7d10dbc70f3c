//! The devices the kernel drives: the serial console and interrupt-driven serial input
//! ([`console`], [`serial_in`]), the I/O APIC that routes device interrupts ([`ioapic`]), the
//! PIT as the known clock for delays and calibration ([`pit`]), ACPI's MADT ([`acpi`]), and
//! QEMU's fw_cfg and debug-exit devices ([`fwcfg`], [`qemu`]), and the execution trace's ways
//! out: a shared-memory window ([`tracemem`]) or, slower, the debug console ([`debugcon`]).

pub mod acpi;
pub mod console;
pub mod debugcon;
pub mod fwcfg;
pub mod ioapic;
pub mod pit;
pub mod qemu;
pub mod serial_in;
pub mod tracemem;

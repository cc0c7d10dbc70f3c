//! The devices the kernel drives: the serial console and interrupt-driven serial input
//! ([`console`], [`serial_in`]), the I/O APIC that routes device interrupts ([`ioapic`]), the
//! PIT as the known clock for delays and calibration ([`pit`]), ACPI's MADT ([`acpi`]), and
//! QEMU's fw_cfg and debug-exit devices ([`fwcfg`], [`qemu`]).

pub mod acpi;
pub mod console;
pub mod fwcfg;
pub mod ioapic;
pub mod pit;
pub mod qemu;
pub mod serial_in;

//! The I/O APIC: routes external interrupts (GSIs) to local APICs. Register interface from the
//! Intel 82093AA I/O APIC datasheet §3: an index register (IOREGSEL, offset 0x00) selects a
//! register that the data window (IOWIN, offset 0x10) then reads or writes. Registers: 0x00 ID,
//! 0x01 version (bits 23..16: index of the last redirection entry), 0x10 + 2n / 0x11 + 2n the
//! low / high halves of redirection entry n.
//!
//! At boot every entry is masked; devices are routed one by one (`route`), e.g. COM1's IRQ 4
//! for interrupt-driven serial input (serial_in.rs).

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::{PhysAddr, VirtAddr};

use crate::sync::IrqLock;

/// Where the I/O APIC's register page is mapped (next to the LAPIC's).
pub const IOAPIC_VIRT: u64 = crate::x86::apic::LAPIC_VIRT + 0x1000;

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const REG_VERSION: u32 = 0x01;
const REG_REDIR_BASE: u32 = 0x10;
/// Redirection entry bit 16: masked.
const REDIR_MASKED: u32 = 1 << 16;

static BASE: AtomicU64 = AtomicU64::new(0);
/// IOREGSEL + IOWIN is a two-step access: one user at a time.
static LOCK: IrqLock<()> = IrqLock::new(());

fn read(reg: u32) -> u32 {
    let base = BASE.load(Ordering::Relaxed);
    assert!(base != 0, "ioapic::init has not run");
    let _g = LOCK.lock();
    // SAFETY: the register page is mapped uncached (init); IOREGSEL then IOWIN is the
    // datasheet's access sequence, done under the lock.
    unsafe {
        core::ptr::write_volatile((base + IOREGSEL) as *mut u32, reg);
        core::ptr::read_volatile((base + IOWIN) as *const u32)
    }
}

fn write(reg: u32, value: u32) {
    let base = BASE.load(Ordering::Relaxed);
    assert!(base != 0, "ioapic::init has not run");
    let _g = LOCK.lock();
    // SAFETY: as in `read`.
    unsafe {
        core::ptr::write_volatile((base + IOREGSEL) as *mut u32, reg);
        core::ptr::write_volatile((base + IOWIN) as *mut u32, value);
    }
}

/// Maps the I/O APIC at physical `phys` and masks every redirection entry. Returns the number
/// of entries.
pub fn init(phys: u64) -> u32 {
    crate::mm::paging::map_mmio(VirtAddr::new(IOAPIC_VIRT), PhysAddr::new(phys))
        .expect("cannot map the I/O APIC");
    BASE.store(IOAPIC_VIRT, Ordering::Relaxed);
    let n = entries();
    for i in 0..n {
        write(REG_REDIR_BASE + 2 * i, REDIR_MASKED);
        write(REG_REDIR_BASE + 2 * i + 1, 0);
    }
    n
}

/// Number of redirection entries.
pub fn entries() -> u32 {
    ((read(REG_VERSION) >> 16) & 0xff) + 1
}

/// Whether entry `n` is masked.
pub fn is_masked(n: u32) -> bool {
    read(REG_REDIR_BASE + 2 * n) & REDIR_MASKED != 0
}

/// Routes entry `n` (a GSI minus this I/O APIC's base) to `vector` on the CPU with local APIC
/// ID `dest`: fixed delivery, physical destination, edge-triggered, active high, unmasked.
pub fn route(n: u32, vector: u8, dest: u32) {
    write(REG_REDIR_BASE + 2 * n + 1, dest << 24);
    write(REG_REDIR_BASE + 2 * n, vector as u32);
}

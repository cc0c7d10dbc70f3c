//! The trace's fast way out: a shared-memory window that QEMU backs with a host file. xtask
//! starts QEMU with `-object memory-backend-file,id=gort-trace,mem-path=FILE,size=S,share=on
//! -device ivshmem-plain,memdev=gort-trace` and writes a header into FILE; the kernel finds the
//! device on the PCI bus, maps its memory BAR, and copies each full trace buffer into the
//! window. No I/O exit per byte (the debug console, dev/debugcon.rs, costs one per byte): a
//! flush is a `memcpy`, and xtask reads the file after QEMU exits.
//!
//! Facts used:
//! - PCI configuration mechanism #1 (PCI Local Bus Specification 3.0, §3.2.2.3.2): address
//!   port 0xcf8 (bit 31 enable, bus 23:16, device 15:11, function 10:8, register 7:2), data
//!   port 0xcfc. Vendor/device ids at register 0x00, BARs at 0x10 + 4n; a 64-bit memory BAR
//!   has bits 2:1 = 0b10 and its upper half in the next BAR (§6.2.5.1).
//! - QEMU's ivshmem-plain (hw/misc/ivshmem.c, docs/specs/ivshmem-spec.rst): vendor 0x1af4,
//!   device 0x1110; BAR 2 is the shared memory, 64-bit and prefetchable. The firmware (SeaBIOS)
//!   assigns it an address and enables memory decoding.
//!
//! The window's layout (shared with xtask/src/trace.rs): a 4 KiB header, then data.
//! - `magic` (u64 at 0): [`MAGIC`], written by xtask; the kernel refuses a window without it.
//! - `size` (u64 at 8): the window's bytes, written by xtask.
//! - `reserved` (u64 at 16): bytes of data handed out so far (a writer adds its length).
//! - `end` (u64 at 24): the end of the data actually written (the largest `off + len` whose
//!   copy finished); xtask reads `[4096, 4096 + end)`.
//!
//! Invariants: a writer reserves its bytes with one atomic add and then owns them, so writers
//! never wait for each other, and sysmon may write from an interrupt handler. Reservations
//! are in order; once one does not fit, no later one does, so the written data has no holes.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;
use x86_64::structures::paging::PageTableFlags;
use x86_64::{PhysAddr, VirtAddr};

/// The header's first word, "GORTTRC1" (xtask writes it; one definition, rt-trace's).
pub const MAGIC: u64 = rt_trace::format::WINDOW_MAGIC;

/// Bytes before the data.
pub const HEADER: u64 = rt_trace::format::WINDOW_HEADER;

/// Where the window is mapped (a slot of its own in the lower half, beside the APIC's).
const WINDOW_VIRT: u64 = 0x0000_5000_0000_0000;

/// QEMU's ivshmem (hw/misc/ivshmem.c: PCI_VENDOR_ID_IVSHMEM, PCI_DEVICE_ID_IVSHMEM).
const IVSHMEM_VENDOR: u16 = 0x1af4;
const IVSHMEM_DEVICE: u16 = 0x1110;

/// The window, once mapped: its virtual base and size (0: none).
static BASE: AtomicU64 = AtomicU64::new(0);
static SIZE: AtomicU64 = AtomicU64::new(0);

fn config_read(bus: u8, dev: u8, func: u8, reg: u8) -> u32 {
    let addr = 0x8000_0000u32
        | (bus as u32) << 16
        | (dev as u32) << 11
        | (func as u32) << 8
        | (reg as u32 & 0xfc);
    // SAFETY: ports 0xcf8/0xcfc are PCI configuration mechanism #1 on every PC that QEMU
    // emulates; a read of an absent function returns all ones and changes nothing.
    unsafe {
        Port::<u32>::new(0xcf8).write(addr);
        Port::<u32>::new(0xcfc).read()
    }
}

/// Why the window cannot be used.
#[derive(Debug)]
pub enum Error {
    /// No ivshmem device on bus 0.
    NoDevice,
    /// Its BAR 2 is not a 64-bit memory BAR with an address.
    BadBar(u32),
    /// The header's magic is not xtask's.
    NoHeader(u64),
    /// Mapping the window failed.
    Map,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::NoDevice => {
                f.write_str("no ivshmem device (QEMU -device ivshmem-plain) on PCI bus 0")
            }
            Error::BadBar(b) => write!(
                f,
                "the ivshmem device's BAR 2 ({b:#x}) is not an assigned 64-bit memory BAR"
            ),
            Error::NoHeader(m) => write!(
                f,
                "the ivshmem window does not start with xtask's header (magic {m:#x})"
            ),
            Error::Map => f.write_str("the ivshmem window could not be mapped"),
        }
    }
}

/// Finds the device, maps its window and checks xtask's header. Called once at boot, when
/// `trace=1`.
pub fn init() -> Result<(), Error> {
    let (dev, func) = (0..32u8)
        .flat_map(|d| (0..8u8).map(move |f| (d, f)))
        .find(|&(d, f)| {
            let id = config_read(0, d, f, 0);
            id as u16 == IVSHMEM_VENDOR && (id >> 16) as u16 == IVSHMEM_DEVICE
        })
        .ok_or(Error::NoDevice)?;
    let lo = config_read(0, dev, func, 0x18);
    let hi = config_read(0, dev, func, 0x1c);
    // Bit 0: 0 = memory BAR; bits 2:1 = 0b10: 64-bit (PCI 3.0 §6.2.5.1).
    if lo & 1 != 0 || (lo >> 1) & 3 != 2 {
        return Err(Error::BadBar(lo));
    }
    let phys = (hi as u64) << 32 | (lo & !0xf) as u64;
    if phys == 0 {
        return Err(Error::BadBar(lo));
    }
    // The header first (one page), to learn the size xtask gave the window.
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    crate::mm::paging::map_phys(
        VirtAddr::new(WINDOW_VIRT),
        PhysAddr::new(phys),
        HEADER,
        flags,
    )
    .map_err(|_| Error::Map)?;
    let header = WINDOW_VIRT as *const u64;
    // SAFETY: the first page of the window is mapped just above; volatile: the host wrote it.
    let (magic, size) = unsafe { (header.read_volatile(), header.add(1).read_volatile()) };
    if magic != MAGIC || size <= HEADER || size % HEADER != 0 {
        return Err(Error::NoHeader(magic));
    }
    crate::mm::paging::map_phys(
        VirtAddr::new(WINDOW_VIRT + HEADER),
        PhysAddr::new(phys + HEADER),
        size - HEADER,
        flags,
    )
    .map_err(|_| Error::Map)?;
    SIZE.store(size, Ordering::Relaxed);
    BASE.store(WINDOW_VIRT, Ordering::Release);
    Ok(())
}

/// Whether the window is mapped.
pub fn present() -> bool {
    BASE.load(Ordering::Acquire) != 0
}

fn word(i: usize) -> &'static AtomicU64 {
    let base = BASE.load(Ordering::Acquire);
    // SAFETY: called only once the window is mapped (base != 0); words 2 and 3 of its header
    // are ours to update atomically, and the mapping lives as long as the kernel.
    unsafe { &*(base as *const AtomicU64).add(i) }
}

/// Copies `bytes` into the window; false if the window is full (or absent).
pub fn write(bytes: &[u8]) -> bool {
    if !present() {
        return false;
    }
    let cap = SIZE.load(Ordering::Relaxed) - HEADER;
    let len = bytes.len() as u64;
    let off = word(2).fetch_add(len, Ordering::AcqRel);
    if off + len > cap {
        return false;
    }
    let base = BASE.load(Ordering::Acquire);
    // SAFETY: `[off, off + len)` of the data area is inside the mapped window (checked above)
    // and reserved for us alone by the fetch_add; `bytes` does not overlap the window.
    unsafe {
        core::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            (base + HEADER + off) as *mut u8,
            bytes.len(),
        )
    };
    word(3).fetch_max(off + len, Ordering::AcqRel);
    true
}

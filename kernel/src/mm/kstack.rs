//! Kernel stacks that are not goroutine stacks: each application processor's boot stack (which
//! becomes its M's g0, the scheduler's stack) and every CPU's IST stacks (x86/gdt.rs). Each
//! lies in a slot of its own with an unmapped guard page below it, so running off the bottom
//! is a page fault reported with its address, not a silent overwrite of whatever lies below
//! (the heap, another CPU's stack).
//!
//! ```text
//!  slot base        base+4K                          base+4K+size
//!   | guard (never mapped) | mapped, writable, never executable |
//! ```
//!
//! Invariants:
//! - slots are carved once, upwards, from [`REGION_START`], and never freed (CPUs do not go
//!   away), so a slot's guard page is never mapped by anyone;
//! - every stack page is writable and NX (W^X, checked by tests/src/bin/address_space.rs);
//! - [`all`] lists every stack made, for that test.
//!
//! The bootstrap processor's own boot stack (M0's g0) comes from the bootloader
//! (`BOOTLOADER_CONFIG.kernel_stack_size`), which leaves the page below it unmapped too
//! (tests/src/bin/address_space.rs checks it, kernel_stack_overflow.rs runs into it); its IST
//! stacks start in the kernel image (gdt.rs, for faults before memory is up) and move here as
//! soon as it is ([`crate::x86::gdt::guard_bsp_ist`]).
//!
//! Go's counterpart: the OS threads' stacks, which the OS maps with a guard page (g0 stacks in
//! Go are `pthread` stacks or `malg`-allocated system stacks).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::structures::paging::PageTableFlags;
use x86_64::VirtAddr;

use crate::mm::paging;
use crate::sync::IrqLock;

/// Kernel stacks are carved from here: lower-half addresses nothing else uses (the local and
/// I/O APIC at 0x4000_0000_0000, the heap at 0x4444_0000_0000, the trace window at
/// 0x5000_0000_0000, goroutine stacks from 0x6000_0000_0000).
pub const REGION_START: u64 = 0x0000_5800_0000_0000;
/// 1 TiB of addresses: far more than 256 CPUs' stacks.
pub const REGION_END: u64 = 0x0000_5900_0000_0000;
const PAGE: u64 = 4096;

/// What a stack is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An application processor's boot stack: its M's g0.
    G0,
    /// IST slot `n` (x86/gdt.rs: double fault, page fault, NMI, machine check, IRQs).
    Ist(u16),
}

/// One stack: `[lo, hi)` mapped, the page below `lo` the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KStack {
    pub kind: Kind,
    pub cpu: usize,
    pub lo: u64,
    pub hi: u64,
}

static NEXT: AtomicU64 = AtomicU64::new(REGION_START);
static ALL: IrqLock<Vec<KStack>> = IrqLock::new(Vec::new());

/// Maps a stack of `size` bytes (rounded up to pages) above a guard page, for `cpu`. Running out
/// of memory or addresses here is fatal and says so: a CPU without its stacks cannot run.
pub fn alloc(size: usize, kind: Kind, cpu: usize) -> KStack {
    let size = (size as u64).div_ceil(PAGE) * PAGE;
    let base = NEXT.fetch_add(PAGE + size, Ordering::Relaxed);
    if base + PAGE + size > REGION_END {
        panic!("kernel: out of addresses for kernel stacks ({kind:?} of cpu {cpu})");
    }
    let lo = base + PAGE;
    paging::map_fresh(
        VirtAddr::new(lo),
        size,
        PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE,
    )
    .unwrap_or_else(|e| {
        panic!(
            "kernel: out of memory for a {} KiB kernel stack ({kind:?} of cpu {cpu}): {e:?}",
            size / 1024
        )
    });
    let s = KStack {
        kind,
        cpu,
        lo,
        hi: lo + size,
    };
    ALL.lock().push(s);
    s
}

/// Every kernel stack made so far.
pub fn all() -> Vec<KStack> {
    ALL.lock().clone()
}

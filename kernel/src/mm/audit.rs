//! Reading the live page tables back, for the address-space tests: what is mapped where, with
//! which effective permissions.
//!
//! A translation's rights are those of every level it passes through (Intel SDM Vol. 3A
//! §4.6.1, "Determination of Access Rights"): writable only if every entry on the way has R/W
//! set, executable only if none has XD (bit 63, honoured when IA32_EFER.NXE is set, §4.1.1)
//! and supervisor writes to a read-only page fault only when CR0.WP is set (§4.6.1). The walk
//! follows the 4-level format (§4.5): 512 entries per table, PS (bit 7) marking a 1 GiB page at
//! level 3 and a 2 MiB page at level 2.
//!
//! Invariants the kernel keeps and `tests/src/bin/address_space.rs` checks with this module:
//! - W^X: no page is both writable and executable, anywhere;
//! - kernel text is executable and read-only; the heap and every stack never executable;
//! - an unmapped guard page below every stack: goroutine stacks (mm/stack.rs), each CPU's
//!   scheduler stack (g0) and each IST stack (mm/kstack.rs).
//!
//! Nothing here changes a mapping; it takes the page-table lock only to read.

use alloc::vec::Vec;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr3, Efer, EferFlags};
use x86_64::structures::paging::{PageTable, PageTableFlags};
use x86_64::{PhysAddr, VirtAddr};

use crate::mm::paging::phys_to_virt;

/// One run of contiguous virtual addresses mapped with the same effective rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub writable: bool,
    pub executable: bool,
}

/// The effective rights of the page holding `addr`, or `None` if it is not mapped. Reads the
/// four entries (fewer for a huge page) on `addr`'s own path, not the whole hierarchy: a test
/// asks this from 32 goroutines at once, and a whole walk, under the page-table lock with
/// interrupts off, took seconds each under TCG and timed the test out on a loaded machine.
/// The path is read by `paging::path_entries`, which the page-fault report uses too.
/// `regions` (the whole walk) and this agree; address_space.rs checks it.
pub fn rights(addr: u64) -> Option<(bool, bool)> {
    let (mut writable, mut executable) = (true, true);
    let path = crate::mm::paging::path_entries(VirtAddr::new(addr));
    for (i, e) in path.into_iter().map_while(|e| e).enumerate() {
        let flags = PageTableFlags::from_bits_truncate(e);
        if !flags.contains(PageTableFlags::PRESENT) {
            return None;
        }
        writable &= flags.contains(PageTableFlags::WRITABLE);
        executable &= !flags.contains(PageTableFlags::NO_EXECUTE);
        // Level 4 - i: the leaf is level 1, or a huge page at level 3 or 2.
        if i == 3 || (i >= 1 && flags.contains(PageTableFlags::HUGE_PAGE)) {
            return Some((writable, executable));
        }
    }
    None
}

/// Every mapped range, merged where neighbours have the same rights, in address order.
pub fn regions() -> Vec<Region> {
    let mut out: Vec<Region> = Vec::new();
    walk(
        &mut |start, len, writable, executable| match out.last_mut() {
            Some(r) if r.end == start && r.writable == writable && r.executable == executable => {
                r.end = start + len
            }
            _ => out.push(Region {
                start,
                end: start + len,
                writable,
                executable,
            }),
        },
    );
    out
}

/// Whether the CPU enforces what the tables say: NX honoured (EFER.NXE) and supervisor writes
/// to read-only pages refused (CR0.WP).
pub fn enforced() -> (bool, bool) {
    (
        Efer::read().contains(EferFlags::NO_EXECUTE_ENABLE),
        Cr0::read().contains(Cr0Flags::WRITE_PROTECT),
    )
}

/// Calls `f(start, len, writable, executable)` for every present leaf, in address order.
fn walk(f: &mut dyn FnMut(u64, u64, bool, bool)) {
    let (l4, _) = Cr3::read();
    // Hold the page-table lock so no CPU edits an entry while we read it.
    let _guard = crate::mm::paging::lock_for_reading();
    walk_table(l4.start_address(), 4, 0, true, true, f);
}

fn walk_table(
    table: PhysAddr,
    level: u8,
    base: u64,
    writable: bool,
    executable: bool,
    f: &mut dyn FnMut(u64, u64, bool, bool),
) {
    // SAFETY: `table` is a page table of the live hierarchy (CR3's, or an entry's target),
    // reached through the bootloader's map of all physical memory; we only read it, under the
    // page-table lock.
    let t: &PageTable = unsafe { &*phys_to_virt(table).as_ptr::<PageTable>() };
    let span = 1u64 << (12 + 9 * (level as u32 - 1));
    for (i, e) in t.iter().enumerate() {
        let flags = e.flags();
        if !flags.contains(PageTableFlags::PRESENT) {
            continue;
        }
        let mut va = base + i as u64 * span;
        if level == 4 && i >= 256 {
            // Sign-extend bit 47 (canonical upper half, SDM §3.3.7.1).
            va |= 0xffff_0000_0000_0000;
        }
        let w = writable && flags.contains(PageTableFlags::WRITABLE);
        let x = executable && !flags.contains(PageTableFlags::NO_EXECUTE);
        if level == 1 || (level <= 3 && flags.contains(PageTableFlags::HUGE_PAGE)) {
            f(va, span, w, x);
        } else {
            walk_table(e.addr(), level - 1, va, w, x, f);
        }
    }
}

/// Whether `addr`'s page is mapped (a guard page must not be).
pub fn mapped(addr: u64) -> bool {
    crate::mm::paging::translate(VirtAddr::new(addr)).is_some()
}

//! Paging: the kernel's page tables and what is mapped through them.
//!
//! The bootloader maps all of physical memory at `phys_offset` (see `BOOTLOADER_CONFIG`), so a
//! physical address `p` is readable at virtual `phys_offset + p`. Page tables are edited through
//! `x86_64`'s `OffsetPageTable`, which relies on exactly that.

use x86_64::registers::control::Cr3;
use x86_64::structures::paging::{
    FrameAllocator, FrameDeallocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags,
    PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

use crate::mm::frame::{alloc_frame, free_frame, take_frame, KernelFrames, FRAMES};
use crate::sync::IrqLock;

pub const PAGE_SIZE: u64 = 4096;

static PHYS_OFFSET: spin::Once<u64> = spin::Once::new();
static PAGE_TABLE: IrqLock<Option<OffsetPageTable<'static>>> = IrqLock::new(None);

/// The virtual address at which physical address `p` is mapped.
pub fn phys_to_virt(p: PhysAddr) -> VirtAddr {
    VirtAddr::new(p.as_u64() + *PHYS_OFFSET.get().expect("mm::init has not run"))
}

/// Makes the page tables editable: the active level-4 table (CR3), reached through the
/// bootloader's map of all physical memory at `phys_offset`.
pub(super) fn init(phys_offset: u64) {
    PHYS_OFFSET.call_once(|| phys_offset);
    // SAFETY: CR3 holds the active level-4 table, which the bootloader put in physical memory
    // that is mapped at `phys_offset`; this is the only `&mut` made to it (kept in PAGE_TABLE).
    let l4: &'static mut PageTable = unsafe {
        let (frame, _) = Cr3::read();
        &mut *phys_to_virt(frame.start_address()).as_mut_ptr::<PageTable>()
    };
    // SAFETY: all physical memory is mapped at `phys_offset`, as OffsetPageTable requires.
    let table = unsafe { OffsetPageTable::new(l4, VirtAddr::new(phys_offset)) };
    *PAGE_TABLE.lock() = Some(table);
}

/// Fills a frame just taken from the allocator with zeros (through the physical-memory map).
fn zero_frame(frame: PhysFrame) {
    // SAFETY: the caller just took the frame from the allocator, so nothing else uses it, and
    // all physical memory is mapped writable at `phys_offset`.
    unsafe {
        core::ptr::write_bytes(
            phys_to_virt(frame.start_address()).as_mut_ptr::<u8>(),
            0,
            PAGE_SIZE as usize,
        )
    };
}

#[derive(Debug)]
pub enum MapError {
    OutOfFrames,
    AlreadyMapped(VirtAddr),
    Other(&'static str),
}

/// Maps `[start, start + len)` (page-aligned) to fresh zeroed frames with `flags`.
pub fn map_fresh(start: VirtAddr, len: u64, flags: PageTableFlags) -> Result<(), MapError> {
    let mut guard = PAGE_TABLE.lock();
    let table = guard.as_mut().expect("mm::init has not run");
    let first = Page::<Size4KiB>::containing_address(start);
    let last = Page::<Size4KiB>::containing_address(start + (len - 1));
    for page in Page::range_inclusive(first, last) {
        let frame = alloc_frame().ok_or(MapError::OutOfFrames)?;
        zero_frame(frame);
        // SAFETY: the page was unmapped (checked by `map_to`), and the frame is ours, so the new
        // mapping aliases nothing.
        let flush = unsafe { table.map_to(page, frame, flags, &mut KernelFrames) }.map_err(
            |e| match e {
                x86_64::structures::paging::mapper::MapToError::FrameAllocationFailed => {
                    MapError::OutOfFrames
                }
                x86_64::structures::paging::mapper::MapToError::PageAlreadyMapped(_) => {
                    MapError::AlreadyMapped(page.start_address())
                }
                x86_64::structures::paging::mapper::MapToError::ParentEntryHugePage => {
                    MapError::Other("a huge page covers this range")
                }
            },
        )?;
        flush.flush();
    }
    Ok(())
}

/// Why [`map_fault_page`] could not map a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMapError {
    OutOfFrames,
    /// The page-table or frame lock stayed taken for a second: the faulting code holds it.
    LockHeld(&'static str),
    AlreadyMapped,
}

/// How long the page-fault handler waits for a memory lock before concluding that the code
/// it interrupted holds it (critical sections here last microseconds).
const FAULT_LOCK_WAIT_NS: u64 = 1_000_000_000;

/// Maps the page at `page` (aligned) to a fresh zeroed frame, for the page-fault handler. It
/// never waits forever: the faulting code may hold the page-table or frame lock itself (it
/// grew its stack inside the critical section), which is reported instead of a deadlock.
pub fn map_fault_page(page: VirtAddr, flags: PageTableFlags) -> Result<(), FaultMapError> {
    let mut guard = PAGE_TABLE
        .lock_within(FAULT_LOCK_WAIT_NS)
        .ok_or(FaultMapError::LockHeld("page-table"))?;
    let table = guard.as_mut().expect("mm::init has not run");
    // Frames for the page and for any missing page table, taken under one hold of the frame
    // lock (page tables for a stack slot are kept once made, so usually one frame is used).
    struct Bounded;
    // SAFETY: hands out each frame at most once (take_frame), like KernelFrames.
    unsafe impl FrameAllocator<Size4KiB> for Bounded {
        fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
            let mut f = FRAMES.lock_within(FAULT_LOCK_WAIT_NS)?;
            let frame = take_frame(&mut f)?;
            drop(f);
            zero_frame(frame);
            Some(frame)
        }
    }
    let frame = Bounded.allocate_frame().ok_or_else(|| {
        if FRAMES.is_locked() {
            FaultMapError::LockHeld("frame")
        } else {
            FaultMapError::OutOfFrames
        }
    })?;
    let page = Page::<Size4KiB>::containing_address(page);
    // SAFETY: the page was unmapped (checked by map_to) and the frame is fresh and zeroed.
    match unsafe { table.map_to(page, frame, flags, &mut Bounded) } {
        Ok(flush) => {
            flush.flush();
            Ok(())
        }
        Err(e) => {
            drop(guard);
            // SAFETY: the frame was never mapped.
            unsafe { free_frame(frame) };
            Err(match e {
                x86_64::structures::paging::mapper::MapToError::PageAlreadyMapped(_) => {
                    FaultMapError::AlreadyMapped
                }
                _ => FaultMapError::OutOfFrames,
            })
        }
    }
}

/// Unmaps the mapped pages of `[start, start + len)` (page-aligned), flushing this CPU's TLB
/// for each, and appends their frames to `frames` *without* freeing them: the caller frees
/// them once every other CPU has flushed too (the TLB shootdown). With `tables` (a range
/// that includes this one), page tables left empty in that range are unlinked and their frames appended as well (CR3 reloads flush
/// the paging-structure caches too, SDM Vol. 3A §4.10.4.1). Returns the pages unmapped (page
/// tables not counted).
pub fn unmap_keep_frames(
    start: VirtAddr,
    len: u64,
    tables: Option<(VirtAddr, u64)>,
    frames: &mut alloc::vec::Vec<PhysFrame>,
) -> u64 {
    use x86_64::structures::paging::mapper::CleanUp;
    let mut guard = PAGE_TABLE.lock();
    let table = guard.as_mut().expect("mm::init has not run");
    let mut n = 0;
    for off in (0..len).step_by(PAGE_SIZE as usize) {
        let page = Page::<Size4KiB>::containing_address(start + off);
        if let Ok((frame, flush)) = table.unmap(page) {
            flush.flush();
            frames.push(frame);
            n += 1;
        }
    }
    if let Some((start, len)) = tables {
        struct Collect<'a>(&'a mut alloc::vec::Vec<PhysFrame>);
        impl FrameDeallocator<Size4KiB> for Collect<'_> {
            unsafe fn deallocate_frame(&mut self, frame: PhysFrame<Size4KiB>) {
                self.0.push(frame);
            }
        }
        let range = Page::range_inclusive(
            Page::<Size4KiB>::containing_address(start),
            Page::<Size4KiB>::containing_address(start + (len - 1)),
        );
        // SAFETY: every page table in the kernel's tables is used once, at one place (no
        // shared or recursive tables), as clean_up requires; emptied ones are collected, not
        // freed, until the caller's shootdown.
        unsafe { table.clean_up_addr_range(range, &mut Collect(frames)) };
    }
    n
}

/// The raw entries the hardware walk of `addr` meets, PML4E first, as far as they are
/// present (the last one given is the leaf, or the first entry that is not present).
/// `None` if the page-table lock is not free within the fault path's limit (the faulting code
/// may hold it): for a fault report, what the CPU saw.
pub fn walk_entries(addr: VirtAddr) -> Option<[Option<PageTableEntryBits>; 4]> {
    let guard = PAGE_TABLE.lock_within(FAULT_LOCK_WAIT_NS)?;
    Some(path_of(guard.as_ref().expect("mm::init has not run"), addr))
}

/// [`walk_entries`], waiting for the page-table lock as long as it takes (mm/audit.rs).
pub(super) fn path_entries(addr: VirtAddr) -> [Option<PageTableEntryBits>; 4] {
    let guard = PAGE_TABLE.lock();
    path_of(guard.as_ref().expect("mm::init has not run"), addr)
}

/// A page-table entry as the CPU reads it: flags and address in one word.
pub type PageTableEntryBits = u64;

fn path_of(table: &OffsetPageTable<'static>, addr: VirtAddr) -> [Option<u64>; 4] {
    let offset = table.phys_offset();
    let indices = [
        addr.p4_index(),
        addr.p3_index(),
        addr.p2_index(),
        addr.p1_index(),
    ];
    let mut out = [None; 4];
    let mut t: *const PageTable = table.level_4_table();
    for (level, i) in indices.into_iter().enumerate() {
        // SAFETY: `t` is a page table of the live hierarchy (the level-4 table, or the frame a
        // present non-huge entry above names), read through the physical-memory mapping with
        // the page-table lock held by the caller, so no entry changes under us.
        let e = unsafe { &(&*t)[i] };
        out[level] = Some(e.flags().bits() | e.addr().as_u64());
        if !e.flags().contains(PageTableFlags::PRESENT)
            || e.flags().contains(PageTableFlags::HUGE_PAGE)
        {
            break;
        }
        t = (offset + e.addr().as_u64()).as_ptr::<PageTable>();
    }
    out
}

/// Holds the page-table lock while the caller reads the tables by hand (mm/audit.rs).
pub(super) fn lock_for_reading() -> impl Drop {
    PAGE_TABLE.lock()
}

/// Translates a virtual address through the live page tables.
pub fn translate(addr: VirtAddr) -> Option<PhysAddr> {
    use x86_64::structures::paging::Translate;
    let guard = PAGE_TABLE.lock();
    guard
        .as_ref()
        .expect("mm::init has not run")
        .translate_addr(addr)
}

/// Maps `[virt, virt + len)` to the physical range at `phys` (both page-aligned), for device
/// registers and the SMP trampoline. Pages already mapped to the same frame are left as they are.
pub fn map_phys(
    virt: VirtAddr,
    phys: PhysAddr,
    len: u64,
    flags: PageTableFlags,
) -> Result<(), MapError> {
    let mut guard = PAGE_TABLE.lock();
    let table = guard.as_mut().expect("mm::init has not run");
    for off in (0..len).step_by(PAGE_SIZE as usize) {
        let page = Page::<Size4KiB>::containing_address(virt + off);
        let frame = PhysFrame::<Size4KiB>::containing_address(phys + off);
        // SAFETY: the caller names device memory or memory it owns (the trampoline page); the
        // page was unmapped (checked by map_to), so no existing mapping is replaced.
        match unsafe { table.map_to(page, frame, flags, &mut KernelFrames) } {
            Ok(flush) => flush.flush(),
            Err(x86_64::structures::paging::mapper::MapToError::PageAlreadyMapped(f))
                if f == frame => {}
            Err(x86_64::structures::paging::mapper::MapToError::PageAlreadyMapped(_)) => {
                return Err(MapError::AlreadyMapped(page.start_address()))
            }
            Err(x86_64::structures::paging::mapper::MapToError::FrameAllocationFailed) => {
                return Err(MapError::OutOfFrames)
            }
            Err(x86_64::structures::paging::mapper::MapToError::ParentEntryHugePage) => {
                return Err(MapError::Other("a huge page covers this range"))
            }
        }
    }
    Ok(())
}

/// Maps one page of device registers at `virt` to physical `phys`: writable, uncached
/// (PCD + PWT: a device register must not be cached), never executable.
pub fn map_mmio(virt: VirtAddr, phys: PhysAddr) -> Result<(), MapError> {
    map_phys(
        virt,
        phys,
        PAGE_SIZE,
        PageTableFlags::PRESENT
            | PageTableFlags::WRITABLE
            | PageTableFlags::NO_CACHE
            | PageTableFlags::WRITE_THROUGH
            | PageTableFlags::NO_EXECUTE,
    )
}

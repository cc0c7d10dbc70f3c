//! Physical frames and paging.
//!
//! The bootloader maps all of physical memory at `phys_offset` (see `BOOTLOADER_CONFIG`), so a
//! physical address `p` is readable at virtual `phys_offset + p`. Page tables are edited through
//! `x86_64`'s `OffsetPageTable`, which relies on exactly that.
//!
//! The frame allocator hands out 4 KiB frames from the bootloader's `Usable` regions: first by
//! bumping through them, then from a free list threaded through the freed frames themselves
//! (each freed frame stores the physical address of the next). Both sit behind one
//! [`IrqLock`], so the page-fault handler (the stacks issue) may allocate frames.
//!
//! Invariants: a frame is either below the bump cursor and allocated, on the free list, or
//! above the cursor; `allocated` counts the first kind exactly.

use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::{
    FrameAllocator, FrameDeallocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags,
    PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

use crate::sync::IrqLock;

pub const PAGE_SIZE: u64 = 4096;

/// The frame allocator leaves physical memory below this alone (see `init_frames`).
pub const LOW_MEMORY_END: u64 = 0x10_0000;

#[derive(Debug, Clone, Copy)]
pub struct MemoryFacts {
    pub usable_bytes: u64,
    pub usable_regions: usize,
    /// Usable bytes in regions beyond `MAX_REGIONS`, which the frame allocator does not use.
    pub ignored_bytes: u64,
    pub phys_offset: u64,
}

/// Up to this many usable regions are kept: QEMU's BIOS e820 map has a handful, OVMF's UEFI
/// map dozens. Memory in regions past this is left unused (and `MemoryFacts` says so).
const MAX_REGIONS: usize = 256;

struct Frames {
    regions: [(u64, u64); MAX_REGIONS],
    nregions: usize,
    /// Index of the region the bump cursor is in, and the cursor itself.
    region: usize,
    next: u64,
    /// Head of the free list (physical address), 0 for empty.
    free_head: u64,
    free_count: u64,
    allocated: u64,
    total: u64,
}

static FRAMES: IrqLock<Frames> = IrqLock::new(Frames {
    regions: [(0, 0); MAX_REGIONS],
    nregions: 0,
    region: 0,
    next: 0,
    free_head: 0,
    free_count: 0,
    allocated: 0,
    total: 0,
});

static PHYS_OFFSET: spin::Once<u64> = spin::Once::new();
static PAGE_TABLE: IrqLock<Option<OffsetPageTable<'static>>> = IrqLock::new(None);

/// The virtual address at which physical address `p` is mapped.
pub fn phys_to_virt(p: PhysAddr) -> VirtAddr {
    VirtAddr::new(p.as_u64() + *PHYS_OFFSET.get().expect("memory::init has not run"))
}

pub fn init(phys_offset: Option<u64>, regions: &MemoryRegions) -> MemoryFacts {
    let phys_offset = phys_offset
        .expect("the bootloader did not map physical memory (BOOTLOADER_CONFIG asks it to)");
    PHYS_OFFSET.call_once(|| phys_offset);
    let facts = init_frames(regions, phys_offset);
    // SAFETY: CR3 holds the active level-4 table, which the bootloader put in physical memory
    // that is mapped at `phys_offset`; this is the only `&mut` made to it (kept in PAGE_TABLE).
    let l4: &'static mut PageTable = unsafe {
        let (frame, _) = Cr3::read();
        &mut *phys_to_virt(frame.start_address()).as_mut_ptr::<PageTable>()
    };
    // SAFETY: all physical memory is mapped at `phys_offset`, as OffsetPageTable requires.
    let table = unsafe { OffsetPageTable::new(l4, VirtAddr::new(phys_offset)) };
    *PAGE_TABLE.lock() = Some(table);
    facts
}

fn init_frames(regions: &MemoryRegions, phys_offset: u64) -> MemoryFacts {
    let mut f = FRAMES.lock();
    let mut usable_bytes = 0;
    let mut ignored_bytes = 0;
    for r in regions
        .iter()
        .filter(|r| r.kind == MemoryRegionKind::Usable)
    {
        // Memory below 1 MiB is never handed out: the SMP trampoline lives there (real-mode
        // code must sit below 1 MiB; Intel SDM Vol. 3A §9.4.4.1), and so does frame 0, the free
        // list's "empty".
        let start = r.start.max(LOW_MEMORY_END).next_multiple_of(PAGE_SIZE);
        let end = r.end & !(PAGE_SIZE - 1);
        if end <= start {
            continue;
        }
        if f.nregions < MAX_REGIONS {
            usable_bytes += end - start;
            let n = f.nregions;
            f.regions[n] = (start, end);
            f.nregions += 1;
        } else {
            ignored_bytes += end - start;
        }
    }
    f.total = usable_bytes / PAGE_SIZE;
    f.region = 0;
    f.next = if f.nregions > 0 { f.regions[0].0 } else { 0 };
    MemoryFacts {
        usable_bytes,
        usable_regions: f.nregions,
        ignored_bytes,
        phys_offset,
    }
}

/// Takes one frame, or `None` when physical memory is exhausted.
pub fn alloc_frame() -> Option<PhysFrame> {
    take_frame(&mut FRAMES.lock())
}

fn take_frame(f: &mut Frames) -> Option<PhysFrame> {
    if f.free_head != 0 {
        let frame = f.free_head;
        // SAFETY: a frame on the free list is owned by the allocator and holds the next link.
        f.free_head = unsafe { *phys_to_virt(PhysAddr::new(frame)).as_ptr::<u64>() };
        f.free_count -= 1;
        f.allocated += 1;
        return Some(PhysFrame::containing_address(PhysAddr::new(frame)));
    }
    while f.region < f.nregions {
        let (_, end) = f.regions[f.region];
        if f.next < end {
            let frame = f.next;
            f.next += PAGE_SIZE;
            f.allocated += 1;
            return Some(PhysFrame::containing_address(PhysAddr::new(frame)));
        }
        f.region += 1;
        if f.region < f.nregions {
            f.next = f.regions[f.region].0;
        }
    }
    None
}

/// Gives a frame back.
///
/// # Safety
/// `frame` must have come from [`alloc_frame`], must not be freed twice, and nothing may use
/// it any more (no mapping may still point at it).
pub unsafe fn free_frame(frame: PhysFrame) {
    let mut f = FRAMES.lock();
    let addr = frame.start_address().as_u64();
    // SAFETY: the caller gave us the frame; we store the next link in its first word.
    unsafe { *phys_to_virt(frame.start_address()).as_mut_ptr::<u64>() = f.free_head };
    f.free_head = addr;
    f.free_count += 1;
    f.allocated -= 1;
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

/// Frame counts: (allocated, total usable).
pub fn frame_stats() -> (u64, u64) {
    let f = FRAMES.lock();
    (f.allocated, f.total)
}

/// The frame allocator as the `x86_64` crate's traits want it (for page-table frames).
pub struct KernelFrames;

// SAFETY: `alloc_frame` returns each frame at most once until it is freed.
unsafe impl FrameAllocator<Size4KiB> for KernelFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        alloc_frame()
    }
}

impl FrameDeallocator<Size4KiB> for KernelFrames {
    unsafe fn deallocate_frame(&mut self, frame: PhysFrame<Size4KiB>) {
        // SAFETY: forwarded from the caller's promise.
        unsafe { free_frame(frame) }
    }
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
    let table = guard.as_mut().expect("memory::init has not run");
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
    let table = guard.as_mut().expect("memory::init has not run");
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
    let table = guard.as_mut().expect("memory::init has not run");
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

/// Translates a virtual address through the live page tables.
pub fn translate(addr: VirtAddr) -> Option<PhysAddr> {
    use x86_64::structures::paging::Translate;
    let guard = PAGE_TABLE.lock();
    guard
        .as_ref()
        .expect("memory::init has not run")
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
    let table = guard.as_mut().expect("memory::init has not run");
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

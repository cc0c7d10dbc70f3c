//! The physical frame allocator and its statistics.
//!
//! The frame allocator hands out 4 KiB frames from the bootloader's `Usable` regions: first by
//! bumping through them, then from a free list threaded through the freed frames themselves
//! (each freed frame stores the physical address of the next). Both sit behind one
//! [`IrqLock`], so the page-fault handler (which maps goroutine stack pages on demand,
//! mm/stack.rs) may allocate frames.
//!
//! Invariants: a frame is either below the bump cursor and allocated, on the free list, or
//! above the cursor; `allocated` counts the first kind exactly.

use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use x86_64::structures::paging::{FrameAllocator, FrameDeallocator, PhysFrame, Size4KiB};
use x86_64::PhysAddr;

use crate::mm::paging::{phys_to_virt, PAGE_SIZE};
use crate::sync::IrqLock;

/// The frame allocator leaves physical memory below this alone (see `init`).
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

pub(super) struct Frames {
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

pub(super) static FRAMES: IrqLock<Frames> = IrqLock::new(Frames {
    regions: [(0, 0); MAX_REGIONS],
    nregions: 0,
    region: 0,
    next: 0,
    free_head: 0,
    free_count: 0,
    allocated: 0,
    total: 0,
});

/// Takes over the bootloader's `Usable` regions (those past `MAX_REGIONS` are counted in
/// `ignored_bytes` and left unused).
pub(super) fn init(regions: &MemoryRegions, phys_offset: u64) -> MemoryFacts {
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

/// [`alloc_frame`] with the allocator's lock already held (the page-fault path takes it with
/// a time limit).
pub(super) fn take_frame(f: &mut Frames) -> Option<PhysFrame> {
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

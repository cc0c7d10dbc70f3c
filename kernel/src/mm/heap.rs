//! The kernel heap: a fixed virtual range in the lower half, mapped at boot, managed by
//! `linked_list_allocator`.
//!
//! The allocator sits behind an [`IrqLock`], so an allocation is never interrupted on its own
//! CPU: an interrupt that allocates (which our handlers avoid, docs/design.md §3) could otherwise
//! deadlock on the lock held by the code it interrupted.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use linked_list_allocator::Heap;
use x86_64::structures::paging::PageTableFlags;
use x86_64::VirtAddr;

use crate::sync::IrqLock;

/// Where the heap lives: a lower-half address the bootloader leaves alone (its dynamic
/// mappings are kept in the upper half by `BOOTLOADER_CONFIG`).
pub const HEAP_START: u64 = 0x0000_4444_0000_0000;

struct KernelHeap(IrqLock<Heap>);

static SIZE: AtomicU64 = AtomicU64::new(0);

#[global_allocator]
static ALLOCATOR: KernelHeap = KernelHeap(IrqLock::new(Heap::empty()));

// SAFETY: `linked_list_allocator::Heap` returns blocks that fit the layout and do not overlap
// live blocks; the lock serialises all access to it.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc's contract).
        unsafe {
            self.0
                .lock()
                .deallocate(NonNull::new_unchecked(ptr), layout)
        }
    }
}

/// Maps `mib` MiB at [`HEAP_START`] and hands it to the allocator.
pub fn init(mib: u64) {
    let size = mib << 20;
    crate::mm::paging::map_fresh(
        VirtAddr::new(HEAP_START),
        size,
        PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE,
    )
    .unwrap_or_else(|e| panic!("cannot map a {mib} MiB kernel heap: {e:?}"));
    // SAFETY: the range was just mapped, writable, and is used by nothing else.
    unsafe {
        ALLOCATOR
            .0
            .lock()
            .init(HEAP_START as *mut u8, size as usize)
    };
    SIZE.store(size, Ordering::Relaxed);
}

/// The heap's size in bytes.
pub fn size() -> u64 {
    SIZE.load(Ordering::Relaxed)
}

/// Bytes in use (allocated and not yet freed).
pub fn used() -> usize {
    ALLOCATOR.0.lock().used()
}

/// The heap size chosen at boot: a quarter of usable memory up to 64 MiB (at least 4 MiB);
/// with more memory, a sixteenth of it up to 1 GiB, so that a machine given memory for a
/// million goroutines also has heap for their G structs (~150 bytes each).
pub fn default_mib(usable_bytes: u64) -> u64 {
    let mib = usable_bytes >> 20;
    (mib / 4).clamp(4, 64).max((mib / 16).min(1024))
}

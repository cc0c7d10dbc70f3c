//! The kernel heap: a fixed virtual range in the lower half, mapped at boot, managed by
//! `talc` (a binned allocator with boundary tags: allocation and free are O(1) in the number
//! of free blocks).
//!
//! It was `linked_list_allocator`, whose `deallocate` walks its address-ordered free list to
//! insert a block: releasing parked goroutines left a hole per G, each free walked them all,
//! and 1M parked goroutines took ~45x what 100k took (measured with TSC counters around the
//! two calls: 24.5 s of the 22.9 s release phase of 100k, summed over both CPUs, was inside
//! `deallocate`). With talc, 100k take 4.0 s and 1M 46.8 s (`cargo xtask qemu -- parked=N`).
//! talc's own debug checks walk the whole heap on every call, so the workspace builds it
//! without debug assertions even in the dev profile (Cargo.toml).
//!
//! The allocator sits behind an [`IrqLock`], so an allocation is never interrupted on its own
//! CPU: an interrupt that allocates (which our handlers avoid, docs/design.md §3) could otherwise
//! deadlock on the lock held by the code it interrupted.
//!
//! Running out is fatal, as in Go (malloc.go: `throw("out of memory")` after "runtime: out of
//! memory: cannot allocate N-byte block"): the allocator reports the size, what is in use and
//! the goroutine that asked, and ends the run. So `try_reserve` in the kernel never sees an
//! `Err` from exhaustion (only from a size that overflows).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use talc::{ErrOnOom, Span, Talc};
use x86_64::structures::paging::PageTableFlags;
use x86_64::VirtAddr;

use crate::sync::IrqLock;

/// Where the heap lives: a lower-half address the bootloader leaves alone (its dynamic
/// mappings are kept in the upper half by `BOOTLOADER_CONFIG`).
pub const HEAP_START: u64 = 0x0000_4444_0000_0000;

struct KernelHeap(IrqLock<Talc<ErrOnOom>>);

static SIZE: AtomicU64 = AtomicU64::new(0);

#[global_allocator]
static ALLOCATOR: KernelHeap = KernelHeap(IrqLock::new(Talc::new(ErrOnOom)));

// SAFETY: `Talc::malloc` returns blocks that fit the layout and do not overlap live blocks;
// the lock serialises all access to it.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract: `layout` has a non-zero size.
        let got = unsafe { self.0.lock().malloc(layout) };
        // The lock is released here: the report below reads the heap's counters.
        match got {
            Ok(p) => p.as_ptr(),
            Err(()) => out_of_memory(layout.size()),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc's contract), so it is
        // non-null and a live allocation of this heap.
        unsafe { self.0.lock().free(NonNull::new_unchecked(ptr), layout) }
    }
}

/// The heap could not satisfy a request: Go's report, then `fatal error: out of memory` with
/// the asking goroutine's traceback. Printing a traceback may allocate; if that fails too, the
/// second report is cut short instead of waiting on the first.
#[cold]
fn out_of_memory(want: usize) -> ! {
    static REPORTING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if REPORTING.swap(true, Ordering::SeqCst) {
        crate::dev::console::print_fatal(format_args!(
            "\nfatal error: out of memory (again, while reporting it: {want} bytes)\n"
        ));
        crate::dev::qemu::exit(crate::dev::qemu::ExitCode::Failure);
    }
    crate::dev::console::print_fatal(format_args!(
        "\nruntime: out of memory: cannot allocate {want}-byte block ({} in use of a {}-byte heap)\n",
        used(),
        size()
    ));
    rt_core::fatal(format_args!("out of memory"))
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
    let span = Span::from_base_size(HEAP_START as *mut u8, size as usize);
    // SAFETY: the range was just mapped, writable, and is used by nothing else.
    unsafe { ALLOCATOR.0.lock().claim(span) }
        .unwrap_or_else(|()| panic!("the allocator cannot use a {mib} MiB heap"));
    SIZE.store(size, Ordering::Relaxed);
}

/// The heap's size in bytes.
pub fn size() -> u64 {
    SIZE.load(Ordering::Relaxed)
}

/// Bytes in use: the heap less its free bytes, so the allocator's per-block tags count too
/// (as `linked_list_allocator`'s rounding did).
pub fn used() -> usize {
    let c = *ALLOCATOR.0.lock().get_counters();
    c.claimed_bytes - c.available_bytes
}

/// The heap size chosen at boot: a quarter of usable memory up to 64 MiB (at least 4 MiB);
/// with more memory, a sixteenth of it up to 1 GiB, so that a machine given memory for a
/// million goroutines also has heap for their G structs (~150 bytes each).
pub fn default_mib(usable_bytes: u64) -> u64 {
    let mib = usable_bytes >> 20;
    (mib / 4).clamp(4, 64).max((mib / 16).min(1024))
}

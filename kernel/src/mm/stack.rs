//! Goroutine stacks in the kernel: a virtual slot per stack, one page mapped at first, the rest
//! mapped by the page-fault handler as the goroutine grows, and an unmapped guard page below.
//!
//! Go grows a goroutine's stack by copying it to a larger one (stack.go `newstack` →
//! `copystack`), fixing up the pointers into it. Rust cannot: references into a stack are
//! ordinary pointers that nothing tracks. But the kernel owns the page tables, so a stack can
//! grow in place: reserve the whole maximum as virtual addresses and back it with memory only
//! where it is touched (the way Linux grows a thread's stack).
//!
//! A slot (`maxstack=` bytes, default 1 MiB) in [`REGION_START`, `REGION_END`):
//!
//! ```text
//!  base                base+4K                                   top-4K     top-64   top
//!   | guard (unmapped) | grows on demand (page faults)   ...     | mapped at | header |
//!   |                  | <- stack.lo                               alloc  stack.hi ->   |
//! ```
//!
//! - `stack.lo = base + 4K`, `stack.hi = top - 64`: rt-core sees `[lo, hi)`, sets
//!   `stackguard0 = lo + STACK_GUARD` (so a safe point reports an overflow before the guard
//!   page), and starts the goroutine at `hi`.
//! - The header (the slot's top 64 bytes, in the page mapped at allocation) holds the lowest
//!   mapped address: the fault handler lowers it, trimming raises it, so the resident size of
//!   a stack is one load (rt-core's cache budget asks it at every exit).
//! - Every stack page is writable and never executable (NX).
//!
//! Invariants:
//! - only the page-fault handler maps pages below a slot's top page, and only for the
//!   goroutine running on that CPU, inside that goroutine's own slot;
//! - pages are unmapped only from stacks no goroutine runs on (rt-core's caches, or freed),
//!   in batches followed by one TLB shootdown (x86/tlb.rs) before their frames are freed or the
//!   slot is handed out again;
//! - every mapped page of a slot lies in `[header.lowest, top)`.
//!
//! What bounds a stack: its slot, so `maxstack=` (Go's limit is 1 GB of copied stack; ours is
//! 64 KiB to 1 GiB). What bounds the number of stacks: the region's 32 TiB of addresses
//! (32 M slots of 1 MiB) and memory: a live stack holds its pages, plus page tables: one 4 KiB
//! table maps 2 MiB, so a slot of 1 MiB costs half a table (2 KiB) as soon as it is used, a
//! slot of 64 KiB 128 bytes.
//!
//! Go's counterparts: stack.go (`stackalloc`, `stackfree`, `newstack`'s overflow check) and,
//! for the demand paging, the OS under it.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::structures::paging::PageTableFlags;
use x86_64::VirtAddr;

use rt_core::platform::{Stack, M};

use crate::mm::frame;
use crate::mm::paging::{self, FaultMapError};
use crate::sync::IrqLock;
use crate::x86::{percpu, tlb};

/// Goroutine stack slots are carved from here: lower-half addresses nothing else uses (the
/// heap is at 0x4444_0000_0000, the bootloader's mappings in the upper half).
pub const REGION_START: u64 = 0x0000_6000_0000_0000;
/// The end of the canonical lower half (48-bit linear addresses; SDM Vol. 3A §4.5).
pub const REGION_END: u64 = 0x0000_8000_0000_0000;
const PAGE: u64 = 4096;
/// Bytes at the top of each slot kept for its [`Header`] (a cache line).
const HEADER: u64 = 64;

/// The slot size, fixed when the first runtime starts (rt/run.rs).
static SLOT: AtomicU64 = AtomicU64::new(1 << 20);
/// The next never-used slot.
static NEXT: AtomicU64 = AtomicU64::new(REGION_START);
/// Freed slots (all pages unmapped, shot down), reused before new ones.
static FREE: IrqLock<Vec<u64>> = IrqLock::new(Vec::new());
/// Stack pages mapped now (top pages and grown pages of live slots).
static MAPPED: AtomicU64 = AtomicU64::new(0);

#[repr(C)]
struct Header {
    /// The lowest mapped address of the slot (page-aligned).
    lowest: AtomicU64,
}

/// Sets the slot size (`maxstack=`). The first call with slots in use fixes it for good.
pub fn set_slot_size(bytes: u64) {
    assert!(bytes.is_multiple_of(PAGE) && bytes >= 16 * PAGE);
    if NEXT.load(Ordering::SeqCst) == REGION_START {
        SLOT.store(bytes, Ordering::SeqCst);
    }
}

/// A slot's size in bytes (guard page and header included).
pub fn slot_size() -> u64 {
    SLOT.load(Ordering::Relaxed)
}

/// The usable bytes of a stack: the slot less its guard page and header.
pub fn max_stack() -> usize {
    (slot_size() - PAGE - HEADER) as usize
}

fn top_of(stack: &Stack) -> u64 {
    stack.hi as u64 + HEADER
}

fn header(top: u64) -> &'static Header {
    // SAFETY: the header lives in the slot's top page, which stays mapped from `alloc` to
    // `free`, and is only touched through atomics.
    unsafe { &*((top - HEADER) as *const Header) }
}

const FLAGS: PageTableFlags = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .union(PageTableFlags::NO_EXECUTE);

/// A stack with its top page mapped (the platform's `stack_alloc`). `None` when memory or the
/// region is exhausted, or `size` is larger than a slot holds.
pub fn alloc(size: usize) -> Option<Stack> {
    if size > max_stack() {
        return None;
    }
    let slot = slot_size();
    let base = match FREE.lock().pop() {
        Some(b) => b,
        None => {
            let b = NEXT.fetch_add(slot, Ordering::Relaxed);
            if b + slot > REGION_END {
                return None;
            }
            b
        }
    };
    let top = base + slot;
    if paging::map_fresh(VirtAddr::new(top - PAGE), PAGE, FLAGS).is_err() {
        FREE.lock().push(base);
        return None;
    }
    header(top).lowest.store(top - PAGE, Ordering::Relaxed);
    MAPPED.fetch_add(1, Ordering::Relaxed);
    Some(Stack {
        lo: (base + PAGE) as usize,
        hi: (top - HEADER) as usize,
    })
}

/// Bytes of `stack` mapped now.
pub fn resident(stack: &Stack) -> usize {
    let top = top_of(stack);
    (top - header(top).lowest.load(Ordering::Relaxed)) as usize
}

/// Unmaps everything below the top page of each stack, then one shootdown, then frees the
/// frames. Returns the bytes released.
///
/// # Safety
/// No goroutine runs on these stacks (rt-core's caches hold them).
pub unsafe fn trim(stacks: &[Stack]) -> usize {
    let mut frames = Vec::new();
    let mut pages = 0;
    for s in stacks {
        let top = top_of(s);
        let keep = top - PAGE;
        let h = header(top);
        let lowest = h.lowest.load(Ordering::Relaxed);
        if lowest < keep {
            pages +=
                paging::unmap_keep_frames(VirtAddr::new(lowest), keep - lowest, None, &mut frames);
            h.lowest.store(keep, Ordering::Relaxed);
        }
    }
    release(frames, pages);
    (pages * PAGE) as usize
}

/// Unmaps whole slots (one shootdown for all) and keeps them for reuse.
///
/// # Safety
/// No goroutine runs on these stacks, and each is freed once.
pub unsafe fn free(stacks: &[Stack]) {
    let mut frames = Vec::new();
    let mut bases = Vec::with_capacity(stacks.len());
    let mut pages = 0;
    let slot = slot_size();
    for s in stacks {
        let top = top_of(s);
        let lowest = header(top).lowest.load(Ordering::Relaxed);
        // Page tables the slot leaves empty are released too.
        let base = s.lo as u64 - PAGE;
        pages += paging::unmap_keep_frames(
            VirtAddr::new(lowest),
            top - lowest,
            Some((VirtAddr::new(base), slot)),
            &mut frames,
        );
        bases.push(base);
    }
    release(frames, pages);
    // Only now, with no CPU holding a stale translation, may the addresses be reused.
    FREE.lock().extend_from_slice(&bases);
}

/// Shoots down (if anything was unmapped) and frees the frames: `pages` stack pages, the rest
/// page tables.
fn release(frames: Vec<x86_64::structures::paging::PhysFrame>, pages: u64) {
    if frames.is_empty() {
        return;
    }
    tlb::shootdown();
    for f in frames {
        // SAFETY: unmapped above, and no CPU's TLB or paging-structure cache still refers to
        // it (the shootdown).
        unsafe { frame::free_frame(f) };
    }
    MAPPED.fetch_sub(pages, Ordering::Relaxed);
}

/// Counts for tests and figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Slots handed out and not freed (live goroutines' stacks and cached ones).
    pub live_slots: u64,
    /// Slots ever made (the region's high-water mark).
    pub slots_made: u64,
    /// Stack pages mapped now.
    pub mapped_pages: u64,
    /// Pages mapped on demand by the page-fault handler, all CPUs, ever.
    pub faults: u64,
    /// Time the handler spent on them, from its first check to the mapped page (the CPU's
    /// exception entry and `iretq` come on top).
    pub fault_ns: u64,
}

pub fn stats() -> Stats {
    let slots_made = (NEXT.load(Ordering::Relaxed) - REGION_START) / slot_size();
    Stats {
        live_slots: slots_made - FREE.lock().len() as u64,
        slots_made,
        mapped_pages: MAPPED.load(Ordering::Relaxed),
        faults: (0..percpu::MAX_CPUS)
            .map_while(percpu::get)
            .map(|c| c.stack_faults.load(Ordering::Relaxed))
            .sum(),
        fault_ns: (0..percpu::MAX_CPUS)
            .map_while(percpu::get)
            .map(|c| c.stack_fault_ns.load(Ordering::Relaxed))
            .sum(),
    }
}

/// Per CPU: what its last [`Fault::Grown`] was (the goroutine, the faulting instruction and
/// the page, folded into one key), and how many times in a row it was that. One goroutine
/// faulting again and again at one instruction on one page that the handler "grew" each time
/// means the mapping did not take (a page-table entry that is neither empty nor present makes
/// `map_fault_page` answer `AlreadyMapped`): the CPU would fault for ever, so [`refaulted`]
/// turns that into a report. The goroutine is part of the key because a slot is reused at
/// once: successive short-lived goroutines fault on the same page of the same slot, each once.
static LAST_GROWN: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];
static GROWN_REPEATS: [AtomicU64; percpu::MAX_CPUS] =
    [const { AtomicU64::new(0) }; percpu::MAX_CPUS];

/// How many grown faults in a row with one key make a fault loop: a loop makes thousands in a
/// millisecond; a goroutine whose page is taken away between two runs (a trim racing a reuse)
/// faults again once or twice, never this often with nothing else faulting in between.
const REFAULT_LIMIT: u64 = 1000;

/// Called by the fault handler after [`Fault::Grown`] for a fault at `addr` by the
/// instruction at `rip`: `Some(n)` once the running goroutine has faulted there `n` times in a
/// row and `n` reached [`REFAULT_LIMIT`].
pub fn refaulted(addr: u64, rip: u64) -> Option<u64> {
    let cpu = percpu::current()?;
    let m = cpu.m.load(Ordering::Relaxed) as *mut M;
    // SAFETY: as in on_page_fault: `m` is the M running on this CPU, in its fault handler.
    let goid = unsafe { rt_core::platform::running_g(m) }?.goid();
    let page = addr & !(PAGE - 1);
    let key = page ^ rip.rotate_left(17) ^ goid.rotate_left(41);
    let i = cpu.index;
    let n = if LAST_GROWN[i].swap(key, Ordering::Relaxed) == key {
        GROWN_REPEATS[i].fetch_add(1, Ordering::Relaxed) + 2
    } else {
        GROWN_REPEATS[i].store(0, Ordering::Relaxed);
        1
    };
    (n >= REFAULT_LIMIT).then_some(n)
}

/// What the page-fault handler should do with a fault.
pub enum Fault {
    /// A page of the running goroutine's stack was mapped: return and retry.
    Grown,
    /// Not a goroutine stack fault: report it as an exception.
    NotOurs,
    /// In the stack region but not the running goroutine's own stack (a dangling pointer
    /// into a dead or other goroutine's stack, or the scheduler touching one).
    Foreign,
}

/// The page-fault handler's first question (x86/interrupts.rs): is this the running goroutine
/// growing its stack? Maps the page and returns [`Fault::Grown`] if so. A fault in the guard
/// page is the goroutine's stack overflow: reported in Go's words, and the program ends.
pub fn on_page_fault(addr: u64, present: bool, at: rt_core::traceback::Start) -> Fault {
    let start = crate::x86::tsc::nanos();
    if !(REGION_START..NEXT.load(Ordering::Relaxed)).contains(&addr) {
        return Fault::NotOurs;
    }
    let Some(cpu) = percpu::current() else {
        return Fault::Foreign;
    };
    let m = cpu.m.load(Ordering::Relaxed) as *mut M;
    // SAFETY: `m` is the M running on this CPU (or null) and this is its fault handler; the
    // G's stack bounds were written by this CPU before it ran the G.
    let Some(gp) = (unsafe { rt_core::platform::running_g(m) }) else {
        return Fault::Foreign;
    };
    let stack = gp.stack();
    if stack.is_empty() {
        return Fault::Foreign;
    }
    let base = stack.lo as u64 - PAGE;
    let top = top_of(&stack);
    if !(base..top).contains(&addr) {
        return Fault::Foreign;
    }
    if addr < base + PAGE {
        // The guard page: the goroutine ran past its maximum stack (with no safe point on the
        // way that would have caught it at `stackguard0`).
        crate::dev::console::print_fatal(format_args!(
            "runtime: goroutine stack ran into its guard page at {addr:#x}\n"
        ));
        // SAFETY: gp is the running goroutine.
        unsafe { rt_core::platform::stack_overflow(gp, at) }
    }
    // LAB(stackgrow) begin: growing the stack by one page
    // LAB(stackgrow) hint: Chapter 8. This is the running goroutine's own stack, above its
    // LAB(stackgrow) hint: guard page. A fault on a page that is present is a protection fault,
    // LAB(stackgrow) hint: not growth: Fault::NotOurs. Else map the page holding `addr`
    // LAB(stackgrow) hint: (addr rounded down to PAGE) with paging::map_fault_page(.., FLAGS);
    // LAB(stackgrow) hint: AlreadyMapped is fine (another fault got there first), OutOfFrames
    // LAB(stackgrow) hint: and LockHeld are fatal (rt_core::platform::fatal_at(.., Some(at)),
    // LAB(stackgrow) hint: naming the goroutine: its traceback starts where it faulted). Then
    // LAB(stackgrow) hint: lower header(top).lowest to the page (fetch_min), count it (MAPPED,
    // LAB(stackgrow) hint: cpu.stack_faults, cpu.stack_fault_ns since `start`), Fault::Grown.
    // LAB(stackgrow) stub: let _ = (present, top, start, cpu, &MAPPED, FLAGS);
    // LAB(stackgrow) stub: Fault::NotOurs
    if present {
        // A protection fault on a mapped stack page (say, executing it): not growth.
        return Fault::NotOurs;
    }
    let page = addr & !(PAGE - 1);
    match paging::map_fault_page(VirtAddr::new(page), FLAGS) {
        Ok(()) | Err(FaultMapError::AlreadyMapped) => {}
        Err(FaultMapError::OutOfFrames) => {
            let goid = gp.goid();
            rt_core::platform::fatal_at(
                format_args!(
                    "out of memory: cannot grow goroutine {goid}'s stack at {addr:#x} (no free frame)"
                ),
                Some(at),
            )
        }
        Err(FaultMapError::LockHeld(which)) => {
            let goid = gp.goid();
            rt_core::platform::fatal_at(
                format_args!(
                    "goroutine {goid} grew its stack while holding the {which} lock (at {addr:#x})"
                ),
                Some(at),
            )
        }
    }
    header(top).lowest.fetch_min(page, Ordering::Relaxed);
    MAPPED.fetch_add(1, Ordering::Relaxed);
    cpu.stack_faults.fetch_add(1, Ordering::Relaxed);
    cpu.stack_fault_ns
        .fetch_add(crate::x86::tsc::nanos() - start, Ordering::Relaxed);
    Fault::Grown
    // LAB(stackgrow) end
}

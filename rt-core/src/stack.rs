//! Goroutine stacks: their shape ([`Stack`], the guard constants), where they come from and
//! go to (Go's `stackalloc`/`stackfree` with the per-P `stackcache` and the global
//! `stackpool`, stack.go), and the report of an overflow.
//!
//! Rust stacks cannot move (references point into them), so Go's copying growth is not an
//! option: a stack is a fixed virtual range with an inaccessible guard below it, backed
//! lazily by the platform (the kernel maps pages on demand, the host's regions commit them as
//! touched, host/stacks.rs). A G gets its stack when it first runs, not at spawn, and gives it back at exit.
//!
//! Invariants: a stack is on at most one of: a G, a P's `stackcache` (owned by the M holding
//! the P), the global `stackpool` (its own lock). `stackcache_resident` is the sum of the
//! platform's resident counts of the stacks in the cache when they were cached.

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use crate::g::G;
use crate::p::P;
use crate::platform;
use crate::sched::Sched;

/// Go's `stackPreempt` (stack.go: `uintptrMask & -1314`): a `stackguard0` value above every
/// real stack address, so the one comparison `sp < stackguard0` at a safe point catches both a
/// stack about to overflow and a preemption request.
pub const STACK_PREEMPT: usize = 0xffff_ffff_ffff_fade;

// Checked at compile time: above every user-space address and every kernel stack address.
const _: () = assert!(STACK_PREEMPT > 0xffff_ff80_0000_0000);

/// Bytes kept between `stack.lo` and `stackguard0`: a safe point that finds less than this
/// left reports an overflow before the guard page is hit (Go: `stackGuard`, 928 bytes × the
/// OS multiplier; ours is larger because Rust frames are larger than Go's).
pub const STACK_GUARD: usize = 16 * 1024;

/// A goroutine stack: `[lo, hi)`, growing down from `hi`. Go's `stack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stack {
    pub lo: usize,
    pub hi: usize,
}

impl Stack {
    pub const EMPTY: Stack = Stack { lo: 0, hi: 0 };

    pub fn is_empty(&self) -> bool {
        self.hi == 0
    }

    pub fn size(&self) -> usize {
        self.hi - self.lo
    }
}

/// Free stacks kept per P (Go's stack cache holds up to 32 KiB per size class; ours counts
/// stacks).
pub const STACK_CACHE_MAX: usize = 32;

/// Resident bytes the stacks in one P's cache may hold before their deep pages are released
/// (`Platform::stack_trim`). 32 one-page stacks are 128 KiB; the rest is room for stacks that
/// grew, so a P that runs deep goroutines back to back reuses their pages instead of
/// faulting them in again each time.
pub const STACK_CACHE_BUDGET: usize = 512 * 1024;

/// The default usable size of a goroutine stack (the platform adds a guard page below). Rust
/// frames are larger than Go's and our stacks cannot grow by copying, so this is the maximum,
/// not the start: on the host it is virtual memory, committed page by page as it is touched.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// A stack for a G about to run for the first time: from the P's cache (refilled in a batch
/// from the global pool), else from the platform. Go's `stackalloc` with its per-P
/// `stackcache` and global `stackpool`.
///
/// # Safety
/// `sched` is a live runtime and `pp` its P held by the current M.
pub(crate) unsafe fn stackalloc(sched: *const Sched, pp: *mut P) -> Stack {
    // SAFETY: the caller's promise: the runtime is live (it is shared: atomics and locks).
    let sched = unsafe { &*sched };
    if sched.stack_cache.load(Ordering::Relaxed) {
        // SAFETY: only the M holding a P touches the P's stack cache (these two fields), and
        // the current M holds pp.
        let (cache, resident) = unsafe { (&mut (*pp).stackcache, &mut (*pp).stackcache_resident) };
        if cache.is_empty() {
            let mut pool = sched.stackpool.lock();
            let n = pool.len().min(STACK_CACHE_MAX / 2);
            let at = pool.len() - n;
            cache.extend(pool.drain(at..));
            drop(pool);
            *resident = resident_of(cache);
        }
        if let Some(s) = cache.pop() {
            let r = platform::get().stack_resident(&s).unwrap_or(0);
            *resident = resident.saturating_sub(r);
            return s;
        }
    }
    let size = sched.stack_size;
    sched.stats.nstackalloc.fetch_add(1, Ordering::Relaxed);
    platform::get().stack_alloc(size).unwrap_or_else(|| {
        platform::fatal(format_args!(
            "out of memory allocating a {size}-byte goroutine stack"
        ))
    })
}

pub(crate) fn resident_of(stacks: &[Stack]) -> usize {
    let plat = platform::get();
    stacks
        .iter()
        .map(|s| plat.stack_resident(s).unwrap_or(0))
        .sum()
}

/// Free stacks kept in the global pool; beyond this they go back to the platform.
pub(crate) const STACK_POOL_MAX: usize = 4096;

/// Returns a stack to the P's cache (Go's `stackfree`). Three limits keep the cache from
/// hoarding memory:
/// - resident bytes: past [`STACK_CACHE_BUDGET`], the deep pages of every cached stack are
///   released in one batch (`Platform::stack_trim`: in the kernel, one TLB shootdown), and
///   the top pages stay mapped for the next goroutine;
/// - count: past [`STACK_CACHE_MAX`], half the cache is trimmed and moved to the global pool
///   (Go's `stackcacherelease`), so pooled stacks hold one page each;
/// - the pool: past `STACK_POOL_MAX`, stacks go back to the platform.
///
/// With the cache switched off (`Sched::stack_cache`, for measuring what it saves) every
/// stack goes straight back to the platform.
///
/// # Safety
/// `sched` is a live runtime and `pp` its P held by the current M; `stack` came from
/// [`stackalloc`] and nothing runs on it.
pub(crate) unsafe fn stackfree(sched: *const Sched, pp: *mut P, stack: Stack) {
    if stack.is_empty() {
        return;
    }
    let plat = platform::get();
    // SAFETY: the caller's promise: the runtime is live (it is shared: atomics and locks).
    let sched = unsafe { &*sched };
    if !sched.stack_cache.load(Ordering::Relaxed) {
        sched.stats.nstackfree.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's promise: nothing runs on `stack`, and it came from the
        // platform (directly or through a cache).
        unsafe { plat.stack_free(&[stack]) };
        return;
    }
    // SAFETY: only the M holding a P touches the P's stack cache (these two fields), and the
    // current M holds pp.
    let (cache, resident) = unsafe { (&mut (*pp).stackcache, &mut (*pp).stackcache_resident) };
    cache.push(stack);
    *resident += plat.stack_resident(&stack).unwrap_or(0);
    if *resident > STACK_CACHE_BUDGET {
        // SAFETY: no goroutine runs on a cached stack.
        let released = unsafe { plat.stack_trim(cache) };
        sched
            .stats
            .nstacktrimmed
            .fetch_add(released as u64, Ordering::Relaxed);
        *resident = resident_of(cache);
    }
    if cache.len() > STACK_CACHE_MAX {
        let half = cache.len() / 2;
        let spill: Vec<Stack> = cache.drain(..half).collect();
        // SAFETY: as above: these were cached, unused.
        let released = unsafe { plat.stack_trim(&spill) };
        sched
            .stats
            .nstacktrimmed
            .fetch_add(released as u64, Ordering::Relaxed);
        *resident = resident_of(cache);
        let mut pool = sched.stackpool.lock();
        let room = STACK_POOL_MAX.saturating_sub(pool.len()).min(spill.len());
        pool.extend_from_slice(&spill[..room]);
        drop(pool);
        if room < spill.len() {
            sched
                .stats
                .nstackfree
                .fetch_add((spill.len() - room) as u64, Ordering::Relaxed);
            // SAFETY: these left the cache and the pool: unused, and given back once.
            unsafe { plat.stack_free(&spill[room..]) };
        }
    }
}

/// Reports a goroutine that ran out of stack and ends the program, in Go's words (stack.go
/// `newstack`: "goroutine stack exceeds N-byte limit", then `throw("stack overflow")` and the
/// goroutine's traceback). Called by `morestack` when a safe point finds the stack low, by the
/// kernel's page-fault handler and the host's SIGSEGV handler when the guard page is hit;
/// `at` is where the goroutine stood (the faulting instruction, or the safe point).
///
/// # Safety
/// `gp` is the goroutine that overflowed, live (it is running), and `at` lies on its stack.
#[cold]
pub unsafe fn stack_overflow(gp: *const G, at: crate::traceback::Start) -> ! {
    // SAFETY: the caller's promise.
    let g = unsafe { &*gp };
    let _ = core::fmt::write(
        &mut platform::Console,
        format_args!(
            "runtime: goroutine stack exceeds {}-byte limit\nruntime: sp={:#x} stack=[{:#x}, {:#x})\n",
            g.stack.size(),
            at.sp,
            g.stack.lo,
            g.stack.hi
        ),
    );
    platform::fatal_at(format_args!("stack overflow"), Some(at))
}

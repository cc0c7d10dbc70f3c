//! Goroutine stacks on the host: where `Platform::stack_alloc` and `stack_free` get and put
//! them, and the fault handler that turns a guard-page hit into Go's "stack overflow". Go's
//! counterparts: the heap's stack spans (stack.go `stackalloc` → mheap.go `allocManual`),
//! the scavenger that gives freed pages back (mgcscavenge.go), and the SIGSEGV path of
//! signal_unix.go `sighandler` that reports a fault on a goroutine's stack.
//!
//! A stack is a *slot*: one guard page, then `size` usable bytes. Slots are carved, in order,
//! from *regions*: 1 GiB anonymous `MAP_NORESERVE` reservations (address space, not memory).
//! Each slot's guard is a guard marker (`madvise(MADV_GUARD_INSTALL)`, Linux 6.13), which
//! faults like a `PROT_NONE` page but does not split the mapping. So a million stacks are a
//! few hundred mappings, where one `mmap` + `mprotect` per stack made two each and Linux stops
//! a process at `vm.max_map_count` (65,530 by default), about 32,000 goroutines.
//!
//! Memory is committed by the page fault that first touches it, as before: a parked goroutine
//! that used one page of its stack holds one page. A freed slot goes on the *hot* list with its
//! pages kept (reused first, like Go reusing a span before the scavenger gets to it); past
//! [`HOT_MAX`] slots, the older half is released with `MADV_DONTNEED` (which keeps guard
//! markers), adjacent slots merged into one call, and moves to the *cold* list.
//!
//! On a kernel without guard markers (`madvise` answers `EINVAL`) the first allocation falls
//! back to one mapping per stack (`mmap`, `mprotect` for the guard, `munmap` when freed); when
//! that hits the mapping limit, the fatal error names `vm.max_map_count`, its value and the
//! sysctl that raises it, rather than "out of memory".
//!
//! Invariants: a slot is in exactly one place: handed out (a `Stack`), on `hot`, or on
//! `cold`. Every slot on `hot` or `cold` has its guard installed; every slot on `cold` holds
//! no pages. Regions are never unmapped. Guarded by `POOLS` (all fields of every [`Pool`]).

use std::ptr::null_mut;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, Once};
use std::vec::Vec;

use crate::stack::Stack;

pub(crate) const PAGE: usize = 4096;

/// Address space reserved at a time for slots of one size.
const REGION: usize = 1 << 30;

/// Freed slots whose pages are kept for the next stack of their size (the rest are released).
/// 64 stacks of one page each is 256 KiB; deep ones can hold more, bounded by their size.
pub(crate) const HOT_MAX: usize = 64;

/// `madvise` advice that installs guard markers (Linux 6.13: include/uapi/asm-generic/
/// mman-common.h, `MADV_GUARD_INSTALL` = 102). `libc` does not name it yet.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// Which scheme this process uses (decided at the first allocation).
static MODE: AtomicU8 = AtomicU8::new(UNDECIDED);
const UNDECIDED: u8 = 0;
/// Slots in regions, guard markers.
const REGIONS: u8 = 1;
/// One mapping per stack, an `mprotect`ed guard (kernels before 6.13).
const MAPPINGS: u8 = 2;

/// The slots of one usable size.
struct Pool {
    size: usize,
    /// The next never-used slot of the newest region, and that region's end.
    next: usize,
    end: usize,
    /// Freed slots with their pages kept (newest last), and released ones.
    hot: Vec<usize>,
    cold: Vec<usize>,
}

static POOLS: Mutex<Vec<Pool>> = Mutex::new(Vec::new());

/// Makes this process use one mapping per stack, as on a kernel without guard markers (for
/// the tests of that path). Call before the first goroutine starts.
#[doc(hidden)]
pub fn use_one_mapping_per_stack() {
    MODE.store(MAPPINGS, Ordering::Relaxed);
}

/// A stack of `size` usable bytes (a multiple of the page size), or `None` when the address
/// space is exhausted.
pub(crate) fn alloc(size: usize) -> Option<Stack> {
    if MODE.load(Ordering::Relaxed) != MAPPINGS {
        if let Some(s) = alloc_slot(size) {
            return Some(s);
        }
        if MODE.load(Ordering::Relaxed) != MAPPINGS {
            return None;
        }
    }
    alloc_mapping(size)
}

/// Gives stacks back.
///
/// # Safety
/// Each came from [`alloc`], is given back once, and no goroutine runs on it.
pub(crate) unsafe fn free(stacks: &[Stack]) {
    if MODE.load(Ordering::Relaxed) == MAPPINGS {
        for s in stacks {
            // SAFETY: the caller's promise: in this mode each stack is its own mapping, with
            // its guard page below `lo`, and it is unused.
            unsafe { libc::munmap((s.lo - PAGE) as *mut libc::c_void, s.size() + PAGE) };
        }
        return;
    }
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    for s in stacks {
        let pool = pool_for(&mut pools, s.size());
        pool.hot.push(s.lo - PAGE);
        if pool.hot.len() > HOT_MAX {
            let old: Vec<usize> = pool.hot.drain(..HOT_MAX / 2).collect();
            // SAFETY: these slots were freed by their users (the caller's promise, now or in
            // an earlier call) and sit on no list but `old`.
            unsafe { release(&old, pool.size + PAGE) };
            pool.cold.extend(old);
        }
    }
}

fn pool_for(pools: &mut Vec<Pool>, size: usize) -> &mut Pool {
    let i = match pools.iter().position(|p| p.size == size) {
        Some(i) => i,
        None => {
            pools.push(Pool {
                size,
                next: 0,
                end: 0,
                hot: Vec::new(),
                cold: Vec::new(),
            });
            pools.len() - 1
        }
    };
    &mut pools[i]
}

/// Returns the pages of `slots` (each `slot_bytes` long, guard included) to the system,
/// one `madvise` per run of adjacent slots.
///
/// # Safety
/// No goroutine runs on any of these slots.
unsafe fn release(slots: &[usize], slot_bytes: usize) {
    let mut sorted = slots.to_vec();
    sorted.sort_unstable();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start + slot_bytes;
        i += 1;
        while i < sorted.len() && sorted[i] == end {
            end += slot_bytes;
            i += 1;
        }
        // SAFETY: [start, end) is whole unused slots inside our regions; MADV_DONTNEED drops
        // their pages (they read as zero again) and keeps their guard markers.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// A slot from the pool of `size`; `None` with `MODE` set to `MAPPINGS` if this kernel has no
/// guard markers, or `None` when no region can be reserved.
fn alloc_slot(size: usize) -> Option<Stack> {
    let slot = size + PAGE;
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    let pool = pool_for(&mut pools, size);
    if let Some(b) = pool.hot.pop().or_else(|| pool.cold.pop()) {
        return Some(Stack {
            lo: b + PAGE,
            hi: b + slot,
        });
    }
    if pool.next + slot > pool.end {
        let bytes = REGION.max(slot);
        // SAFETY: a fresh anonymous private reservation; nothing else refers to it.
        let r = unsafe {
            libc::mmap(
                null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if r == libc::MAP_FAILED {
            return None;
        }
        pool.next = r as usize;
        pool.end = r as usize + bytes;
    }
    // A batch of never-used slots, prepared outside the lock: their guards installed and
    // their top pages (which a new goroutine writes at once) committed, a system call each
    // for the whole batch. The first is ours; the rest go on the hot list.
    let n = CARVE.min((pool.end - pool.next) / slot);
    let first = pool.next;
    pool.next += n * slot;
    drop(pools);
    let slots: Vec<usize> = (0..n).map(|i| first + i * slot).collect();
    // SAFETY: these slots were just carved from our reservation and nothing else refers to
    // them.
    if let Err(e) = unsafe { prepare(&slots, size) } {
        if e.raw_os_error() == Some(libc::EINVAL) {
            MODE.store(MAPPINGS, Ordering::Relaxed);
        }
        return None;
    }
    MODE.store(REGIONS, Ordering::Relaxed);
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    pool_for(&mut pools, size).hot.extend(&slots[1..]);
    Some(Stack {
        lo: first + PAGE,
        hi: first + slot,
    })
}

/// Never-used slots carved at a time (one `process_madvise` call installs their guards).
const CARVE: usize = 64;

/// `process_madvise` advice for this process's own memory is allowed for any advice since
/// Linux 6.13 (mm/madvise.c); `MADV_POPULATE_WRITE` (Linux 5.14, = 23) commits pages as a
/// write fault would, without taking the faults.
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// Installs the guard of every slot in `slots` and commits each one's top page. Batched with
/// `process_madvise` where the kernel allows it, else one `madvise` per slot. An error means
/// a guard could not be installed (`EINVAL`: no guard markers in this kernel).
///
/// # Safety
/// The slots are ours (inside a region) and unused.
unsafe fn prepare(slots: &[usize], size: usize) -> std::io::Result<()> {
    let guards: Vec<libc::iovec> = slots
        .iter()
        .map(|&b| libc::iovec {
            iov_base: b as *mut libc::c_void,
            iov_len: PAGE,
        })
        .collect();
    let tops: Vec<libc::iovec> = slots
        .iter()
        .map(|&b| libc::iovec {
            iov_base: (b + size) as *mut libc::c_void,
            iov_len: PAGE,
        })
        .collect();
    // SAFETY: the caller's promise: every range is a page of an unused slot of ours.
    if unsafe { process_madvise(&guards, MADV_GUARD_INSTALL) }.is_err() {
        for g in &guards {
            // SAFETY: as above, one page at a time.
            if unsafe { libc::madvise(g.iov_base, PAGE, MADV_GUARD_INSTALL) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    // Committing the top pages is only an optimisation: a failure leaves them to fault in.
    // SAFETY: as above.
    let _ = unsafe { process_madvise(&tops, MADV_POPULATE_WRITE) };
    Ok(())
}

/// `process_madvise(2)` on this process: `advice` on every range, in one call.
///
/// # Safety
/// Every range is memory of ours that `advice` may be applied to.
unsafe fn process_madvise(ranges: &[libc::iovec], advice: libc::c_int) -> std::io::Result<()> {
    static PIDFD: std::sync::OnceLock<libc::c_int> = std::sync::OnceLock::new();
    let pidfd = *PIDFD.get_or_init(|| {
        // SAFETY: pidfd_open on our own pid, no memory arguments; -1 on failure.
        unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) as libc::c_int }
    });
    if pidfd < 0 {
        return Err(std::io::Error::from_raw_os_error(libc::ENOSYS));
    }
    let want: usize = ranges.iter().map(|r| r.iov_len).sum();
    // SAFETY: `ranges` is a live array of iovecs (at most CARVE, under UIO_MAXIOV = 1024);
    // the caller vouches for the memory they name.
    let done = unsafe {
        libc::syscall(
            libc::SYS_process_madvise,
            pidfd,
            ranges.as_ptr(),
            ranges.len(),
            advice,
            0,
        )
    };
    if done < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if done as usize != want {
        return Err(std::io::Error::from_raw_os_error(libc::EAGAIN));
    }
    Ok(())
}

/// A stack that is its own mapping, its guard page `mprotect`ed (kernels before 6.13).
fn alloc_mapping(size: usize) -> Option<Stack> {
    // SAFETY: an anonymous private mapping; nothing else refers to it.
    let base = unsafe {
        libc::mmap(
            null_mut(),
            size + PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        map_limit_check();
        return None;
    }
    // The guard page: a stack overflow faults here instead of corrupting memory.
    // SAFETY: the first page of the mapping just made.
    if unsafe { libc::mprotect(base, PAGE, libc::PROT_NONE) } != 0 {
        // SAFETY: the mapping just made, unused.
        unsafe { libc::munmap(base, size + PAGE) };
        map_limit_check();
        return None;
    }
    let lo = base as usize + PAGE;
    Some(Stack { lo, hi: lo + size })
}

/// After `mmap` or `mprotect` failed with one mapping per stack: if the cause is the mapping
/// limit (ENOMEM with the map count at the limit), says so and ends the program.
fn map_limit_check() {
    if std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOMEM) {
        return;
    }
    let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok());
    let count = std::fs::read_to_string("/proc/self/maps").map_or(0, |s| s.lines().count());
    if let Some(limit) = limit {
        if count + 16 >= limit {
            crate::platform::fatal(format_args!(
                "cannot map a goroutine stack: the process has {count} memory mappings and \
                 vm.max_map_count is {limit}\n(this kernel has no MADV_GUARD_INSTALL, so each \
                 goroutine stack takes 2 mappings; raise the limit with \
                 `sysctl -w vm.max_map_count={}`, or run on Linux 6.13 or later)",
                (limit * 4).max(262_144)
            ));
        }
    }
}

/// The handler that was installed for SIGSEGV before ours (std's stack-overflow reporter).
static mut PREV_SEGV: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();

/// Installs, once per process (`Runtime::block_on` calls it before any goroutine runs), a
/// SIGSEGV handler that reports a goroutine's guard-page hit as
/// Go's "stack overflow" (stack.rs `stack_overflow`) and passes every other fault on.
pub(crate) fn install_fault_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value to fill in.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = on_fault;
        sa.sa_sigaction = handler as usize;
        // On the thread's alternate signal stack (std gives every thread it starts one): the
        // goroutine's own stack is the one that ran out.
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: PREV_SEGV is written only here, once (the `Once`), before the handler that
        // reads it can run; `sa` is a valid action.
        unsafe { libc::sigaction(libc::SIGSEGV, &sa, (&raw mut PREV_SEGV).cast()) };
    });
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for a SA_SIGINFO handler; for SIGSEGV its
    // fault address is set.
    let addr = unsafe { (*info).si_addr() } as usize;
    let m = crate::m::host_current_m();
    // SAFETY: `m` is this thread's M (or null) and this is its synchronous fault.
    if let Some(gp) = unsafe { crate::platform::running_g(m) } {
        let lo = gp.stack.lo;
        if !gp.stack.is_empty() && addr < lo && addr >= lo - PAGE {
            // SAFETY: for a SA_SIGINFO handler the third argument is the interrupted context.
            let r = unsafe { (*(ctx as *const libc::ucontext_t)).uc_mcontext.gregs };
            let at = crate::traceback::Start {
                pc: r[libc::REG_RIP as usize] as usize,
                ret: false,
                bp: r[libc::REG_RBP as usize] as usize,
                sp: r[libc::REG_RSP as usize] as usize,
            };
            // SAFETY: gp is the goroutine running on this thread (running_g).
            unsafe { crate::stack::stack_overflow(gp, at) }
        }
    }
    // Not a goroutine's guard: hand the fault to the previous handler by reinstalling it;
    // returning re-runs the faulting instruction, which faults again into that handler.
    // SAFETY: PREV_SEGV was filled by `install_fault_handler` before this handler existed.
    unsafe { libc::sigaction(sig, (&raw const PREV_SEGV).cast(), null_mut()) };
}

//! M: a machine, the thing that executes code: an OS thread on the host, a CPU core in the
//! kernel. Go's `m` in runtime2.go.
//!
//! Each M has a g0: the scheduler's own context, on the M's own stack (the thread's stack, or
//! the CPU's boot stack). `schedule` runs on g0; a G that parks, yields or exits switches to
//! g0 with a request (mcall.rs, Go's `mcall(fn)` argument) and g0 carries it out once the G
//! is off its stack, which is what makes handing the G to another M safe.
//!
//! Ownership, as the groups in [`M`] say: fields fixed at creation; fields owned by the M's
//! own thread (or CPU); `schedlink` under `sched.lock`; and atomics, some of which other Ms
//! write (`nextp`, `spinning` and `park`, by `startm` before `notewakeup`) and some of which
//! sysmon or the timer interrupt read (`curg`, `locks`).

use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, Ordering};

use crate::g::G;
use crate::p::P;
use crate::platform;
use crate::sched::Sched;

/// A one-shot sleep/wake-up (Go's `note`, lock_futex.go): `notesleep` returns once
/// `notewakeup` has been called; `noteclear` re-arms it.
pub struct Note {
    key: AtomicU32,
}

impl Note {
    pub const fn new() -> Self {
        Note {
            key: AtomicU32::new(0),
        }
    }

    pub fn clear(&self) {
        self.key.store(0, Ordering::Relaxed);
    }

    pub fn wakeup(&self) {
        if self.key.swap(1, Ordering::Release) != 0 {
            platform::fatal(format_args!("notewakeup - double wakeup"));
        }
        platform::get().futex_wake(&self.key);
    }

    pub fn is_set(&self) -> bool {
        self.key.load(Ordering::Acquire) != 0
    }

    /// One wait on the platform (which may return spuriously, or on any interrupt in the
    /// kernel): for sleepers that have other things to check between waits.
    pub(crate) fn sleep_once(&self) {
        if !self.is_set() {
            platform::get().futex_sleep(&self.key);
        }
    }
}

impl Default for Note {
    fn default() -> Self {
        Self::new()
    }
}

/// A machine. Go's `m`. Fields are grouped by what guards them.
pub struct M {
    // --- Fixed at creation.
    pub(crate) id: i64,
    /// The scheduler context. Its `sched` gobuf holds the g0 loop while a G runs.
    pub(crate) g0: *mut G,
    /// The runtime this M belongs to (Go has one global `sched`; we may have several runtimes
    /// one after another).
    pub(crate) runtime: *const Sched,

    // --- Owned by the M's own thread (or CPU).
    /// The P held, or null (Go's `p`).
    pub(crate) p: *mut P,
    /// The P held before a syscall (Go's `oldp`).
    pub(crate) oldp: *mut P,
    /// The request a G left for g0 (mcall.rs).
    pub(crate) req: crate::mcall::Req,
    /// State of this M's random number generator (Go's `cheaprand`).
    pub(crate) rand: u64,

    // --- `sched.lock` must be held to use this.
    /// Idle-M list link (Go's `schedlink`).
    pub(crate) schedlink: *mut M,

    // --- Atomic: written by this M, read by others (sysmon, the timer interrupt, scheddetail).
    /// The G running on this M, or null while on g0.
    pub(crate) curg: AtomicPtr<G>,
    /// Runtime locks held; > 0 means "do not preempt this M" (Go's `locks`).
    pub(crate) locks: AtomicI32,
    /// Asleep on `park` (Go's `blocked`, set around `notesleep`).
    pub(crate) blocked: AtomicBool,

    // --- Atomic: written by other Ms to start this one (`startm`), before `park.wakeup()`.
    /// The P to take when woken (Go's `nextp`).
    pub(crate) nextp: AtomicPtr<P>,
    /// Looking for work to steal (Go's `spinning`); counted in `sched.nmspinning`.
    pub(crate) spinning: AtomicBool,
    /// Where an idle M sleeps (Go's `park`).
    pub(crate) park: Note,

    // --- Written only by the platform's interrupt handler on this M's CPU or thread
    //     (preempt.rs, `want_async_preempt`): what it saw at its previous tick.
    /// The G that was flagged for preemption at the previous tick (null: none).
    pub(crate) async_seen_g: AtomicPtr<G>,
    /// Its P's `schedtick` then (the same G in a new time slice starts afresh).
    pub(crate) async_seen_tick: AtomicU32,
    /// The OS thread id of the M's thread on the host (Go's `m.procid`), which sysmon's
    /// preemption signal is sent to (host/signal.rs); written by that thread when it becomes
    /// the M (`setm`), read by sysmon. 0 in the kernel (an M is a CPU there).
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) procid: core::sync::atomic::AtomicI32,

    // --- Owned by the M's own thread (or CPU), never touched from its interrupt handlers.
    /// The execution tracer's buffer (tracer.rs).
    pub(crate) trace: crate::tracer::MTrace,
}

// SAFETY: an M is shared between its own thread and others that wake it; the ownership rules
// in the module comment say which fields each may touch.
unsafe impl Send for M {}
// SAFETY: as for `Send` above.
unsafe impl Sync for M {}

impl M {
    pub(crate) fn new(id: i64, g0: *mut G, runtime: *const Sched) -> M {
        M {
            id,
            g0,
            runtime,
            p: null_mut(),
            oldp: null_mut(),
            req: crate::mcall::Req::None,
            rand: 0x9e37_79b9_7f4a_7c15 ^ (id as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9),
            schedlink: null_mut(),
            curg: AtomicPtr::new(null_mut()),
            locks: AtomicI32::new(0),
            blocked: AtomicBool::new(false),
            nextp: AtomicPtr::new(null_mut()),
            spinning: AtomicBool::new(false),
            park: Note::new(),
            async_seen_g: AtomicPtr::new(null_mut()),
            async_seen_tick: AtomicU32::new(0),
            procid: core::sync::atomic::AtomicI32::new(0),
            trace: crate::tracer::MTrace::new(id as u16),
        }
    }

    /// The M's id (Go's `m.id`): M0 is the thread or CPU that started the runtime.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Whether the M holds a runtime lock (or otherwise holds preemption off) right now: for
    /// an interrupt handler deciding whether it may wait for a runtime lock.
    pub fn holds_locks(&self) -> bool {
        self.locks.load(Ordering::Relaxed) > 0
    }
}

/// A fast per-M pseudo-random number (wyrand; Go's `cheaprand` is also wyrand-based). Takes
/// the M by pointer and borrows only its `rand` field: other Ms read this M's atomics
/// meanwhile, so no reference to the whole M may be made.
///
/// # Safety
/// `m` is the current M (its `rand` is its own).
pub(crate) unsafe fn cheaprand(m: *mut M) -> u32 {
    // SAFETY: the caller's promise; only the M's own thread touches `rand`.
    let rand = unsafe { &mut (*m).rand };
    *rand = rand.wrapping_add(0xa076_1d64_78bd_642f);
    let t = (*rand as u128).wrapping_mul((*rand ^ 0xe703_7ed1_a0b4_28db) as u128);
    ((t >> 64) ^ t) as u32
}

#[cfg(feature = "std")]
#[thread_local]
/// The current M on the host: read directly (one `%fs`-relative load), because this is on
/// every runtime path; the host platform's `current_m` reads the same variable. A plain
/// `#[thread_local]` (not `thread_local!`) so that [`acquire_current_m_host`] can address it
/// from assembly.
static mut CURRENT_M: *mut M = null_mut();

/// The current M (null outside the runtime). Go keeps `g` in a register (R14) for the same
/// reason this is kept cheap.
///
/// Never inlined, on purpose: a goroutine can move to another thread inside any runtime call
/// (a switch), but LLVM treats a thread-local's address as constant within a function, so an
/// inlined read after a switch could reuse the address computed on the previous thread and
/// return that thread's M. A call that reads memory cannot be merged across the switch (an
/// asm block that clobbers memory), and inside it the thread-local is computed afresh.
/// (The same hazard applies to `thread_local!` data in goroutine code: see `host`.)
#[inline(never)]
pub fn getm() -> *mut M {
    #[cfg(feature = "std")]
    {
        // SAFETY: a thread-local pointer, read on its own thread.
        unsafe { CURRENT_M }
    }
    #[cfg(not(feature = "std"))]
    {
        platform::get().current_m()
    }
}

/// Records the M running on this thread (or CPU).
pub(crate) fn setm(m: *mut M) {
    #[cfg(feature = "std")]
    {
        // SAFETY: a thread-local pointer, written on its own thread.
        unsafe { CURRENT_M = m };
        if !m.is_null() {
            // SAFETY: m is live; procid is an atomic. gettid has no preconditions.
            unsafe { (*m).procid.store(libc::gettid(), Ordering::Relaxed) };
        }
    }
    #[cfg(not(feature = "std"))]
    platform::get().set_current_m(m);
}

/// The host platform's thread-local current M (feature `std`).
#[cfg(feature = "std")]
pub(crate) fn host_current_m() -> *mut M {
    getm()
}

/// Adds `delta` to `m.locks` and returns the new count.
///
/// On the host only the M's own thread writes `locks` (see [`acquire_current_m`]), so a plain
/// load and store do. In the kernel a goroutine can be preempted from the timer interrupt
/// between reading the current M and raising its count, and resume on another CPU: it then
/// raises (and at once lowers) the count of an M it no longer runs on, concurrently with that
/// M's own updates. So there every update is an atomic read-modify-write.
#[inline]
pub(crate) fn locks_add(m: *mut M, delta: i32) -> i32 {
    // SAFETY: callers pass a live M.
    let locks = unsafe { &(*m).locks };
    #[cfg(feature = "std")]
    {
        let n = locks.load(Ordering::Relaxed) + delta;
        locks.store(n, Ordering::Relaxed);
        n
    }
    #[cfg(not(feature = "std"))]
    {
        locks.fetch_add(delta, Ordering::Relaxed) + delta
    }
}

/// The current M, with preemption held off (`locks` raised), so that it stays the current M
/// until [`release_m`]. Null outside the runtime.
///
/// Where goroutines are preempted asynchronously, "read the current M, then raise its
/// `locks`" is a race: the interrupt or signal may come between the two and the goroutine
/// resume on another M, and raise the count of an M it no longer runs on. Go avoids the race
/// by never preempting runtime code asynchronously, which it tells by PC; ours is inlined
/// into the caller's code, so:
/// - in the kernel this raises the count (atomically), then checks that the M is still the
///   current one, and otherwise lowers it again and retries;
/// - on the host both steps are one small assembly routine ([`acquire_current_m_host`]) in
///   which the preemption signal's handler never stops a goroutine (host/signal.rs checks its
///   PC), so the count is raised by the M's own thread, with a plain add, as cheaply as before
///   the host had asynchronous preemption.
#[inline]
pub(crate) fn acquire_current_m() -> *mut M {
    #[cfg(feature = "std")]
    // SAFETY: the routine reads this thread's current M and raises its count; nothing else.
    unsafe {
        acquire_current_m_host()
    }
    #[cfg(not(feature = "std"))]
    loop {
        let m = getm();
        if m.is_null() {
            return m;
        }
        locks_add(m, 1);
        if getm() == m {
            return m;
        }
        locks_add(m, -1);
    }
}

/// Bytes from [`acquire_current_m_host`]'s address in which the preemption signal must not
/// stop a goroutine: the routine (about 25 bytes) with room to spare.
#[cfg(feature = "std")]
pub(crate) const ACQUIRE_ASM_BYTES: usize = 48;

/// The host's `acquire_current_m`: loads this thread's `CURRENT_M` and, if it is not null,
/// adds 1 to its `locks`; returns it. Never stopped by the preemption signal in between
/// (host/signal.rs), so the add lands on the M of the thread that read it.
#[cfg(feature = "std")]
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn acquire_current_m_host() -> *mut M {
    core::arch::naked_asm!(
        "mov rax, qword ptr [rip + {cur}@GOTTPOFF]", // the thread-local's offset from %fs
        "mov rax, qword ptr fs:[rax]",               // CURRENT_M
        "test rax, rax",
        "jz 2f",
        "add dword ptr [rax + {locks}], 1",          // locks += 1, by the M's own thread
        "2:",
        "ret",
        cur = sym CURRENT_M,
        locks = const core::mem::offset_of!(M, locks),
    )
}

/// The current M and its running G, with preemption held off as by [`acquire_current_m`];
/// `None` (nothing held) outside a goroutine.
#[inline]
pub(crate) fn acquire_current_g() -> Option<(*mut M, *mut G)> {
    let m = acquire_current_m();
    if m.is_null() {
        return None;
    }
    // SAFETY: the current M is live, and stays current while preemption is off.
    let gp = unsafe { (*m).curg.load(Ordering::Relaxed) };
    if gp.is_null() {
        locks_add(m, -1);
        return None;
    }
    Some((m, gp))
}

/// The current G (null on g0 or outside the runtime). Go's `getg()` (for a user G).
#[inline]
pub fn getg() -> *mut G {
    match acquire_current_g() {
        Some((m, gp)) => {
            locks_add(m, -1);
            gp
        }
        None => null_mut(),
    }
}

/// `getg` without holding preemption off: in the kernel the answer may belong to another
/// goroutine if an interrupt moved the caller in between. For `preempt_point`'s fast path
/// only, whose slow path checks again properly.
#[inline(always)]
pub(crate) fn getg_racy() -> *mut G {
    let m = getm();
    if m.is_null() {
        return null_mut();
    }
    // SAFETY: Ms live as long as their runtime; curg is an atomic.
    unsafe { (*m).curg.load(Ordering::Relaxed) }
}

/// Go's `acquirem`: disables preemption of the current M (no-op outside the runtime).
#[inline]
pub fn acquirem() {
    acquire_current_m();
}

/// `acquirem` for a caller that knows it is on `m` and cannot move (g0 code, or a G that
/// already holds preemption off). Null: not in the runtime, nothing to do.
#[inline]
pub(crate) fn acquire_m(m: *mut M) {
    if !m.is_null() {
        locks_add(m, 1);
    }
}

/// Go's `releasem`: re-enables preemption; a request that arrived meanwhile (and was put off
/// because the M held a lock) is re-armed so the next safe point honours it. The caller holds
/// preemption off, so the current M is the one it raised.
#[inline]
pub fn releasem() {
    release_m(getm());
}

/// `releasem` for a caller that knows its M.
#[inline]
pub(crate) fn release_m(m: *mut M) {
    if !m.is_null() {
        // SAFETY: as in acquirem; curg, if any, is the G running this code.
        unsafe {
            if locks_add(m, -1) == 0 {
                let gp = (*m).curg.load(Ordering::Relaxed);
                if !gp.is_null() && (*gp).preempt.load(Ordering::Relaxed) {
                    (*gp)
                        .stackguard0
                        .store(crate::stack::STACK_PREEMPT, Ordering::Relaxed);
                }
            }
        }
    }
}

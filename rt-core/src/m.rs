//! M: a machine, the thing that executes code: an OS thread on the host, a CPU core in the
//! kernel. Go's `m` in runtime2.go.
//!
//! Each M has a g0: the scheduler's own context, on the M's own stack (the thread's stack, or
//! the CPU's boot stack). `schedule` runs on g0; a G that parks, yields or exits switches to
//! g0 with a request ([`Req`], Go's `mcall(fn)` argument) and g0 carries it out once the G is
//! off its stack, which is what makes handing the G to another M safe.
//!
//! Ownership: fields without atomics are touched only by the M's own thread, except `schedlink`
//! (under the scheduler lock) and the start-up fields written before the thread starts.
//! `nextp`, `spinning` and `park` are written by other Ms (`startm`) before `notewakeup`.

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

    pub fn sleep(&self) {
        while !self.is_set() {
            self.sleep_once();
        }
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

/// What a G asks its M's g0 to do (Go passes a function to `mcall`; we pass its name).
pub enum Req {
    None,
    /// `gosched`: put the G on the global run queue (Go's `gosched_m`).
    Gosched,
    /// A preemption request was honoured at a safe point (Go's `gopreempt_m`).
    Preempt,
    /// The platform stopped the G from an interrupt, where it stood (Go's `asyncPreempt` →
    /// `gopreempt_m`); the G's full register state is saved on its own stack.
    AsyncPreempt,
    /// `gopark`: the G waits; `unlock(gp, arg)` runs once it is off its stack, and if it
    /// returns false the G resumes at once (Go's `park_m`).
    Park {
        unlock: Option<fn(*mut G, usize) -> bool>,
        arg: usize,
    },
    /// The G's function returned (Go's `goexit0`).
    Exit,
    /// Run this on g0, then resume the G (Go's `systemstack`).
    SystemStack(*mut dyn FnMut()),
    /// The G came back from a syscall and its P was taken (Go's `exitsyscall0`).
    ExitSyscall,
}

/// A machine. Go's `m`.
pub struct M {
    pub id: i64,
    /// The scheduler context. Its `sched` gobuf holds the g0 loop while a G runs.
    pub g0: *mut G,
    /// The G running on this M, or null while on g0. Atomic because sysmon reads it from
    /// another thread to flag the G for preemption.
    pub curg: AtomicPtr<G>,
    /// The P held, or null (Go's `p`).
    pub p: *mut P,
    /// The P to take when woken (Go's `nextp`), set by `startm`.
    pub nextp: AtomicPtr<P>,
    /// The P held before a syscall (Go's `oldp`).
    pub oldp: *mut P,
    /// Looking for work to steal (Go's `spinning`); counted in `sched.nmspinning`.
    pub spinning: AtomicBool,
    /// Where an idle M sleeps (Go's `park`).
    pub park: Note,
    /// Asleep on `park` (Go's `blocked`, set around `notesleep`); read by `scheddetail`.
    pub blocked: AtomicBool,
    /// Runtime locks held; > 0 means "do not preempt this M" (Go's `locks`).
    pub locks: AtomicI32,
    /// Idle-M list link, under the scheduler lock (Go's `schedlink`).
    pub schedlink: *mut M,
    pub sched: *const Sched,
    /// The request a G left for g0.
    pub req: Req,
    /// State of this M's random number generator (Go's `cheaprand`).
    pub rand: u64,
}

// SAFETY: an M is shared between its own thread and others that wake it; the ownership rules
// in the module comment say which fields each may touch.
unsafe impl Send for M {}
unsafe impl Sync for M {}

impl M {
    pub(crate) fn new(id: i64, g0: *mut G, sched: *const Sched) -> M {
        M {
            id,
            g0,
            curg: AtomicPtr::new(null_mut()),
            p: null_mut(),
            nextp: AtomicPtr::new(null_mut()),
            oldp: null_mut(),
            spinning: AtomicBool::new(false),
            park: Note::new(),
            blocked: AtomicBool::new(false),
            locks: AtomicI32::new(0),
            schedlink: null_mut(),
            sched,
            req: Req::None,
            rand: 0x9e37_79b9_7f4a_7c15 ^ (id as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9),
        }
    }

    /// A fast per-M pseudo-random number (wyrand; Go's `cheaprand` is also wyrand-based).
    pub(crate) fn cheaprand(&mut self) -> u32 {
        self.rand = self.rand.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.rand as u128).wrapping_mul((self.rand ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) ^ t) as u32
    }
}

#[cfg(feature = "std")]
std::thread_local! {
    /// The current M on the host: read directly (one `%fs`-relative load), because this is on
    /// every runtime path; the host platform's `current_m` reads the same variable.
    static CURRENT_M: core::cell::Cell<*mut M> = const { core::cell::Cell::new(null_mut()) };
}

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
        CURRENT_M.with(|c| c.get())
    }
    #[cfg(not(feature = "std"))]
    {
        platform::get().current_m()
    }
}

/// Records the M running on this thread (or CPU).
pub(crate) fn setm(m: *mut M) {
    #[cfg(feature = "std")]
    CURRENT_M.with(|c| c.set(m));
    #[cfg(not(feature = "std"))]
    platform::get().set_current_m(m);
}

/// The host platform's thread-local current M (feature `std`).
#[cfg(feature = "std")]
pub(crate) fn host_current_m() -> *mut M {
    CURRENT_M.with(|c| c.get())
}

/// Adds `delta` to `m.locks` and returns the new count.
///
/// On the host only the M's own thread writes `locks`, so a plain load and store do. In the
/// kernel a goroutine can be preempted from the timer interrupt between reading the current
/// M and raising its count, and resume on another CPU: it then raises (and at once lowers)
/// the count of an M it no longer runs on, concurrently with that M's own updates (see
/// [`acquire_current_m`]). So there every update is an atomic read-modify-write.
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
/// Where goroutines can be preempted asynchronously (the kernel), "read the current M, then
/// raise its `locks`" is a race: the interrupt may come between the two and the goroutine
/// resume on another M. So this raises the count, then checks that the M is still the current
/// one, and otherwise lowers it again and retries. Once the check passes, the count is raised
/// on the M the goroutine runs on, which no interrupt will preempt any more. (Go avoids the
/// race by never preempting runtime code asynchronously, which it tells by PC; ours is inlined
/// into the caller's code, so the runtime must be safe at every instruction instead.)
#[inline]
pub(crate) fn acquire_current_m() -> *mut M {
    #[cfg(feature = "std")]
    {
        let m = getm();
        if !m.is_null() {
            locks_add(m, 1);
        }
        m
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
                        .store(crate::g::STACK_PREEMPT, Ordering::Relaxed);
                }
            }
        }
    }
}

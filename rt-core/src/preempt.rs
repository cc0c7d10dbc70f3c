//! Preemption: Go's hybrid of cooperative and asynchronous (preempt.go, and `sysmon` →
//! `retake` → `preemptone` in proc.go, `morestack` → `newstack` in stack.go).
//!
//! - sysmon (a thread on the host; CPU 0's timer tick in the kernel) calls [`retake`]: a G
//!   that has run longer than its time slice gets `preempt` set and `stackguard0 =
//!   STACK_PREEMPT`; a P stuck in a syscall is taken from its M.
//! - Every safe point ([`preempt_point`], and every runtime entry) compares SP with
//!   `stackguard0`: `STACK_PREEMPT` is above every stack, so the one comparison catches both a
//!   request and a stack about to overflow ([`morestack`]).
//! - Code with no safe point (a tight loop) is stopped from an interrupt by the platform, but
//!   only where [`want_async_preempt`] says it is safe: Go's `wantAsyncPreempt` +
//!   `isAsyncSafePoint`. The platform then calls [`async_preempt`] on the G's stack.
//!
//! Invariants: a request is honoured only where the M holds no runtime lock (`m.locks`);
//! one raised while a lock is held is re-armed by `releasem`. Only sysmon writes a P's
//! `sysmontick`, so [`retake`] has one caller at a time.

use crate::status::GStatus;
use core::ptr::null_mut;
use core::sync::atomic::Ordering;
use rt_trace::format::Kind;

use crate::arch;
use crate::idle::handoffp;
use crate::m::M;
use crate::mcall::{mcall, mcall_on, Req};
use crate::p::{PStatus, P};
use crate::sched::Sched;
use crate::stack::STACK_PREEMPT;

/// Go's `forcePreemptNS`: a G that has run this long without a reschedule gets a preemption
/// request from sysmon.
pub const FORCE_PREEMPT_NS: u64 = 10_000_000;

/// How `retake` hands off a P it took from an M stuck in a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// At once (`handoffp`): sysmon is an ordinary thread (the host).
    Now,
    /// Later, by the next M that looks for work: sysmon is an interrupt handler (the kernel's
    /// tick), which must not take the scheduler lock or allocate an M.
    Deferred,
}

/// Go's `sysmon` → `retake`, one pass: asks Gs that have run longer than the time slice
/// (`timeslice_ns`, Go's `forcePreemptNS`) to yield (`preemptone`), and takes Ps from Ms stuck
/// in a syscall. Called by the host's sysmon thread ([`Handoff::Now`]) and, in the kernel, by
/// CPU 0's timer tick ([`Handoff::Deferred`]). One caller at a time: sysmon's memory of each P
/// (Go's `sysmontick`) lives in atomics of the P that only sysmon writes. Reads only atomics,
/// takes no lock and allocates nothing unless it hands a P off [`Handoff::Now`].
pub fn retake(sched: &Sched, now: u64, handoff: Handoff) -> u32 {
    let slice = sched.timeslice_ns.load(Ordering::Relaxed);
    let preempt = sched.preempt_enabled.load(Ordering::Relaxed);
    let mut n = 0;
    for &pp in sched.allp.iter() {
        // SAFETY: Ps live as long as the runtime; only their atomics are used here.
        let pp_ref = unsafe { &*pp };
        let pd = &pp_ref.sysmontick;
        let s = pp_ref.status();
        let mut sysretake = false;
        if s == PStatus::Running || s == PStatus::Syscall {
            let t = pp_ref.schedtick.load(Ordering::Relaxed);
            if pd.schedtick.load(Ordering::Relaxed) != t {
                pd.schedtick.store(t, Ordering::Relaxed);
                pd.schedwhen.store(now, Ordering::Relaxed);
            } else if pd.schedwhen.load(Ordering::Relaxed) + slice <= now {
                if preempt {
                    preempt_p(sched, pp_ref);
                }
                // In a syscall, preemptone has no effect: retake the P below.
                sysretake = true;
            }
        }
        if s == PStatus::Syscall {
            let t = pp_ref.syscalltick.load(Ordering::Relaxed);
            if !sysretake && pd.syscalltick.load(Ordering::Relaxed) != t {
                pd.syscalltick.store(t, Ordering::Relaxed);
                pd.syscallwhen.store(now, Ordering::Relaxed);
                continue;
            }
            // Keep the P if it has nothing to do, someone else can take new work, and the
            // syscall is young (Go: "On the one hand we don't want to retake Ps if there is
            // no other work to do, but on the other hand we want to retake them eventually").
            if pp_ref.runq.is_empty()
                && sched.nmspinning.load(Ordering::Relaxed) + sched.npidle.load(Ordering::Relaxed)
                    > 0
                && pd.syscallwhen.load(Ordering::Relaxed) + 10_000_000 > now
            {
                continue;
            }
            if pp_ref.take_from_syscall() {
                n += 1;
                pp_ref.syscalltick.fetch_add(1, Ordering::Relaxed);
                sched.stats.nretake_syscall.fetch_add(1, Ordering::Relaxed);
                crate::tracer::ev_sysmon(Kind::ProcRetake, pp_ref.id as u64, 0);
                match handoff {
                    Handoff::Now => handoffp(sched, pp),
                    Handoff::Deferred => {
                        pp_ref.retaken.store(true, Ordering::Release);
                        sched.nretaken.fetch_add(1, Ordering::Release);
                    }
                }
            }
        }
    }
    n
}

/// One P that an interrupt-context sysmon retook, now owned by the caller.
pub(crate) fn take_retaken(sched: &Sched) -> Option<*mut P> {
    for &pp in sched.allp.iter() {
        // SAFETY: Ps live as long as the runtime; the swap makes the caller the P's owner.
        if unsafe { (*pp).retaken.swap(false, Ordering::Acquire) } {
            sched.nretaken.fetch_sub(1, Ordering::Relaxed);
            return Some(pp);
        }
    }
    None
}

/// Hands off the Ps that an interrupt-context sysmon retook (`Handoff::Deferred`). Called by
/// Ms looking for work, where taking the scheduler lock and starting an M are allowed.
pub(crate) fn handoff_retaken(sched: &Sched) {
    for &pp in sched.allp.iter() {
        // SAFETY: Ps live as long as the runtime; the swap makes this M the P's only owner.
        if unsafe { (*pp).retaken.swap(false, Ordering::Acquire) } {
            sched.nretaken.fetch_sub(1, Ordering::Relaxed);
            handoffp(sched, pp);
        }
    }
}

/// Asks the G running on `pp` to yield: flagged for its next safe point (`preemptone`) and,
/// where the platform stops Gs by signal (the host), signalled now (Go's `preemptM`; the
/// kernel's tick looks at every CPU by itself). For sysmon and `set_gomaxprocs`.
pub(crate) fn preempt_p(sched: &Sched, pp: &P) {
    preemptone(sched, pp);
    if sched.async_preempt_enabled.load(Ordering::Relaxed) {
        let m = pp.m.load(Ordering::Acquire);
        if !m.is_null() {
            crate::platform::get().preempt_m(m);
        }
    }
}

/// Go's `preemptone`: asks the G running on `pp` to stop at its next safe point.
pub(crate) fn preemptone(sched: &Sched, pp: &P) {
    // LAB(preempt) begin: preemptone, sysmon's request
    // LAB(preempt) hint: Chapter 7. Find the G running on pp: pp.m (an atomic; null: nothing
    // LAB(preempt) hint: runs), then that M's curg. Skip a null curg and g0 (is_g0). Flag the G
    // LAB(preempt) hint: (preempt = true) and set its stackguard0 to STACK_PREEMPT (Release
    // LAB(preempt) hint: stores): the next safe point's comparison then fails and it yields.
    // LAB(preempt) hint: Count it in sched.stats.npreempt_requests. Go: preemptone, proc.go.
    // LAB(preempt) stub: let _ = (sched, pp);
    let m = pp.m.load(Ordering::Acquire);
    if m.is_null() {
        return;
    }
    // SAFETY: Ms and Gs live as long as the runtime. `curg` may change under us; at worst we
    // flag a G that has just been descheduled, and `execute` clears the flag when it runs.
    unsafe {
        let gp = (*m).curg.load(Ordering::Relaxed);
        if gp.is_null() || (*gp).is_g0 {
            return;
        }
        (*gp).preempt.store(true, Ordering::Release);
        (*gp).stackguard0.store(STACK_PREEMPT, Ordering::Release);
        crate::tracer::ev_sysmon(Kind::PreemptRequest, (*gp).goid(), pp.id as u64);
    }
    sched
        .stats
        .npreempt_requests
        .fetch_add(1, Ordering::Relaxed);
    // LAB(preempt) end
}

impl Sched {
    /// For a platform with a spare CPU or thread and no M on it: if sysmon took a P from a
    /// syscall ([`Handoff::Deferred`]) and no M has picked it up, a new M that will run it
    /// (Go's `handoffp` → `startm` → `newm`, which an interrupt-context sysmon may not do).
    /// The caller starts the M on the spare CPU with [`mstart`].
    pub fn new_m_for_retaken(&self) -> Option<*mut M> {
        if self.nretaken.load(Ordering::Acquire) == 0 || self.exiting.load(Ordering::Acquire) {
            return None;
        }
        let pp = take_retaken(self)?;
        let m = self.new_m();
        // SAFETY: the M is not running yet; the store happens-before the caller starts it.
        unsafe { (*m).nextp.store(pp, Ordering::Release) };
        Some(m)
    }
}

/// A safe point (Go's function prologue): one comparison of the stack pointer with
/// `stackguard0`, which catches both a preemption request ([`STACK_PREEMPT`] is above every
/// stack) and a stack about to overflow.
#[inline(always)]
pub fn preempt_point() {
    // Racy on purpose (one load more than Go's prologue would be too many): in the kernel an
    // interrupt may move us between reading the M and its G, and then we compare against
    // another G's guard. morestack checks again properly.
    let gp = crate::m::getg_racy();
    if gp.is_null() {
        return;
    }
    // LAB(preempt) begin: preempt_point, the safe point's check
    // LAB(preempt) hint: Go's function prologue: one comparison. If the stack pointer
    // LAB(preempt) hint: (arch::sp()) is below the G's stackguard0, call morestack(), which
    // LAB(preempt) hint: tells a preemption request (STACK_PREEMPT) from a real overflow.
    // LAB(preempt) stub: let _ = morestack as fn();
    // SAFETY: the running G is live; stackguard0 is an atomic.
    if arch::sp() < unsafe { (*gp).stackguard0.load(Ordering::Relaxed) } {
        morestack();
    }
    // LAB(preempt) end
}

/// Go's `morestack` → `newstack`: a preemption request yields (unless the M holds a runtime
/// lock: then the request waits for `releasem`); a real low stack is a fatal overflow.
#[cold]
#[inline(never)]
pub(crate) fn morestack() {
    let m = crate::m::acquire_current_m();
    // SAFETY: called from a running G on the current M, which cannot change while `locks` is
    // raised; curg is an atomic.
    let gp = unsafe { (*m).curg.load(Ordering::Relaxed) };
    // SAFETY: the running G is live; only its atomics and its own stack bounds are read.
    let g = unsafe { &*gp };
    let guard = g.stackguard0.load(Ordering::Relaxed);
    if guard == STACK_PREEMPT {
        // SAFETY: m is the current M; locks is an atomic.
        if unsafe { (*m).locks.load(Ordering::Relaxed) } > 1 {
            // Not now (a runtime lock is held; ours is the 1): keep running; releasem
            // re-arms the request.
            g.stackguard0
                .store(g.normal_stackguard(), Ordering::Relaxed);
            crate::m::locks_add(m, -1);
            return;
        }
        mcall_on(m, Req::Preempt);
        return;
    }
    if arch::sp() >= guard {
        // A false alarm from preempt_point's racy read (see there).
        crate::m::locks_add(m, -1);
        return;
    }
    // SAFETY: gp is the running goroutine, which has run out of stack.
    unsafe { crate::stack::stack_overflow(gp, crate::traceback::Start::caller()) };
}

/// Asynchronous preemption (Go's `asyncPreempt`, injected by a signal; here called by the
/// platform's timer interrupt handler): the running G yields to the global queue right where
/// the interrupt stopped it, and this call returns when the G next runs, possibly on another
/// M and CPU. The platform has already saved every register of the interrupted code on the
/// G's stack and restores them after this returns.
///
/// # Safety
/// Only from an interrupt handler running on the current G's own stack, with the interrupted
/// code at an async-safe point: the M holds no runtime lock (`m.locks == 0`, which also
/// excludes the middle of `mcall`), and the G is not g0. The handler must have acknowledged
/// the interrupt, and must not use per-CPU state after this returns.
pub unsafe fn async_preempt() {
    mcall(Req::AsyncPreempt);
}

/// Go's `wantAsyncPreempt` + `isAsyncSafePoint`, asked by the platform's timer interrupt on
/// the CPU (or thread) of `m`: whether to stop the G it interrupted right where it stands (the
/// platform then saves every register on the G's stack and calls [`async_preempt`] there).
///
/// Yes when the G was already flagged at this M's previous tick, in the same time slice (so it
/// had a tick's time to reach a safe point and did not), and it stands at an async-safe point:
/// - its M holds no runtime lock (`m.locks == 0`; `mcall` also raises it, so the middle of a
///   switch to g0 is excluded);
/// - the interrupted stack pointer `sp` lies in the G's own stack (not g0's: the scheduler,
///   the `systemstack` code and the idle loop run on g0);
/// - async preemption is on ([`crate::run::Config::async_preempt`]).
///
/// The platform must also know that the interrupted code had interrupts enabled (it did, or
/// the tick would not have come) and holds none of its own locks that an interrupt path takes.
///
/// # Safety
/// `m` is the M running on the interrupted CPU or thread, and the caller is that CPU's (or
/// thread's) interrupt handler, so the G's stack bounds, written by this M before it ran the
/// G, read stably.
pub unsafe fn want_async_preempt(m: *mut M, sp: usize) -> bool {
    if m.is_null() {
        return false;
    }
    // SAFETY: the caller's promise: m is this CPU's (or thread's) M and we are its interrupt
    // handler, which is what `running_g` asks too.
    let (m, running) = unsafe { (&*m, crate::platform::running_g(m)) };
    let g = match running {
        Some(g) if g.preempt.load(Ordering::Relaxed) && g.status() == GStatus::Running => g,
        _ => {
            m.async_seen_g.store(null_mut(), Ordering::Relaxed);
            return false;
        }
    };
    let gp = g as *const crate::g::G as *mut crate::g::G;
    // SAFETY: m's P (if any) is live; schedtick is an atomic.
    let tick = unsafe { m.p.as_ref() }.map_or(0, |pp| pp.schedtick.load(Ordering::Relaxed));
    if m.async_seen_g.load(Ordering::Relaxed) != gp
        || m.async_seen_tick.load(Ordering::Relaxed) != tick
    {
        // First sight of the flag: give the G a tick to reach a safe point.
        m.async_seen_g.store(gp, Ordering::Relaxed);
        m.async_seen_tick.store(tick, Ordering::Relaxed);
        return false;
    }
    // LAB(preempt) begin: want_async_preempt, is this an async-safe point?
    // LAB(preempt) hint: The G was flagged a tick ago and has not reached a safe point: stop it
    // LAB(preempt) hint: here only if (1) async preemption is on for this runtime
    // LAB(preempt) hint: ((*m.runtime).async_preempt_enabled), (2) its M holds no runtime lock
    // LAB(preempt) hint: (m.locks == 0; mcall raises it too), and (3) the interrupted `sp` is in
    // LAB(preempt) hint: the G's own stack (g.stack.lo..g.stack.hi), not g0's. Then clear
    // LAB(preempt) hint: m.async_seen_g and return true. Go: wantAsyncPreempt, isAsyncSafePoint.
    // LAB(preempt) stub: let _ = (sp, &g.stack);
    // LAB(preempt) stub: false
    // SAFETY: an M's runtime outlives it.
    let sched = unsafe { &*m.runtime };
    if !sched.async_preempt_enabled.load(Ordering::Relaxed) || m.locks.load(Ordering::Relaxed) != 0
    {
        return false;
    }
    if !(g.stack.lo..g.stack.hi).contains(&sp) {
        return false;
    }
    m.async_seen_g.store(null_mut(), Ordering::Relaxed);
    true
    // LAB(preempt) end
}

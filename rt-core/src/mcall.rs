//! The g→g0 request protocol (Go's `mcall(fn)` and the g0 functions it names: `park_m`,
//! `gosched_m`, `gopreempt_m`, `goexit0`, `exitsyscall0`, plus `systemstack`).
//!
//! A G that must stop running (it yields, parks, exits, was preempted, or needs g0's stack)
//! writes a [`Req`] into its M and switches to the M's g0 ([`mcall`]). g0, back in
//! `sched::schedule`, takes the request and carries it out ([`handle`]) once the G is off its
//! own stack, which is what makes handing the G to another M safe.
//!
//! Invariant: between writing `m.req` and g0 taking it, the M's `locks` is raised, so no
//! interrupt can preempt the G in the middle (it would overwrite the request, or resume the G
//! on another M that then switches to this M's g0). g0 lowers it again ([`take`]).

use core::sync::atomic::Ordering;

use crate::arch;
use crate::g::G;
use crate::m::M;
use crate::platform;
use crate::sched;
use crate::tracer;
use rt_trace::format::{Kind, StopReason};

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

/// Go's `mcall`: switches from the running G to its M's g0, which carries out `req`. Returns
/// when (and if) the G is resumed, possibly on another M.
#[inline(always)]
pub(crate) fn mcall(req: Req) {
    // Preemption stays off from here until g0 has taken the request (an interrupt that
    // preempted the G in between would overwrite `req`, or the G would resume on another M
    // and switch to this one's g0); g0 lowers `locks` again (sched::schedule).
    let m = crate::m::acquire_current_m();
    mcall_on(m, req);
}

/// `mcall` for a caller that holds preemption off on `m` (`acquire_current_m`), which g0
/// releases.
#[inline(always)]
pub(crate) fn mcall_on(m: *mut M, req: Req) {
    // SAFETY: called on a running G (checked by callers), whose M is `m`, the current M.
    unsafe {
        let gp = (*m).curg.load(Ordering::Relaxed);
        (*m).req = req;
        arch::swtch(&mut (*gp).sched, &(*(*m).g0).sched);
    }
}

/// What g0 does after serving a G's request.
pub(crate) enum Next {
    /// Look for work (the G is off this M).
    FindWork,
    /// Run the same G again (`execute`, keeping its time slice).
    Resume,
    /// Run this G (the G is off this M).
    Run(*mut G),
    /// Switch straight back to the same G, still Running (after `systemstack`).
    Return,
}

/// g0's side: takes the request the G left (and lowers the `locks` that `mcall` raised, so
/// that no interrupt preempted the G between writing it and the switch).
///
/// # Safety
/// On `m`'s g0, right after a G switched to it with `mcall`.
#[inline]
pub(crate) unsafe fn take(m: *mut M) -> Req {
    // SAFETY: on m's g0; the G that wrote the request is off its stack.
    let req = unsafe { core::mem::replace(&mut (*m).req, Req::None) };
    crate::m::locks_add(m, -1);
    req
}

/// Carries out a G's request on g0.
///
/// # Safety
/// On `m`'s g0, with `gp` the G that made the request (switched out).
#[inline]
pub(crate) unsafe fn handle(m: *mut M, gp: *mut G, req: Req) -> Next {
    // SAFETY: an M's runtime outlives the M.
    let sched = unsafe { &*(*m).runtime };
    // The g0 halves below all require what the caller promises: on m's g0, gp switched out.
    let stop = |why: StopReason| {
        // SAFETY: gp is live; its goid is an atomic.
        tracer::ev!(m, Kind::GoStop, why as u8, unsafe { (*gp).goid() }, 0, 0)
    };
    match req {
        Req::Gosched => {
            stop(StopReason::Yield);
            // SAFETY: see above.
            unsafe { sched::gosched_m(m, gp) }
        }
        Req::Preempt => {
            stop(StopReason::PreemptSync);
            sched.stats.nsync_preempt.fetch_add(1, Ordering::Relaxed);
            // SAFETY: see above.
            unsafe { sched::gosched_m(m, gp) }
        }
        Req::AsyncPreempt => {
            // We came here from an interrupt handler: let the platform restore what g0
            // needs (the kernel turns interrupts back on).
            platform::get().after_async_preempt();
            stop(StopReason::PreemptAsync);
            sched.stats.nasync_preempt.fetch_add(1, Ordering::Relaxed);
            // SAFETY: see above.
            unsafe { sched::gosched_m(m, gp) }
        }
        Req::Park { unlock, arg } => {
            // SAFETY: see above.
            if unsafe { crate::park::park_m(m, gp, unlock, arg) } {
                Next::FindWork
            } else {
                Next::Resume
            }
        }
        Req::Exit => {
            // SAFETY: see above; gp's function has returned.
            unsafe { crate::proc::goexit0(m, gp) };
            Next::FindWork
        }
        Req::ExitSyscall => {
            // SAFETY: see above; gp called exitsyscall and found no P.
            if unsafe { crate::proc::exitsyscall0(m, gp) } {
                Next::Resume
            } else {
                Next::FindWork
            }
        }
        Req::SystemStack(f) => {
            // On g0 there is no current goroutine (Go: getg() == m.g0), so the function
            // cannot park or yield the G it was called from.
            // SAFETY: m is the current M; curg is an atomic.
            unsafe { (*m).curg.store(core::ptr::null_mut(), Ordering::Relaxed) };
            // SAFETY: the closure lives on gp's stack, and gp stays suspended in `mcall`
            // until g0 switches back to it after this call (proc.rs `systemstack`).
            unsafe { (*f)() };
            Next::Return
        }
        Req::None => platform::fatal(format_args!(
            "schedule: goroutine switched to g0 without a request"
        )),
    }
}

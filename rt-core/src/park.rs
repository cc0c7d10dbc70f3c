//! Blocking and waking goroutines: Go's `gopark` and `goready` (proc.go).
//!
//! The lost-wake-up race, closed the way Go closes it: a G that is about to wait puts itself
//! on a wait list *while holding the lock that protects that list*, then parks, passing an
//! `unlock` function. The lock is released by g0 only after the G's status is `Waiting` and
//! it is off its stack. A waker must take the same lock to find the G, so it can only see it
//! once it is truly parked, and `goready` never races with the G still running.

use crate::g::{WaitReason, G};
use crate::m::M;
use crate::mcall::Req;
use crate::platform;
use crate::sched;
use crate::status::GStatus;
use crate::tracer;
use rt_trace::format::{Kind, UnblockSource};

/// Parks the current goroutine (Go's `gopark`). `unlock(gp, arg)` runs on g0 once the G is
/// waiting; if it returns false the G resumes at once. Returns when something readies it.
pub fn gopark(unlock: Option<fn(*mut G, usize) -> bool>, arg: usize, reason: WaitReason) {
    let gp = crate::m::getg();
    if gp.is_null() {
        platform::fatal(format_args!("gopark outside a goroutine"));
    }
    // SAFETY: gp is the running G.
    unsafe { (*gp).set_waitreason(reason) };
    crate::mcall::mcall(Req::Park { unlock, arg });
}

/// Go's `park_m`, on g0. Returns true if the G stays parked.
pub(crate) unsafe fn park_m(
    m: *mut M,
    gp: *mut G,
    unlock: Option<fn(*mut G, usize) -> bool>,
    arg: usize,
) -> bool {
    // Before `unlock`: once it runs, a waker may ready the G (and trace its GoUnblock).
    tracer::ev!(
        m,
        Kind::GoBlock,
        // SAFETY: gp is switched out on m's g0; its wait reason is its own field.
        unsafe { (*gp).waitreason() } as u8,
        // SAFETY: as above; the goid is an atomic.
        unsafe { (*gp).goid() },
        0,
        0
    );
    // SAFETY: on m's g0 with gp switched out.
    unsafe {
        (*gp).casgstatus(GStatus::Running, GStatus::Waiting);
        sched::dropg(m, gp);
        if let Some(f) = unlock {
            if !f(gp, arg) {
                let goid = (*gp).goid();
                tracer::ev!(m, Kind::GoUnblock, UnblockSource::Runtime as u8, goid, 0, 0);
                (*gp).set_waitreason(WaitReason::Zero);
                (*gp).casgstatus(GStatus::Waiting, GStatus::Runnable);
                return false;
            }
        }
        true
    }
}

/// Makes a parked goroutine runnable (Go's `goready`): it goes to the current P's `runnext`,
/// so a G that wakes another hands it the P next; an idle P gets an M if none is spinning.
///
/// # Safety
/// `gp` must be a G of the current runtime that is `Waiting`, found on a wait list under the
/// lock its `gopark` released (so it is truly parked, and only this caller readies it).
pub unsafe fn goready(gp: *mut G) {
    let m = crate::m::acquire_current_m();
    // SAFETY: the caller's promise; the current M holds a P (wakers are goroutines or g0),
    // and stays current while preemption is off.
    unsafe {
        if tracer::on() {
            let cur = (*m).curg.load(core::sync::atomic::Ordering::Relaxed);
            let (src, waker) = if cur.is_null() {
                ((*m).trace.src.get(), 0)
            } else {
                (UnblockSource::Goroutine as u8, (*cur).goid())
            };
            tracer::ev!(m, Kind::GoUnblock, src, (*gp).goid(), waker, 0);
        }
        (*gp).set_waitreason(WaitReason::Zero);
        (*gp).casgstatus(GStatus::Waiting, GStatus::Runnable);
        let sched = &*(*m).runtime;
        let pp = (*m).p;
        if pp.is_null() {
            let mut l = sched.lock.lock();
            sched::globrunqput(sched, &mut l, gp);
            drop(l);
        } else {
            sched::runqput(sched, pp, gp, true);
        }
        crate::idle::wakep(sched);
        crate::m::release_m(m);
    }
}

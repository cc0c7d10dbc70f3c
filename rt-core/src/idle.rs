//! Idle Ps and Ms, and spinning: Go's "Worker thread parking/unparking" (proc.go), with
//! `wakep`, `startm`, `newm`, `stopm`, `handoffp`, the idle lists (`pidleput`/`pidleget`,
//! `mget`), `acquirep`/`releasep`, and `checkdead`.
//!
//! We want enough running Ms to use the available Ps, but no Ms burning CPU with nothing to
//! do. A *spinning* M is one that has a P and is looking for work to steal; there are at most
//! half as many spinning Ms as busy Ps. When new work appears (a spawn, a G readied) and there
//! is an idle P but no spinning M, [`wakep`] wakes one M to spin. A spinning M that finds work
//! stops spinning and wakes another ([`reset_spinning`]), so bursts of work fan out; a spinning
//! M that finds nothing drops its P, then *re-checks every run queue* before sleeping
//! (sched.rs, `find_runnable`): a submitter that saw `nmspinning > 0` did not wake anyone, so
//! the last spinner must not miss its work.
//!
//! Invariants: `nmspinning` counts Ms with `spinning` set (a caller that raises it for an M
//! it starts hands the count to that M, or takes it back if none starts); `npidle` counts
//! the Ps on `sched.lock`'s idle list; an idle P has no M and an empty run queue; an M on the
//! idle list holds no P and sleeps on its note until `startm` gives it one (or the runtime
//! exits).

use alloc::boxed::Box;
use alloc::string::String;
use core::ptr::null_mut;
use core::sync::atomic::{fence, Ordering};

use crate::m::M;
use crate::p::{PStatus, P};
use crate::platform;
use crate::run::Failure;
use crate::sched::{Sched, SchedLocked};
use crate::tracer;
use rt_trace::format::Kind;

/// Marks the current M spinning and counts it in `nmspinning`.
///
/// # Safety
/// `m` is the current M.
#[inline]
pub(crate) unsafe fn become_spinning(m: *mut M) {
    // SAFETY: m is the current M; `spinning` is an atomic.
    unsafe { (*m).spinning.store(true, Ordering::Relaxed) };
    // SAFETY: an M's runtime outlives the M.
    unsafe { (*(*m).runtime).nmspinning.fetch_add(1, Ordering::AcqRel) };
    tracer::ev!(m, Kind::SpinStart, 0, 0, 0, 0);
}

/// Go's `resetspinning`: this M found work; if it was the last spinner, wake another M to
/// keep looking (the work it found may be the first of a burst).
///
/// # Safety
/// `m` is the current M.
#[inline]
pub(crate) unsafe fn reset_spinning(m: *mut M) {
    // SAFETY: an M's runtime outlives the M.
    let sched = unsafe { &*(*m).runtime };
    // SAFETY: m is the current M; `spinning` is an atomic.
    unsafe { (*m).spinning.store(false, Ordering::Relaxed) };
    if sched.nmspinning.fetch_sub(1, Ordering::AcqRel) <= 0 {
        platform::fatal(format_args!("resetspinning: negative nmspinning"));
    }
    tracer::ev!(m, Kind::SpinStop, 1, 0, 0, 0);
    wakep(sched);
}

/// Go's `wakep`: if there is an idle P and no spinning M, wake an M to spin.
///
/// Every caller has just published work (a run queue, the global queue, a timer). The fence
/// orders that publication before the reads of `npidle` and `nmspinning` below: it pairs with
/// the one in `find_runnable` between dropping `nmspinning` and `last_look` (Go's
/// "#StoreLoad-style memory barrier" on both sides, proc.go's "Worker thread parking/
/// unparking"). Without the pair, the submitter may read the spinner's old `nmspinning` while
/// the spinner reads the submitter's old, empty queue, and both leave the work to the other
/// (store buffering: the model in tests/loom_park.rs finds it).
pub(crate) fn wakep(sched: &Sched) {
    fence(Ordering::SeqCst);
    // LAB(park) begin: wakep
    // LAB(park) hint: Wake an M to spin, but only when it can help and nobody else will: return
    // LAB(park) hint: if no P is idle (sched.npidle == 0) or an M already spins
    // LAB(park) hint: (sched.nmspinning != 0). Claim the spinning slot with a CAS of
    // LAB(park) hint: nmspinning 0 -> 1 (two wakeps racing must not both wake an M), take an
    // LAB(park) hint: idle P (pidleget under sched.lock.lock()); if there is none after all,
    // LAB(park) hint: give the slot back (fetch_sub); else startm(sched, pp, true).
    // LAB(park) stub: let _ = sched;
    // No idle P, nothing to wake (Go goes on to set `needspinning`, which we do not have).
    if sched.npidle.load(Ordering::Relaxed) == 0
        || sched.nmspinning.load(Ordering::Relaxed) != 0
        || sched
            .nmspinning
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let pp = {
        let mut l = sched.lock.lock();
        // SAFETY: under the lock.
        unsafe { pidleget(sched, &mut l) }
    };
    if pp.is_null() {
        sched.nmspinning.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    startm(sched, pp, true);
    // LAB(park) end
}

/// Go's `startm`: runs `pp` (or an idle P, if null) on an idle M, or a new one.
pub(crate) fn startm(sched: &Sched, pp: *mut P, spinning: bool) {
    let mut l = sched.lock.lock();
    let pp = if pp.is_null() {
        // SAFETY: under the lock.
        let p = unsafe { pidleget(sched, &mut l) };
        if p.is_null() {
            drop(l);
            if spinning {
                // The caller counted us as spinning, but there is no P to spin on.
                sched.nmspinning.fetch_sub(1, Ordering::AcqRel);
            }
            return;
        }
        p
    } else {
        pp
    };
    if sched.exiting.load(Ordering::Acquire) {
        // SAFETY: under the lock; pp is ours to return.
        unsafe { pidleput_exiting(sched, &mut l, pp) };
        if spinning {
            sched.nmspinning.fetch_sub(1, Ordering::AcqRel);
        }
        return;
    }
    match mget(&mut l) {
        Some(nmp) => {
            drop(l);
            // SAFETY: nmp is idle, asleep on its note; these stores happen-before its wake-up.
            unsafe {
                (*nmp).spinning.store(spinning, Ordering::Relaxed);
                (*nmp).nextp.store(pp, Ordering::Release);
                (*nmp).park.wakeup();
            }
        }
        None => {
            let id = l.mnext;
            l.mnext += 1;
            sched.mcount.fetch_add(1, Ordering::AcqRel);
            drop(l);
            newm(sched, id, pp, spinning);
        }
    }
}

/// Go's `newm`: a new M, started by the platform with `pp`.
pub(crate) fn newm(sched: &Sched, id: i64, pp: *mut P, spinning: bool) {
    let m = sched.alloc_m(id);
    // SAFETY: the new M is not running yet; these stores happen-before its thread starts.
    unsafe {
        (*m).spinning.store(spinning, Ordering::Relaxed);
        (*m).nextp.store(pp, Ordering::Release);
    }
    if !platform::get().new_os_thread(m) {
        // No thread or CPU for it (the kernel has one M per CPU): the P goes back to the idle
        // list, and the work it holds (a P retaken from a syscall may hold some) to the
        // global queue. An idle P's queue must be empty: thieves skip idle Ps, so Gs left
        // there would wait until that very P came off the idle list, and Ms would spin beside
        // them forever (seen in the execution trace of tests/src/bin/trace.rs at 4 CPUs).
        let mut l = sched.lock.lock();
        // SAFETY: pp was handed to the M that could not start, so it is ours: we are the
        // owner its queue's `get` requires, and the Gs it yields are runnable and on no list.
        unsafe {
            while let Some((gp, _)) = (*pp).runq.get() {
                crate::sched::globrunqput(sched, &mut l, gp);
            }
        }
        // SAFETY: pp was handed to the M that could not start.
        unsafe { pidleput_exiting(sched, &mut l, pp) };
        sched.mcount.fetch_sub(1, Ordering::AcqRel);
        if spinning {
            sched.nmspinning.fetch_sub(1, Ordering::AcqRel);
        }
        // Its id goes back if no M took a later one meanwhile (schedtrace's M numbers stay
        // those of Ms that ran).
        if l.mnext == id + 1 {
            l.mnext = id;
        }
        drop(l);
        // The M never ran: take it off allms and free it with its g0. Kept, every failed
        // start leaked an M (the kernel's soak grew by ~55 Ms a round, 20 MB a minute).
        sched.allms.lock().retain(|&x| x != m);
        // SAFETY: made by alloc_m above with Box::into_raw, never started, and now on no list.
        unsafe {
            drop(Box::from_raw((*m).g0));
            drop(Box::from_raw(m));
        }
    }
}

pub(crate) fn mget(l: &mut SchedLocked) -> Option<*mut M> {
    let m = l.midle;
    if m.is_null() {
        return None;
    }
    // SAFETY: Ms on the idle list are live and linked under this lock.
    l.midle = unsafe { (*m).schedlink };
    l.nmidle -= 1;
    Some(m)
}

/// Go's `stopm`: puts the M on the idle list and sleeps until `startm` gives it a P (or the
/// runtime exits).
///
/// # Safety
/// `m` is the current M (on its g0) and holds no P.
pub(crate) unsafe fn stopm(m: *mut M) {
    // SAFETY: an M's runtime outlives the M.
    let sched = unsafe { &*(*m).runtime };
    // SAFETY: m is the current M; its `p` is written only by itself.
    if !unsafe { (*m).p.is_null() } {
        platform::fatal(format_args!("stopm holding p"));
    }
    {
        let mut l = sched.lock.lock_with(m);
        if sched.exiting.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: m is the current M, not yet on the idle list; an M's `schedlink` is
        // written under sched.lock, which we hold.
        unsafe { (*m).schedlink = l.midle };
        l.midle = m;
        l.nmidle += 1;
        checkdead(sched, &mut l);
    }
    // SAFETY: m is the current M; `blocked` is an atomic.
    unsafe { (*m).blocked.store(true, Ordering::Relaxed) };
    tracer::ev!(m, Kind::MSleep, 0, 0, 0, 0);
    // SAFETY: m is the current M; its note is shared with its wakers (all atomic).
    while !unsafe { (*m).park.is_set() } {
        // A P that an interrupt-context sysmon took from a syscall needs an M: this one
        // leaves the idle list for it (in the kernel any interrupt, such as the tick,
        // ends the wait, so this is seen within a tick).
        // SAFETY: m is the current M.
        if sched.nretaken.load(Ordering::Acquire) > 0 && unsafe { leave_midle(sched, m) } {
            // SAFETY: m is the current M; `blocked` is an atomic.
            unsafe { (*m).blocked.store(false, Ordering::Relaxed) };
            tracer::ev!(m, Kind::MWake, 0, 0, 0, 0);
            return;
        }
        // SAFETY: m is the current M, the only one that sleeps on its note.
        unsafe { (*m).park.sleep_once() };
    }
    // SAFETY: m is the current M; `blocked`, its note and `nextp` are atomic (the Release
    // store of `nextp` by startm pairs with this AcqRel swap).
    let pp = unsafe {
        (*m).blocked.store(false, Ordering::Relaxed);
        (*m).park.clear();
        (*m).nextp.swap(null_mut(), Ordering::AcqRel)
    };
    tracer::ev!(m, Kind::MWake, 0, 0, 0, 0);
    if !pp.is_null() {
        // SAFETY: m is the current M and holds no P; pp was handed to it by startm, which
        // took it off the idle list (no M holds it).
        unsafe { acquirep(m, pp) };
    }
    // startm may have made us a spinning M.
    // SAFETY: m is the current M; `spinning` is an atomic.
    if tracer::on() && unsafe { (*m).spinning.load(Ordering::Relaxed) } {
        tracer::ev!(m, Kind::SpinStart, 0, 0, 0, 0);
    }
}

/// Takes `m` (the caller) off the idle list if it is still there; false if `startm` already
/// took it (then its wake-up is on the way).
///
/// # Safety
/// `m` is the current M.
pub(crate) unsafe fn leave_midle(sched: &Sched, m: *mut M) -> bool {
    let mut l = sched.lock.lock_with(m);
    let mut link: *mut *mut M = &mut l.midle;
    // SAFETY: link points at the list's head or at a live idle M's `schedlink`; the idle
    // list is linked through live Ms under this lock, which we hold.
    while !unsafe { (*link).is_null() } {
        // SAFETY: as above.
        if unsafe { *link } == m {
            // SAFETY: as above; m is on the list, and its `schedlink` (written under this
            // lock) is the rest of it.
            unsafe { *link = (*m).schedlink };
            l.nmidle -= 1;
            return true;
        }
        // SAFETY: *link is a live M on the idle list, linked under this lock.
        link = unsafe { &mut (**link).schedlink };
    }
    false
}

pub(crate) fn wake_all_idle(l: &mut SchedLocked) {
    while let Some(m) = mget(l) {
        // SAFETY: an idle M sleeps on its note until woken; nextp stays null, so it will find
        // the runtime exiting and leave.
        unsafe { (*m).park.wakeup() };
    }
}

/// Go's `checkdead`, called as an M goes idle: if every M is idle (none runs a goroutine,
/// none polls for timers or I/O), no live timer is pending (time.rs) and no goroutine waits
/// for I/O, no G can ever be readied, so the program is deadlocked.
pub(crate) fn checkdead(sched: &Sched, l: &mut SchedLocked) {
    if !sched.main_started.load(Ordering::Acquire) || sched.exiting.load(Ordering::Acquire) {
        return;
    }
    if l.nmidle < sched.mcount.load(Ordering::Acquire) {
        return;
    }
    // A live timer or I/O wait can still ready a goroutine (Go: "There are no goroutines
    // running, so we can look at the P's timers"). A stopped timer, or a channel timer that
    // no goroutine is blocked on, cannot (Go 1.23), so it does not count.
    if crate::time::live(sched) || platform::get().io_waiting() {
        return;
    }
    {
        let mut f = sched.failure.lock();
        if f.is_none() {
            *f = Some(
                if sched.main_goexit.load(Ordering::Acquire)
                    && crate::proc::live_goroutines(sched) == 0
                {
                    Failure::MainGoexit
                } else {
                    Failure::Deadlock {
                        goroutines: String::new(),
                    }
                },
            );
        }
    }
    sched.exiting.store(true, Ordering::Release);
    wake_all_idle(l);
}

/// Go's `handoffp`: a P whose M is blocked (in a syscall) goes to another M if there is work
/// for it, else to the idle list.
pub(crate) fn handoffp(sched: &Sched, pp: *mut P) {
    // SAFETY: pp was taken from its M (status CAS to idle by the caller), and Ps live as long
    // as the runtime; its queue is atomic.
    if !unsafe { (*pp).runq.is_empty() } || sched.runqsize.load(Ordering::Relaxed) != 0 {
        startm(sched, pp, false);
        return;
    }
    // No local work: if no M is spinning or idle-with-a-P, start one to spin.
    if sched.nmspinning.load(Ordering::Relaxed) + sched.npidle.load(Ordering::Relaxed) == 0
        && sched
            .nmspinning
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    {
        startm(sched, pp, true);
        return;
    }
    let mut l = sched.lock.lock();
    if sched.runqsize.load(Ordering::Relaxed) != 0 {
        drop(l);
        startm(sched, pp, false);
        return;
    }
    // SAFETY: under sched.lock; pp was taken from its M by the caller, so it has no M and is
    // ours to put on the idle list.
    unsafe { pidleput(sched, &mut l, pp) };
}

/// Go's `acquirep`/`wirep`.
///
/// # Safety
/// `m` is the current M; `pp` came off the idle list or from startm (the caller owns it).
#[inline]
pub(crate) unsafe fn acquirep(m: *mut M, pp: *mut P) {
    // SAFETY: m is the current M, the only writer of its `p`; Ps live as long as the runtime,
    // and a P's `m` is an atomic.
    if unsafe { !(*m).p.is_null() || !(*pp).m.load(Ordering::Relaxed).is_null() } {
        // SAFETY: as above; an M's and a P's ids are fixed at creation.
        let (mid, pid) = unsafe { ((*m).id, (*pp).id) };
        platform::fatal(format_args!(
            "acquirep: M {} or P {} already wired",
            mid, pid
        ));
    }
    // SAFETY: m is the current M: its `p` is written only by itself.
    unsafe { (*m).p = pp };
    // SAFETY: the caller owns pp; its `m` and `status` are atomics.
    unsafe {
        (*pp).m.store(m, Ordering::Release);
        (*pp)
            .status
            .store(PStatus::Running as u32, Ordering::Release);
    }
    tracer::ev!(m, Kind::ProcStart, 0, 0, 0, 0);
}

/// Go's `releasep`.
///
/// # Safety
/// `m` is the current M and holds a P.
#[inline]
pub(crate) unsafe fn releasep(m: *mut M) -> *mut P {
    tracer::ev!(m, Kind::ProcStop, 0, 0, 0, 0);
    // SAFETY: m is the current M: its `p` is written only by itself.
    let pp = unsafe { (*m).p };
    // SAFETY: pp is m's P (Ps live as long as the runtime); its `m` and `status` are atomics.
    unsafe {
        (*pp).m.store(null_mut(), Ordering::Release);
        (*pp).status.store(PStatus::Idle as u32, Ordering::Release);
    }
    // SAFETY: m is the current M: its `p` is written only by itself.
    unsafe { (*m).p = null_mut() };
    pp
}

/// Go's `pidleput`. The P must have an empty run queue and no M.
///
/// # Safety
/// `l` is `sched`'s locked state; the caller owns `pp`, which has no M.
#[inline]
pub(crate) unsafe fn pidleput(sched: &Sched, l: &mut SchedLocked, pp: *mut P) {
    // SAFETY: the caller owns pp; its queue is atomic.
    if !unsafe { (*pp).runq.is_empty() } {
        // SAFETY: a P's id is fixed at creation.
        let id = unsafe { (*pp).id };
        platform::fatal(format_args!("pidleput: P {} has a non-empty run queue", id));
    }
    // SAFETY: forwarded: under the lock; pp is owned by the caller and has no M.
    unsafe { pidleput_exiting(sched, l, pp) };
}

/// `pidleput` without the empty-queue check (for a runtime that is exiting, where queued Gs
/// are abandoned as Go abandons them when `main` returns).
///
/// # Safety
/// `l` is `sched`'s locked state; the caller owns `pp`, which has no M.
pub(crate) unsafe fn pidleput_exiting(sched: &Sched, l: &mut SchedLocked, pp: *mut P) {
    // SAFETY: under the lock; pp is owned by the caller.
    unsafe {
        (*pp).status.store(PStatus::Idle as u32, Ordering::Release);
        (*pp).link = l.pidle;
    }
    l.pidle = pp;
    sched.npidle.fetch_add(1, Ordering::AcqRel);
}

/// Go's `pidleget`.
///
/// # Safety
/// `l` is `sched`'s locked state (its idle list links `sched`'s Ps).
#[inline]
pub(crate) unsafe fn pidleget(sched: &Sched, l: &mut SchedLocked) -> *mut P {
    let pp = l.pidle;
    if !pp.is_null() {
        // SAFETY: Ps on the idle list are linked under this lock.
        l.pidle = unsafe { (*pp).link };
        sched.npidle.fetch_sub(1, Ordering::AcqRel);
    }
    pp
}

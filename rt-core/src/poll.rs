//! The poller: Go's `netpoll` and the part of `findRunnable` that blocks in it. Due timers
//! (time.rs) and the platform's I/O events ready goroutines here.
//!
//! At most one M polls at a time (`sched.polling`): an M with no work while a live timer
//! (time.rs) or an I/O wait is pending sleeps until the earliest timer, an I/O event or a break
//! ([`Sched::netpoll_break`]), runs what is due, and returns to scheduling. Every other idle M
//! sleeps on the idle list. Ms that schedule check timers and I/O on every look for work (two
//! loads when nothing is pending), so a P kept busy still delivers I/O.
//!
//! Invariant (Dekker, with [`wake_poller`]): the poller publishes its deadline in
//! `poll_until` and then looks at the timers again; an adder adds its timer and then reads
//! `poll_until`. One of the two sees the other, so no timer is slept past.

use core::sync::atomic::Ordering;

use crate::idle::{acquirep, pidleget, stopm, wakep};
use crate::m::M;
use crate::platform;
use crate::sched::Sched;
use crate::tracer;
use rt_trace::format::{Kind, UnblockSource};

/// Readies what due timers and I/O events complete (Go's `checkTimers`, and the `netpoll`
/// that sysmon does when no M has polled for 10 ms: here it is one load per schedule, so a P
/// kept busy by runnable goroutines still delivers I/O at its next schedule). The hot path
/// with neither pending is two loads.
///
/// # Safety
/// On the g0 of an M of `sched` (timers run there).
#[inline]
pub(crate) unsafe fn ready_events(sched: &Sched) {
    // SAFETY: forwarded (on g0 of an M of sched).
    unsafe { run_timers(sched) };
    if platform::get().netpoll_ready() {
        netpoll();
    }
}

/// Runs due timers of every P (time.rs) and counts them.
///
/// # Safety
/// On the g0 of an M of `sched`.
#[inline]
pub(crate) unsafe fn run_timers(sched: &Sched) -> usize {
    // SAFETY: on g0 of an M of sched (find_runnable's caller).
    let n = unsafe { crate::time::run_all_due(sched) };
    if n > 0 {
        sched
            .stats
            .ntimers_run
            .fetch_add(n as u64, Ordering::Relaxed);
        tracer::ev_here(Kind::TimerFire, 0, n as u64, 0, 0);
    }
    n
}

/// Readies the goroutines the platform's I/O events completed (Go's `netpoll(0)` then
/// `injectglist`); returns how many.
pub(crate) fn netpoll() -> usize {
    let mut n = 0;
    tracer::with_src(UnblockSource::Netpoll, || {
        platform::get().netpoll(&mut |gp| {
            // SAFETY: the platform hands each waiting G over once, after it parked.
            unsafe { crate::park::goready(gp) };
            n += 1;
        })
    });
    n
}

/// An M without a P and without work: it becomes the poller if live timers (time.rs) or I/O
/// waits are pending and no other M is polling, else it sleeps on the idle list (`stopm`,
/// where `checkdead` looks). The poller
/// sleeps until the earliest timer (or an I/O event, or a break), runs what is due (taking an
/// idle P first, so that what it readies runs here), and returns to scheduling.
///
/// # Safety
/// `m` is the current M, on its g0, holding no P.
pub(crate) unsafe fn idle(m: *mut M) {
    // SAFETY: an M's runtime outlives the M.
    let sched = unsafe { &*(*m).runtime };
    let plat = platform::get();
    let wanted = || crate::time::live(sched) || plat.io_waiting();
    while !sched.exiting.load(Ordering::Acquire)
        && wanted()
        && !sched.polling.swap(true, Ordering::SeqCst)
    {
        // Look again now that `polling` is set (Dekker with `time::live_done`, which ends the
        // last live timer and then reads `polling`): one side sees the other, so the poller
        // never sleeps on timers that can no longer ready anyone while checkdead waits for it.
        if !wanted() {
            sched.polling.store(false, Ordering::SeqCst);
            break;
        }
        // Publish the deadline, then look again (Dekker with `wake_poller`, which adds
        // first and then reads `poll_until`): a timer added meanwhile is seen by one side.
        let mut until = crate::time::earliest(sched);
        sched.poll_until.store(until, Ordering::SeqCst);
        let again = crate::time::earliest(sched);
        if again < until {
            until = again;
            sched.poll_until.store(until, Ordering::SeqCst);
        }
        if until > plat.nanotime() && !plat.netpoll_ready() {
            sched.stats.npoll_sleeps.fetch_add(1, Ordering::Relaxed);
            tracer::ev!(
                m,
                Kind::MSleep,
                1,
                if until == u64::MAX { 0 } else { until },
                0,
                0,
            );
            plat.poll_sleep(&sched.poll_key, until);
            tracer::ev!(m, Kind::MWake, 0, 0, 0, 0);
        }
        sched.poll_key.store(0, Ordering::SeqCst);
        sched.poll_until.store(u64::MAX, Ordering::SeqCst);
        sched.polling.store(false, Ordering::SeqCst);
        if sched.exiting.load(Ordering::Acquire) {
            return;
        }
        let due = crate::time::earliest(sched) <= plat.nanotime() || plat.netpoll_ready();
        if !due {
            continue;
        }
        // Take an idle P, so that what the timers and I/O ready runs on this M.
        let pp = {
            let mut l = sched.lock.lock_with(m);
            // SAFETY: under the scheduler lock.
            unsafe { pidleget(sched, &mut l) }
        };
        if !pp.is_null() {
            // SAFETY: pp came off the idle list; m (the current M) holds no P.
            unsafe { acquirep(m, pp) };
        }
        // SAFETY: on g0 of an M of sched.
        unsafe { run_timers(sched) };
        netpoll();
        // SAFETY: m is the current M; its `p` is its own.
        if unsafe { !(*m).p.is_null() } {
            return;
        }
    }
    // SAFETY: m is the current M and holds no P (it took none, or returned above).
    unsafe { stopm(m) };
}

/// A timer due at `when` was added (Go's `wakeNetPoller`): wake the poller if it sleeps past
/// `when`; with no poller, make sure an M will look (one that finds nothing becomes the poller).
pub(crate) fn wake_poller(sched: &Sched, when: u64) {
    if sched.polling.load(Ordering::SeqCst) {
        if when < sched.poll_until.load(Ordering::SeqCst) {
            sched.netpoll_break();
        }
    } else if sched.npidle.load(Ordering::SeqCst) > 0
        && sched.nmspinning.load(Ordering::SeqCst) == 0
    {
        wakep(sched);
    }
}

impl Sched {
    /// Wakes the poller, if an M is one (Go's `netpollBreak`): a timer earlier than its
    /// deadline was added, an I/O event readied a goroutine, or the runtime exits. Lock-free
    /// and allocation-free: the kernel calls it from its serial interrupt handler.
    pub fn netpoll_break(&self) {
        if self.poll_key.swap(1, Ordering::SeqCst) == 0 {
            platform::get().futex_wake(&self.poll_key);
        }
    }
}

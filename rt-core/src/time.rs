//! Timers: Go's per-P timer heaps (time.go), `time.Sleep`, `time.After` and `time.NewTimer`.
//!
//! Each P keeps a min-heap of timers ordered by when they fire (then by creation, so equal
//! deadlines fire in order), under a small lock, and publishes its earliest deadline in
//! `timer0` (u64::MAX: none) so that anyone can see without the lock whether a heap needs
//! looking at (Go's `timer0When`). A timer is added to the heap of the P running the goroutine
//! that made it.
//!
//! Who runs timers (the scheduler, sched.rs):
//! - every M looking for work runs the due timers of every P (`run_due`), before it steals;
//! - an M that finds nothing to do while timers are pending becomes the *poller* (one at a
//!   time; Go's M blocked in `netpoll(delay)`): without a P, it sleeps on the platform until
//!   the earliest deadline (`Platform::poll_sleep`: the kernel programs the LAPIC timer and
//!   halts), then runs what is due and goes back to scheduling;
//! - a timer added before the poller's deadline wakes it (`wake_poller`, Go's
//!   `wakeNetPoller`), and with no poller and an idle P, an M is woken to become one.
//!
//! What a timer does when it fires is never blocking: ready a sleeping goroutine, or send the
//! time on a channel with room for it (`after`).
//!
//! Which timers keep the program alive (Go 1.23): a sleeping goroutine's timer, until it
//! fires; a channel timer (`after`, `new_timer`) only while it is pending (neither fired nor
//! stopped) *and* a goroutine is blocked receiving from its channel (`recv`, or a `select`
//! case) — Go keeps such a timer in the heap only then. A stopped timer, or the `after` of a
//! `select` that took another case, can ready nobody, so it must not keep `checkdead` from
//! reporting a deadlock. Here a stopped or abandoned channel timer stays in its heap until its
//! deadline (removed lazily, as Go's zombies are) but is not *live*.
//!
//! Invariants: `p.timer0` is the heap's minimum `when` (or MAX), written under the heap lock;
//! `sched.ntimers` counts timers in all heaps (whether any heap needs running);
//! `sched.live_timers` counts the live ones (deadlock detection and the poller look at it):
//! each sleep timer from `addtimer` until it fires, each channel timer while its
//! [`ChanTimer::state`] is `PENDING` with a blocked count above zero (every change of that
//! state is one atomic step, and the count follows the step that changed the timer's part).
//! A transient misread of the count is harmless: it happens only while the goroutine or M
//! making the change runs, so `checkdead` (all Ms idle) cannot see it, and that M passes
//! through the poller's check again before it goes idle.

use alloc::collections::BinaryHeap;
use alloc::sync::Arc;
use core::cmp::Ordering as CmpOrdering;
use core::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use core::time::Duration;

use crate::chan::{self, Chan};
use crate::g::{WaitReason, G};
use crate::m::getg;
use crate::m::M;
use crate::p::P;
use crate::park::{gopark, goready};
use crate::platform;
use crate::sched::Sched;

/// What a timer does when it fires.
pub(crate) enum Fire {
    /// Ready a goroutine parked in `sleep`.
    Ready(*mut G),
    /// Send the time on a timer channel (which holds its [`ChanTimer`]), if still pending.
    Chan(Chan<u64>),
}

/// `ChanTimer::state`: armed, neither fired nor stopped.
const PENDING: usize = 1;
/// `ChanTimer::state`: one goroutine blocked receiving from the timer's channel.
const BLOCKED: usize = 2;

/// A channel timer's state, held by its channel (Go's `hchan.timer`).
pub(crate) struct ChanTimer {
    /// `PENDING` while armed, plus `BLOCKED` for each goroutine blocked receiving from the
    /// channel (Go's `timer.isSending`/`blocked`). The timer is live while both are non-zero.
    state: AtomicUsize,
    /// When it fires ([`now`]'s clock).
    when: u64,
    /// Set (under its heap's lock) when an M has popped the timer's heap entry to run it: from
    /// then on only that M fires it, so that values keep the order of the heap's pops.
    popped: core::sync::atomic::AtomicBool,
    /// The owning runtime's `live_timers` (shared: the timer may outlive the runtime).
    live: Arc<AtomicI64>,
}

impl ChanTimer {
    /// A goroutine is about to block receiving from the channel (Go's `blockTimerChan`).
    pub(crate) fn block(&self) {
        if self.state.fetch_add(BLOCKED, Ordering::SeqCst) == PENDING {
            self.live.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// That goroutine no longer waits on the channel (Go's `unblockTimerChan`).
    pub(crate) fn unblock(&self) {
        if self.state.fetch_sub(BLOCKED, Ordering::SeqCst) == PENDING | BLOCKED {
            live_done(&self.live);
        }
    }

    /// Ends the timer (it fires, or is stopped); true if it was pending.
    fn disarm(&self) -> bool {
        let prev = self.state.fetch_and(!PENDING, Ordering::SeqCst);
        if prev & PENDING == 0 {
            return false;
        }
        if prev >= BLOCKED {
            live_done(&self.live);
        }
        true
    }

    /// Go 1.23's `maybeRunChan`: a receiver that finds the channel empty after the deadline
    /// fires the timer itself and takes the time it returns, so the value is there even if no
    /// M has run the heap yet (a channel timer nobody is blocked on does not keep an idle M
    /// polling for it). The heap entry then finds the timer disarmed and sends nothing.
    ///
    /// A timer whose entry an M has already popped is left to that M: firing it here with a
    /// later time could hand out a value later than the next timer's, which another M may
    /// already have fired (seen: `timers_fire_in_deadline_order`, 'timer 3 fired before
    /// timer 2'). The receiver then blocks until that M sends, as before.
    pub(crate) fn maybe_fire(&self) -> Option<u64> {
        if self.state.load(Ordering::Relaxed) & PENDING == 0 || self.popped.load(Ordering::SeqCst) {
            return None;
        }
        let t = now();
        (t >= self.when && self.disarm()).then_some(t)
    }
}

/// A live timer ended; if it was the last, wake the current runtime's poller so that it goes
/// idle and `checkdead` can look (see `poll::idle`).
fn live_done(live: &AtomicI64) {
    if live.fetch_sub(1, Ordering::SeqCst) > 1 {
        return;
    }
    let m = crate::m::acquire_current_m();
    if !m.is_null() {
        // SAFETY: the current M (pinned) and its runtime, which outlives it.
        let sched = unsafe { &*(*m).runtime };
        if sched.polling.load(Ordering::SeqCst) {
            sched.netpoll_break();
        }
    }
    crate::m::release_m(m);
}

/// Whether a live timer is pending (one that can still ready a goroutine).
pub(crate) fn live(sched: &Sched) -> bool {
    sched.live_timers.load(Ordering::SeqCst) > 0
}

pub(crate) struct Timer {
    pub when: u64,
    seq: u64,
    fire: Fire,
}

// SAFETY: a `Ready` timer's G pointer is handed to exactly one party (whoever pops it).
unsafe impl Send for Timer {}

impl PartialEq for Timer {
    fn eq(&self, o: &Self) -> bool {
        (self.when, self.seq) == (o.when, o.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timer {
    /// Reversed: `BinaryHeap` is a max-heap and we want the earliest first.
    fn cmp(&self, o: &Self) -> CmpOrdering {
        (o.when, o.seq).cmp(&(self.when, self.seq))
    }
}

/// A P's timers (Go's `p.timers`).
pub struct Timers {
    pub(crate) heap: BinaryHeap<Timer>,
}

impl Timers {
    pub(crate) const fn new() -> Self {
        Timers {
            heap: BinaryHeap::new(),
        }
    }
    pub fn len(&self) -> usize {
        self.heap.len()
    }
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// Monotonic nanoseconds (Go's `nanotime`).
pub fn now() -> u64 {
    platform::get().nanotime()
}

fn deadline(d: Duration) -> u64 {
    now().saturating_add(d.as_nanos().min(u64::MAX as u128) as u64)
}

/// Adds a timer to `pp`'s heap and wakes whoever must see it.
///
/// # Safety
/// `pp` is a P of `sched`.
pub(crate) unsafe fn addtimer(sched: &Sched, pp: *mut P, when: u64, fire: Fire) {
    let seq = sched.timerseq.fetch_add(1, Ordering::Relaxed);
    if matches!(fire, Fire::Ready(_)) {
        sched.live_timers.fetch_add(1, Ordering::SeqCst);
    }
    // SAFETY: Ps live as long as their runtime; the heap is under its lock.
    unsafe {
        let mut h = (*pp).timers.lock();
        h.heap.push(Timer { when, seq, fire });
        if when < (*pp).timer0.load(Ordering::Relaxed) {
            (*pp).timer0.store(when, Ordering::SeqCst);
        }
    }
    sched.ntimers.fetch_add(1, Ordering::SeqCst);
    crate::poll::wake_poller(sched, when);
}

/// The M and P to add a timer on, for code running in a goroutine.
fn current_p() -> Option<(*mut M, *mut P)> {
    let m = crate::m::acquire_current_m();
    if m.is_null() {
        return None;
    }
    // SAFETY: the current M, pinned until release_m.
    let pp = unsafe { (*m).p };
    Some((m, pp))
}

/// g0's side of `sleep` (Go's `resetForSleep`): the timer goes in only once the goroutine is
/// parked, so it cannot fire (and ready it) while the goroutine is still running.
fn sleep_commit(gp: *mut G, when: usize) -> bool {
    let m = crate::m::getm();
    // SAFETY: on g0 of the M that parked `gp`, which holds a P (a goroutine ran on it).
    unsafe {
        let sched = &*(*m).runtime;
        let pp = if (*m).p.is_null() {
            sched.allp[0]
        } else {
            (*m).p
        };
        addtimer(sched, pp, when as u64, Fire::Ready(gp));
    }
    true
}

/// Go's `time.Sleep`: parks the goroutine for at least `d`.
pub fn sleep(d: Duration) {
    if d.is_zero() {
        return;
    }
    let when = deadline(d);
    if getg().is_null() {
        // Outside a goroutine (a host thread): sleep the thread.
        while now() < when {
            platform::get().usleep(((when - now()) / 1000).clamp(1, 1_000_000) as u32);
        }
        return;
    }
    gopark(Some(sleep_commit), when as usize, WaitReason::Sleep);
}

/// A one-shot timer that sends the time it fired (`now()`, ns) on its channel (Go's
/// `time.Timer`). `stop` keeps it from firing.
pub struct OneShot {
    /// Receives one value when the timer fires.
    pub c: Chan<u64>,
    t: Arc<ChanTimer>,
}

impl OneShot {
    /// Prevents the timer from firing; false if it already had (Go's `Timer.Stop`). A stopped
    /// timer no longer counts as pending: it cannot delay deadlock detection.
    pub fn stop(&self) -> bool {
        self.t.disarm()
    }
}

/// Go's `time.NewTimer(d)`.
///
/// # Panics
/// Outside a goroutine (timers live on Ps).
pub fn new_timer(d: Duration) -> OneShot {
    new_timer_at(deadline(d))
}

/// A timer that fires at `when` ([`now`]'s clock, ns): Go's `time.NewTimer(time.Until(t))`
/// without the clock read between computing and arming.
///
/// # Panics
/// Outside a goroutine (timers live on Ps).
pub fn new_timer_at(when: u64) -> OneShot {
    let Some((m, pp)) = current_p() else {
        panic!("rt_core::time: timers need a running runtime");
    };
    // SAFETY: the current M (pinned) and its P or, without one, P 0 of its runtime.
    let (c, t) = unsafe {
        let sched = &*(*m).runtime;
        let t = Arc::new(ChanTimer {
            state: AtomicUsize::new(PENDING),
            when,
            popped: core::sync::atomic::AtomicBool::new(false),
            live: sched.live_timers.clone(),
        });
        let c = chan::make_timer_chan(t.clone());
        let pp = if pp.is_null() { sched.allp[0] } else { pp };
        addtimer(sched, pp, when, Fire::Chan(c.clone()));
        (c, t)
    };
    crate::m::release_m(m);
    OneShot { c, t }
}

/// Go's `time.After(d)`: a channel that receives the time once `d` has passed; for timeouts
/// in `select!`.
pub fn after(d: Duration) -> Chan<u64> {
    new_timer(d).c
}

/// Runs the timers of `pp` that are due at `now` (Go's `checkTimers` → `runtimer`); returns
/// how many ran. Callable by any M (on g0) with or without a P: readied goroutines go to the
/// caller's P, or the global queue.
///
/// # Safety
/// On g0 of an M of `sched`; `pp` is a P of `sched`.
pub(crate) unsafe fn run_due(sched: &Sched, pp: *mut P, now: u64) -> usize {
    let mut ran = 0;
    loop {
        // SAFETY: Ps live as long as their runtime; the heap is under its lock.
        let t = unsafe {
            if (*pp).timer0.load(Ordering::SeqCst) > now {
                return ran;
            }
            let mut h = (*pp).timers.lock();
            let t = match h.heap.peek() {
                Some(t) if t.when <= now => h.heap.pop(),
                _ => None,
            };
            if let Some(Fire::Chan(c)) = t.as_ref().map(|t| &t.fire) {
                if let Some(ct) = c.timer() {
                    ct.popped.store(true, Ordering::SeqCst);
                }
            }
            let next = h.heap.peek().map_or(u64::MAX, |t| t.when);
            (*pp).timer0.store(next, Ordering::SeqCst);
            // The firing time is read under the heap lock: pops from one heap are serialised
            // by it and come in deadline order, so their times do too (several Ms may run
            // due timers at once, each with its own, possibly older, `now`).
            match t {
                Some(t) => (t, platform::get().nanotime()),
                None => return ran,
            }
        };
        let (t, fired) = t;
        sched.ntimers.fetch_sub(1, Ordering::SeqCst);
        ran += 1;
        crate::tracer::with_src(rt_trace::format::UnblockSource::Timer, || match t.fire {
            Fire::Ready(gp) => {
                live_done(&sched.live_timers);
                // SAFETY: the G parked in `sleep` and only this timer readies it.
                unsafe { goready(gp) }
            }
            Fire::Chan(c) => {
                if c.timer().is_some_and(|t| t.disarm()) {
                    // Room for one value, and only the one that disarms sends: never blocks.
                    let _ = c.try_send(fired);
                }
            }
        });
    }
}

/// The earliest deadline over all Ps (u64::MAX: no timers).
pub(crate) fn earliest(sched: &Sched) -> u64 {
    sched
        .allp
        .iter()
        // SAFETY: Ps live as long as their runtime.
        .map(|&pp| unsafe { (*pp).timer0.load(Ordering::SeqCst) })
        .min()
        .unwrap_or(u64::MAX)
}

/// Runs every P's due timers; returns how many ran.
///
/// # Safety
/// On g0 of an M of `sched`.
pub(crate) unsafe fn run_all_due(sched: &Sched) -> usize {
    if sched.ntimers.load(Ordering::SeqCst) == 0 {
        return 0;
    }
    let first = earliest(sched);
    if first == u64::MAX {
        return 0;
    }
    let now = now();
    if first > now {
        return 0;
    }
    let mut ran = 0;
    for &pp in &sched.allp {
        // SAFETY: forwarded.
        ran += unsafe { run_due(sched, pp, now) };
    }
    ran
}

/// Moves every timer of `from` to `to` (a P that `set_gomaxprocs` retires gives its timers to
/// P 0, as Go's `procresize` → `destroy` → `moveTimers` does). One heap lock at a time.
///
/// # Safety
/// `from` and `to` are distinct Ps of `sched`.
pub(crate) unsafe fn move_timers(sched: &Sched, from: *mut P, to: *mut P) {
    // SAFETY: Ps live as long as their runtime; each heap is under its lock.
    let moved: alloc::vec::Vec<Timer> = unsafe {
        let mut h = (*from).timers.lock();
        (*from).timer0.store(u64::MAX, Ordering::SeqCst);
        core::mem::take(&mut h.heap).into_vec()
    };
    if moved.is_empty() {
        return;
    }
    let first = moved.iter().map(|t| t.when).min().unwrap_or(u64::MAX);
    // SAFETY: as above.
    unsafe {
        let mut h = (*to).timers.lock();
        h.heap.extend(moved);
        if first < (*to).timer0.load(Ordering::Relaxed) {
            (*to).timer0.store(first, Ordering::SeqCst);
        }
    }
    crate::poll::wake_poller(sched, first);
}

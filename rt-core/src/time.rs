//! Timers: Go's per-P timer heaps (time.go), `time.Sleep`, `time.After`, `time.NewTimer`,
//! `time.AfterFunc`, `time.NewTicker` and `time.Tick`, with Go 1.23's semantics.
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
//! What a timer does when it fires is never blocking: ready a sleeping goroutine, send the
//! time on a channel with room for it (`after`, [`Timer`], [`Ticker`]; a ticker whose
//! receiver has not taken the last tick drops the new one), or spawn a goroutine running an
//! [`after_func`]'s function (the firing M may be on g0 without a P: `newproc` then uses the
//! global queue).
//!
//! Stop and reset (Go 1.23's synchronous timer channels): a channel timer's state is guarded
//! by its channel's lock (chan.rs `timer_locked`), under which it fires, stops and resets.
//! Each stop or reset starts a new *arming* (`ChanTimer::gen`); a heap entry carries the
//! arming it was added for and fires nothing if that is no longer current, and stop and
//! reset remove a value sent but not yet received. So once `stop` or `reset` returns, no value
//! of an earlier arming can be received. A ticker's entry re-adds itself for the next period
//! boundary after the time it fired (Go: `when += period * (1 + (now-when)/period)`), on the
//! heap it was run from; its value is the time the tick was due. A tick that finds the last
//! one unreceived is dropped. Only one-shot channel timers fire from a receive
//! (`maybe_fire`); a ticker's ticks and an `after_func` come from their heap entries.
//!
//! Stale entries: an entry of an old arming, or of a channel timer whose channel nobody holds
//! any more (entries hold channel timers weakly; an `after_func`'s strongly, since its function
//! must run), can fire nothing. It is dropped when popped, and a heap drops all of its stale
//! entries each time it has doubled since the last cleaning (`Timers::maybe_clean`), so timers
//! stopped or reset long before their deadlines do not pile up (Go removes its zombies too).
//!
//! Which timers keep the program alive (Go 1.23): a sleeping goroutine's timer, until it
//! fires; an `after_func` timer while it is pending; a channel timer (`after`, `new_timer`,
//! a ticker) only while it is pending (neither fired nor stopped; a ticker until stopped)
//! *and* a goroutine is blocked receiving from its channel (`recv`, or a `select` case) — Go
//! keeps such a timer in the heap only then. A stopped timer, or the `after` of a
//! `select` that took another case, can ready nobody, so it must not keep `checkdead` from
//! reporting a deadlock. Here a stopped or abandoned channel timer may stay in its heap for a
//! while (see stale entries above) but is not *live*.
//!
//! Invariants: `p.timer0` is the heap's minimum `when` (or MAX), written under the heap lock;
//! `sched.ntimers` counts timers in all heaps (whether any heap needs running);
//! `sched.live_timers` counts the live ones (deadlock detection and the poller look at it):
//! each sleep timer from `addtimer` until it fires, each channel timer while its
//! [`ChanTimer::state`] is `PENDING` with a blocked count above zero (an `after_func` timer
//! holds one `BLOCKED` of its own for its whole life, so it is live while pending; every
//! change of that state is one atomic step, and the count follows the step that changed the
//! timer's part). A channel timer's heap entries carry armings no later than its `gen`, and
//! at most one carries the current one (the one that can fire).
//! A transient misread of the count is harmless: it happens only while the goroutine or M
//! making the change runs, so `checkdead` (all Ms idle) cannot see it, and that M passes
//! through the poller's check again before it goes idle.

use alloc::boxed::Box;
use alloc::collections::BinaryHeap;
use alloc::sync::Arc;
use core::cmp::Ordering as CmpOrdering;
use core::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

use crate::chan::{self, Chan, TimerSlot, WeakChan};
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
    /// Fire arming `gen` of an `after_func` timer (its channel holds its [`ChanTimer`]), if
    /// that arming is still the current one and pending. Strong: the function runs even if
    /// nobody holds the timer.
    Func { c: Chan<u64>, gen: u64 },
    /// Fire arming `gen` of a channel timer (one-shot or ticker), likewise, if someone still
    /// holds its channel: once nobody does, nobody can receive from it, and the entry is
    /// dropped (Go 1.23 collects such timers).
    Chan { c: WeakChan<u64>, gen: u64 },
}

/// `ChanTimer::state`: armed, neither fired nor stopped.
const PENDING: usize = 1;
/// `ChanTimer::state`: one goroutine blocked receiving from the timer's channel.
const BLOCKED: usize = 2;

/// An `after_func`'s function (Go's `func()`: a reset timer may run it again).
type TimerFunc = Arc<dyn Fn() + Send + Sync>;

/// A channel timer's state, held by its channel (Go's `hchan.timer`). Everything but the
/// blocked count and `popped` changes only under the channel's lock (chan.rs
/// `timer_locked`, or a receive, which holds it).
pub(crate) struct ChanTimer {
    /// `PENDING` while armed, plus `BLOCKED` for each goroutine blocked receiving from the
    /// channel (Go's `timer.isSending`/`blocked`), plus one for an `after_func` timer's
    /// function. The timer is live while both are non-zero. `PENDING` changes under the
    /// channel's lock; the count changes anywhere (atomically).
    state: AtomicUsize,
    /// When the current arming fires ([`now`]'s clock); under the channel's lock.
    when: AtomicU64,
    /// A ticker's period in ns (0: a one-shot); under the channel's lock.
    period: AtomicU64,
    /// The current arming (from 1), bumped by every stop and reset under the channel's lock:
    /// a heap entry of another arming fires nothing.
    gen: AtomicU64,
    /// The arming whose heap entry an M has popped to run it (0: none), set under its heap's
    /// lock: from then on only that M fires it, so that values keep the order of the heap's
    /// pops.
    popped: AtomicU64,
    /// An `after_func` timer's function: firing spawns it instead of sending.
    func: Option<TimerFunc>,
    /// The owning runtime's `live_timers` (shared: the timer may outlive the runtime).
    live: Arc<AtomicI64>,
}

/// What firing an entry under the timer's lock leaves to do after the unlock.
enum Fired {
    Nothing,
    /// Spawn the `after_func` function.
    Spawn(TimerFunc),
    /// A ticker: add the entry for its next tick, at this time.
    Rearm(u64),
}

impl ChanTimer {
    /// Whether the timer is armed (it will fire unless stopped): the leak finder counts an
    /// armed timer as a live holder of its channel.
    pub(crate) fn armed(&self) -> bool {
        self.state.load(Ordering::SeqCst) & PENDING != 0
    }

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

    /// Ends the arming (it fires, or is stopped); true if it was pending. Under the lock.
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

    /// Makes the timer pending again (a reset); true if it already was. Under the lock.
    fn arm(&self) -> bool {
        let prev = self.state.fetch_or(PENDING, Ordering::SeqCst);
        if prev & PENDING != 0 {
            return true;
        }
        if prev >= BLOCKED {
            self.live.fetch_add(1, Ordering::SeqCst);
        }
        false
    }

    fn pending(&self) -> bool {
        self.state.load(Ordering::SeqCst) & PENDING != 0
    }

    /// Go 1.23's `maybeRunChan`: a receiver that finds the channel empty after the deadline
    /// fires the timer itself and takes the time it returns, so the value is there even if no
    /// M has run the heap yet (a channel timer nobody is blocked on does not keep an idle M
    /// polling for it). The heap entry then finds the timer disarmed and sends nothing. Called
    /// under the channel's lock (a receive); one-shot channel timers only (a ticker's ticks
    /// come from its heap entry, which re-arms it).
    ///
    /// A timer whose entry an M has already popped is left to that M: firing it here with a
    /// later time could hand out a value later than the next timer's, which another M may
    /// already have fired (seen: `timers_fire_in_deadline_order`, 'timer 3 fired before
    /// timer 2'). The receiver then blocks until that M sends, as before.
    pub(crate) fn maybe_fire(&self) -> Option<u64> {
        if !self.pending()
            || self.func.is_some()
            || self.period.load(Ordering::Relaxed) != 0
            || self.popped.load(Ordering::SeqCst) == self.gen.load(Ordering::Relaxed)
        {
            return None;
        }
        let t = now();
        (t >= self.when.load(Ordering::Relaxed) && self.disarm()).then_some(t)
    }

    /// A heap entry of arming `gen` fires at `now`, under the timer's lock.
    fn fire(&self, slot: &mut TimerSlot<'_>, gen: u64, now: u64) -> Fired {
        if gen != self.gen.load(Ordering::Relaxed) || !self.pending() {
            return Fired::Nothing;
        }
        if let Some(f) = &self.func {
            self.disarm();
            return Fired::Spawn(f.clone());
        }
        let period = self.period.load(Ordering::Relaxed);
        if period == 0 {
            self.disarm();
            // Pending, so the buffer is empty (stop and reset drain it): never full.
            slot.send(now);
            return Fired::Nothing;
        }
        // A ticker: its value is the time the tick was due (Go 1.23 sends `Now() - delay`, the
        // same instant), so ticks are whole periods apart. A tick its receiver has not taken
        // yet stays, and this one is dropped.
        let when = self.when.load(Ordering::Relaxed);
        slot.send(when);
        let next =
            when.saturating_add(period.saturating_mul(1 + now.saturating_sub(when) / period));
        self.when.store(next, Ordering::Relaxed);
        Fired::Rearm(next)
    }

    /// Stops the timer under its lock: true if it was pending, or had fired with its value not
    /// yet received (which is removed).
    fn stop_locked(&self, slot: &mut TimerSlot<'_>) -> bool {
        let was = self.disarm();
        self.gen.fetch_add(1, Ordering::Relaxed);
        slot.drain() || was
    }

    /// Re-arms the timer under its lock for `when` (and `period`); returns the new arming and
    /// whether the timer was pending or had an unreceived value (removed).
    fn reset_locked(&self, slot: &mut TimerSlot<'_>, when: u64, period: u64) -> (u64, bool) {
        let drained = slot.drain();
        let gen = self.gen.fetch_add(1, Ordering::Relaxed) + 1;
        self.when.store(when, Ordering::Relaxed);
        self.period.store(period, Ordering::Relaxed);
        let was = self.arm();
        (gen, was || drained)
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

/// An entry of a P's timer heap.
pub(crate) struct Entry {
    pub when: u64,
    seq: u64,
    fire: Fire,
}

// SAFETY: a `Ready` entry's G pointer is handed to exactly one party (whoever pops it).
unsafe impl Send for Entry {}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.when, self.seq) == (o.when, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    /// Reversed: `BinaryHeap` is a max-heap and we want the earliest first.
    fn cmp(&self, o: &Self) -> CmpOrdering {
        (o.when, o.seq).cmp(&(self.when, self.seq))
    }
}

impl Entry {
    /// Whether the entry can never fire anything: its timer was stopped or reset since (its
    /// arming is not the current one; armings only grow, so this stays true), or nobody holds
    /// its channel any more. Without the timer's lock: both only ever become true.
    fn stale(&self) -> bool {
        let old = |c: &Chan<u64>, gen: u64| {
            c.timer()
                .is_some_and(|t| t.gen.load(Ordering::Relaxed) != gen)
        };
        match &self.fire {
            Fire::Ready(_) => false,
            Fire::Func { c, gen } => old(c, *gen),
            Fire::Chan { c, gen } => c.upgrade().is_none_or(|c| old(&c, *gen)),
        }
    }
}

/// A heap is cleaned of stale entries once it has grown to this many...
const CLEAN_MIN: usize = 64;

/// A P's timers (Go's `p.timers`).
pub struct Timers {
    pub(crate) heap: BinaryHeap<Entry>,
    /// ...and then each time it has doubled since the last cleaning (Go removes its zombies as
    /// it meets them; here stale entries are dropped when popped, and by these passes, so that
    /// timers stopped or reset long before their deadlines do not pile up): amortised O(1) per
    /// added entry.
    clean_at: usize,
}

impl Timers {
    pub(crate) const fn new() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            clean_at: CLEAN_MIN,
        }
    }

    /// Drops the stale entries if the heap has grown enough since the last time; returns how
    /// many were dropped.
    fn maybe_clean(&mut self) -> usize {
        if self.heap.len() < self.clean_at {
            return 0;
        }
        let before = self.heap.len();
        self.heap.retain(|e| !e.stale());
        self.clean_at = (2 * self.heap.len()).max(CLEAN_MIN);
        before - self.heap.len()
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
    now().saturating_add(nanos(d))
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
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
    // Counted before it goes in (and cleaned ones after they are out): `ntimers` is never
    // below the entries in the heaps.
    sched.ntimers.fetch_add(1, Ordering::SeqCst);
    // SAFETY: Ps live as long as their runtime; the heap is under its lock.
    let cleaned = unsafe {
        let mut h = (*pp).timers.lock();
        let cleaned = h.maybe_clean();
        h.heap.push(Entry { when, seq, fire });
        // The minimum may have grown (cleaned entries) or shrunk (this one).
        let first = h.heap.peek().map_or(u64::MAX, |t| t.when);
        if first != (*pp).timer0.load(Ordering::Relaxed) {
            (*pp).timer0.store(first, Ordering::SeqCst);
        }
        cleaned
    };
    if cleaned > 0 {
        sched.ntimers.fetch_sub(cleaned as i64, Ordering::SeqCst);
    }
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

/// Runs `f` with the current runtime and the P to add timers on (the current M's, or P 0 of
/// its runtime without one).
///
/// # Panics
/// Outside a runtime (timers live on Ps).
fn with_p<R>(f: impl FnOnce(&Sched, *mut P) -> R) -> R {
    let Some((m, pp)) = current_p() else {
        panic!("rt_core::time: timers need a running runtime");
    };
    // SAFETY: the current M (pinned) and its runtime, which outlives it.
    let sched = unsafe { &*(*m).runtime };
    let pp = if pp.is_null() { sched.allp[0] } else { pp };
    let r = f(sched, pp);
    crate::m::release_m(m);
    r
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

/// Makes a channel timer pending at `when` (arming 1) and adds its heap entry.
fn make_timer(when: u64, period: u64, func: Option<TimerFunc>) -> (Chan<u64>, Arc<ChanTimer>) {
    with_p(|sched, pp| {
        let is_func = func.is_some();
        let t = Arc::new(ChanTimer {
            state: AtomicUsize::new(if is_func { PENDING | BLOCKED } else { PENDING }),
            when: AtomicU64::new(when),
            period: AtomicU64::new(period),
            gen: AtomicU64::new(1),
            popped: AtomicU64::new(0),
            func,
            live: sched.live_timers.clone(),
        });
        if is_func {
            // Pending with its function's hold: live.
            sched.live_timers.fetch_add(1, Ordering::SeqCst);
        }
        let c = chan::make_timer_chan(t.clone());
        // SAFETY: pp is a P of sched (with_p).
        unsafe { addtimer(sched, pp, when, entry_fire(&c, &t, 1)) };
        (c, t)
    })
}

/// The heap entry's action for arming `gen` of `t`, the timer of `c`.
fn entry_fire(c: &Chan<u64>, t: &ChanTimer, gen: u64) -> Fire {
    if t.func.is_some() {
        Fire::Func { c: c.clone(), gen }
    } else {
        Fire::Chan {
            c: c.downgrade(),
            gen,
        }
    }
}

/// Re-arms the timer of `c` at `when` (with `period`): the new arming's heap entry is added
/// once the lock is released (an entry added after a later stop or reset is stale and fires
/// nothing). Returns whether it was pending or had an unreceived value.
fn rearm(c: &Chan<u64>, t: &ChanTimer, when: u64, period: u64) -> bool {
    with_p(|sched, pp| {
        let (gen, was) = c.timer_locked(|slot| t.reset_locked(slot, when, period));
        // SAFETY: pp is a P of sched (with_p).
        unsafe { addtimer(sched, pp, when, entry_fire(c, t, gen)) };
        was
    })
}

/// A one-shot timer (Go's `time.Timer`): a channel timer ([`new_timer`]) sends the time it
/// fired (`now()`, ns) on `c`; an [`after_func`] timer runs its function in a new goroutine.
///
/// Go 1.23's synchronous channel semantics: once [`stop`](Timer::stop) or
/// [`reset`](Timer::reset) returns, no value from before it can be received from `c`, and a
/// timer whose value has not been received counts as not yet fired.
pub struct Timer {
    /// Receives one value when the timer fires. For an `after_func` timer it never receives
    /// (Go's nil `C`).
    pub c: Chan<u64>,
    t: Arc<ChanTimer>,
}

/// The name this type had before [`Ticker`] and `reset` came (kept so existing code builds).
pub type OneShot = Timer;

impl Timer {
    /// Prevents the timer from firing (Go's `Timer.Stop`). True if the call stopped it: it
    /// was pending, or (a channel timer) had fired but its value was not yet received — that
    /// value is removed. False if it was stopped already, its value was received, or an
    /// `after_func` function was already started. A stopped timer no longer counts as
    /// pending: it cannot delay deadlock detection.
    pub fn stop(&self) -> bool {
        self.c.timer_locked(|slot| self.t.stop_locked(slot))
    }

    /// Re-arms the timer to fire `d` from now (Go's `Timer.Reset`); true if it had been
    /// active (pending, or fired with its value not yet received, which is removed). For an
    /// `after_func` timer, false means the function is scheduled to run again.
    ///
    /// # Panics
    /// Outside a goroutine (timers live on Ps).
    pub fn reset(&self, d: Duration) -> bool {
        self.reset_at(deadline(d))
    }

    /// [`reset`](Timer::reset) to fire at `when` ([`now`]'s clock, ns).
    ///
    /// # Panics
    /// Outside a goroutine (timers live on Ps).
    pub fn reset_at(&self, when: u64) -> bool {
        rearm(&self.c, &self.t, when, 0)
    }
}

/// Go's `time.NewTimer(d)`.
///
/// # Panics
/// Outside a goroutine (timers live on Ps).
pub fn new_timer(d: Duration) -> Timer {
    new_timer_at(deadline(d))
}

/// A timer that fires at `when` ([`now`]'s clock, ns): Go's `time.NewTimer(time.Until(t))`
/// without the clock read between computing and arming.
///
/// # Panics
/// Outside a goroutine (timers live on Ps).
pub fn new_timer_at(when: u64) -> Timer {
    let (c, t) = make_timer(when, 0, None);
    Timer { c, t }
}

/// Go's `time.After(d)`: a channel that receives the time once `d` has passed; for timeouts
/// in `select!`.
pub fn after(d: Duration) -> Chan<u64> {
    new_timer(d).c
}

/// Go's `time.AfterFunc(d, f)`: once `d` has passed, `f` runs in a goroutine of its own
/// (spawned by the M that fires the timer). [`Timer::stop`] keeps it from running (true if it
/// did); [`Timer::reset`] schedules it again. The returned timer's `c` never receives. A
/// pending `after_func` timer keeps the program alive (it will start a goroutine).
///
/// # Panics
/// Outside a goroutine (timers live on Ps).
pub fn after_func<F: Fn() + Send + Sync + 'static>(d: Duration, f: F) -> Timer {
    after_func_at(deadline(d), f)
}

/// [`after_func`] at `when` ([`now`]'s clock, ns).
///
/// # Panics
/// Outside a goroutine (timers live on Ps).
pub fn after_func_at<F: Fn() + Send + Sync + 'static>(when: u64, f: F) -> Timer {
    let (c, t) = make_timer(when, 0, Some(Arc::new(f)));
    Timer { c, t }
}

/// A ticker (Go's `time.Ticker`): sends on `c`, every period, the time the tick was due
/// ([`now`]'s clock, ns; it is received no earlier). A receiver that falls behind gets ticks
/// dropped, not queued (one value of room); the next tick is the next period boundary after
/// the time one fired, so tick values are whole periods apart. After [`stop`](Ticker::stop) or [`reset`](Ticker::reset) no tick from
/// before it can be received (Go 1.23). A ticker keeps the program alive only while someone is
/// blocked receiving from it; once nobody holds its channel it stops re-arming.
pub struct Ticker {
    /// Receives the ticks.
    pub c: Chan<u64>,
    t: Arc<ChanTimer>,
}

impl Ticker {
    /// Stops the ticker (Go's `Ticker.Stop`): no more ticks, and a tick not yet received is
    /// removed.
    pub fn stop(&self) {
        self.c.timer_locked(|slot| self.t.stop_locked(slot));
    }

    /// Stops the ticker and restarts it with period `d` (Go's `Ticker.Reset`): the next tick
    /// comes `d` from now; a tick not yet received is removed.
    ///
    /// # Panics
    /// "non-positive interval for Ticker.Reset" if `d` is zero; outside a goroutine.
    pub fn reset(&self, d: Duration) {
        let period = nanos(d);
        if period == 0 {
            panic!("non-positive interval for Ticker.Reset");
        }
        rearm(&self.c, &self.t, now().saturating_add(period), period);
    }
}

/// Go's `time.NewTicker(d)`: the first tick comes `d` from now.
///
/// # Panics
/// "non-positive interval for NewTicker" if `d` is zero; outside a goroutine.
pub fn new_ticker(d: Duration) -> Ticker {
    let period = nanos(d);
    if period == 0 {
        panic!("non-positive interval for NewTicker");
    }
    let (c, t) = make_timer(now().saturating_add(period), period, None);
    Ticker { c, t }
}

/// Go's `time.Tick(d)`: the channel of a ticker that is never stopped (it stops re-arming
/// once the channel is dropped). For `d` zero, Go returns nil: here a channel that never
/// receives.
///
/// # Panics
/// Outside a goroutine (with `d` non-zero).
pub fn tick(d: Duration) -> Chan<u64> {
    if d.is_zero() {
        return chan::make(0);
    }
    new_ticker(d).c
}

/// How many entries the current runtime's timer heaps hold (stale ones included): for tests
/// that stale entries do not pile up. 0 outside a runtime.
#[doc(hidden)]
pub fn heap_entries() -> usize {
    let m = crate::m::acquire_current_m();
    if m.is_null() {
        return 0;
    }
    // SAFETY: the current M (pinned) and its runtime, which outlives it.
    let n = unsafe { (*(*m).runtime).ntimers.load(Ordering::SeqCst) };
    crate::m::release_m(m);
    n.max(0) as usize
}

/// Spawns an `after_func`'s function, on g0 of the M that fired its timer.
fn spawn_func(f: TimerFunc) {
    crate::proc::newproc(Box::new(move || f()), core::panic::Location::caller());
}

/// Fires the heap entry of arming `gen` of the timer of `c`, popped from `pp`'s heap.
///
/// # Safety
/// On g0 of an M of `sched`; `pp` is a P of `sched`.
unsafe fn fire_timer(sched: &Sched, pp: *mut P, c: &Chan<u64>, gen: u64, fired: u64) {
    let Some(t) = c.timer() else {
        return;
    };
    match c.timer_locked(|slot| t.fire(slot, gen, fired)) {
        Fired::Nothing => {}
        Fired::Spawn(f) => spawn_func(f),
        Fired::Rearm(when) => {
            // SAFETY: the caller's promise.
            unsafe { addtimer(sched, pp, when, entry_fire(c, t, gen)) }
        }
    }
}

/// A popped heap entry, to run once the heap's lock is released.
enum Due {
    Ready(*mut G),
    /// Arming `gen` of the timer of this channel.
    Timer(Chan<u64>, u64),
    /// A channel timer whose channel nobody holds: nothing to do.
    Gone,
}

/// Runs the timers of `pp` that are due at `now` (Go's `checkTimers` → `runtimer`); returns
/// how many ran. Callable by any M (on g0) with or without a P: readied goroutines (and the
/// goroutines of `after_func`) go to the caller's P, or the global queue.
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
            let t = t.map(|t| match t.fire {
                Fire::Ready(gp) => Due::Ready(gp),
                Fire::Func { c, gen } => Due::Timer(c, gen),
                Fire::Chan { c, gen } => match c.upgrade() {
                    Some(c) => {
                        if let Some(ct) = c.timer() {
                            ct.popped.store(gen, Ordering::SeqCst);
                        }
                        Due::Timer(c, gen)
                    }
                    None => Due::Gone,
                },
            });
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
        crate::tracer::with_src(rt_trace::format::UnblockSource::Timer, || match t {
            Due::Ready(gp) => {
                live_done(&sched.live_timers);
                // SAFETY: the G parked in `sleep` and only this timer readies it.
                unsafe { goready(gp) }
            }
            // SAFETY: the caller's promise.
            Due::Timer(c, gen) => unsafe { fire_timer(sched, pp, &c, gen, fired) },
            Due::Gone => {}
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
    let moved: alloc::vec::Vec<Entry> = unsafe {
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

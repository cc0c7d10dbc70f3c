//! Leaked goroutines, found without a garbage collector: goroutines parked on channels that
//! no goroutine that could ever run again can reach. Go 1.26's experimental `goroutineleak`
//! profile finds them with the GC's reachability; rt-core's channels are reference-counted,
//! which is enough for the common leaks.
//!
//! **The rule.** A `Chan<T>` is a handle: one count of its channel's `Arc`. A goroutine
//! parked in `send`, `recv` or `select` borrows a handle for each channel it waits on (the
//! `&self`, or the case's `&Chan`), and records where: the channel in its G (g.rs
//! `waitchan`, one store on the blocking path), the handle in the sudog it queues (or, for a
//! select, its cases in the `SelWait` its sudogs point to), both on its own stack, so the G
//! does not grow (a bigger G cost `spawn` 20 %: a million of them are a lot of cache lines).
//! A borrowed handle whose address lies in its goroutine's own stack, or in the heap block of
//! the closure it runs (its captures, recorded by `goentry` at the top of the stack), is one that only that goroutine can use. For a set `L` of parked
//! goroutines: if for every channel any of them waits on, the distinct such handles of the
//! members of `L` are all of the channel's handles (their number is the `Arc`'s strong
//! count), no one outside `L` can touch those channels, and no member can wake before
//! another: all of `L` is leaked. The finder takes the largest such `L` (start from every
//! parked channel waiter; drop those waiting on a channel that is not all accounted for;
//! repeat). A handle anywhere else (in an `Arc`, a static, a heap structure, a timer, a
//! thread outside the runtime) is never counted, so such a channel is never "dead": the
//! finder can miss leaks but does not report a goroutine that could still be woken.
//! Goroutines parked in a `select` with no enabled case (Go's `select {}`) are leaked
//! outright. The one escape from the rule is code that lends a parked goroutine's stack to
//! another thread (`std::thread::scope` around a channel wait, or raw pointers): a handle
//! borrowed from there is counted as the parked goroutine's own.
//!
//! **Reading a running world.** The finder runs while goroutines run (on demand) or after
//! the Ms have left (at `block_on`'s return). It keeps three things straight:
//! - channels are not freed while it looks: it counts itself in `FINDERS` (with a SeqCst
//!   fence), and `HChan`'s `Drop` waits while a finder looks ([`wait_for_finders`]), so any
//!   channel address read from a goroutine's record after the fence stays valid;
//! - a goroutine's record (which points into its stack) is read only while it cannot wake
//!   or leave its wait: with the lock of the channel it recorded held, and one of its
//!   sudogs still queued there (a plain wait stays parked until a waker dequeues it under
//!   that lock; a select cannot leave before re-taking every one of its locks);
//! - the counts are read with the locks of every channel involved held at once (taken in
//!   address order, as `select` takes them), and a select is counted only if every one of its
//!   sudogs is still queued (none has been claimed by a waker).
//!
//! Go's counterpart: the `goroutineleak` profile (runtime/mgc.go, `findGoroutineLeaks`) and
//! its report, `goroutine 7 [chan send (leaked)]:` with the goroutine's traceback.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::sync::atomic::{fence, AtomicUsize, Ordering};

use crate::chan::ChanOps;
use crate::g::{WaitReason, G};
use crate::sched::Sched;
use crate::select::Case;
use crate::status::GStatus;

/// `G::waitchan` of a goroutine parked for ever (a select with no enabled case).
pub(crate) const WAIT_NEVER: usize = 1;
/// What a parked goroutine's sudog on a channel says of its wait ([`ChanOps`]'s `queued`).
pub(crate) enum Waiting {
    /// A plain send or receive, borrowing the handle at this address.
    Single(usize),
    /// A select, whose [`SelWait`](crate::select::SelWait) (on its stack) lists its cases.
    Select(*const crate::select::SelWait),
}

/// Finders looking now (channels are not freed meanwhile).
static FINDERS: AtomicUsize = AtomicUsize::new(0);

/// Records, for the finder, that `gp` parks in a channel operation on the channel at `chan`
/// (for a select, one of its channels; 0: none the finder can see). The rest of the record is
/// in the sudog the G queues there (the borrowed handle, or its select's cases).
///
/// # Safety
/// `gp` is the running G (the caller), about to park.
#[inline]
pub(crate) unsafe fn record_chan(gp: *mut G, chan: usize) {
    // SAFETY: the caller's promise: this is our own G's field.
    unsafe { (*gp).waitchan.store(chan, Ordering::Relaxed) };
}

/// Records that `gp` parks for ever (a select with no enabled case).
///
/// # Safety
/// As for [`record_chan`].
pub(crate) unsafe fn record_never(gp: *mut G) {
    // SAFETY: the caller's promise.
    unsafe { (*gp).waitchan.store(WAIT_NEVER, Ordering::Relaxed) };
}

/// Called as a channel is freed: waits while a finder looks (it may hold the address).
#[inline]
pub(crate) fn wait_for_finders() {
    fence(Ordering::SeqCst);
    while FINDERS.load(Ordering::Relaxed) != 0 {
        // A finder holds preemption off and takes no lock a dropper holds: it ends soon.
        core::hint::spin_loop();
        crate::platform::get().osyield();
    }
}

/// A finder's presence (see the module comment); ends when dropped.
struct Looking;

impl Looking {
    fn start() -> Looking {
        FINDERS.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        Looking
    }
}

impl Drop for Looking {
    fn drop(&mut self) {
        FINDERS.fetch_sub(1, Ordering::Release);
    }
}

/// A leaked goroutine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakedGoroutine {
    /// Its id (Go's `goid`).
    pub goid: u64,
    /// What it waits for, in Go's words (`chan send`, `chan receive`, `select`, ...).
    pub wait: &'static str,
    g: *const G,
}

// SAFETY: the G pointer is only an identity for the report (Gs live as long as their
// runtime), read by `write_report` of the same runtime.
unsafe impl Send for LeakedGoroutine {}

/// The channel functions of the channel at `chan` (its first field).
///
/// # Safety
/// `chan` is the address of a live `HChan` (a finder is looking).
unsafe fn ops(chan: usize) -> &'static ChanOps {
    // SAFETY: the caller's promise; every HChan is repr(C) with its ops first.
    unsafe { *(chan as *const &'static ChanOps) }
}

/// A parked goroutine the finder considers.
struct Cand {
    g: *const G,
    reason: WaitReason,
    /// The channel it recorded (whose lock keeps it parked).
    chan: usize,
    /// Validated under the locks: each channel it waits on and the handle it borrows there.
    chans: Vec<(usize, usize)>,
    valid: bool,
}

fn waits_on_channel(r: WaitReason) -> bool {
    matches!(
        r,
        WaitReason::ChanSend
            | WaitReason::ChanReceive
            | WaitReason::Select
            | WaitReason::SelectNoCases
    )
}

/// Rounds of growing the set of locked channels before giving up on the goroutines whose
/// channels keep changing (they are then not reported).
const ROUNDS: usize = 4;

/// The leaked goroutines of `sched` (see the module comment), in goroutine order.
pub fn find(sched: &Sched) -> Vec<LeakedGoroutine> {
    let looking = Looking::start();
    // Preemption off while we look (droppers of channels wait for us).
    let m = crate::m::acquire_current_m();
    let mut leaked: Vec<(*const G, WaitReason)> = Vec::new();
    let mut cands: Vec<Cand> = Vec::new();
    {
        let slabs = sched.allgs.lock();
        for &slab in slabs.iter() {
            // SAFETY: slabs live as long as the runtime; only atomics are read here.
            for g in unsafe { &*slab } {
                if g.goid() == 0
                    || GStatus::from_raw(g.atomicstatus.load(Ordering::Acquire))
                        != Some(GStatus::Waiting)
                {
                    continue;
                }
                let reason = g.waitreason();
                if !waits_on_channel(reason) {
                    continue;
                }
                match g.waitchan.load(Ordering::Acquire) {
                    0 => {}
                    // Written only just before a park that nothing ends.
                    WAIT_NEVER => leaked.push((g, reason)),
                    chan => cands.push(Cand {
                        g,
                        reason,
                        chan,
                        chans: Vec::new(),
                        valid: false,
                    }),
                }
            }
        }
    }
    let mut set: Vec<usize> = cands.iter().map(|c| c.chan).collect();
    set.sort_unstable();
    set.dedup();
    for _ in 0..ROUNDS {
        if cands.is_empty() {
            break;
        }
        // SAFETY: every address in `set` came from a record read after `looking` started:
        // a live channel (module comment).
        let mut locks: Vec<((u64, usize), usize)> = set
            .iter()
            // SAFETY: as above.
            .map(|&c| unsafe { (((ops(c).order)(c), (ops(c).lock_addr)(c)), c) })
            .collect();
        locks.sort_unstable();
        for &(_, c) in &locks {
            // SAFETY: as above; taken in select's lock order.
            unsafe { (ops(c).lock)(c) };
        }
        let mut missing = Vec::new();
        for c in cands.iter_mut() {
            // SAFETY: every channel of `set` is locked.
            unsafe { validate(c, &set, &mut missing) };
        }
        let done = missing.is_empty();
        if done {
            // SAFETY: every channel of `set` is locked, and the valid candidates' channels
            // are all in it.
            unsafe { settle(&mut cands) };
            leaked.extend(cands.iter().filter(|c| c.valid).map(|c| (c.g, c.reason)));
        }
        for &(_, c) in locks.iter().rev() {
            // SAFETY: locked above.
            unsafe { (ops(c).unlock)(c) };
        }
        if done {
            break;
        }
        set.extend(missing);
        set.sort_unstable();
        set.dedup();
    }
    crate::m::release_m(m);
    drop(looking);
    let mut out: Vec<LeakedGoroutine> = leaked
        .into_iter()
        .map(|(g, r)| LeakedGoroutine {
            // SAFETY: Gs live as long as their runtime.
            goid: unsafe { (*g).goid() },
            wait: r.as_str(),
            g,
        })
        .collect();
    out.sort_by_key(|l| l.goid);
    out
}

/// Checks, under the locks of `set`, that `c` is still parked in the wait it recorded, and
/// reads the channels and handles of that wait; channels it waits on outside `set` go to
/// `missing` (the caller locks them too and looks again).
///
/// # Safety
/// Every channel of `set` (sorted) is locked by the caller.
unsafe fn validate(c: &mut Cand, set: &[usize], missing: &mut Vec<usize>) {
    c.valid = false;
    c.chans.clear();
    // SAFETY: Gs live as long as their runtime; the record's words are atomics.
    let g = unsafe { &*c.g };
    if g.waitchan.load(Ordering::Acquire) != c.chan {
        return;
    }
    // SAFETY: c.chan is in `set`, so live and locked.
    let Some(waiting) = (unsafe { (ops(c.chan).queued)(c.chan, c.g as *mut G) }) else {
        return;
    };
    // Parked in the wait recorded (or, for a select woken elsewhere, stuck before it can
    // leave it): its sudog, select state and the frames they point into stay put while we
    // hold the lock.
    let sel = match waiting {
        Waiting::Single(handle) => {
            c.chans.push((c.chan, handle));
            c.valid = true;
            return;
        }
        Waiting::Select(sel) => sel,
    };
    // SAFETY: the select's SelWait, on its parked goroutine's stack (above).
    let (cases, len) = unsafe { ((*sel).cases as *const &mut dyn Case, (*sel).ncases) };
    for i in 0..len {
        // SAFETY: the select's case list, on its stack, in place while it cannot leave
        // `select` (above); each case borrows its channel handle, live meanwhile.
        let case: &dyn Case = unsafe { &**cases.add(i) };
        if !case.enabled() {
            continue;
        }
        let Some(p) = case.leak_probe() else {
            return; // a case the finder cannot see: never reported
        };
        if set.binary_search(&p.chan).is_err() {
            missing.push(p.chan);
        } else if !p.queued {
            return; // claimed by a waker: it is waking
        }
        c.chans.push((p.chan, p.handle));
    }
    c.valid = c
        .chans
        .iter()
        .all(|&(ch, _)| set.binary_search(&ch).is_ok());
}

/// Whether `addr` lies where only `g` can reach: its stack, or its closure's heap block
/// (which `proc.rs::goentry` records in the padding at the top of the stack).
///
/// # Safety
/// `g` is parked (its stack is live and its top words were written by its `goentry`).
unsafe fn owned_by(g: &G, addr: usize) -> bool {
    let s = g.stack;
    if s.lo <= addr && addr < s.hi {
        return true;
    }
    // SAFETY: the caller's promise; the two words below `hi` are the closure's range.
    let (lo, hi) = unsafe {
        let top = s.hi as *const usize;
        (top.sub(2).read(), top.sub(1).read())
    };
    lo <= addr && addr < hi
}

/// The largest set of valid candidates whose channels are all accounted for by their own
/// handles: the others are marked not valid.
///
/// # Safety
/// The channels of every valid candidate are locked by the caller.
unsafe fn settle(cands: &mut [Cand]) {
    loop {
        // Each channel's distinct owned borrowed handles among the members.
        let mut per: Vec<(usize, usize)> = Vec::new();
        for c in cands.iter().filter(|c| c.valid) {
            // SAFETY: Gs live as long as their runtime; a valid one is parked (its stack
            // bounds fixed meanwhile).
            let g = unsafe { &*c.g };
            // SAFETY: as above.
            per.extend(
                c.chans
                    .iter()
                    .filter(|&&(_, h)| unsafe { owned_by(g, h) })
                    .copied(),
            );
        }
        per.sort_unstable();
        per.dedup();
        let accounted = |chan: usize| {
            let start = per.partition_point(|&(c, _)| c < chan);
            let n = per[start..].iter().take_while(|&&(c, _)| c == chan).count();
            // SAFETY: a member's channel: live and locked.
            n == unsafe { (ops(chan).handles)(chan) }
        };
        let mut changed = false;
        for c in cands.iter_mut().filter(|c| c.valid) {
            if !c.chans.iter().all(|&(ch, _)| accounted(ch)) {
                c.valid = false;
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

/// Writes Go's goroutineleak report of `leaked` (goroutines of `sched`): each as
/// `goroutine 7 [chan send (leaked)]:` with its traceback and `created by` line, a blank
/// line between them.
pub fn write_report(w: &mut dyn Write, leaked: &[LeakedGoroutine]) -> fmt::Result {
    let lvl = crate::traceback::level().max(crate::traceback::Level::All);
    for (i, l) in leaked.iter().enumerate() {
        if i > 0 {
            w.write_char('\n')?;
        }
        // SAFETY: Gs live as long as their runtime; a leaked G stays parked (its gobuf and
        // stack do not change).
        let g = unsafe { &*l.g };
        crate::traceback::write_goroutine_marked(w, g, None, lvl, " (leaked)")?;
    }
    Ok(())
}

/// The leaked goroutines of the runtime the caller runs in (empty outside a runtime).
pub fn leaked_goroutines() -> Vec<LeakedGoroutine> {
    let m = crate::m::getm();
    if m.is_null() {
        return Vec::new();
    }
    // SAFETY: an M's runtime outlives it.
    find(unsafe { &*(*m).runtime })
}

/// A leak report: the leaked goroutines and [`write_report`]'s text of them.
#[derive(Debug, Clone)]
pub struct LeakReport {
    pub goroutines: Vec<LeakedGoroutine>,
    pub text: String,
}

impl LeakReport {
    /// Finds the leaked goroutines of `sched` and writes their report.
    pub fn of(sched: &Sched) -> LeakReport {
        let goroutines = find(sched);
        let mut text = String::new();
        let _ = write_report(&mut text, &goroutines);
        LeakReport { goroutines, text }
    }
}

/// The leak report of the runtime the caller runs in (empty outside a runtime).
pub fn leak_report() -> LeakReport {
    let m = crate::m::getm();
    if m.is_null() {
        return LeakReport {
            goroutines: Vec::new(),
            text: String::new(),
        };
    }
    // SAFETY: an M's runtime outlives it.
    LeakReport::of(unsafe { &*(*m).runtime })
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::Looking;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Sets its flag when dropped: it sits in a channel's buffer, so the flag says the
    /// channel's memory was freed.
    struct Freed(Arc<AtomicBool>);
    impl Drop for Freed {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// The guarantee the finder reads channels by (module comment): a channel whose last
    /// handle goes while a finder looks is freed only once the finder is done.
    #[test]
    fn a_channel_is_not_freed_while_a_finder_looks() {
        // The dropper's wait yields through the platform.
        crate::platform::set(&crate::host::HOST).expect("the host platform");
        let freed = Arc::new(AtomicBool::new(false));
        let c = crate::chan::make::<Freed>(1);
        assert!(c.try_send(Freed(freed.clone())).is_ok());
        let looking = Looking::start();
        let dropper = std::thread::spawn(move || drop(c));
        // Long enough for the dropper to reach the free (it must then wait for us).
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until && !freed.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            !freed.load(Ordering::SeqCst),
            "a channel was freed while a leak finder looked (it may hold its address)"
        );
        drop(looking);
        dropper.join().unwrap();
        assert!(freed.load(Ordering::SeqCst), "the channel was never freed");
    }
}

//! The host's deterministic mode ([`crate::Runtime::deterministic`]): a run whose every
//! scheduling choice comes from one seeded generator, so that a failure found under some seed
//! happens again, step for step, when that seed is run again.
//!
//! How: the threads of a run (M0, the caller; every M the scheduler starts; sysmon) are
//! *participants* of one [`World`], and exactly one of them runs at a time: it holds the
//! baton. The others wait in the platform call that gave the baton away. The baton moves only
//! inside platform calls (host.rs diverts them here while a world is alive): a futex sleep or
//! poller sleep, `usleep`, `osyield` always pass it on; `futex_wake`, `nanotime` and the
//! runtime's scheduling points (`Platform::sched_point`, at every runtime lock taken, which
//! the runtime calls only while a world is alive) pass it on when the generator says so. Which participant gets it is the generator's choice among those
//! that can run. So between two platform calls a participant runs alone, and the order of all
//! shared-memory events in the run is a function of the seed.
//!
//! Time is virtual: `nanotime` is the world's clock, which moves forward a little (the
//! generator says how much) at every read, and jumps to the earliest deadline of a sleeper
//! when no participant can run. Timers therefore fire in deadline order with no real waiting,
//! and sysmon (a participant whose 20 µs–10 ms sleeps are virtual) preempts a goroutine that
//! has run past its time slice (also chosen from the seed) at its next safe point. Asynchronous
//! preemption (signals) is off: a signal's arrival is not in the generator's hands.
//!
//! Besides the baton, the seed chooses each M's random numbers ([`crate::run::Config::rand_seed`]:
//! the order in which a thief visits its victims, select's order among ready cases).
//!
//! Invariants: only the baton holder touches runtime state; a participant waits only in
//! [`World::wait_turn`]; the world's state is changed only by the baton holder, under its
//! mutex (the mutex is never contended in a way that depends on timing: others only read
//! `running` to see whether the baton is theirs).
//!
//! Not deterministic: code in goroutines that blocks the OS thread other than through the
//! runtime (a `std::sync::Mutex` held across a channel operation, `std::thread::sleep`,
//! reading the real clock) — the first hangs the world, the others make runs differ.
//!
//! Go has no such mode; the idea is that of loom and shuttle (one thread at a time, a seeded
//! scheduler), applied to the runtime's own threads rather than to a model of them.

use core::cell::Cell;
use core::ptr::null;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::boxed::Box;
use std::string::String;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;
use std::vec::Vec;

/// Worlds alive in the process: the runtime's own count of who wants scheduling points.
/// While 0 (no deterministic run), the host's platform calls and the runtime's scheduling
/// points cost one load and a branch more than without this mode.
use crate::platform::SCHED_POINTS as WORLDS;

/// Steps (baton passes) after which a run is declared stuck (a livelock: goroutines that
/// keep the Ms busy without ever finishing).
const MAX_STEPS: u64 = 5_000_000;

/// Virtual time after which a run is declared stuck (an hour of it).
const MAX_VIRTUAL_NS: u64 = 3_600_000_000_000;

std::thread_local! {
    /// The world this thread is a participant of, and its index there.
    static ME: Cell<(*const World, usize)> = const { Cell::new((null(), 0)) };
    /// Seed for runtimes made with `Runtime::new` on this thread ([`scope`]).
    static SCOPE: Cell<Option<u64>> = const { Cell::new(None) };
    /// What the last deterministic run on this thread did ([`last_run`]).
    static LAST: Cell<Option<DetRun>> = const { Cell::new(None) };
}

/// What a deterministic run did: equal for two runs with the same seed and program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetRun {
    /// The seed.
    pub seed: u64,
    /// Baton passes (scheduling decisions among threads).
    pub steps: u64,
    /// A hash of every decision: which participant ran next, at which virtual time.
    pub schedule_hash: u64,
    /// Virtual nanoseconds the run took.
    pub virtual_ns: u64,
    /// Threads (Ms and sysmon) the run started.
    pub threads: usize,
}

/// The seeded generator (SplitMix64: small, fast, and every seed gives a different stream).
fn next(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Derives the run's other seeded settings from `seed` (one generator each, so that adding a
/// draw to one does not shift the others).
pub(crate) fn derive(seed: u64, what: u64) -> u64 {
    let mut s = seed ^ what.wrapping_mul(0xd6e8_feb8_6659_fd93);
    next(&mut s)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wait {
    /// Can run.
    Run,
    /// In `futex_sleep` on this address.
    Futex(usize),
    /// In `usleep` until this virtual time.
    Sleep(u64),
    /// In `poll_sleep` on this address until this virtual time.
    Poll(usize, u64),
    /// Gone.
    Done,
}

struct Part {
    wait: Wait,
    thread: Option<Thread>,
}

struct State {
    rng: u64,
    now: u64,
    parts: Vec<Part>,
    /// The participant holding the baton.
    running: usize,
    steps: u64,
    hash: u64,
}

/// One deterministic run's threads and clock.
pub(crate) struct World {
    seed: u64,
    st: Mutex<State>,
    /// Set when the run is over (M0 has left): then a participant that still runs (an M stuck
    /// in a goroutine) is no longer part of any result, and a world with no one able to run
    /// is simply finished.
    over: AtomicBool,
}

impl Drop for World {
    fn drop(&mut self) {
        WORLDS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// This thread's world, if it is a participant of one.
#[inline]
pub(crate) fn current() -> Option<(&'static World, usize)> {
    if WORLDS.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let (w, me) = ME.with(|c| c.get());
    // SAFETY: ME is set only while this thread holds an Arc of the world (its participant
    // closure, or block_on's guard), and cleared before that Arc is dropped.
    unsafe { w.as_ref() }.map(|w| (w, me))
}

/// Runs `f` with every runtime made by `Runtime::new` on this thread deterministic under
/// `seed` (for running existing test bodies under many seeds without changing them).
pub fn scope<R>(seed: u64, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<u64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(SCOPE.with(|c| c.replace(Some(seed))));
    f()
}

/// The seed of the enclosing [`scope`], if any.
pub(crate) fn scoped_seed() -> Option<u64> {
    SCOPE.with(|c| c.get())
}

/// What the last deterministic run that ended on this thread did.
pub fn last_run() -> Option<DetRun> {
    LAST.with(|c| c.get())
}

/// The seeds a test should try: `GORT_SEED` alone if it is set (to rerun a failure), else
/// `GORT_SEEDS` of them (default `count`) from 0 on. A value that is not a number (decimal
/// or `0x` hex) is an error.
pub fn seeds(count: u64) -> Result<Vec<u64>, String> {
    if let Some(v) = std::env::var_os("GORT_SEED") {
        let v = v.to_string_lossy();
        return parse_u64(&v)
            .map(|s| std::vec![s])
            .ok_or_else(|| std::format!("GORT_SEED={v}: not a number (decimal or 0x hex)"));
    }
    let n = match std::env::var_os("GORT_SEEDS") {
        Some(v) => {
            let v = v.to_string_lossy();
            parse_u64(&v)
                .ok_or_else(|| std::format!("GORT_SEEDS={v}: not a number (decimal or 0x hex)"))?
        }
        None => count,
    };
    Ok((0..n).collect())
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The line printed when a deterministic run fails.
pub fn failure_line(seed: u64) -> String {
    std::format!("rt-core: deterministic run, seed {seed:#x}; rerun with GORT_SEED={seed:#x}")
}

/// Block_on's hold on the world: M0's participation, ended on drop.
pub(crate) struct MainGuard {
    world: Arc<World>,
}

impl World {
    /// A world whose only participant, holding the baton, is the calling thread (M0).
    pub(crate) fn enter_main(seed: u64) -> MainGuard {
        WORLDS.fetch_add(1, Ordering::Relaxed);
        let world = Arc::new(World {
            seed,
            st: Mutex::new(State {
                rng: derive(seed, 1),
                now: 1_000_000_000,
                parts: std::vec![Part {
                    wait: Wait::Run,
                    thread: Some(std::thread::current()),
                }],
                running: 0,
                steps: 0,
                hash: 0xcbf2_9ce4_8422_2325,
            }),
            over: AtomicBool::new(false),
        });
        ME.with(|c| c.set((Arc::as_ptr(&world), 0)));
        MainGuard { world }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the baton to a participant that can run (the generator's choice; possibly `me`
    /// again if it can run), then waits until it comes back to `me` (unless `me` is done).
    fn pass(&self, mut st: MutexGuard<'_, State>, me: usize, wait: Wait) {
        st.parts[me].wait = wait;
        let next = self.pick(&mut st);
        st.running = next;
        if next == me {
            return;
        }
        if let Some(t) = &st.parts[next].thread {
            t.unpark();
        }
        drop(st);
        if wait != Wait::Done {
            self.wait_turn(me);
        }
    }

    /// Waits (really: the OS thread parks) until the baton is `me`'s.
    fn wait_turn(&self, me: usize) {
        loop {
            if self.lock().running == me {
                return;
            }
            std::thread::park();
        }
    }

    /// The next participant to run: uniformly among those that can; if none can, virtual
    /// time jumps to the earliest sleeper's deadline.
    fn pick(&self, st: &mut State) -> usize {
        st.steps += 1;
        // Each decision takes a little virtual time too: threads that only yield to each
        // other (a spin) still reach MAX_VIRTUAL_NS.
        st.now += 100;
        let over = self.over.load(Ordering::Relaxed);
        if !over && (st.steps > MAX_STEPS || st.now > MAX_VIRTUAL_NS) {
            self.stuck(st, "made no end (a livelock?)");
        }
        let mut n = st.parts.iter().filter(|p| p.wait == Wait::Run).count();
        if n == 0 {
            let earliest = st
                .parts
                .iter()
                .filter_map(|p| match p.wait {
                    Wait::Sleep(t) | Wait::Poll(_, t) => Some(t),
                    _ => None,
                })
                .min();
            match earliest {
                Some(t) => {
                    st.now = st.now.max(t);
                    let now = st.now;
                    for p in st.parts.iter_mut() {
                        if matches!(p.wait, Wait::Sleep(t) | Wait::Poll(_, t) if t <= now) {
                            p.wait = Wait::Run;
                            n += 1;
                        }
                    }
                }
                None if over => return st.running,
                None => self.stuck(st, "has every thread blocked for ever"),
            }
        }
        let k = (next(&mut st.rng) % n as u64) as usize;
        let chosen = st
            .parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.wait == Wait::Run)
            .nth(k)
            .map(|(i, _)| i)
            .expect("k < n runnable participants");
        for x in [chosen as u64, st.now] {
            st.hash = (st.hash ^ x).wrapping_mul(0x0000_0100_0000_01b3);
        }
        chosen
    }

    fn stuck(&self, st: &State, what: &str) -> ! {
        let waits: Vec<_> = st.parts.iter().map(|p| p.wait).collect();
        std::eprintln!(
            "rt-core: deterministic run {what} after {} steps, {} virtual ns: threads {waits:?}\n{}",
            st.steps,
            st.now,
            failure_line(self.seed)
        );
        std::process::exit(2)
    }

    /// Draws from the generator: true with probability 1/`one_in`.
    fn chance(st: &mut State, one_in: u64) -> bool {
        next(&mut st.rng).is_multiple_of(one_in)
    }

    pub(crate) fn nanotime(&self, me: usize) -> u64 {
        let mut st = self.lock();
        st.now += 1 + next(&mut st.rng) % 2_000;
        if Self::chance(&mut st, 8) {
            self.pass(st, me, Wait::Run);
            return self.lock().now;
        }
        st.now
    }

    /// A scheduling point of the runtime's (taking a runtime lock): passes the
    /// baton one time in four.
    pub(crate) fn sched_point(&self, me: usize) {
        let mut st = self.lock();
        if Self::chance(&mut st, 4) {
            self.pass(st, me, Wait::Run);
        }
    }

    pub(crate) fn osyield(&self, me: usize) {
        let st = self.lock();
        self.pass(st, me, Wait::Run);
    }

    pub(crate) fn usleep(&self, me: usize, us: u32) {
        let st = self.lock();
        let until = st.now + us.max(1) as u64 * 1_000;
        self.pass(st, me, Wait::Sleep(until));
    }

    pub(crate) fn futex_sleep(&self, me: usize, key: &AtomicU32) {
        let st = self.lock();
        if key.load(Ordering::Acquire) != 0 {
            return;
        }
        self.pass(st, me, Wait::Futex(key.as_ptr() as usize));
    }

    pub(crate) fn poll_sleep(&self, me: usize, key: &AtomicU32, deadline: u64) {
        let st = self.lock();
        if key.load(Ordering::Acquire) != 0 || deadline <= st.now {
            return;
        }
        let wait = if deadline == u64::MAX {
            Wait::Futex(key.as_ptr() as usize)
        } else {
            Wait::Poll(key.as_ptr() as usize, deadline)
        };
        self.pass(st, me, wait);
    }

    pub(crate) fn futex_wake(&self, me: usize, key: &AtomicU32) {
        let mut st = self.lock();
        let addr = key.as_ptr() as usize;
        // Linux wakes one sleeper; which one is not promised. The first will do: the order
        // of `parts` is itself the seed's.
        if let Some(p) = st
            .parts
            .iter_mut()
            .find(|p| matches!(p.wait, Wait::Futex(a) | Wait::Poll(a, _) if a == addr))
        {
            p.wait = Wait::Run;
        }
        if Self::chance(&mut st, 4) {
            self.pass(st, me, Wait::Run);
        }
    }

    /// Starts `f` on a new OS thread as a participant that waits for the baton first and
    /// gives it away when `f` returns. Returns false if no thread can be had.
    pub(crate) fn spawn(
        self: &Arc<World>,
        builder: std::thread::Builder,
        f: Box<dyn FnOnce() + Send>,
    ) -> bool {
        let id = {
            let mut st = self.lock();
            st.parts.push(Part {
                wait: Wait::Run,
                thread: None,
            });
            st.parts.len() - 1
        };
        let world = Arc::clone(self);
        let spawned = builder.spawn(move || {
            /// Gives the baton away as the participant ends, even by a panic (the world would
            /// otherwise wait for it for ever).
            struct Leave(Arc<World>, usize);
            impl Drop for Leave {
                fn drop(&mut self) {
                    ME.with(|c| c.set((null(), 0)));
                    let st = self.0.lock();
                    self.0.pass(st, self.1, Wait::Done);
                }
            }
            ME.with(|c| c.set((Arc::as_ptr(&world), id)));
            let leave = Leave(world, id);
            leave.0.wait_turn(id);
            f();
        });
        let mut st = self.lock();
        match spawned {
            Ok(h) => {
                st.parts[id].thread = Some(h.thread().clone());
                true
            }
            Err(_) => {
                st.parts[id].wait = Wait::Done;
                false
            }
        }
    }
}

impl MainGuard {
    pub(crate) fn seed(&self) -> u64 {
        self.world.seed
    }
}

impl Drop for MainGuard {
    /// M0 leaves: the run's summary is kept for [`last_run`], and the baton goes to whoever
    /// is left (Ms stuck in goroutines, if any).
    fn drop(&mut self) {
        let w = &self.world;
        let st = w.lock();
        LAST.with(|c| {
            c.set(Some(DetRun {
                seed: w.seed,
                steps: st.steps,
                schedule_hash: st.hash,
                virtual_ns: st.now,
                threads: st.parts.len() - 1,
            }))
        });
        w.over.store(true, Ordering::Relaxed);
        ME.with(|c| c.set((null(), 0)));
        w.pass(st, 0, Wait::Done);
    }
}

/// The calling participant's world as an `Arc`, for starting another participant.
pub(crate) fn current_arc() -> Option<Arc<World>> {
    let (w, _) = current()?;
    // SAFETY: `w` came from an Arc that this thread keeps alive (see `current`); taking one
    // more count on it is what Arc::increment_strong_count is for.
    unsafe {
        Arc::increment_strong_count(w as *const World);
        Some(Arc::from_raw(w as *const World))
    }
}

//! `WaitGroup` (Go's `sync.WaitGroup`, sync/waitgroup.go): waits for a collection of
//! goroutines to finish.
//!
//! As in Go, the state is one 64-bit word: the counter in the high 32 bits, the number of
//! waiters in the low 32. `add`/`done` are a single atomic add unless they bring the counter to
//! zero with waiters present; only then is the waiter list (under a runtime lock) touched.
//!
//! Closing the lost-wake-up race: a waiter takes the list lock, counts itself in the state
//! word (only while the counter is non-zero), puts itself on the list and parks with the lock
//! still held; g0 releases it once the G is `Waiting` (park.rs). The `add` that reaches zero
//! saw the waiter count, so it takes the same lock, which it can only get once every counted
//! waiter is on the list and parked, and readies them all.
//!
//! The state word's protocol is [`WgState`], apart from the lock and the parking, so that the
//! loom model (`tests/loom_waitgroup.rs`) checks the code the runtime runs.

#[cfg(not(loom))]
use core::sync::atomic::{AtomicU64, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};

use crate::g::{GQueue, WaitReason};
use crate::lock::Mutex;
use crate::m::getg;
use crate::park::{gopark, goready};

/// The state word of a [`WaitGroup`] (`counter << 32 | waiters`) and every transition of it.
///
/// Invariants: the counter never goes below zero (an `add` that would panics); a waiter counts
/// itself only while the counter is non-zero (the re-check in [`WgState::count_waiter`]), so
/// the `add` that brings the counter to zero sees every counted waiter, and resets the word to
/// zero before it readies them.
///
/// With `RECHECK = false` (built only under `--cfg loom`, by [`WgState::new_broken`]) a
/// waiter counts itself without looking at the counter again: the lost wake-up the loom model
/// must catch. The runtime uses `WgState` (`RECHECK = true`).
pub struct WgState<const RECHECK: bool = true> {
    state: AtomicU64,
}

/// What an [`WgState::add`] left to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// Nothing: the counter is above zero, or nobody waits.
    Counted,
    /// The counter reached zero with waiters counted in `state`: under the waiter list's lock,
    /// [`WgState::reset`] the word, then ready every waiter on the list.
    WakeAll { state: u64 },
}

impl WgState {
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        WgState {
            state: AtomicU64::new(0),
        }
    }

    #[cfg(loom)]
    pub fn new() -> Self {
        WgState {
            state: AtomicU64::new(0),
        }
    }
}

impl Default for WgState {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(loom)]
impl WgState<false> {
    /// The broken state word, for the loom model only: waiters count themselves without the
    /// re-check.
    pub fn new_broken() -> Self {
        WgState {
            state: AtomicU64::new(0),
        }
    }
}

impl<const RECHECK: bool> WgState<RECHECK> {
    /// Go's `Add`: adds `delta` (may be negative) to the counter.
    ///
    /// # Panics
    /// "sync: negative WaitGroup counter", as Go's does.
    pub fn add(&self, delta: i32) -> Added {
        let state = self
            .state
            .fetch_add((delta as i64 as u64) << 32, Ordering::AcqRel)
            .wrapping_add((delta as i64 as u64) << 32);
        let v = (state >> 32) as i32;
        let w = state as u32;
        if v < 0 {
            panic!("sync: negative WaitGroup counter");
        }
        if v > 0 || w == 0 {
            return Added::Counted;
        }
        Added::WakeAll { state }
    }

    /// Under the waiter list's lock, after [`Added::WakeAll`]: the word back to zero. False if
    /// it changed since the `add` (Go: "WaitGroup misuse: Add called concurrently with Wait").
    pub fn reset(&self, state: u64) -> bool {
        self.state
            .compare_exchange(state, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether the counter is zero (`wait`'s fast path: nothing to wait for).
    pub fn is_zero(&self) -> bool {
        self.state.load(Ordering::Acquire) >> 32 == 0
    }

    /// Under the waiter list's lock: counts the caller as a waiter, unless the counter has
    /// reached zero meanwhile (false: it must not wait). Go's CAS loop in `Wait`.
    pub fn count_waiter(&self) -> bool {
        if !RECHECK {
            // The bug: the counter was seen non-zero before the lock was taken, and the `add`
            // that brings it to zero may have run since; it saw no waiter and woke no one.
            self.state.fetch_add(1, Ordering::AcqRel);
            return true;
        }
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if state >> 32 == 0 {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                state + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(s) => state = s,
            }
        }
    }
}

pub struct WaitGroup {
    state: WgState,
    waiters: Mutex<GQueue>,
}

impl Default for WaitGroup {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitGroup {
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        WaitGroup {
            state: WgState::new(),
            waiters: Mutex::new(GQueue::new()),
        }
    }

    #[cfg(loom)]
    pub fn new() -> Self {
        WaitGroup {
            state: WgState::new(),
            waiters: Mutex::new(GQueue::new()),
        }
    }

    /// Adds `delta` (may be negative) to the counter; at zero, every waiter wakes. A negative
    /// counter panics, as Go's does.
    pub fn add(&self, delta: i32) {
        let Added::WakeAll { state } = self.state.add(delta) else {
            return;
        };
        // The counter reached zero with waiters counted: wake them all. No `add` may race
        // with this (Go: "WaitGroup misuse: Add called concurrently with Wait").
        let mut list = self.waiters.lock();
        if !self.state.reset(state) {
            drop(list);
            panic!("sync: WaitGroup misuse: Add called concurrently with Wait");
        }
        let mut woken = core::mem::take(&mut *list);
        drop(list);
        while let Some(gp) = woken.pop_front() {
            // SAFETY: each waiter parked itself under the list lock (see `wait`), so it is
            // Waiting; taking the list under that lock makes us its only waker.
            unsafe { goready(gp) };
        }
    }

    pub fn done(&self) {
        self.add(-1);
    }

    /// Blocks the calling goroutine until the counter is zero.
    pub fn wait(&self) {
        if self.state.is_zero() {
            return;
        }
        let gp = getg();
        if gp.is_null() {
            panic!("WaitGroup::wait called outside a goroutine");
        }
        self.waiters.raw_lock();
        // Count ourselves as a waiter, unless the counter has reached zero meanwhile.
        if !self.state.count_waiter() {
            // SAFETY: taken by raw_lock above.
            unsafe { self.waiters.raw_unlock() };
            return;
        }
        // SAFETY: we hold the lock (raw_lock) until g0 releases it (park_unlock); the running
        // G is on no list.
        unsafe { self.waiters.get_locked().push_back(gp) };
        gopark(
            Some(crate::lock::park_unlock::<GQueue>),
            &self.waiters as *const Mutex<GQueue> as usize,
            WaitReason::WaitGroupWait,
        );
    }
}

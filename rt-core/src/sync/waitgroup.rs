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

use core::sync::atomic::{AtomicU64, Ordering};

use crate::g::{GQueue, WaitReason};
use crate::lock::Mutex;
use crate::m::getg;
use crate::park::{gopark, goready};

pub struct WaitGroup {
    /// counter << 32 | waiters.
    state: AtomicU64,
    waiters: Mutex<GQueue>,
}

impl Default for WaitGroup {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitGroup {
    pub const fn new() -> Self {
        WaitGroup {
            state: AtomicU64::new(0),
            waiters: Mutex::new(GQueue::new()),
        }
    }

    /// Adds `delta` (may be negative) to the counter; at zero, every waiter wakes. A negative
    /// counter panics, as Go's does.
    pub fn add(&self, delta: i32) {
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
            return;
        }
        // The counter reached zero with `w` waiters counted: wake them all. No `add` may race
        // with this (Go: "WaitGroup misuse: Add called concurrently with Wait").
        let mut list = self.waiters.lock();
        if self
            .state
            .compare_exchange(state, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
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
        if self.state.load(Ordering::Acquire) >> 32 == 0 {
            return;
        }
        let gp = getg();
        if gp.is_null() {
            panic!("WaitGroup::wait called outside a goroutine");
        }
        self.waiters.raw_lock();
        // Count ourselves as a waiter, unless the counter has reached zero meanwhile.
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if state >> 32 == 0 {
                // SAFETY: taken by raw_lock above.
                unsafe { self.waiters.raw_unlock() };
                return;
            }
            match self.state.compare_exchange_weak(
                state,
                state + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(s) => state = s,
            }
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

//! `WaitGroup` (Go's `sync.WaitGroup`): waits for a collection of goroutines to finish.
//!
//! A counter and a list of parked waiters under one runtime lock. `wait` parks with the lock
//! still held and has g0 release it (park.rs explains why that closes the lost-wake-up race);
//! the `add` that brings the counter to zero takes the whole waiter list and readies it.

use crate::g::{GQueue, WaitReason, G};
use crate::lock::Mutex;
use crate::park::{current_g, gopark, goready};

struct State {
    count: i64,
    waiters: GQueue,
}

pub struct WaitGroup {
    state: Mutex<State>,
}

impl Default for WaitGroup {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitGroup {
    pub const fn new() -> Self {
        WaitGroup {
            state: Mutex::new(State {
                count: 0,
                waiters: GQueue::new(),
            }),
        }
    }

    /// Adds `delta` (may be negative) to the counter; at zero, every waiter wakes. A negative
    /// counter panics, as Go's does.
    pub fn add(&self, delta: i64) {
        let mut st = self.state.lock();
        st.count += delta;
        if st.count < 0 {
            drop(st);
            panic!("sync: negative WaitGroup counter");
        }
        if st.count > 0 || st.waiters.is_empty() {
            return;
        }
        let mut waiters = core::mem::take(&mut st.waiters);
        drop(st);
        while let Some(gp) = waiters.pop_front() {
            // SAFETY: each waiter parked itself under our lock (see `wait`), so it is Waiting,
            // and taking the list under the lock makes us its only waker.
            unsafe { goready(gp) };
        }
    }

    pub fn done(&self) {
        self.add(-1);
    }

    /// Blocks the calling goroutine until the counter is zero.
    pub fn wait(&self) {
        self.state.raw_lock();
        // SAFETY: we hold the lock (raw_lock above) until unlock_wg releases it on g0, or
        // until the early return below.
        let st = unsafe { self.state.get_locked() };
        if st.count == 0 {
            // SAFETY: taken by raw_lock above.
            unsafe { self.state.raw_unlock() };
            return;
        }
        let gp = current_g();
        if gp.is_null() {
            // SAFETY: as above.
            unsafe { self.state.raw_unlock() };
            panic!("WaitGroup::wait called outside a goroutine");
        }
        // SAFETY: the running G is on no list.
        unsafe { st.waiters.push_back(gp) };
        gopark(
            Some(unlock_wg),
            self as *const WaitGroup as usize,
            WaitReason::WaitGroupWait,
        );
    }
}

fn unlock_wg(_gp: *mut G, wg: usize) -> bool {
    // SAFETY: `wg` is the WaitGroup whose lock `wait` took; the waiting G keeps it alive (it
    // is blocked inside `wait` on it).
    unsafe { (*(wg as *const WaitGroup)).state.raw_unlock() };
    true
}

//! A loom model of `WaitGroup` (sync/waitgroup.rs): `add`/`done` racing with `wait`. Wait
//! returns only after the counter reaches zero (and sees what the goroutines did before their
//! `done`), and never misses its wake-up.
//!
//! What is real and what is mirrored: the state word and every transition of it are the
//! runtime's own [`WgState`] (built with `--cfg loom`, its atomics are loom's). Around it,
//! `Wg` below mirrors `WaitGroup::add` and `WaitGroup::wait` line by line, with the waiter
//! list's runtime lock as a loom `Mutex` and parking as a loom `Notify` (gopark with the list
//! lock held, released by g0 once the G is parked, is the same to a waker as "queue under the
//! lock, unlock, wait for a notification that may already have come").
//!
//! Bounds, and why they suffice: two goroutines besides the main one (loom's state space grows
//! steeply with threads; two are the least that race a `done` with a `done` or a `wait` with
//! a `wait`), a counter of 1 or 2, and a preemption bound of 3: the lost wake-up needs one
//! preemption (the waiter between its counter check and its count), the causality check two
//! (~13,000 interleavings for the two models, ~2 s in release; bound 4 passes too, but takes
//! ~72,000 and 7-20 s, the largest share of the loom step, for no further step of the
//! protocol: it has only two atomic steps per side).
//!
//! Teeth: `WgState::new_broken` counts a waiter without the re-check; the model of it must
//! end in loom's "deadlock" (the waiter asleep with nobody left to wake it).
//!
//! Run with: `RUSTFLAGS="--cfg loom" cargo test -p rt-core --release --test loom_waitgroup`
//! (`cargo xtask test` does, in its own target directory).

#![cfg(loom)]

mod loom_util;

use loom::cell::UnsafeCell;
use loom::sync::{Arc, Mutex};
use loom::thread;
use loom_util::{expect_bug, model, Parked};
use rt_core::sync::{Added, WgState};

const BOUND: usize = 3;

/// `WaitGroup`, with the runtime's state word and a model of its waiter list.
struct Wg<const RECHECK: bool> {
    state: WgState<RECHECK>,
    /// `WaitGroup::waiters` (a `Mutex<GQueue>`): each waiter's wake-up.
    waiters: Mutex<Vec<Arc<Parked>>>,
}

impl<const RECHECK: bool> Wg<RECHECK> {
    fn new(state: WgState<RECHECK>) -> Self {
        Wg {
            state,
            waiters: Mutex::new(Vec::new()),
        }
    }

    /// Mirrors `WaitGroup::add`.
    fn add(&self, delta: i32) {
        let Added::WakeAll { state } = self.state.add(delta) else {
            return;
        };
        let mut list = self.waiters.lock().unwrap();
        assert!(self.state.reset(state), "WaitGroup misuse");
        let woken = std::mem::take(&mut *list);
        drop(list);
        for n in woken {
            n.ready(); // goready
        }
    }

    /// Mirrors `WaitGroup::done`.
    fn done(&self) {
        self.add(-1);
    }

    /// Mirrors `WaitGroup::wait`.
    fn wait(&self) {
        if self.state.is_zero() {
            return;
        }
        let me = Arc::new(Parked::new());
        let mut list = self.waiters.lock().unwrap(); // raw_lock
        if !self.state.count_waiter() {
            return;
        }
        list.push(me.clone());
        drop(list); // park_unlock, on g0 once parked
        me.park(); // gopark
    }
}

/// `add(2)`, two goroutines each record their work and call `done`; `wait` returns only once
/// both are done, and sees both records (loom checks the cells' accesses for causality).
fn wait_sees_every_done<const RECHECK: bool>(mk: fn() -> WgState<RECHECK>) {
    let wg = Arc::new(Wg::new(mk()));
    let work: Arc<[UnsafeCell<bool>; 2]> =
        Arc::new([UnsafeCell::new(false), UnsafeCell::new(false)]);
    wg.add(2);
    for i in 0..2 {
        let (wg, work) = (wg.clone(), work.clone());
        thread::spawn(move || {
            // SAFETY: only this goroutine writes it, and only the waiter, after, reads it.
            work[i].with_mut(|w| unsafe { *w = true });
            wg.done();
        });
    }
    wg.wait();
    for w in work.iter() {
        // SAFETY: the writers are done (the property under test: loom reports a read that
        // does not happen after their writes).
        let done = w.with(|w| unsafe { *w });
        assert!(done, "wait returned before every done");
    }
}

/// `add(1)`, two waiters, one `done`: both waiters return.
fn every_waiter_wakes<const RECHECK: bool>(mk: fn() -> WgState<RECHECK>) {
    let wg = Arc::new(Wg::new(mk()));
    wg.add(1);
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let wg = wg.clone();
            thread::spawn(move || wg.wait())
        })
        .collect();
    wg.done();
    for w in waiters {
        w.join().unwrap();
    }
    assert!(wg.state.is_zero());
}

#[test]
fn wait_returns_after_every_done() {
    model("waitgroup: wait after two dones", BOUND, || {
        wait_sees_every_done(WgState::new)
    });
}

#[test]
fn done_wakes_every_waiter() {
    model("waitgroup: two waiters, one done", BOUND, || {
        every_waiter_wakes(WgState::new)
    });
}

#[test]
#[ignore = "the broken variant: run (and expected to fail) by broken_waitgroup_is_caught"]
fn broken_waitgroup_without_recheck() {
    model("waitgroup (broken: no re-check)", BOUND, || {
        every_waiter_wakes(WgState::new_broken)
    });
}

#[test]
fn broken_waitgroup_is_caught() {
    expect_bug("broken_waitgroup_without_recheck", "deadlock");
}

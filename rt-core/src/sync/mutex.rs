//! `Mutex` and `Once` that park the goroutine (Go's `sync.Mutex`, sync/mutex.go, over the
//! runtime semaphore, sema.rs; `sync.Once`, sync/once.go).
//!
//! State: one word as in Go, `LOCKED | WOKEN | STARVING | waiters << WAITER_SHIFT`, beside a
//! semaphore ([`Sema`]) that waiters park on. Locking a free mutex is one CAS and unlocking
//! one with nobody waiting is one atomic subtract; everything else is `lock_slow` /
//! `unlock_slow`.
//!
//! **Normal mode.** Waiters queue FIFO, but a woken waiter does not own the mutex: unlock
//! clears `LOCKED`, sets `WOKEN` (so that no second waiter is woken while one is on its way)
//! and readies the first waiter, which then competes with goroutines arriving meanwhile. Those
//! usually win (they are running already); the loser goes back to the *front* of the queue
//! (Go's `lifo` semacquire). Arrivals spin a few rounds first when that can pay off (more than
//! one P; Go's `sync_runtime_canSpin`), announcing themselves with `WOKEN`. A goroutine can take
//! the mutex many times in a row while others wait: the throughput mode.
//!
//! **Starvation mode.** A waiter that has waited more than 1 ms (Go's
//! `starvationThresholdNs`) when it wakes and loses again sets `STARVING`. From then on unlock
//! hands the mutex directly to the waiter at the front of the queue (leaving `LOCKED` clear:
//! `STARVING` keeps everyone else out, and the woken waiter sets `LOCKED` itself); arrivals
//! neither spin nor take a free-looking mutex, but queue at the back. The waiter that gets the
//! mutex ends starvation mode if it is the last waiter or waited less than 1 ms.
//!
//! Invariants (Go's): the waiter count counts goroutines that will `acquire` the semaphore
//! (parked, or on their way to park); an unlocker takes one out of the count before releasing
//! the semaphore, except in starvation mode, where the woken waiter takes itself out as it
//! takes ownership. `WOKEN` is set while a woken or spinning goroutine is on its way, and is
//! cleared by that goroutine. `STARVING` is set only while the mutex is locked or being handed
//! to a waiter, so only with waiters.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use super::sema::Sema;
use crate::g::WaitReason;
use crate::platform;

const LOCKED: i32 = 1;
const WOKEN: i32 = 2;
const STARVING: i32 = 4;
const WAITER_SHIFT: u32 = 3;
const ONE_WAITER: i32 = 1 << WAITER_SHIFT;
/// A waiter that has waited longer than this switches the mutex to starvation mode (Go's
/// `starvationThresholdNs` = 1e6).
pub const STARVATION_THRESHOLD_NS: u64 = 1_000_000;
/// Spin rounds before parking (Go's `active_spin` = 4), each `ACTIVE_SPIN_CNT` pauses (30).
const ACTIVE_SPIN: u32 = 4;
const ACTIVE_SPIN_CNT: u32 = 30;

/// A mutual-exclusion lock that parks the goroutine while it waits (Go's `sync.Mutex`),
/// holding the data it protects (Rust's way). Fair in Go's sense: normal mode for
/// throughput, starvation mode (FIFO hand-off) once a waiter has waited over 1 ms; see the
/// module documentation.
pub struct Mutex<T: ?Sized> {
    /// `LOCKED | WOKEN | STARVING | waiters << WAITER_SHIFT` (atomic, Go's `state`).
    state: AtomicI32,
    /// Where waiters park (its own lock guards its queue).
    sema: Sema,
    /// Guarded by the mutex itself.
    value: UnsafeCell<T>,
}

// SAFETY: the lock gives one holder at a time access to `T`.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}
// SAFETY: as for `Send` above.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}

pub struct MutexGuard<'a, T: ?Sized> {
    pub(super) m: &'a Mutex<T>,
}

/// Whether spinning may pay off (Go's `sync_runtime_canSpin`, simplified): only a few rounds,
/// and only with another P that may be running the holder.
fn can_spin(iter: u32) -> bool {
    iter < ACTIVE_SPIN && crate::proc::gomaxprocs() > 1
}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Self {
        Mutex {
            state: AtomicI32::new(0),
            sema: Sema::new(),
            value: UnsafeCell::new(value),
        }
    }

    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Takes the lock without blocking, if it is free (Go's `TryLock`: not in starvation
    /// mode, where a free-looking mutex belongs to the waiter it is being handed to).
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let old = self.state.load(Ordering::Relaxed);
        if old & (LOCKED | STARVING) != 0 {
            return None;
        }
        self.state
            .compare_exchange(old, old | LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            // Lazily: a guard made for a failed attempt would unlock the mutex on its drop.
            .then(|| MutexGuard { m: self })
    }

    /// Go's `Lock`: waits (spinning briefly, then parked) until the mutex is ours.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self
            .state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
        MutexGuard { m: self }
    }

    /// Go's `lockSlow`.
    #[cold]
    fn lock_slow(&self) {
        // When we first queued (None: not yet).
        let mut wait_start: Option<u64> = None;
        let mut starving = false;
        // We were woken (or announced ourselves spinning) and own the `WOKEN` flag.
        let mut awoke = false;
        let mut iter = 0;
        let mut old = self.state.load(Ordering::Relaxed);
        loop {
            // Spin only in normal mode while the mutex is held: in starvation mode it goes to
            // the waiters, not to us.
            if old & (LOCKED | STARVING) == LOCKED && can_spin(iter) {
                // Set WOKEN so that unlock does not wake a waiter while we are about to take it.
                if !awoke
                    && old & WOKEN == 0
                    && old >> WAITER_SHIFT != 0
                    && self
                        .state
                        .compare_exchange(old, old | WOKEN, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    awoke = true;
                }
                for _ in 0..ACTIVE_SPIN_CNT {
                    core::hint::spin_loop();
                }
                iter += 1;
                old = self.state.load(Ordering::Relaxed);
                continue;
            }
            let mut new = old;
            // Arrivals do not take a starving mutex: they queue.
            if old & STARVING == 0 {
                new |= LOCKED;
            }
            if old & (LOCKED | STARVING) != 0 {
                new += ONE_WAITER;
            }
            // Switch to starvation mode, but only if the mutex is held: unlock expects a
            // starving mutex to have waiters, which an unlocked one need not have.
            if starving && old & LOCKED != 0 {
                new |= STARVING;
            }
            if awoke {
                // We were woken (or spun): WOKEN is ours to clear, whatever happens next.
                if new & WOKEN == 0 {
                    platform::fatal(format_args!("sync: inconsistent mutex state"));
                }
                new &= !WOKEN;
            }
            match self
                .state
                .compare_exchange(old, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    if old & (LOCKED | STARVING) == 0 {
                        return; // Took the free mutex.
                    }
                    // Counted as a waiter: park. A waiter that was woken and lost goes back to
                    // the front of the queue.
                    let lifo = wait_start.is_some();
                    let t0 = *wait_start.get_or_insert_with(crate::time::now);
                    self.sema.acquire(lifo, WaitReason::SyncMutexLock);
                    starving =
                        starving || crate::time::now().saturating_sub(t0) > STARVATION_THRESHOLD_NS;
                    old = self.state.load(Ordering::Relaxed);
                    if old & STARVING != 0 {
                        // Handed to us: LOCKED is clear and we still count as a waiter.
                        if old & (LOCKED | WOKEN) != 0 || old >> WAITER_SHIFT == 0 {
                            platform::fatal(format_args!("sync: inconsistent mutex state"));
                        }
                        let mut delta = LOCKED - ONE_WAITER;
                        // Leave starvation mode if we are the last waiter or did not starve
                        // (Go: otherwise two goroutines can go lock-step in starvation mode,
                        // which is far slower).
                        if !starving || old >> WAITER_SHIFT == 1 {
                            delta -= STARVING;
                        }
                        self.state.fetch_add(delta, Ordering::AcqRel);
                        return;
                    }
                    // Woken in normal mode: compete again.
                    awoke = true;
                    iter = 0;
                }
                Err(s) => old = s,
            }
        }
    }

    /// Go's `Unlock`.
    #[inline]
    pub(super) fn unlock(&self) {
        let new = self.state.fetch_sub(LOCKED, Ordering::Release) - LOCKED;
        if new != 0 {
            self.unlock_slow(new);
        }
    }

    /// Go's `unlockSlow`: wake a waiter (normal mode) or hand the mutex to one (starving).
    #[cold]
    fn unlock_slow(&self, new: i32) {
        if (new + LOCKED) & LOCKED == 0 {
            platform::fatal(format_args!(
                "sync: unlock of unlocked mutex (state {:#x})",
                new + LOCKED
            ));
        }
        if new & STARVING != 0 {
            // Hand the mutex to the waiter at the front: LOCKED stays clear, but STARVING
            // keeps arrivals out until it sets LOCKED.
            self.sema.release();
            return;
        }
        let mut old = new;
        loop {
            // Nobody to wake, or someone is on their way (woken, spinning, or holding it
            // already); if the mutex became starving meanwhile, its hand-off is the next
            // unlocker's business, not ours.
            if old >> WAITER_SHIFT == 0 || old & (LOCKED | WOKEN | STARVING) != 0 {
                return;
            }
            // Take the right to wake one waiter.
            let new = (old - ONE_WAITER) | WOKEN;
            match self
                .state
                .compare_exchange(old, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.sema.release();
                    return;
                }
                Err(s) => old = s,
            }
        }
    }

    /// Whether the mutex is held (for tests and assertions).
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
    }

    /// Whether the mutex is in starvation mode (for tests and diagnostics).
    pub fn is_starving(&self) -> bool {
        self.state.load(Ordering::Relaxed) & STARVING != 0
    }

    /// Goroutines counted as waiting for the mutex (for tests and diagnostics).
    pub fn waiters(&self) -> usize {
        (self.state.load(Ordering::Relaxed) >> WAITER_SHIFT) as usize
    }

    /// The value, through exclusive access (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The mutex this guard holds (for `Cond::wait`, which unlocks and relocks it).
    pub(super) fn mutex(&self) -> &'a Mutex<T> {
        self.m
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the mutex.
        unsafe { &*self.m.value.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the mutex; `&mut self` makes this reference unique.
        unsafe { &mut *self.m.value.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.m.unlock();
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

/// Runs a function once (Go's `sync.Once`): callers that arrive while it runs wait (parked on
/// the inner mutex) until it has returned.
pub struct Once {
    done: AtomicBool,
    m: Mutex<()>,
}

impl Default for Once {
    fn default() -> Self {
        Self::new()
    }
}

impl Once {
    pub const fn new() -> Self {
        Once {
            done: AtomicBool::new(false),
            m: Mutex::new(()),
        }
    }

    /// Go's `Do`: calls `f` if no call has happened yet. If `f` panics, `call_once` counts it
    /// as done (as Go does) and the panic goes on.
    pub fn call_once(&self, f: impl FnOnce()) {
        if self.done.load(Ordering::Acquire) {
            return;
        }
        let _g = self.m.lock();
        if !self.done.load(Ordering::Relaxed) {
            struct SetDone<'a>(&'a AtomicBool);
            impl Drop for SetDone<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Release);
                }
            }
            let _d = SetDone(&self.done);
            f();
        }
    }

    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
}

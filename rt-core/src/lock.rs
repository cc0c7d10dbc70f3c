//! The runtime's internal lock (Go's `mutex` with `lock`/`unlock`, lock_futex.go).
//!
//! A spinlock that, while held, counts in the current M's `locks`: preemption is off (a safe
//! point never yields, and an asynchronous preemption never stops an M holding a runtime lock;
//! docs/design.md §3). Waiters spin briefly, then yield the CPU: runtime critical sections are
//! a few dozen instructions, and the holder is never preempted inside one.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::m::{self, M};

pub struct Mutex<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock gives one holder at a time access to `T`.
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: as for `Send` above.
unsafe impl<T: Send> Send for Mutex<T> {}

pub struct MutexGuard<'a, T> {
    lock: &'a Mutex<T>,
    /// The M that took the lock (a guard is never held across a switch, so it is still the
    /// current M when the guard drops).
    m: *mut M,
}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Self {
        Mutex {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        let m = m::acquire_current_m();
        self.spin_acquire();
        MutexGuard { lock: self, m }
    }

    /// `lock` for a caller that knows the current M (the scheduler on g0).
    #[inline]
    pub(crate) fn lock_with(&self, m: *mut M) -> MutexGuard<'_, T> {
        m::acquire_m(m);
        self.spin_acquire();
        MutexGuard { lock: self, m }
    }

    /// Runs `f` on the value if the lock can be taken within `tries` attempts, without an M:
    /// for readers in interrupt context (the `scheddetail` tick), which must never wait for a
    /// lock that the code they interrupted may hold. Does not count in `m.locks` (the
    /// interrupted code cannot run, let alone be preempted, until the reader returns).
    pub fn try_peek<R>(&self, tries: u32, f: impl FnOnce(&T) -> R) -> Option<R> {
        for _ in 0..tries.max(1) {
            if self
                .locked
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                // SAFETY: we hold the lock until the store below.
                let r = f(unsafe { &*self.value.get() });
                self.locked.store(false, Ordering::Release);
                return Some(r);
            }
            core::hint::spin_loop();
        }
        None
    }

    /// Takes the lock without a guard (for `gopark`, whose unlock function releases it on g0).
    pub fn raw_lock(&self) {
        m::acquirem();
        self.spin_acquire();
    }

    #[inline]
    fn spin_acquire(&self) {
        crate::platform::sched_point();
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                spins += 1;
                if spins < 64 {
                    core::hint::spin_loop();
                } else {
                    crate::platform::get().osyield();
                }
            }
        }
    }

    /// # Safety
    /// The lock must be held, by a `raw_lock` on this M whose guard-free hold this ends.
    pub unsafe fn raw_unlock(&self) {
        self.locked.store(false, Ordering::Release);
        m::releasem();
    }

    /// The value, for a holder of a guard-free lock.
    ///
    /// # Safety
    /// The lock must be held (by `raw_lock`) for as long as the reference is used.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get_locked(&self) -> &mut T {
        // SAFETY: the caller holds the lock.
        unsafe { &mut *self.value.get() }
    }
}

impl<'a, T> MutexGuard<'a, T> {
    /// Ends the guard but not the hold: the lock stays taken exactly as [`Mutex::raw_lock`]
    /// takes it (counted in the M's `locks`), for a caller that goes on to park with
    /// [`park_unlock`] or releases it with [`Mutex::raw_unlock`]. The fast paths take a guard
    /// (one look-up of the current M, kept for the release) and only the slow path turns it
    /// into a raw hold.
    pub(crate) fn into_raw(self) -> &'a mut T {
        let lock = self.lock;
        core::mem::forget(self);
        // SAFETY: the lock is held (the guard's hold, which continues), and the caller's
        // raw release ends this reference's use.
        unsafe { &mut *lock.value.get() }
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock; `&mut self` makes this reference unique.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
        m::release_m(self.m);
    }
}

/// Releases the `Mutex<T>` at address `lock`, taken with [`Mutex::raw_lock`].
///
/// # Safety
/// `lock` is the address of a live `Mutex<T>` held by a `raw_lock` on the current M.
pub unsafe fn unlock_at<T>(lock: usize) {
    // SAFETY: the caller's promise.
    unsafe { (*(lock as *const Mutex<T>)).raw_unlock() };
}

/// The `unlock` function for `gopark` (park.rs) used by every wait list under a runtime lock
/// (channels, `Mutex`, `WaitGroup`; Go's `parkunlock_c`): g0 releases the `Mutex<T>` at `lock`
/// once the goroutine is parked. The parked goroutine keeps the lock's owner alive: it is
/// blocked in an operation on it.
pub fn park_unlock<T>(_gp: *mut crate::g::G, lock: usize) -> bool {
    // SAFETY: gopark's caller took the lock at `lock` with raw_lock on this M (mcall keeps the
    // M) and passed its address; the owner outlives the parked goroutine's wait.
    unsafe { unlock_at::<T>(lock) };
    true
}

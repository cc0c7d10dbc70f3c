//! `Mutex` and `Once` that park the goroutine (Go's `sync.Mutex` over the runtime semaphore,
//! sync/mutex.go and sema.go; `sync.Once`, sync/once.go).
//!
//! State: one word, `LOCKED | WAITERS`. Locking is one CAS when the mutex is free. Under
//! contention a goroutine spins briefly (a few rounds of `spin_loop`, only with more than one
//! P, as Go's `sync_runtime_canSpin`), then parks on the mutex's wait queue (Go's
//! `semacquire`). Unlocking with waiters hands the mutex *directly* to the longest waiter:
//! `LOCKED` stays set and the woken goroutine owns it. That is Go's starvation mode, used
//! always: FIFO and starvation-free (a waiter can never be overtaken by newcomers forever),
//! at the cost of Go's normal-mode throughput under heavy contention.
//!
//! Invariants: `WAITERS` is set exactly while the queue is non-empty, and both change only
//! under the queue lock; a goroutine on the queue is parked (it parks with the queue lock held
//! and g0 releases it, park.rs), so the unlocker that takes it off readies it exactly once.

use alloc::collections::VecDeque;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::g::{WaitReason, G};
use crate::lock::Mutex as RtLock;
use crate::m::getg;
use crate::park::{gopark, goready};

const LOCKED: u32 = 1;
const WAITERS: u32 = 2;
/// Spin rounds before parking (Go's `active_spin` = 4), each `ACTIVE_SPIN_CNT` pauses (30).
const ACTIVE_SPIN: u32 = 4;
const ACTIVE_SPIN_CNT: u32 = 30;

/// A mutual-exclusion lock that parks the goroutine while it waits (Go's `sync.Mutex`),
/// holding the data it protects (Rust's way).
pub struct Mutex<T: ?Sized> {
    state: AtomicU32,
    waitq: RtLock<VecDeque<*mut G>>,
    value: UnsafeCell<T>,
}

// SAFETY: the lock gives one holder at a time access to `T`; the queued G pointers are only
// touched under `waitq`'s lock.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}
// SAFETY: as for `Send` above.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}

pub struct MutexGuard<'a, T: ?Sized> {
    m: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Self {
        Mutex {
            state: AtomicU32::new(0),
            waitq: RtLock::new(VecDeque::new()),
            value: UnsafeCell::new(value),
        }
    }

    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    fn try_acquire(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        s & LOCKED == 0
            && self
                .state
                .compare_exchange(s, s | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Takes the lock without blocking, if it is free.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.try_acquire().then_some(MutexGuard { m: self })
    }

    /// Go's `Lock`: waits (spinning briefly, then parked) until the mutex is ours.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self
            .state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return MutexGuard { m: self };
        }
        self.lock_slow();
        MutexGuard { m: self }
    }

    #[cold]
    fn lock_slow(&self) {
        let plat = crate::platform::get();
        if crate::proc::gomaxprocs() > 1 {
            for _ in 0..ACTIVE_SPIN {
                for _ in 0..ACTIVE_SPIN_CNT {
                    core::hint::spin_loop();
                }
                if self.try_acquire() {
                    return;
                }
            }
        }
        let gp = getg();
        if gp.is_null() {
            // Not a goroutine (a host thread): nothing to park; yield until free.
            while !self.try_acquire() {
                plat.osyield();
            }
            return;
        }
        self.waitq.raw_lock();
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & LOCKED == 0 {
                if self
                    .state
                    .compare_exchange(s, s | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    // SAFETY: taken by raw_lock above.
                    unsafe { self.waitq.raw_unlock() };
                    return;
                }
            } else if self
                .state
                .compare_exchange(s, s | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                break;
            }
        }
        // SAFETY: the queue lock is held (raw_lock) until g0 releases it (park_unlock).
        unsafe { self.waitq.get_locked() }.push_back(gp);
        gopark(
            Some(crate::lock::park_unlock::<VecDeque<*mut G>>),
            &self.waitq as *const RtLock<VecDeque<*mut G>> as usize,
            WaitReason::SyncMutexLock,
        );
        // Handed the mutex by `unlock` (LOCKED stayed set for us); its release of the queue
        // lock and our readying order its writes before our reads.
        core::sync::atomic::fence(Ordering::Acquire);
    }

    fn unlock(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        let mut q = self.waitq.lock();
        let next = q.pop_front();
        match next {
            Some(_) if q.is_empty() => self.state.store(LOCKED, Ordering::Release),
            Some(_) => self.state.store(LOCKED | WAITERS, Ordering::Release),
            None => self.state.store(0, Ordering::Release),
        }
        drop(q);
        if let Some(gp) = next {
            // SAFETY: gp was on the queue, so it is parked (it parked holding the queue lock),
            // and we took it off under that lock: we are its only waker.
            unsafe { goready(gp) };
        }
    }

    /// Whether the mutex is held (for tests and assertions).
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
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

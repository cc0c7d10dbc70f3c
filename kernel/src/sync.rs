//! Locks that interrupt handlers may share with ordinary kernel code.
//!
//! [`IrqLock`] is a spinlock that disables interrupts on the local CPU while it is held and
//! restores the previous interrupt flag on release. The rule it enforces (docs/design.md §3,
//! "Locks disable preemption"): an interrupt can never arrive on a CPU that holds the lock, so an
//! interrupt handler that takes the same lock can only wait for *another* CPU, which will
//! release it. Go's counterpart is `lock()` incrementing `m.locks`; for a goroutine of rt-core
//! the same guard also holds preemption off, since the tick that preempts it from where it
//! stands (rt/tick.rs `tick_async`) is an interrupt.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::instructions::interrupts;

pub struct IrqLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out at most one guard at a time, so `T` is only ever reached from one
// CPU at once; `T: Send` is what moving that access between CPUs needs.
unsafe impl<T: Send> Sync for IrqLock<T> {}
// SAFETY: as above; owning the lock owns the `T`.
unsafe impl<T: Send> Send for IrqLock<T> {}

pub struct IrqLockGuard<'a, T> {
    lock: &'a IrqLock<T>,
    interrupts_were_enabled: bool,
}

impl<T> IrqLock<T> {
    pub const fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Disables interrupts, then spins until the lock is free.
    pub fn lock(&self) -> IrqLockGuard<'_, T> {
        let interrupts_were_enabled = interrupts::are_enabled();
        interrupts::disable();
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        }
        IrqLockGuard {
            lock: self,
            interrupts_were_enabled,
        }
    }

    /// Disables interrupts and takes the lock if it is free right now; otherwise restores the
    /// interrupt flag and returns `None`. For paths that must not wait on a lock their own CPU
    /// may hold (the page-fault handler: the faulting code may be inside the critical section).
    pub fn try_lock(&self) -> Option<IrqLockGuard<'_, T>> {
        let interrupts_were_enabled = interrupts::are_enabled();
        interrupts::disable();
        if self
            .locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Some(IrqLockGuard {
                lock: self,
                interrupts_were_enabled,
            });
        }
        if interrupts_were_enabled {
            interrupts::enable();
        }
        None
    }

    /// Like [`IrqLock::lock`], but gives up after `ns` nanoseconds (TSC time): a CPU waiting
    /// longer than any critical section lasts is waiting on itself. Only the time this CPU
    /// ran counts (`tsc::Patience`): a stop of the host is not the holder being slow.
    pub fn lock_within(&self, ns: u64) -> Option<IrqLockGuard<'_, T>> {
        let mut patience = crate::x86::tsc::Patience::new(ns);
        loop {
            if let Some(g) = self.try_lock() {
                return Some(g);
            }
            if patience.exhausted() {
                return None;
            }
            core::hint::spin_loop();
        }
    }

    /// Whether some CPU holds the lock right now (a snapshot, for diagnostics and tests).
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }
}

impl<T> Deref for IrqLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while `locked` is true and was set by this guard.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for IrqLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for IrqLockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
        if self.interrupts_were_enabled {
            interrupts::enable();
        }
    }
}

//! `RWMutex`: a reader/writer lock that parks the goroutine (Go's `sync.RWMutex`,
//! sync/rwmutex.go), holding the data it protects.
//!
//! Any number of readers or one writer. Writers are not starved by readers: once a writer is
//! waiting, new readers wait behind it (as in Go), so a steady stream of overlapping readers
//! cannot keep it out. That rule forbids recursive read locking: a goroutine holding a read
//! guard that calls [`RWMutex::read`] again deadlocks if a writer queued in between (the
//! writer waits for the first guard, the second `read` waits for the writer).
//!
//! Go's algorithm. `reader_count` counts readers that hold or wait for the lock; a writer
//! first takes `w` (excluding other writers), then subtracts `MAX_READERS` from
//! `reader_count`, which makes it negative: every later `read` sees that and parks on
//! `reader_sem`. The writer adds the number of readers still inside (the value it replaced)
//! to `reader_wait` and parks on `writer_sem` unless that brought it to zero; each of those
//! readers, leaving, counts `reader_wait` down, and the last one releases `writer_sem`. The
//! writer's unlock adds `MAX_READERS` back, releases `reader_sem` once per reader that arrived
//! meanwhile (the count it gets back), then unlocks `w`.
//!
//! Invariants: `reader_count` = readers in or waiting (+ `-MAX_READERS` while a writer holds
//! or waits for the readers to leave); `reader_wait` = readers the waiting writer still waits
//! for (only non-zero while one does). The uncontended paths are one atomic add each
//! (`read`, read unlock) and a mutex lock plus one add (`write`).

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicI32, Ordering};

use super::mutex::Mutex;
use super::sema::Sema;
use crate::g::WaitReason;
use crate::platform;

/// Go's `rwmutexMaxReaders`: more simultaneous readers than this are not supported.
const MAX_READERS: i32 = 1 << 30;

/// A reader/writer lock (Go's `sync.RWMutex`); see the module documentation. Do not take a
/// read guard while holding one on the same lock (see [`RWMutex::read`]).
pub struct RWMutex<T: ?Sized> {
    /// Held by the writer that holds or waits for the lock (writer against writer).
    w: Mutex<()>,
    /// Where the writer waits for the readers inside to leave.
    writer_sem: Sema,
    /// Where readers wait for a writer to finish.
    reader_sem: Sema,
    /// Readers in or waiting, `- MAX_READERS` while a writer is pending (atomic).
    reader_count: AtomicI32,
    /// Readers the pending writer still waits for (atomic).
    reader_wait: AtomicI32,
    /// Shared by readers, exclusive to the writer: guarded by the lock itself.
    value: UnsafeCell<T>,
}

// SAFETY: readers share `&T` across goroutines (so `T: Sync`); the writer gets `&mut T` on
// whatever goroutine holds the write guard (so `T: Send`).
unsafe impl<T: ?Sized + Send + Sync> Sync for RWMutex<T> {}
// SAFETY: moving the lock moves the `T`.
unsafe impl<T: ?Sized + Send> Send for RWMutex<T> {}

/// Shared access, held until dropped (Go's `RLock` .. `RUnlock`).
pub struct RWMutexReadGuard<'a, T: ?Sized> {
    rw: &'a RWMutex<T>,
}

/// Exclusive access, held until dropped (Go's `Lock` .. `Unlock`).
pub struct RWMutexWriteGuard<'a, T: ?Sized> {
    rw: &'a RWMutex<T>,
}

impl<T> RWMutex<T> {
    pub const fn new(value: T) -> Self {
        RWMutex {
            w: Mutex::new(()),
            writer_sem: Sema::new(),
            reader_sem: Sema::new(),
            reader_count: AtomicI32::new(0),
            reader_wait: AtomicI32::new(0),
            value: UnsafeCell::new(value),
        }
    }

    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: Default> Default for RWMutex<T> {
    fn default() -> Self {
        RWMutex::new(T::default())
    }
}

impl<T: ?Sized> RWMutex<T> {
    /// Go's `RLock`: shared access, waiting while a writer holds the lock *or waits for it*.
    ///
    /// Not for recursive read locking: a blocked [`write`](Self::write) excludes new
    /// readers, so a goroutine that already holds a read guard of this lock and calls `read`
    /// again may wait for a writer that waits for it: a deadlock.
    #[inline]
    pub fn read(&self) -> RWMutexReadGuard<'_, T> {
        if self.reader_count.fetch_add(1, Ordering::Acquire) + 1 < 0 {
            // A writer is pending: wait for its unlock to release us.
            self.reader_sem.acquire(false, WaitReason::SyncRWMutexRLock);
        }
        RWMutexReadGuard { rw: self }
    }

    /// Go's `TryRLock`: shared access if no writer holds or waits for the lock.
    pub fn try_read(&self) -> Option<RWMutexReadGuard<'_, T>> {
        let mut c = self.reader_count.load(Ordering::Relaxed);
        loop {
            if c < 0 {
                return None;
            }
            match self.reader_count.compare_exchange_weak(
                c,
                c + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(RWMutexReadGuard { rw: self }),
                Err(now) => c = now,
            }
        }
    }

    /// Go's `RUnlock`.
    #[inline]
    fn read_unlock(&self) {
        let r = self.reader_count.fetch_sub(1, Ordering::Release) - 1;
        if r < 0 {
            self.read_unlock_slow(r);
        }
    }

    #[cold]
    fn read_unlock_slow(&self, r: i32) {
        if r + 1 == 0 || r + 1 == -MAX_READERS {
            platform::fatal(format_args!("sync: RUnlock of unlocked RWMutex"));
        }
        // A writer is pending; the last reader it waits for lets it in.
        if self.reader_wait.fetch_sub(1, Ordering::AcqRel) - 1 == 0 {
            self.writer_sem.release();
        }
    }

    /// Go's `Lock`: exclusive access. From the moment it starts waiting for the readers
    /// inside, no new reader gets in.
    pub fn write(&self) -> RWMutexWriteGuard<'_, T> {
        // Against other writers: `w` stays held until the write guard drops.
        core::mem::forget(self.w.lock());
        // Announce the writer to readers; `r` readers are inside.
        let r = self.reader_count.fetch_sub(MAX_READERS, Ordering::AcqRel);
        if r != 0 && self.reader_wait.fetch_add(r, Ordering::AcqRel) + r != 0 {
            self.writer_sem.acquire(false, WaitReason::SyncRWMutexLock);
        }
        RWMutexWriteGuard { rw: self }
    }

    /// Go's `TryLock`: exclusive access if nobody holds the lock nor waits for it as writer.
    pub fn try_write(&self) -> Option<RWMutexWriteGuard<'_, T>> {
        let w = self.w.try_lock()?;
        if self
            .reader_count
            .compare_exchange(0, -MAX_READERS, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            drop(w);
            return None;
        }
        core::mem::forget(w);
        Some(RWMutexWriteGuard { rw: self })
    }

    /// Go's `Unlock`.
    fn write_unlock(&self) {
        // Announce that no writer is active; `r` readers arrived meanwhile and wait.
        let r = self.reader_count.fetch_add(MAX_READERS, Ordering::AcqRel) + MAX_READERS;
        if r >= MAX_READERS {
            platform::fatal(format_args!("sync: Unlock of unlocked RWMutex"));
        }
        for _ in 0..r {
            self.reader_sem.release();
        }
        // Let the next writer in.
        self.w.unlock();
    }

    /// The value, through exclusive access (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

impl<T: ?Sized> Deref for RWMutexReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock shared: no writer until it drops.
        unsafe { &*self.rw.value.get() }
    }
}

impl<T: ?Sized> Drop for RWMutexReadGuard<'_, T> {
    fn drop(&mut self) {
        self.rw.read_unlock();
    }
}

impl<T: ?Sized> Deref for RWMutexWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock exclusively.
        unsafe { &*self.rw.value.get() }
    }
}

impl<T: ?Sized> DerefMut for RWMutexWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock exclusively; `&mut self` makes this unique.
        unsafe { &mut *self.rw.value.get() }
    }
}

impl<T: ?Sized> Drop for RWMutexWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.rw.write_unlock();
    }
}

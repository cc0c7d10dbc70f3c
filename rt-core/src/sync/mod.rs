//! Goroutine synchronisation built on `gopark`/`goready` (Go's package `sync`).

mod mutex;
mod waitgroup;

pub use mutex::{Mutex, MutexGuard, Once};
pub use waitgroup::WaitGroup;

/// The runtime's own spinlock (Go's runtime `lock`/`mutex`): holds preemption off while held
/// (`m.locks`), so the holder is never preempted inside its critical section. For short
/// sections of goroutine or platform code that must not park; a goroutine that may wait long
/// wants [`Mutex`].
pub use crate::lock::{Mutex as SpinLock, MutexGuard as SpinLockGuard};

//! Goroutine synchronisation built on `gopark`/`goready` (Go's package `sync`).
//!
//! [`Mutex`] (Go's normal and starvation modes), [`RWMutex`] (writers are not starved by
//! readers), [`Cond`] (Go's ticket-based notify list), [`Once`] and [`WaitGroup`]. Each parks
//! a waiting goroutine through the runtime and works alike in the kernel and on host threads;
//! `Mutex` and `RWMutex` park on the runtime semaphore of `sema.rs` (Go's runtime/sema.go).

mod cond;
mod mutex;
mod rwmutex;
mod sema;
mod waitgroup;

pub use cond::Cond;
pub use mutex::{Mutex, MutexGuard, Once, STARVATION_THRESHOLD_NS};
pub use rwmutex::{RWMutex, RWMutexReadGuard, RWMutexWriteGuard};
pub use waitgroup::WaitGroup;
/// The WaitGroup's state word alone, for its loom model (tests/loom_waitgroup.rs).
#[doc(hidden)]
pub use waitgroup::{Added, WgState};

/// The runtime's own spinlock (Go's runtime `lock`/`mutex`): holds preemption off while held
/// (`m.locks`), so the holder is never preempted inside its critical section. For short
/// sections of goroutine or platform code that must not park; a goroutine that may wait long
/// wants [`Mutex`].
pub use crate::lock::{Mutex as SpinLock, MutexGuard as SpinLockGuard};

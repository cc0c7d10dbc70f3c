//! Goroutine synchronisation built on `gopark`/`goready` (Go's package `sync`).

mod mutex;
mod waitgroup;

pub use mutex::{Mutex, MutexGuard, Once};
pub use waitgroup::WaitGroup;

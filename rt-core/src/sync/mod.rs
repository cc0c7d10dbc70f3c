//! Goroutine synchronisation built on `gopark`/`goready` (Go's package `sync`).

mod waitgroup;

pub use waitgroup::WaitGroup;

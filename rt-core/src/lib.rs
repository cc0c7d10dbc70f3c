//! `rt-core`: a Go-style goroutine runtime (G, M, P and the GMP scheduler) as a
//! `#![no_std]` + `alloc` library. It knows the machine below it only through a small platform interface
//! (DESIGN.md §3); the kernel and (with feature `std`) host threads provide one each.
//!
//! This crate is at its start: the foundation issue links it into the kernel; the scheduler
//! issue fills it in. What is here already is what every later piece names.

#![no_std]

pub mod status;

/// The crate's version, printed in the kernel's banner to show that rt-core is linked.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

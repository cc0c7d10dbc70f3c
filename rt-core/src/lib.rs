//! `rt-core`: a Go-style goroutine runtime (G, M, P and the GMP scheduler) as a
//! `#![no_std]` + `alloc` library. It knows the machine below it only through a small
//! platform interface ([`platform::Platform`], DESIGN.md §3); the kernel provides one, and
//! with feature `std` so do host threads ([`host`]).
//!
//! Where to start reading: [`sched`] (the scheduler's design comment and loop), then [`g`],
//! [`m`], [`p`], [`runq`], [`proc`], [`park`], [`arch`]. Names follow Go's runtime so that
//! `src/runtime/proc.go` can be read beside this code.

#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod arch;
pub mod chan;
pub mod g;
pub mod lock;
pub mod m;
pub mod p;
pub mod park;
pub mod platform;
pub mod proc;
pub mod runq;
pub mod sched;
pub mod select;
pub mod status;
pub mod sync;
pub mod time;
pub mod trace;

#[cfg(feature = "std")]
pub mod host;

pub use chan::Chan;
pub use platform::fatal;
pub use proc::{
    entersyscall, exitsyscall, goid, gomaxprocs, gosched, preempt_point, spawn, systemstack,
};
pub use sync::WaitGroup;

#[cfg(feature = "std")]
pub use host::Runtime;

/// The crate's version, printed in the kernel's banner to show that rt-core is linked.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Go's `go` statement: `go!(expr)` spawns a goroutine running `expr` (a block or call).
#[macro_export]
macro_rules! go {
    ($($body:tt)*) => {
        $crate::spawn(move || { $($body)*; })
    };
}

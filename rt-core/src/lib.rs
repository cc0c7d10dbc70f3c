//! `rt-core`: a Go-style goroutine runtime (G, M, P and the GMP scheduler) as a
//! `#![no_std]` + `alloc` library. It knows the machine below it only through a small
//! platform interface ([`platform::Platform`], docs/design.md §3); the kernel provides one,
//! and with feature `std` so do host threads ([`host`]).
//!
//! # The public API
//!
//! Goroutines ([`spawn`], [`go!`], [`gosched`], [`preempt_point`], ...), channels and
//! [`select!`] (nil-channel cases, and [`select::Select`] over case lists built at run time),
//! [`time`], [`context`], [`sync`], the observability of [`trace`] (with [`leak`]: leaked
//! goroutines found without a GC), and for engineers on the host [`Runtime`]. A platform (the
//! kernel) implements [`platform::Platform`] and runs a
//! runtime with [`Sched::run`]; everything else in [`platform`] is what a platform's own code
//! (its interrupt handlers, its netpoller) may call. The scheduler's internals are private to
//! this crate: the compiler checks the boundary.
//!
//! # Reading path: one goroutine from `spawn` to its exit
//!
//! 1. `proc.rs::spawn` → `proc.rs::newproc`: a G from the P's free list (`gfget`) or a new
//!    slab (`malg`), made runnable and put in the P's `runnext` (`sched.rs::runqput`, the
//!    ring in `runq.rs`), and an idle P woken (`idle.rs::wakep` → `startm`).
//! 2. `sched.rs::schedule` → `find_runnable` (local queue, global queue, then
//!    `steal_work`) → `execute`: the G gets a stack (`stack.rs::stackalloc`) and a first
//!    frame (`arch/x86_64.rs::prepare_new`), and `resume` switches to it (`arch::swtch`).
//! 3. `arch/x86_64.rs::gostart` → `proc.rs::goentry` runs the closure. Along the way the G
//!    may yield (`proc.rs::gosched`), park (`park.rs::gopark`, woken by `goready`), or be
//!    preempted (`preempt.rs::preempt_point` → `morestack`, or from an interrupt:
//!    `want_async_preempt` → `async_preempt`); each is a request to g0 (`mcall.rs::mcall`),
//!    served by `mcall.rs::handle` back in the loop of step 2.
//! 4. The closure returns: `proc.rs::goentry` asks g0 for `Req::Exit`; `mcall.rs::handle` →
//!    `proc.rs::goexit0` gives the stack to the P's cache (`stack.rs::stackfree`) and the G to
//!    the P's free list (`gfput`), and g0 looks for the next G (step 2).
//!
//! Around it: `run.rs` (a runtime's life cycle, `mstart`), `idle.rs` (idle Ps and Ms,
//! spinning, `checkdead`), `poll.rs` (the poller: timers and I/O), `g.rs`, `m.rs`, `p.rs`,
//! `status.rs` (the structures), `lock.rs` (the runtime's spinlock). Names follow Go's runtime
//! so that `src/runtime/proc.go` can be read beside this code (docs/go-names.md).

#![no_std]
// The host's current M is a `#[thread_local]` static that assembly can address (m.rs).
#![cfg_attr(feature = "std", feature(thread_local))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

// The public modules.
pub mod arch;
pub mod chan;
pub mod context;
pub mod leak;
pub mod platform;
pub mod select;
pub mod sync;
pub mod time;
pub mod trace;
pub mod traceback;

#[cfg(feature = "std")]
pub mod host;

// The scheduler's internals.
mod g;
mod idle;
mod lock;
mod m;
mod mcall;
mod p;
mod park;
mod poll;
mod preempt;
mod proc;
mod run;
mod tracer;
// The run queue is a self-contained lock-free structure; the loom model
// (tests/loom_runq.rs) and the runq lab's tests (tests/runq.rs) check it from outside the crate.
#[doc(hidden)]
pub mod runq;
mod sched;
mod stack;
mod status;

pub use chan::Chan;
pub use context::{CancelFunc, Context, ContextError};
pub use m::{acquirem, releasem};
pub use platform::fatal;
pub use preempt::preempt_point;
pub use proc::{
    entersyscall, exitsyscall, goexit, goid, gomaxprocs, gosched, num_goroutine, set_gomaxprocs,
    spawn, systemstack, SetGomaxprocsError,
};
pub use run::{runtimes_kept, Config, Counters, Failure, Hooks};
pub use sched::Sched;
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

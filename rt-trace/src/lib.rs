//! rt-core's execution trace: what the scheduler did, event by event, on every M.
//!
//! [`format`] is the wire format, shared by the recorder (rt-core/src/tracer.rs, `no_std`) and
//! the decoder ([`decode`]). [`model`] turns a decoded trace into per-M slices, flows and
//! counters, [`check`] checks it against itself and the runtime's own counts, and [`summary`]
//! sums it up (all `no_std` + `alloc`). With the `std` feature, the views: Chrome Trace Event
//! JSON for Perfetto ([`json`]), an SVG timeline ([`svg`]) and a self-contained HTML page
//! ([`html`]). Go's
//! counterparts are `runtime/trace` (recording, traceevent.go) and `go tool trace` (viewing).
#![no_std]

#[cfg(feature = "std")]
extern crate std;

extern crate alloc;

pub mod check;
pub mod decode;
pub mod format;
#[cfg(feature = "std")]
pub mod html;
#[cfg(feature = "std")]
pub mod json;
pub mod model;
pub mod summary;
#[cfg(feature = "std")]
pub mod svg;

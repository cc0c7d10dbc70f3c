//! xtask: the project's host tool, as a library so that its own tests drive the same code as
//! `cargo xtask`.
//!
//! - [`setup`]: everything a fresh machine lacks (rustup components and target, QEMU), added
//!   once, under a machine-wide lock, before anything needs it; [`apt`] chooses where Debian
//!   packages come from and says why when it cannot install them.
//! - [`build`]: the kernels (`cargo build --target x86_64-unknown-none`), stripping, and disk
//!   images (through the separate `imager` crate, which links `bootloader`).
//! - [`qemu`]: the QEMU command line, a run with a timeout, and what its exit status means.
//! - [`bench`]: rt-core's benchmarks beside Go's runtime, as ratios.
//! - [`harness`]: the integration-test runner: one kernel per test, in parallel, each judged
//!   from its exit status and serial output.
//! - [`book`]: `cargo xtask book`, the course book (mdBook) and the check that its code
//!   references exist.
//! - [`trace`]: `cargo xtask trace`, the execution trace decoded into Perfetto JSON, an SVG
//!   timeline and an HTML page (rt-trace), checked; [`browser`] opens pages in headless
//!   Chromium for the tests.
//! - [`fuzz`]: `cargo xtask fuzz`, the fuzz targets in fuzz/ (cargo-fuzz) run for a while
//!   each, with their executions and failures reported.
//! - [`lab`]: `cargo xtask lab`, the course's labs: regions of the real source replaced by
//!   stubs, and graders that run the project's own tests.
//! - [`mutants`]: `cargo xtask mutants`, mutation testing of rt-core's core files
//!   (cargo-mutants), with per-file scores.

pub mod apt;
pub mod bench;
pub mod book;
pub mod browser;
pub mod build;
pub mod fuzz;
pub mod gdb;
pub mod harness;
pub mod hostwatch;
pub mod lab;
pub mod mutants;
pub mod qemu;
pub mod setup;
pub mod symbolize;
pub mod trace;
/// rt-core's traceback format, compiled into xtask from rt-core's own file rather than through
/// a dependency on rt-core: xtask must build while a student's rt-core does not (`cargo xtask
/// lab grade` reports that as failed tests).
#[path = "../../rt-core/src/traceback/format.rs"]
pub mod traceback_format;

extern crate alloc;

use std::path::PathBuf;

/// The tree being built and tested: the workspace xtask was built from, unless `GORT_TREE`
/// names another copy of it (the lab check grades a scratch copy with this xtask: lab.rs).
pub fn root() -> PathBuf {
    match std::env::var_os("GORT_TREE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => tool_root(),
    }
}

/// The workspace xtask itself was built from (xtask lives one level below it): where its
/// tools are built and installed (the imager, mdbook), whichever tree it works on.
pub fn tool_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent directory")
        .to_path_buf()
}

/// The `cargo` that runs us (set by cargo for `cargo run`), else the one on PATH.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

//! Integration tests that run inside QEMU. Each `src/bin/*.rs` is one kernel (built on
//! `kernel::test_kernel!`), booted by `cargo xtask test` with the `//! @...` directives at its
//! top (see xtask/src/harness.rs). `fixtures/` holds deliberately broken kernels that xtask's
//! own tests use to prove the harness reports failures; they are not part of the normal run.

#![no_std]

extern crate alloc;

pub mod preempt;
pub mod stacks;

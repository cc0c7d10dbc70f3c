//! Integration tests that run inside QEMU. Each `src/bin/*.rs` is one kernel (built on
//! `kernel::test_kernel!`), booted by `cargo xtask test` with the `//! @...` directives at its
//! top (see xtask/src/harness.rs). `fixtures/` holds deliberately broken kernels that xtask's
//! own tests use to prove the harness reports failures; they are not part of the normal run.

#![no_std]

extern crate alloc;

pub mod preempt;
pub mod stacks;

/// Runs `f` in a goroutine (goroutine 2, created here: tests that check a goroutine's
/// creation site spawn their own) of a fresh runtime with `gomaxprocs` Ps (0: one per
/// online CPU), beside the main goroutine that waits for it.
pub fn in_goroutine(gomaxprocs: usize, f: impl FnOnce() + Send + 'static) {
    kernel::rt::run::run(gomaxprocs, move || {
        let wg = alloc::sync::Arc::new(rt_core::WaitGroup::new());
        wg.add(1);
        let w = wg.clone();
        rt_core::spawn(move || {
            f();
            w.done();
        });
        wg.wait();
    });
}

/// Guest time a test waits at most for something the host's scheduling can delay (under TCG
/// on a loaded host a vCPU may not run for a while): a bound on a hang, not a figure.
pub const PATIENCE_NS: u64 = 10_000_000_000;

/// Waits at least `min_ns` of guest time, then until `done()` holds or [`PATIENCE_NS`] have
/// passed since the start, calling `pause` between looks; returns whether `done()` held.
pub fn wait_for(min_ns: u64, mut done: impl FnMut() -> bool, mut pause: impl FnMut()) -> bool {
    let start = kernel::x86::tsc::nanos();
    loop {
        let t = kernel::x86::tsc::nanos() - start;
        if t >= min_ns && done() {
            return true;
        }
        if t >= PATIENCE_NS {
            return false;
        }
        pause();
    }
}

/// Times any CPU has halted so far (idle Ms and the poller count each `hlt`).
pub fn total_halts() -> u64 {
    (0..kernel::x86::percpu::MAX_CPUS)
        .map_while(kernel::x86::percpu::get)
        .map(|c| c.halts.load(core::sync::atomic::Ordering::Relaxed))
        .sum()
}

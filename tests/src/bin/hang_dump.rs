//! A kernel that never finishes is a failure that says where it was: at the deadline the
//! harness types Ctrl-\ on the serial port (xtask/src/qemu.rs `wait_with_deadline`), the
//! kernel prints its goroutine dump (kernel/src/rt/dump.rs), and only then is QEMU killed; the
//! failure shows the dump (xtask/src/harness.rs `shown_from`). This kernel hangs on purpose:
//! its main goroutine spins for ever (preempted by the tick, so it keeps its CPU only in turns)
//! beside a goroutine blocked on a channel nobody sends on. `@expect-hang` turns the verdict
//! round: it passes only if the run hung and the dump names both goroutines where they are.
//! Line numbers are this file's.
//! @smp 1
//! @timeout 30
//! @expect-hang
//! @expect-fail SIGQUIT: goroutine dump
//! @expect-fail [chan receive]:\nhang_dump::blocked_for_ever(...)\n\ttests/src/bin/hang_dump.rs:28 +0x
//! @expect-fail goroutine 1 [ ... hang_dump::spin_for_ever(...) ... end of goroutine dump

#![no_std]
#![no_main]

use rt_core::{chan, spawn};

kernel::test_kernel!(spins_for_ever_beside_a_blocked_goroutine);

static NEVER: spin::Once<chan::Chan<u32>> = spin::Once::new();

#[inline(never)]
fn blocked_for_ever() -> u32 {
    let c = NEVER.get().expect("made before the spawn").clone();
    c.recv().unwrap_or(0)
}

#[inline(never)]
fn spin_for_ever() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

fn spins_for_ever_beside_a_blocked_goroutine() {
    assert!(
        kernel::dev::serial_in::enabled(),
        "serial input is not interrupt-driven: no dump can be asked for"
    );
    kernel::rt::run::run(0, || {
        NEVER.call_once(|| chan::make::<u32>(0));
        spawn(|| {
            blocked_for_ever();
        });
        spin_for_ever();
    });
}

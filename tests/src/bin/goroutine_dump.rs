//! Ctrl-\ on the serial console (kernel/src/rt/dump.rs): with goroutines parked in known
//! functions and one running on another CPU, typing byte 0x1c prints every goroutine's
//! traceback (symbolized by xtask) and the scheddetail lines, and the kernel carries on: the
//! test still reads its next line and passes. Line numbers are this file's.
//! @smp 2
//! @timeout 120
//! @input \x1cgo on\n
//! @expect-output SIGQUIT: goroutine dump (Ctrl-\; the kernel carries on)
//! @expect-output [chan receive]:\ngoroutine_dump::parked_receiver(...)\n\ttests/src/bin/goroutine_dump.rs:31 +0x
//! @expect-output [sleep]:\ngoroutine_dump::sleeper(...)\n\ttests/src/bin/goroutine_dump.rs:36 +0x
//! @expect-output goroutine 1 [IO wait]:
//! @expect-output goroutine 4 [running]:
//! @expect-output SCHED  ... P0: status= ... end of goroutine dump

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use kernel::dev::serial_in;
use rt_core::{chan, spawn};

kernel::test_kernel!(ctrl_backslash_dumps_and_the_kernel_carries_on);

#[inline(never)]
fn parked_receiver(c: chan::Chan<u32>) -> u32 {
    core::hint::black_box(&c);
    c.recv().unwrap_or(0)
}

#[inline(never)]
fn sleeper() -> u64 {
    rt_core::time::sleep(Duration::from_secs(3600));
    core::hint::black_box(1) // not a tail call: this frame stays on the stack
}

fn ctrl_backslash_dumps_and_the_kernel_carries_on() {
    assert!(serial_in::enabled(), "serial input is not interrupt-driven");
    kernel::rt::run::run(0, || {
        let c = chan::make::<u32>(0);
        let c2 = c.clone();
        spawn(move || {
            parked_receiver(c2);
        });
        spawn(|| {
            sleeper();
        });
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        spawn(move || {
            while !s.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        });
        // Let the others reach their parking places, then ask for the input.
        rt_core::time::sleep(Duration::from_millis(20));
        kernel::println!("{}", serial_in::WAITING_MARKER);
        let line = serial_in::read_line().expect("serial input works");
        assert_eq!(line, "go on", "the line after Ctrl-\\ was not read intact");
        stop.store(true, Ordering::Relaxed);
        c.send(1);
    });
}

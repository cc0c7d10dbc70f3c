//! Go's `checkdead` in the kernel: when every goroutine is blocked and nothing (no timer, no
//! I/O wait) can ever ready one, the kernel prints Go's message and the goroutine list, and
//! fails. A pending timer first keeps the program alive. Each goroutine's frames end at its
//! blocking call (line numbers in the directives are this file's).
//! @smp 1 2
//! @timeout 60
//! @expect-fail fatal error: all goroutines are asleep - deadlock!
//! @expect-fail [chan receive]:
//! @expect-fail [sync.Mutex.Lock]:
//! @expect-fail goroutine 1 [chan receive]:\ndeadlock::blocked_forever_is_a_deadlock::{closure#0}(...)\n\ttests/src/bin/deadlock.rs:35
//! @expect-fail [sync.Mutex.Lock]:\ndeadlock::blocked_forever_is_a_deadlock::{closure#0}::{closure#0}(...)\n\ttests/src/bin/deadlock.rs:33
//! @expect-fail created by deadlock::blocked_forever_is_a_deadlock::{closure#0} in goroutine 1\n\ttests/src/bin/deadlock.rs:33 +0x

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use core::time::Duration;
use rt_core::sync::Mutex;
use rt_core::{chan, spawn};

kernel::test_kernel!(blocked_forever_is_a_deadlock);

fn blocked_forever_is_a_deadlock() {
    kernel::rt::run::run(0, || {
        // Only a sleeper: not a deadlock.
        rt_core::time::sleep(Duration::from_millis(5));
        let m = Arc::new(Mutex::new(()));
        let held = m.lock();
        let m2 = m.clone();
        spawn(move || drop(m2.lock()));
        let c = chan::make::<u32>(0);
        c.recv();
        drop(held);
    });
    panic!("the deadlock was not detected");
}

//! The kernel `cargo xtask gdb`'s test stops (tests/gdb/goroutines.gdb, xtask/src/gdb.rs): two
//! goroutines parked in named functions, then a call of `gdb_stop_here`, where gdb's
//! breakpoint stops it. Without a debugger it simply passes.
//! @smp 2

#![no_std]
#![no_main]

extern crate alloc;

use core::time::Duration;
use rt_core::{chan, spawn};

kernel::test_kernel!(goroutines_park_where_gdb_can_see_them);

#[inline(never)]
fn parked_receiver(c: chan::Chan<u32>) -> u32 {
    core::hint::black_box(&c);
    c.recv().unwrap_or(0) + 1
}

#[inline(never)]
fn sleeper() -> u64 {
    rt_core::time::sleep(Duration::from_secs(3600));
    core::hint::black_box(1)
}

/// Where gdb stops the kernel (an hbreak): every goroutine above is parked by now.
#[inline(never)]
#[no_mangle]
pub extern "C" fn gdb_stop_here(parked: u64) -> u64 {
    core::hint::black_box(parked)
}

fn goroutines_park_where_gdb_can_see_them() {
    kernel::rt::run::run(0, || {
        let c = chan::make::<u32>(0);
        let c2 = c.clone();
        spawn(move || {
            parked_receiver(c2);
        });
        spawn(|| {
            sleeper();
        });
        rt_core::time::sleep(Duration::from_millis(20));
        assert_eq!(gdb_stop_here(2), 2);
        c.send(1);
    });
}

//! A goroutine that panics three calls deep: the kernel prints its traceback (raw frame
//! addresses, which xtask symbolizes from this kernel's ELF), innermost first, naming the three
//! functions and this file's lines, then where the goroutine was created. Line numbers in the
//! directives are this file's: keep them in step.
//! @expect-fail KERNEL PANIC on cpu
//! @expect-fail goroutine 2 [running]:\ntraceback_panic::third(...)\n\ttests/src/bin/traceback_panic.rs:29 +0x ... traceback_panic::second(...)\n\ttests/src/bin/traceback_panic.rs:24 +0x ... traceback_panic::first(...)\n\ttests/src/bin/traceback_panic.rs:19 +0x
//! @expect-fail created by traceback_panic::three_calls_deep::{closure#0} in goroutine 1\n\ttests/src/bin/traceback_panic.rs:37 +0x

#![no_std]
#![no_main]

extern crate alloc;

kernel::test_kernel!(three_calls_deep);

#[inline(never)]
fn first(n: u64) -> u64 {
    core::hint::black_box(n);
    second(n + 1) + 1
}
#[inline(never)]
fn second(n: u64) -> u64 {
    core::hint::black_box(n);
    third(n + 1) + 1
}
#[inline(never)]
fn third(n: u64) -> u64 {
    core::hint::black_box(n);
    panic!("three calls deep ({n})")
}

fn three_calls_deep() {
    kernel::rt::run::run(1, || {
        let wg = alloc::sync::Arc::new(rt_core::WaitGroup::new());
        wg.add(1);
        let w = wg.clone();
        rt_core::spawn(move || {
            core::hint::black_box(first(0));
            w.done();
        });
        wg.wait();
    });
}

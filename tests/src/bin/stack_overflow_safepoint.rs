//! A recursion with a safe point in every frame is caught by `preempt_point()` when the stack
//! pointer passes `stackguard0` (`stack.lo` + 16 KiB), before the guard page.
//! @args maxstack=64K
//! @expect-fail runtime: goroutine stack exceeds 61376-byte limit
//! @expect-fail fatal error: stack overflow
//! @expect-fail goroutine 2 [running]:\nstack_overflow_safepoint::down(...)\n\ttests/src/bin/stack_overflow_safepoint.rs:19 ... stack_overflow_safepoint::down(...)\n\ttests/src/bin/stack_overflow_safepoint.rs:22 +0x
//! @expect-fail created by stack_overflow_safepoint::recursion_with_safe_points_stops_at_stackguard::{closure#0} in goroutine 1\n\ttests/src/bin/stack_overflow_safepoint.rs:30 +0x

#![no_std]
#![no_main]

extern crate alloc;

kernel::test_kernel!(recursion_with_safe_points_stops_at_stackguard);

#[inline(never)]
#[allow(unconditional_recursion)] // the point of the test
fn down(n: u64) -> u64 {
    rt_core::preempt_point();
    let pad = [n; 32];
    core::hint::black_box(&pad);
    down(n + 1) + pad[(n % 32) as usize]
}

fn recursion_with_safe_points_stops_at_stackguard() {
    kernel::rt::run::run(1, || {
        let wg = alloc::sync::Arc::new(rt_core::WaitGroup::new());
        wg.add(1);
        let w = wg.clone();
        rt_core::spawn(move || {
            core::hint::black_box(down(0));
            w.done();
        });
        wg.wait();
    });
    panic!("the recursion returned");
}

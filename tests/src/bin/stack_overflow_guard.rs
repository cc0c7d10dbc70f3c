//! A goroutine that recurses without end and without a safe point runs into its guard page:
//! the page-fault handler reports Go's stack overflow (never a double or triple fault) and the
//! run fails. Small slots make it quick.
//! @args maxstack=64K
//! @expect-fail runtime: goroutine stack exceeds 61376-byte limit
//! @expect-fail runtime: goroutine stack ran into its guard page at 0x
//! @expect-fail fatal error: stack overflow
//! @expect-fail goroutine 2 [running]:\nstack_overflow_guard::down(...)\n\ttests/src/bin/stack_overflow_guard.rs: ... stack_overflow_guard::down(...)\n\ttests/src/bin/stack_overflow_guard.rs:22 +0x
//! @expect-fail frames elided...
//! @expect-fail created by stack_overflow_guard::unbounded_recursion_hits_the_guard_page::{closure#0} in goroutine 1\n\ttests/src/bin/stack_overflow_guard.rs:30 +0x

#![no_std]
#![no_main]

kernel::test_kernel!(unbounded_recursion_hits_the_guard_page);

#[inline(never)]
#[allow(unconditional_recursion)] // the point of the test
fn down(n: u64) -> u64 {
    let pad = [n; 32];
    core::hint::black_box(&pad);
    down(n + 1) + pad[(n % 32) as usize]
}

fn unbounded_recursion_hits_the_guard_page() {
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

extern crate alloc;

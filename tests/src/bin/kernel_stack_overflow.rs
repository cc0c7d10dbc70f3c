//! Overflowing the kernel stack is a reported page fault on the guard page (the page-fault
//! handler runs on its own IST stack), not a triple fault.
//! @expect-fail EXCEPTION: page fault (#PF)
//! @expect-fail CR2 (faulting address)

#![no_std]
#![no_main]

kernel::test_kernel!(recurse_forever);

#[inline(never)]
#[allow(unconditional_recursion)] // the point of the test
fn deeper(n: u64) -> u64 {
    let pad = [n; 64];
    core::hint::black_box(&pad);
    deeper(n + 1) + pad[(n % 64) as usize]
}

fn recurse_forever() {
    core::hint::black_box(deeper(0));
}

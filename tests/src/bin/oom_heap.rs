//! A goroutine that asks the kernel heap for more than it has ends the run with Go's words for
//! it and the goroutine that asked, not a hang or a fault.
//! @expect-fail runtime: out of memory: cannot allocate 68719476736-byte block
//! @expect-fail fatal error: out of memory
//! @expect-fail goroutine 2 [running]:
//! @expect-fail oom_heap::greedy(...)

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

kernel::test_kernel!(asking_the_heap_for_64_gib);

#[inline(never)]
fn greedy() -> usize {
    let v: Vec<u8> = Vec::with_capacity(core::hint::black_box(64usize << 30));
    v.capacity()
}

fn asking_the_heap_for_64_gib() {
    kernel::rt::run::run(1, || {
        let wg = alloc::sync::Arc::new(rt_core::WaitGroup::new());
        wg.add(1);
        let w = wg.clone();
        rt_core::spawn(move || {
            let n = greedy();
            kernel::println!("got {n} bytes");
            w.done();
        });
        wg.wait();
    });
    panic!("a 64 GiB allocation succeeded");
}

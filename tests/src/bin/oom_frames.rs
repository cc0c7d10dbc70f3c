//! Goroutine stacks that grow until no physical frame is left end the run with a named error
//! and the goroutine that could not grow, not a hang or a triple fault.
//! @mem 128M
//! @args maxstack=64M
//! @timeout 120
//! @expect-fail fatal error: out of memory: cannot grow goroutine
//! @expect-fail (no free frame)
//! @expect-fail [running]:\noom_frames::deep(...)

#![no_std]
#![no_main]

extern crate alloc;

kernel::test_kernel!(stacks_grow_past_physical_memory);

/// Recurses through 4 KiB frames: `n` frames is `n` pages of stack.
#[inline(never)]
fn deep(n: u64) -> u64 {
    let mut page = [0u8; 4096];
    page[(n % 4096) as usize] = n as u8;
    let page = core::hint::black_box(page);
    if n == 0 {
        return 0;
    }
    page[(n % 4096) as usize] as u64 + deep(n - 1)
}

fn stacks_grow_past_physical_memory() {
    let (_, total) = kernel::mm::frame::frame_stats();
    kernel::println!("frames: {total} usable ({} MiB)", (total * 4096) >> 20);
    kernel::rt::run::run(1, move || {
        let wg = alloc::sync::Arc::new(rt_core::WaitGroup::new());
        // Two goroutines of 60 MiB each: more than the machine's 128 MiB less heap and tables.
        for _ in 0..2 {
            wg.add(1);
            let w = wg.clone();
            rt_core::spawn(move || {
                kernel::println!("sum {}", deep(15_000));
                w.done();
            });
        }
        wg.wait();
    });
    panic!("120 MiB of stack fit in 128 MiB of memory");
}

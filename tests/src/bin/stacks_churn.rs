//! A million spawn/exit cycles leak nothing: the same frames and the same number of Gs at the
//! end as after a warm-up (G structs and stacks are reused through the free lists and the
//! stack caches), and nothing at all once the runtime is gone.
//! @timeout 400

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use kernel::println;
use kernel::testing::measure::spawn_exit;

kernel::test_kernel!(
    a_million_spawn_exit_cycles_on_one_p,
    spawn_exit_cycles_on_every_p
);

fn run_cycles(
    gomaxprocs: usize,
    warm: usize,
    total: usize,
) -> (
    kernel::rt::stats::MemSnapshot,
    kernel::rt::stats::MemSnapshot,
    u64,
) {
    let out = Arc::new(spin::Mutex::new(None));
    let o = out.clone();
    let frames_before = kernel::mm::frame::frame_stats().0;
    kernel::rt::run::run(gomaxprocs, move || {
        spawn_exit(warm, 1000);
        let a = kernel::rt::stats::mem_snapshot();
        let ns = spawn_exit(total, 1000);
        let b = kernel::rt::stats::mem_snapshot();
        *o.lock() = Some((a, b, ns));
    });
    let r = out.lock().take().expect("the main goroutine ran");
    let st = kernel::mm::stack::stats();
    assert_eq!(
        st.mapped_pages, 0,
        "stack pages left after the runtime ended: {st:?}"
    );
    assert_eq!(
        st.live_slots, 0,
        "stack slots left after the runtime ended: {st:?}"
    );
    assert_eq!(
        kernel::mm::frame::frame_stats().0,
        frames_before,
        "frames (stack pages or their page tables) left after the runtime ended"
    );
    r
}

fn a_million_spawn_exit_cycles_on_one_p() {
    let (a, b, ns) = run_cycles(1, 20_000, 1_000_000);
    println!(
        "stacks: 1000000 spawn/exit cycles on 1 P: {ns} ns each (emulated); frames {} -> {}, Gs {} -> {}, stack pages {} -> {}, heap {} -> {} bytes",
        a.frames, b.frames, a.gs, b.gs, a.stack_pages, b.stack_pages, a.heap_bytes, b.heap_bytes
    );
    assert_eq!(a.frames, b.frames, "frames leaked");
    assert_eq!(a.gs, b.gs, "Gs leaked");
    assert_eq!(a.stack_pages, b.stack_pages, "stack pages leaked");
    assert_eq!(a.heap_bytes, b.heap_bytes, "heap leaked");
}

fn spawn_exit_cycles_on_every_p() {
    // With several Ps the number of goroutines alive at once varies a little from batch to
    // batch, so the high-water mark may still rise a little after the warm-up; a leak would
    // grow with the cycles.
    let (a, b, ns) = run_cycles(0, 20_000, 200_000);
    println!(
        "stacks: 200000 spawn/exit cycles on {} Ps: {ns} ns each (emulated); frames {} -> {}, Gs {} -> {}",
        kernel::x86::percpu::ONLINE.load(core::sync::atomic::Ordering::SeqCst),
        a.frames, b.frames, a.gs, b.gs
    );
    assert!(
        b.frames <= a.frames + 64,
        "frames grew by {}",
        b.frames - a.frames
    );
    assert!(b.gs <= a.gs + 256, "Gs grew by {}", b.gs - a.gs);
}

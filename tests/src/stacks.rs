//! Helpers shared by the goroutine-stack test kernels (`stacks*.rs`).

use alloc::sync::Arc;

use kernel::testing::measure::{park_many, per_goroutine};

/// Recurses `depth` times with `FRAME` bytes of live data per frame, so the stack really holds
/// about `depth * FRAME` bytes at the bottom; returns a checksum of every frame's data (which
/// the caller recomputes, so nothing is optimised away).
pub fn deep<const FRAME: usize>(depth: u64) -> u64 {
    deep_yielding::<FRAME>(depth, 0)
}

/// [`deep`] that yields every `every` frames (0: never), so that the goroutine moves between
/// CPUs while its stack is deep: pages mapped on one CPU are used on another, while other CPUs
/// trim and free stacks (shootdowns). A stale translation would corrupt a frame's data (a
/// wrong checksum) or fault.
#[inline(never)]
pub fn deep_yielding<const FRAME: usize>(depth: u64, every: u64) -> u64 {
    let mut pad = [0u8; FRAME];
    for (i, b) in pad.iter_mut().enumerate() {
        *b = (depth as usize).wrapping_add(i) as u8;
    }
    core::hint::black_box(&mut pad);
    if every != 0 && depth.is_multiple_of(every) {
        rt_core::gosched();
    }
    let below = if depth == 0 {
        0
    } else {
        deep_yielding::<FRAME>(depth - 1, every)
    };
    below.wrapping_add(pad.iter().map(|&b| b as u64).sum::<u64>())
}

/// What `deep::<FRAME>(depth)` returns, computed without recursion.
pub fn deep_expected<const FRAME: usize>(depth: u64) -> u64 {
    (0..=depth)
        .map(|d| {
            (0..FRAME)
                .map(|i| (d as usize).wrapping_add(i) as u8 as u64)
                .sum::<u64>()
        })
        .sum()
}

/// Parks `n` goroutines, prints what each costs and checks it: the stack is one page, and the
/// total is within 4.5 KiB plus the page-table share the slot size forces (4 KiB per 2 MiB of
/// slots: 2 KiB at 1 MiB slots, 128 bytes at 64 KiB).
pub fn check_parked(n: usize) {
    let out = Arc::new(spin::Mutex::new(None));
    let o = out.clone();
    kernel::rt::run::run(0, move || {
        *o.lock() = Some(park_many(n));
    });
    let (before, parked) = out.lock().take().expect("the main goroutine ran");
    let slot = kernel::mm::stack::slot_size();
    let c = per_goroutine(&before, &parked, n);
    let (total, stack, tables, heap) = (c.total, c.stack, c.page_tables, c.heap);
    let table_share = 4096 * slot.min(2 << 20) / (2 << 20);
    kernel::println!(
        "stacks: {n} parked goroutines, {} KiB stack slots: {total} bytes each ({stack} stack, {tables} page tables, {heap} heap: G and closure); an M's stack is {} KiB",
        slot / 1024,
        kernel::x86::smp::AP_STACK_SIZE / 1024
    );
    assert_eq!(
        stack, 4096,
        "a parked goroutine should hold exactly its first page"
    );
    assert!(
        tables <= table_share + 64,
        "page tables {tables} bytes per goroutine, expected about {table_share}"
    );
    let limit = 4608 + table_share.saturating_sub(128);
    assert!(
        total <= limit,
        "{total} bytes per parked goroutine (limit {limit})"
    );
}

//! Measurements that the showcase (`cargo xtask qemu`) and the test kernels share: what parked
//! goroutines hold in memory, and what a spawn/exit cycle costs. They run inside a goroutine
//! of a running runtime ([`crate::rt::run::run`]). Also the one [`median`] of samples that
//! every latency figure is reported with (plain arithmetic, for any caller).

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use rt_core::{gosched, spawn, WaitGroup};

use crate::rt::stats::MemSnapshot;

/// Spawns `n` goroutines that each park on one WaitGroup, waits until every one has run up
/// to its park, and measures what they hold: (before, while parked). Then releases them and
/// waits for all to exit.
pub fn park_many(n: usize) -> (MemSnapshot, MemSnapshot) {
    let before = crate::rt::stats::mem_snapshot();
    let gate = Arc::new(WaitGroup::new());
    gate.add(1);
    let done = Arc::new(WaitGroup::new());
    done.add(n as i32);
    let arrived = Arc::new(AtomicU64::new(0));
    for _ in 0..n {
        let (gate, done, arrived) = (gate.clone(), done.clone(), arrived.clone());
        spawn(move || {
            arrived.fetch_add(1, Ordering::Relaxed);
            gate.wait();
            done.done();
        });
    }
    while arrived.load(Ordering::Relaxed) < n as u64 {
        gosched();
    }
    // The last arrivals are parking now; let them finish.
    for _ in 0..100 {
        gosched();
    }
    let parked = crate::rt::stats::mem_snapshot();
    gate.done();
    done.wait();
    (before, parked)
}

/// The median of `samples`, which are sorted in place, so that afterwards the caller can read
/// the minimum and the maximum at the two ends. It is always one of the samples: for an odd
/// count the middle one, for an even count the upper of the two middle ones (index `len / 2`
/// after sorting), not their mean.
///
/// # Panics
/// If `samples` is empty (there is no median): a caller that may have none checks first.
pub fn median(samples: &mut [u64]) -> u64 {
    assert!(!samples.is_empty(), "the median of no samples");
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Bytes per goroutine between two snapshots.
#[derive(Debug, Clone, Copy)]
pub struct PerGoroutine {
    /// Frames (4 KiB each) plus heap.
    pub total: u64,
    /// Goroutine stack pages.
    pub stack: u64,
    /// Other frames: page tables, in practice.
    pub page_tables: u64,
    /// Heap: the G struct, its closure, its waiter entry.
    pub heap: u64,
}

pub fn per_goroutine(before: &MemSnapshot, after: &MemSnapshot, n: usize) -> PerGoroutine {
    let n = n as u64;
    let frames = (after.frames - before.frames) * 4096;
    let heap = after.heap_bytes.saturating_sub(before.heap_bytes);
    let stack = (after.stack_pages - before.stack_pages) * 4096;
    PerGoroutine {
        total: (frames + heap) / n,
        stack: stack / n,
        page_tables: frames.saturating_sub(stack) / n,
        heap: heap / n,
    }
}

/// Runs `total` spawn+exit cycles in batches of `batch` (spawn a batch, wait for it) and
/// returns the nanoseconds per cycle.
pub fn spawn_exit(total: usize, batch: usize) -> u64 {
    let start = crate::x86::tsc::nanos();
    let mut left = total;
    while left > 0 {
        let k = batch.min(left);
        let wg = Arc::new(WaitGroup::new());
        wg.add(k as i32);
        for _ in 0..k {
            let wg = wg.clone();
            spawn(move || wg.done());
        }
        wg.wait();
        left -= k;
    }
    (crate::x86::tsc::nanos() - start) / total.max(1) as u64
}

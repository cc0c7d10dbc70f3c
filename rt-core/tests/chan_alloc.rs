//! Channels and `select` without heap allocation, checked by counting: a `select` (blocking,
//! parked and woken, and with `default`; with nil-channel cases among the others, and with
//! every case nil) and a blocking send and receive make no heap allocation in steady state.
//!
//! The allocations are counted by this binary's global allocator, process-wide, so the binary
//! holds one test (the harness spawns no other test's thread meanwhile) that runs the checks
//! one after another.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use rt_core::chan;
use rt_core::{select, spawn, Runtime};

/// The system allocator, counting every allocation and reallocation.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; the counter is a side effect.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's promise, forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's promise, forwarded.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's promise, forwarded.
        unsafe { System.realloc(p, l, new) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: the caller's promise, forwarded.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.load(Ordering::SeqCst)
}

const WARMUP: u64 = 2_000;
const N: u64 = 20_000;
const WINDOWS: usize = 5;

/// Runs `round(i)` for `WARMUP` rounds, then counts the allocations of windows of `N` more
/// and returns the fewest. The runtime itself may still start an M in a window (an M's g0
/// and thread allocate), which is not the channels' doing, so a window without allocation is
/// the steady state; anything a round allocates shows in every window (at least `N`).
fn allocs_in_steady_state(mut round: impl FnMut(u64)) -> u64 {
    for i in 0..WARMUP {
        round(i);
    }
    let mut fewest = u64::MAX;
    let mut i = WARMUP;
    for _ in 0..WINDOWS {
        let before = allocs();
        for _ in 0..N {
            round(i);
            i += 1;
        }
        fewest = fewest.min(allocs() - before);
        if fewest == 0 {
            break;
        }
    }
    fewest
}

/// Ping-pong over unbuffered channels where both sides only ever `select`: each exchange
/// completes against a parked select, which is then woken, so every round parks and wakes.
fn a_blocking_select_that_parks_and_wakes_does_not_allocate() {
    let n = Runtime::new(2).block_on(|| {
        let (ping, pong, never) = (
            chan::make::<u64>(0),
            chan::make::<u64>(0),
            chan::make::<u64>(0),
        );
        let (ping2, pong2, never2) = (ping.clone(), pong.clone(), never.clone());
        spawn(move || loop {
            // A nil case (Go's nil channel) costs nothing either.
            let nil: Option<&chan::Chan<u64>> = None;
            let v = select! {
                recv(ping2) -> v => v,
                recv(nil) -> _ => unreachable!(),
                recv(never2) -> _ => unreachable!(),
            };
            let Some(v) = v else { break };
            select! {
                send(pong2, v + 1) => (),
                recv(never2) -> _ => unreachable!(),
            }
        });
        let nil: Option<chan::Chan<u64>> = None;
        let n = allocs_in_steady_state(|i| {
            select! {
                send(ping, i) => (),
                send(nil, i) => unreachable!(),
                recv(never) -> _ => unreachable!(),
            }
            let r = select! {
                recv(pong) -> v => v,
                recv(never) -> _ => unreachable!(),
            };
            assert_eq!(r, Some(i + 1));
        });
        ping.close();
        n
    });
    assert_eq!(n, 0, "{n} heap allocations in {N} rounds of two blocking selects each (the fewest of {WINDOWS} windows)");
}

fn a_select_with_default_does_not_allocate() {
    let n = Runtime::new(2).block_on(|| {
        let (a, b, full) = (
            chan::make::<u64>(1),
            chan::make::<u64>(0),
            chan::make::<u64>(1),
        );
        full.send(0);
        let nil: Option<&chan::Chan<u64>> = None;
        allocs_in_steady_state(|i| {
            // Every case disabled: the default, at once.
            let r = select! {
                recv(nil) -> v => v,
                send(nil, i) => None,
                default => Some(i),
            };
            assert_eq!(r, Some(i));
            // Nothing ready: default.
            let r = select! {
                recv(a) -> v => v,
                recv(b) -> v => v,
                send(full, i) => Some(u64::MAX),
                default => None,
            };
            assert_eq!(r, None);
            // A send with room, then a receive of it.
            let sent = select! {
                send(a, i) => true,
                recv(b) -> _ => false,
                default => false,
            };
            assert!(sent);
            let r = select! {
                recv(a) -> v => v,
                recv(b) -> v => v,
                default => None,
            };
            assert_eq!(r, Some(i));
        })
    });
    assert_eq!(n, 0, "{n} heap allocations in {N} rounds of three selects with default (the fewest of {WINDOWS} windows)");
}

/// Plain blocking send and receive over unbuffered channels: each completes against a parked
/// peer (its sudog on the peer's stack, linked into the queue without allocating).
fn a_blocking_send_and_receive_do_not_allocate() {
    let n = Runtime::new(2).block_on(|| {
        let (ping, pong) = (chan::make::<u64>(0), chan::make::<u64>(0));
        let (ping2, pong2) = (ping.clone(), pong.clone());
        spawn(move || {
            while let Some(v) = ping2.recv() {
                pong2.send(v + 1);
            }
        });
        let n = allocs_in_steady_state(|i| {
            ping.send(i);
            assert_eq!(pong.recv(), Some(i + 1));
        });
        ping.close();
        n
    });
    assert_eq!(
        n, 0,
        "{n} heap allocations in {N} blocking ping-pong rounds (the fewest of {WINDOWS} windows)"
    );
}

#[test]
fn channels_and_select_do_not_allocate_in_steady_state() {
    a_blocking_select_that_parks_and_wakes_does_not_allocate();
    a_select_with_default_does_not_allocate();
    a_blocking_send_and_receive_do_not_allocate();
}

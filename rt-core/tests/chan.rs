//! Channels on host threads: Go's semantics case by case (written from the Go spec's rules:
//! blocking, FIFO order, direct hand-off, close, the two panics), then many-to-many traffic
//! and the concurrent prime sieve.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rt_core::chan::{self, TryRecvError, TrySendError};
use rt_core::{gosched, spawn, Runtime, WaitGroup};

/// The bodies that deterministic.rs also runs under many seeds.
#[path = "shared/chan.rs"]
mod shared;

#[test]
fn unbuffered_send_waits_for_a_receiver_and_keeps_order() {
    shared::unbuffered_send_waits_for_a_receiver_and_keeps_order()
}

#[test]
fn buffered_channel_holds_cap_values_without_a_receiver() {
    Runtime::new(1).block_on(|| {
        let ch = chan::make::<&str>(3);
        assert_eq!(ch.cap(), 3);
        ch.send("a");
        ch.send("b");
        ch.send("c");
        assert_eq!(ch.len(), 3);
        assert_eq!(ch.try_send("d"), Err(TrySendError::Full("d")));
        assert_eq!(ch.recv(), Some("a"));
        assert_eq!(ch.len(), 2);
        ch.send("d");
        assert_eq!(
            [ch.recv(), ch.recv(), ch.recv()],
            [Some("b"), Some("c"), Some("d")]
        );
        assert_eq!(ch.try_recv(), Err(TryRecvError::Empty));
    });
}

#[test]
fn a_full_buffer_blocks_the_sender_and_order_is_fifo_across_the_handoff() {
    shared::a_full_buffer_blocks_the_sender_and_order_is_fifo_across_the_handoff()
}

#[test]
fn receive_on_closed_yields_the_rest_then_none() {
    shared::receive_on_closed_yields_the_rest_then_none()
}

#[test]
fn close_wakes_every_blocked_receiver_with_none() {
    shared::close_wakes_every_blocked_receiver_with_none()
}

#[test]
fn range_over_a_channel_ends_at_close() {
    shared::range_over_a_channel_ends_at_close()
}

fn panic_message(f: impl FnOnce() + Send + 'static) -> String {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Runtime::new(1).block_on(f)));
    let payload = r.expect_err("the goroutine should have panicked");
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[test]
fn send_on_a_closed_channel_panics_with_gos_message() {
    let msg = panic_message(|| {
        let ch = chan::make::<i32>(1);
        ch.close();
        ch.send(1);
    });
    assert_eq!(msg, "send on closed channel");
}

#[test]
fn a_sender_blocked_when_the_channel_closes_panics() {
    let msg = panic_message(|| {
        let ch = chan::make::<i32>(0);
        let c = ch.clone();
        spawn(move || {
            for _ in 0..50 {
                gosched();
            }
            c.close();
        });
        ch.send(1); // blocks: no receiver, then the close wakes it
    });
    assert_eq!(msg, "send on closed channel");
}

#[test]
fn closing_twice_panics_with_gos_message() {
    let msg = panic_message(|| {
        let ch = chan::make::<()>(0);
        ch.close();
        ch.close();
    });
    assert_eq!(msg, "close of closed channel");
}

#[test]
fn many_senders_many_receivers_lose_and_duplicate_nothing() {
    const SENDERS: u64 = 8;
    const EACH: u64 = 20_000;
    for cap in [0, 1, 64] {
        let (count, sum, xor) = Runtime::new(4).block_on(move || {
            let ch = chan::make::<u64>(cap);
            let senders = Arc::new(WaitGroup::new());
            for s in 0..SENDERS {
                senders.add(1);
                let (ch, senders) = (ch.clone(), senders.clone());
                spawn(move || {
                    for i in 0..EACH {
                        ch.send(s * EACH + i);
                    }
                    senders.done();
                });
            }
            let (count, sum, xor) = (
                Arc::new(AtomicU64::new(0)),
                Arc::new(AtomicU64::new(0)),
                Arc::new(AtomicU64::new(0)),
            );
            let receivers = Arc::new(WaitGroup::new());
            for _ in 0..8 {
                receivers.add(1);
                let (ch, receivers) = (ch.clone(), receivers.clone());
                let (count, sum, xor) = (count.clone(), sum.clone(), xor.clone());
                spawn(move || {
                    for v in ch {
                        count.fetch_add(1, Ordering::Relaxed);
                        sum.fetch_add(v, Ordering::Relaxed);
                        xor.fetch_xor(v.wrapping_mul(0x9e37_79b9_7f4a_7c15), Ordering::Relaxed);
                    }
                    receivers.done();
                });
            }
            senders.wait();
            ch.close();
            receivers.wait();
            (
                count.load(Ordering::Relaxed),
                sum.load(Ordering::Relaxed),
                xor.load(Ordering::Relaxed),
            )
        });
        let n = SENDERS * EACH;
        assert_eq!(count, n, "cap {cap}: messages lost or duplicated");
        assert_eq!(sum, n * (n - 1) / 2, "cap {cap}");
        let want = (0..n).fold(0u64, |a, v| a ^ v.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        assert_eq!(xor, want, "cap {cap}: some values replaced by others");
    }
}

/// The concurrent prime sieve from Go's documentation, written fresh: a chain of filter
/// goroutines, one per prime found, connected by unbuffered channels.
#[test]
fn the_prime_sieve_finds_the_first_1000_primes() {
    let primes = Runtime::new(4).block_on(|| {
        let first = chan::make::<u64>(0);
        let gen = first.clone();
        spawn(move || {
            let mut i = 2;
            loop {
                gen.send(i);
                i += 1;
            }
        });
        let mut ch = first;
        let mut primes = Vec::new();
        for _ in 0..1000 {
            let p = ch.recv().unwrap();
            primes.push(p);
            let out = chan::make::<u64>(0);
            let (input, o) = (ch.clone(), out.clone());
            spawn(move || loop {
                let v = input.recv().unwrap();
                if !v.is_multiple_of(p) {
                    o.send(v);
                }
            });
            ch = out;
        }
        primes
    });
    let mut want = Vec::new();
    let mut n = 2u64;
    while want.len() < 1000 {
        if (2..n)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
        {
            want.push(n);
        }
        n += 1;
    }
    assert_eq!(primes, want);
    assert_eq!(primes[999], 7919);
}

/// Go: `make(chan int64, 1<<59)` panics with `makechan: size out of range` (the buffer would be
/// 4 EiB, past the allocator's limit); it must not abort the process.
#[test]
#[should_panic(expected = "makechan: size out of range")]
fn makechan_with_an_impossible_size_panics_with_gos_message() {
    let _ = chan::make::<i64>(1 << 59);
}

/// A size whose byte count overflows a usize is out of range too, and a zero-sized element
/// needs no buffer at any capacity.
#[test]
fn makechan_checks_the_buffer_in_bytes() {
    let overflow = std::panic::catch_unwind(|| chan::make::<u64>(usize::MAX / 4));
    assert!(
        overflow.is_err(),
        "usize::MAX / 4 values of 8 bytes overflow"
    );
    let zst = chan::make::<()>(usize::MAX);
    assert!(format!("{zst:?}").contains(&usize::MAX.to_string()));
}

/// Go's limit is on the buffer's bytes, 1 << 48 (`maxAlloc` on amd64, malloc.go): a buffer of
/// exactly that many is in range, so asking for it is the allocator's failure (a fatal
/// "out of memory" naming the size, which ends the process), not the range panic. Run in a
/// child process because the fatal error exits.
#[test]
fn a_buffer_of_exactly_the_limit_is_in_range_and_fails_as_out_of_memory() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "makechan_at_the_limit_probe",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .output()
        .expect("cannot run the test binary again");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the probe succeeded: {err}");
    assert!(
        err.contains("out of memory: cannot allocate a 281474976710656-byte channel buffer"),
        "a buffer of 1 << 48 bytes was not taken for in range:\n{err}"
    );
    assert!(!err.contains("size out of range"), "{err}");
}

/// The child of `a_buffer_of_exactly_the_limit_is_in_range_and_fails_as_out_of_memory`.
#[test]
#[ignore = "run as a child process by a_buffer_of_exactly_the_limit_is_in_range_and_fails_as_out_of_memory"]
fn makechan_at_the_limit_probe() {
    let _ = chan::make::<u8>(1 << 48);
}

/// Blocking needs a goroutine to park: outside one, a send or receive that would block panics
/// and names which it was (the channel stays usable).
#[test]
fn blocking_outside_a_goroutine_panics_and_names_the_operation() {
    let c = chan::make::<u32>(0);
    let text = |r: Result<(), Box<dyn std::any::Any + Send>>| {
        let p = r.expect_err("blocking outside a goroutine did not panic");
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    };
    let c2 = c.clone();
    let send = text(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
        move || c2.send(1),
    )));
    assert_eq!(send, "channel send would block outside a goroutine");
    let c2 = c.clone();
    let recv = text(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
        move || {
            c2.recv();
        },
    )));
    assert_eq!(recv, "channel receive would block outside a goroutine");
    assert_eq!(c.try_send(7), Err(TrySendError::Full(7)));
}

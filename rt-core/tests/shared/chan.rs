//! Bodies of chan.rs's tests that deterministic.rs also runs, each under many seeds
//! (shared rather than copied: chan.rs calls them too).

#![allow(unused_imports)]

use rt_core::chan::{self, TryRecvError, TrySendError};
use rt_core::{gosched, spawn, Runtime, WaitGroup};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

pub fn unbuffered_send_waits_for_a_receiver_and_keeps_order() {
    let got = Runtime::new(2).block_on(|| {
        let ch = chan::make::<u64>(0);
        let sent = Arc::new(AtomicUsize::new(0));
        let (tx, s) = (ch.clone(), sent.clone());
        spawn(move || {
            for i in 0..1000 {
                tx.send(i);
                s.fetch_add(1, Ordering::SeqCst);
            }
        });
        // Nothing can be sent before we receive: an unbuffered send completes only with a
        // receiver (give the sender time to try).
        for _ in 0..100 {
            gosched();
        }
        assert_eq!(
            sent.load(Ordering::SeqCst),
            0,
            "an unbuffered send completed alone"
        );
        assert_eq!(ch.len(), 0);
        (0..1000).map(|_| ch.recv().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
}

pub fn a_full_buffer_blocks_the_sender_and_order_is_fifo_across_the_handoff() {
    let got = Runtime::new(2).block_on(|| {
        let ch = chan::make::<u32>(2);
        let tx = ch.clone();
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        spawn(move || {
            for i in 0..5 {
                tx.send(i); // blocks at i = 2 until we receive
            }
            d.store(1, Ordering::SeqCst);
        });
        // Wait (bounded) for the sender to fill the buffer; it must then be blocked.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while ch.len() < 2 && std::time::Instant::now() < deadline {
            gosched();
        }
        assert_eq!(ch.len(), 2, "the sender filled the buffer");
        for _ in 0..100 {
            gosched();
        }
        assert_eq!(ch.len(), 2, "a send went past a full buffer");
        assert_eq!(done.load(Ordering::SeqCst), 0, "the sender did not block");
        (0..5).map(|_| ch.recv().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
}

pub fn receive_on_closed_yields_the_rest_then_none() {
    Runtime::new(1).block_on(|| {
        let ch = chan::make::<i32>(4);
        ch.send(1);
        ch.send(2);
        assert!(!ch.is_closed());
        ch.close();
        assert!(ch.is_closed());
        assert_eq!(ch.recv(), Some(1));
        assert_eq!(ch.recv(), Some(2));
        assert_eq!(ch.recv(), None);
        assert_eq!(ch.recv(), None, "a closed channel stays readable");
        assert_eq!(ch.try_recv(), Err(TryRecvError::Closed));
        assert_eq!(ch.try_send(3), Err(TrySendError::Closed(3)));
    });
}

pub fn close_wakes_every_blocked_receiver_with_none() {
    let nones = Runtime::new(2).block_on(|| {
        let ch = chan::make::<u8>(0);
        let wg = Arc::new(WaitGroup::new());
        let nones = Arc::new(AtomicUsize::new(0));
        for _ in 0..10 {
            wg.add(1);
            let (ch, wg, nones) = (ch.clone(), wg.clone(), nones.clone());
            spawn(move || {
                if ch.recv().is_none() {
                    nones.fetch_add(1, Ordering::SeqCst);
                }
                wg.done();
            });
        }
        for _ in 0..100 {
            gosched();
        }
        ch.close();
        wg.wait();
        nones.load(Ordering::SeqCst)
    });
    assert_eq!(nones, 10);
}

pub fn range_over_a_channel_ends_at_close() {
    let sum = Runtime::new(2).block_on(|| {
        let ch = chan::make::<u64>(8);
        let tx = ch.clone();
        spawn(move || {
            for i in 1..=100 {
                tx.send(i);
            }
            tx.close();
        });
        ch.sum::<u64>()
    });
    assert_eq!(sum, 5050);
}

/// Every body here, by name (for deterministic.rs).
#[allow(dead_code)]
pub const ALL: &[(&str, fn())] = &[
    (
        "chan::unbuffered_send_waits_for_a_receiver_and_keeps_order",
        unbuffered_send_waits_for_a_receiver_and_keeps_order,
    ),
    (
        "chan::a_full_buffer_blocks_the_sender_and_order_is_fifo_across_the_handoff",
        a_full_buffer_blocks_the_sender_and_order_is_fifo_across_the_handoff,
    ),
    (
        "chan::receive_on_closed_yields_the_rest_then_none",
        receive_on_closed_yields_the_rest_then_none,
    ),
    (
        "chan::close_wakes_every_blocked_receiver_with_none",
        close_wakes_every_blocked_receiver_with_none,
    ),
    (
        "chan::range_over_a_channel_ends_at_close",
        range_over_a_channel_ends_at_close,
    ),
];

//! Channel stress at -smp 4: 10M messages from 4 senders to 4 receivers over buffered and
//! unbuffered channels (and selects), each value recorded in a bitmap: none lost, none
//! duplicated.
//! @smp 4
//! @timeout 600
//! @mem 1G

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use rt_core::{chan, select, spawn, WaitGroup};

kernel::test_kernel!(ten_million_messages_none_lost_or_duplicated);

const N: u64 = 10_000_000;
const SENDERS: u64 = 4;
const RECEIVERS: usize = 4;

fn ten_million_messages_none_lost_or_duplicated() {
    let seen: Arc<Vec<AtomicU64>> = Arc::new((0..N / 64).map(|_| AtomicU64::new(0)).collect());
    let dups = Arc::new(AtomicU64::new(0));
    let (s2, d2) = (seen.clone(), dups.clone());
    let t0 = kernel::x86::tsc::nanos();
    kernel::rt::run::run(0, move || {
        // Most traffic over a buffered channel, some over an unbuffered one, senders picking
        // with select.
        let buffered = chan::make::<u64>(256);
        let unbuffered = chan::make::<u64>(0);
        let senders = Arc::new(WaitGroup::new());
        for s in 0..SENDERS {
            senders.add(1);
            let (b, u, wg) = (buffered.clone(), unbuffered.clone(), senders.clone());
            spawn(move || {
                let per = N / SENDERS;
                for i in 0..per {
                    let v = s * per + i;
                    if i % 16 == 0 {
                        select! { send(b, v) => (), send(u, v) => () }
                    } else {
                        b.send(v);
                    }
                }
                wg.done();
            });
        }
        let receivers = Arc::new(WaitGroup::new());
        for _ in 0..RECEIVERS {
            receivers.add(1);
            let (b, u, wg, seen, dups) = (
                buffered.clone(),
                unbuffered.clone(),
                receivers.clone(),
                s2.clone(),
                d2.clone(),
            );
            spawn(move || {
                let mark = |v: u64| {
                    let bit = 1u64 << (v % 64);
                    if seen[(v / 64) as usize].fetch_or(bit, Ordering::Relaxed) & bit != 0 {
                        dups.fetch_add(1, Ordering::Relaxed);
                    }
                };
                let rest = loop {
                    let (v, other) = select! {
                        recv(b) -> v => (v, &u),
                        recv(u) -> v => (v, &b),
                    };
                    match v {
                        Some(v) => mark(v),
                        None => break other.clone(),
                    }
                };
                for v in rest {
                    mark(v);
                }
                wg.done();
            });
        }
        senders.wait();
        buffered.close();
        unbuffered.close();
        receivers.wait();
    });
    let ms = (kernel::x86::tsc::nanos() - t0) / 1_000_000;
    let missing: u64 = seen
        .iter()
        .map(|w| 64 - w.load(Ordering::Relaxed).count_ones() as u64)
        .sum();
    let dups = dups.load(Ordering::Relaxed);
    kernel::println!(
        "stress: {N} messages, 4 senders -> 4 receivers at -smp 4: {missing} lost, {dups} duplicated ({ms} ms emulated)"
    );
    assert_eq!(missing, 0, "messages lost");
    assert_eq!(dups, 0, "messages duplicated");
}

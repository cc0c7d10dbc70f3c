//! Channels in the kernel: goroutines on different CPUs hand values to each other through
//! sudogs on each other's (demand-paged) stacks.
//! @smp 1 2 4
//! @timeout 120

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use rt_core::{chan, spawn, WaitGroup};

kernel::test_kernel!(prime_sieve_first_300_primes, many_to_many_loses_nothing);

fn prime_sieve_first_300_primes() {
    let out = Arc::new(spin::Mutex::new(Vec::new()));
    let o = out.clone();
    kernel::rt::run::run(0, move || {
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
        for _ in 0..300 {
            let p = ch.recv().unwrap();
            o.lock().push(p);
            let next = chan::make::<u64>(0);
            let (input, tx) = (ch.clone(), next.clone());
            spawn(move || loop {
                let v = input.recv().unwrap();
                if !v.is_multiple_of(p) {
                    tx.send(v);
                }
            });
            ch = next;
        }
    });
    let primes = out.lock().clone();
    assert_eq!(primes.len(), 300);
    assert_eq!(&primes[..5], &[2, 3, 5, 7, 11]);
    assert_eq!(primes[299], 1987, "the 300th prime");
    assert!(primes.windows(2).all(|w| w[0] < w[1]));
}

fn many_to_many_loses_nothing() {
    const N: u64 = 40_000;
    let (count, sum) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (c2, s2) = (count.clone(), sum.clone());
    kernel::rt::run::run(0, move || {
        let ch = chan::make::<u64>(16);
        let senders = Arc::new(WaitGroup::new());
        for s in 0..4 {
            senders.add(1);
            let (ch, senders) = (ch.clone(), senders.clone());
            spawn(move || {
                for i in 0..N / 4 {
                    ch.send(s * (N / 4) + i);
                }
                senders.done();
            });
        }
        let receivers = Arc::new(WaitGroup::new());
        for _ in 0..4 {
            receivers.add(1);
            let (ch, receivers, c, s) = (ch.clone(), receivers.clone(), c2.clone(), s2.clone());
            spawn(move || {
                for v in ch {
                    c.fetch_add(1, Ordering::Relaxed);
                    s.fetch_add(v, Ordering::Relaxed);
                }
                receivers.done();
            });
        }
        senders.wait();
        ch.close();
        receivers.wait();
    });
    assert_eq!(count.load(Ordering::Relaxed), N);
    assert_eq!(sum.load(Ordering::Relaxed), N * (N - 1) / 2);
}

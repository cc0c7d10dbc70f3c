//! Channels at scale, checked by counting, not timing: a `select` leaving a channel with many
//! parked goroutines unlinks its sudog without walking the wait queue, and handing values to
//! many parked receivers visits each once.

use std::sync::Arc;

use rt_core::chan::{self, Chan};
use rt_core::{gosched, select, spawn, Runtime, WaitGroup};

/// Parks `k` receivers on `c` and waits until they are all queued.
fn park_receivers(c: &Chan<u32>, k: usize, wg: &Arc<WaitGroup>) {
    for _ in 0..k {
        let (c, wg) = (c.clone(), wg.clone());
        wg.add(1);
        spawn(move || {
            assert_eq!(c.recv(), None, "c is only ever closed");
            wg.done();
        });
    }
    while c.waiting().1 < k {
        gosched();
    }
}

/// With K receivers parked on `c`, a select over `c` and `d` that wins on `d` takes its sudog
/// off `c`'s queue (where it is last) by its own links: O(1) nodes visited, not O(K).
#[test]
fn a_select_leaving_a_crowded_channel_unlinks_its_sudog_in_o1() {
    const K: usize = 4_000;
    let (visited, left) = Runtime::new(2).block_on(|| {
        let (c, d, done) = (
            chan::make::<u32>(0),
            chan::make::<u32>(0),
            chan::make::<u32>(0),
        );
        let wg = Arc::new(WaitGroup::new());
        park_receivers(&c, K, &wg);
        let (c2, d2, done2) = (c.clone(), d.clone(), done.clone());
        spawn(move || {
            let r = select! {
                recv(c2) -> _ => 0,
                recv(d2) -> v => v.unwrap(),
            };
            done2.send(r);
        });
        while c.waiting().1 < K + 1 {
            gosched();
        }
        let before = c.waitq_visits();
        d.send(7);
        assert_eq!(done.recv(), Some(7), "the select won on d");
        let visited = c.waitq_visits() - before;
        let left = c.waiting().1;
        c.close();
        wg.wait();
        (visited, left)
    });
    assert_eq!(
        left, K,
        "the select's sudog left c's queue, the K receivers stayed"
    );
    assert!(
        visited <= 2,
        "leaving c visited {visited} wait-queue nodes with {K} receivers parked on it"
    );
}

/// Taking the first waiter stays O(1) however many wait behind it: K sends to K parked
/// receivers visit K nodes in all.
#[test]
fn handing_values_to_many_parked_receivers_visits_each_once() {
    const K: usize = 4_000;
    let visited = Runtime::new(2).block_on(|| {
        let c = chan::make::<u32>(0);
        let got = chan::make::<u32>(K);
        let wg = Arc::new(WaitGroup::new());
        for _ in 0..K {
            let (c, got, wg) = (c.clone(), got.clone(), wg.clone());
            wg.add(1);
            spawn(move || {
                got.send(c.recv().unwrap());
                wg.done();
            });
        }
        while c.waiting().1 < K {
            gosched();
        }
        let before = c.waitq_visits();
        for i in 0..K as u32 {
            c.send(i);
        }
        wg.wait();
        let mut sum = 0u64;
        for _ in 0..K {
            sum += u64::from(got.recv().unwrap());
        }
        assert_eq!(sum, (K as u64) * (K as u64 - 1) / 2);
        c.waitq_visits() - before
    });
    assert_eq!(visited, K as u64, "one visit per receiver woken");
}

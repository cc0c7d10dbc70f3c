//! Go's select in the kernel: nil-channel cases (an `Option` case that is `None`) are never
//! chosen; a select over a case list built at run time (`select::Select`) over 64 channels
//! loses nothing; and Go's canonical goroutine leak (workers sending on an unbuffered channel
//! whose receiver took only the first) is reported on demand, with `(leaked)` headers.
//! @smp 1 2
//! @timeout 120

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use rt_core::chan::{self, Chan};
use rt_core::select::{recv_any, Select, Selected};
use rt_core::trace::leak_report;
use rt_core::{gosched, select, spawn};

kernel::test_kernel!(
    nil_cases_are_never_chosen,
    a_dynamic_select_over_64_channels_loses_nothing,
    the_canonical_leak_is_reported_on_demand,
);

fn nil_cases_are_never_chosen() {
    const N: usize = 5_000;
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    kernel::rt::run::run(0, move || {
        let ready = chan::make::<usize>(1);
        let nil: Option<&Chan<usize>> = None;
        for i in 0..N {
            ready.send(i);
            let v = select! {
                recv(nil) -> _ => unreachable!("a nil receive case was chosen"),
                send(nil, i) => unreachable!("a nil send case was chosen"),
                recv(ready) -> v => v,
            };
            assert_eq!(v, Some(i));
            // The same through recv_any, the ready channel among nil ones.
            ready.send(i);
            let (idx, v) = recv_any([nil, Some(&ready), nil]);
            assert_eq!((idx, v), (1, Some(i)));
            h.fetch_add(1, Ordering::Relaxed);
        }
        // Every case nil, with a default: the default.
        let d = select! {
            recv(nil) -> _ => false,
            default => true,
        };
        assert!(d);
    });
    assert_eq!(hits.load(Ordering::Relaxed), N);
}

fn a_dynamic_select_over_64_channels_loses_nothing() {
    const CHANS: usize = 64;
    const EACH: usize = 40;
    let got = Arc::new(spin::Mutex::new(Vec::new()));
    let g = got.clone();
    kernel::rt::run::run(0, move || {
        let mut inputs: Vec<Option<Chan<(usize, usize)>>> = Vec::new();
        for id in 0..CHANS {
            let c = chan::make(id % 2);
            let c2 = c.clone();
            spawn(move || {
                for j in 0..EACH {
                    c2.send((id, j));
                }
                c2.close();
            });
            inputs.push(Some(c));
        }
        let mut next = alloc::vec![0usize; CHANS];
        while inputs.iter().any(Option::is_some) {
            let mut s = Select::with_capacity(CHANS);
            for c in &inputs {
                s.recv(c);
            }
            match s.wait() {
                Selected {
                    index,
                    value: Some((id, j)),
                } => {
                    assert_eq!(index, id);
                    assert_eq!(j, next[id], "channel {id} delivered out of order");
                    next[id] += 1;
                }
                Selected { index, value: None } => inputs[index] = None,
            }
        }
        *g.lock() = next;
    });
    let next = got.lock().clone();
    assert_eq!(next.len(), CHANS);
    assert!(next.iter().all(|&n| n == EACH), "{next:?}");
}

fn the_canonical_leak_is_reported_on_demand() {
    const WORKERS: usize = 5;
    let out = Arc::new(spin::Mutex::new((0usize, 0usize, 0usize)));
    let o = out.clone();
    kernel::rt::run::run(0, move || {
        let results = chan::make::<usize>(0);
        for i in 0..WORKERS {
            let r = results.clone();
            spawn(move || r.send(i));
        }
        results.recv().unwrap();
        while results.waiting().0 != WORKERS - 1 {
            gosched();
        }
        let before = leak_report().goroutines.len();
        drop(results);
        let rep = leak_report();
        kernel::println!("{}", rep.text);
        *o.lock() = (
            before,
            rep.goroutines.len(),
            rep.text.matches("[chan send (leaked)]:").count(),
        );
    });
    let (before, leaked, headers) = *out.lock();
    assert_eq!(
        before, 0,
        "reported while the receiver still held the channel"
    );
    assert_eq!(leaked, WORKERS - 1);
    assert_eq!(headers, WORKERS - 1);
}

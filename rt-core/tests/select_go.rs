//! `select` as Go has it: nil channels (an `Option` case that is `None` is never chosen),
//! selects over case lists built at run time (`select::Select`, `recv_any`), Go's uniform
//! choice among ready cases, and a select whose every case is disabled (blocks for ever,
//! which `checkdead` reports; with a `default`, takes the default). Host tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rt_core::chan::{self, Chan};
use rt_core::select::{try_recv_any, Select, Selected};
use rt_core::{gosched, select, spawn, Runtime};

mod common;
use common::assert_deadlock;

/// The bodies that deterministic.rs also runs under many seeds.
#[path = "shared/select_go.rs"]
mod shared;

/// A value that counts its drops (a disabled send's value must be dropped, not leaked).
struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn nil_cases_are_never_chosen() {
    const ROUNDS: usize = 5_000;
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let (macro_hits, builder_hits) = Runtime::new(2).block_on(move || {
        let ready = chan::make::<usize>(1);
        let nil_recv: Option<&Chan<usize>> = None;
        let nil_owned: Option<Chan<usize>> = None;
        let nil_send: Option<Chan<Counted>> = None;
        let mut macro_hits = 0;
        for i in 0..ROUNDS {
            ready.send(i);
            let got = select! {
                recv(nil_recv) -> _ => unreachable!("a nil receive case was chosen"),
                recv(&nil_owned) -> _ => unreachable!("a nil receive case was chosen"),
                send(nil_send, Counted(d.clone())) => unreachable!("a nil send case was chosen"),
                recv(ready) -> v => v,
                recv(None::<&Chan<u8>>) -> _ => unreachable!("a nil receive case was chosen"),
            };
            assert_eq!(got, Some(i));
            macro_hits += 1;
        }
        // The same with the builder, the ready case among nil ones at varying positions.
        let nil: Option<Chan<usize>> = None;
        let mut builder_hits = 0;
        for i in 0..ROUNDS {
            ready.send(i);
            let mut s = Select::new();
            let pos = i % 5;
            let mut want = 0;
            for j in 0..5 {
                if j == pos {
                    want = s.recv(&ready);
                } else if j % 2 == 0 {
                    s.recv(&nil);
                } else {
                    s.send(&nil, usize::MAX);
                }
            }
            assert_eq!(
                s.wait(),
                Selected {
                    index: want,
                    value: Some(i)
                }
            );
            builder_hits += 1;
        }
        (macro_hits, builder_hits)
    });
    assert_eq!((macro_hits, builder_hits), (ROUNDS, ROUNDS));
    assert_eq!(
        drops.load(Ordering::Relaxed),
        ROUNDS,
        "every disabled send's value is dropped unsent, once"
    );
}

#[test]
fn a_blocking_select_never_queues_on_a_disabled_case() {
    let ok = Runtime::new(2).block_on(|| {
        let (a, b) = (chan::make::<u32>(0), chan::make::<u32>(0));
        let (a2, b2) = (a.clone(), b.clone());
        let done = chan::make::<Selected<u32>>(1);
        let done2 = done.clone();
        spawn(move || {
            let mut s = Select::new();
            s.recv(&a2);
            let j = s.recv(&b2);
            s.disable(j);
            done2.send(s.wait());
        });
        while a.waiting().1 == 0 {
            gosched();
        }
        // Parked on `a` only: `b` has no receiver, so a send there cannot complete.
        assert_eq!(b.waiting(), (0, 0), "a disabled case was queued");
        assert!(matches!(b.try_send(9), Err(chan::TrySendError::Full(9))));
        a.send(7);
        done.recv()
            == Some(Selected {
                index: 0,
                value: Some(7),
            })
    });
    assert!(ok);
}

#[test]
fn merging_finished_inputs_by_setting_them_to_none_loses_nothing() {
    shared::merging_finished_inputs_by_setting_them_to_none_loses_nothing()
}

/// Counts how often each of `k` always-ready cases is chosen over `n` selects; the ready
/// channels are buffered and refilled after every select. Checks each count is within
/// 0.8-1.2 of n/k (about 10 standard deviations at n = 10 000, k = 5: never flaky, yet a
/// biased choice, such as a fixed poll order, fails it).
fn assert_uniform(name: &str, counts: &[usize], n: usize) {
    let k = counts.len();
    let expect = n as f64 / k as f64;
    for (i, &c) in counts.iter().enumerate() {
        let r = c as f64 / expect;
        assert!(
            (0.8..=1.2).contains(&r),
            "{name}: case {i} of {k} chosen {c} times in {n} (expected about {expect:.0}): {counts:?}"
        );
    }
    assert_eq!(counts.iter().sum::<usize>(), n);
}

#[test]
fn the_choice_among_ready_cases_is_uniform() {
    const N: usize = 10_000;
    Runtime::new(1).block_on(|| {
        let chans: Vec<Chan<usize>> = (0..5).map(|_| chan::make(1)).collect();
        for (i, c) in chans.iter().enumerate() {
            c.send(i);
        }
        let nil: Option<&Chan<usize>> = None;
        // The macro, k = 2..5, with a nil case among the ready ones.
        let c = &chans;
        for k in 2..=5 {
            let mut counts = vec![0; k];
            for _ in 0..N {
                let i = match k {
                    2 => select! {
                        recv(c[0]) -> v => v,
                        recv(nil) -> _ => unreachable!(),
                        recv(c[1]) -> v => v,
                    },
                    3 => select! {
                        recv(c[0]) -> v => v,
                        recv(c[1]) -> v => v,
                        recv(nil) -> _ => unreachable!(),
                        recv(c[2]) -> v => v,
                    },
                    4 => select! {
                        recv(c[0]) -> v => v,
                        recv(c[1]) -> v => v,
                        recv(c[2]) -> v => v,
                        recv(c[3]) -> v => v,
                        recv(nil) -> _ => unreachable!(),
                    },
                    _ => select! {
                        recv(nil) -> _ => unreachable!(),
                        recv(c[0]) -> v => v,
                        recv(c[1]) -> v => v,
                        recv(c[2]) -> v => v,
                        recv(c[3]) -> v => v,
                        recv(c[4]) -> v => v,
                    },
                }
                .unwrap();
                counts[i] += 1;
                chans[i].send(i);
            }
            assert_uniform(&format!("select! with {k} ready"), &counts, N);
        }
        // The builder, k = 2..5 ready among nil cases, and a mix of ready sends.
        let outs: Vec<Chan<usize>> = (0..5).map(|_| chan::make(1)).collect();
        for k in 2..=5 {
            let mut counts = vec![0; k];
            for _ in 0..N {
                let mut s = Select::new();
                let mut which = Vec::new();
                for i in 0..k {
                    s.recv(nil);
                    // Even cases receive, odd ones send into an empty buffer: all ready.
                    which.push(if i % 2 == 0 {
                        s.recv(&chans[i])
                    } else {
                        s.send(&outs[i], i)
                    });
                }
                let r = s.wait();
                let i = which.iter().position(|&w| w == r.index).unwrap();
                counts[i] += 1;
                if i % 2 == 0 {
                    assert_eq!(r.value, Some(i));
                    chans[i].send(i);
                } else {
                    assert_eq!(outs[i].recv(), Some(i));
                }
            }
            assert_uniform(&format!("Select with {k} ready"), &counts, N);
        }
    });
}

#[test]
fn a_dynamic_select_over_a_hundred_channels_loses_nothing() {
    const CHANS: usize = 100;
    const EACH: usize = 50;
    let got = Runtime::new(2).block_on(|| {
        let mut inputs: Vec<Option<Chan<(usize, usize)>>> = Vec::new();
        for id in 0..CHANS {
            let c = chan::make(id % 3);
            let c2 = c.clone();
            spawn(move || {
                for j in 0..EACH {
                    c2.send((id, j));
                }
                c2.close();
            });
            inputs.push(Some(c));
        }
        let mut got: HashMap<usize, Vec<usize>> = HashMap::new();
        while inputs.iter().any(Option::is_some) {
            let mut s = Select::with_capacity(CHANS);
            for c in &inputs {
                s.recv(c);
            }
            assert_eq!(s.len(), CHANS);
            match s.wait() {
                Selected {
                    index,
                    value: Some((id, j)),
                } => {
                    assert_eq!(index, id, "the value came from the case's own channel");
                    got.entry(id).or_default().push(j);
                }
                Selected { index, value: None } => inputs[index] = None,
            }
        }
        got
    });
    assert_eq!(got.len(), CHANS);
    for (id, js) in &got {
        assert_eq!(js, &(0..EACH).collect::<Vec<_>>(), "channel {id}");
    }
}

#[test]
fn recv_any_takes_from_whichever_is_ready() {
    shared::recv_any_takes_from_whichever_is_ready()
}

#[test]
fn a_select_with_every_case_disabled_and_a_default_takes_the_default() {
    let r = Runtime::new(1).block_on(|| {
        let nil: Option<Chan<u32>> = None;
        let ready = chan::make::<u32>(1);
        ready.send(1);
        let by_macro = select! {
            recv(nil) -> _ => "recv",
            send(nil, 5) => "send",
            default => "default",
        };
        let mut s = Select::new();
        s.recv(&nil);
        let j = s.recv(&ready);
        s.disable(j);
        let by_builder = s.try_wait();
        let none: Vec<&Option<Chan<u32>>> = vec![&nil, &nil];
        (
            by_macro,
            by_builder.is_none(),
            try_recv_any(&none).is_none(),
            ready.len(),
        )
    });
    assert_eq!(r, ("default", true, true, 1));
}

#[test]
fn a_select_with_every_case_disabled_blocks_for_ever_and_is_a_deadlock() {
    assert_deadlock(|| {
        let nil: Option<&Chan<u32>> = None;
        select! {
            recv(nil) -> _ => unreachable!(),
            send(nil, 1) => unreachable!(),
        }
    });
}

#[test]
fn a_dynamic_select_with_every_case_disabled_is_a_deadlock() {
    assert_deadlock(|| {
        let a = chan::make::<u32>(1);
        a.send(1);
        let mut s = Select::new();
        let i = s.recv(&a);
        s.disable(i);
        s.wait();
    });
}

#[test]
fn a_select_waited_on_again_keeps_its_cases_but_a_send_that_sent() {
    shared::a_select_waited_on_again_keeps_its_cases_but_a_send_that_sent()
}

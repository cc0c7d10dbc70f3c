//! Bodies of select_go.rs's tests that deterministic.rs also runs, each under many seeds
//! (shared rather than copied: select_go.rs calls them too).

#![allow(unused_imports)]

use rt_core::chan::{self, Chan};
use rt_core::select::{recv_any, try_recv_any, Select, Selected};
use rt_core::{gosched, select, spawn, Runtime};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub fn merging_finished_inputs_by_setting_them_to_none_loses_nothing() {
    const N: u64 = 5_000;
    let (from_a, from_b) = Runtime::new(2).block_on(|| {
        let (a, b) = (chan::make::<u64>(0), chan::make::<u64>(4));
        for (c, base) in [(a.clone(), 0), (b.clone(), 1_000_000)] {
            spawn(move || {
                for i in 0..N {
                    c.send(base + i);
                }
                c.close();
            });
        }
        // Go's idiom: a closed input becomes nil, and the loop ends when both are.
        let (mut ia, mut ib) = (Some(&a), Some(&b));
        let (mut from_a, mut from_b) = (Vec::new(), Vec::new());
        while ia.is_some() || ib.is_some() {
            select! {
                recv(ia) -> v => match v {
                    Some(v) => from_a.push(v),
                    None => ia = None,
                },
                recv(ib) -> v => match v {
                    Some(v) => from_b.push(v),
                    None => ib = None,
                },
            }
        }
        (from_a, from_b)
    });
    assert_eq!(from_a, (0..N).collect::<Vec<_>>());
    assert_eq!(from_b, (1_000_000..1_000_000 + N).collect::<Vec<_>>());
}

pub fn recv_any_takes_from_whichever_is_ready() {
    let r = Runtime::new(2).block_on(|| {
        let chans: Vec<Chan<u32>> = (0..20).map(|_| chan::make(0)).collect();
        let refs: Vec<&Chan<u32>> = chans.iter().collect();
        assert!(try_recv_any(&refs).is_none(), "nothing is ready yet");
        let c = chans[13].clone();
        spawn(move || c.send(42));
        let first = recv_any(&refs);
        // With nil entries: only the enabled ones can be chosen.
        let opts: Vec<Option<&Chan<u32>>> = chans
            .iter()
            .enumerate()
            .map(|(i, c)| (i == 4).then_some(c))
            .collect();
        let orefs: Vec<&Option<&Chan<u32>>> = opts.iter().collect();
        let c = chans[4].clone();
        spawn(move || c.close());
        let second = recv_any(&orefs);
        (first, second)
    });
    assert_eq!(r, ((13, Some(42)), (4, None)));
}

pub fn a_select_waited_on_again_keeps_its_cases_but_a_send_that_sent() {
    let r = Runtime::new(2).block_on(|| {
        let (a, b) = (chan::make::<u32>(0), chan::make::<u32>(1));
        let mut s = Select::new();
        let ia = s.recv(&a);
        let ib = s.send(&b, 5);
        // Only the send can proceed (room in b).
        let first = s.wait();
        // The send has sent: disabled now, so this waits for `a` even though b has room
        // again once drained.
        assert_eq!(b.recv(), Some(5));
        let a2 = a.clone();
        spawn(move || {
            a2.send(8);
            a2.close();
        });
        let second = s.wait();
        let third = s.wait();
        (first.index == ib, second, third, ia)
    });
    assert_eq!(
        r,
        (
            true,
            Selected {
                index: 0,
                value: Some(8)
            },
            Selected {
                index: 0,
                value: None
            },
            0
        )
    );
}

/// Every body here, by name (for deterministic.rs).
#[allow(dead_code)]
pub const ALL: &[(&str, fn())] = &[
    (
        "select_go::merging_finished_inputs_by_setting_them_to_none_loses_nothing",
        merging_finished_inputs_by_setting_them_to_none_loses_nothing,
    ),
    (
        "select_go::recv_any_takes_from_whichever_is_ready",
        recv_any_takes_from_whichever_is_ready,
    ),
    (
        "select_go::a_select_waited_on_again_keeps_its_cases_but_a_send_that_sent",
        a_select_waited_on_again_keeps_its_cases_but_a_send_that_sent,
    ),
];

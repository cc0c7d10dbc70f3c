//! Bodies of select.rs's tests that deterministic.rs also runs, each under many seeds
//! (shared rather than copied: select.rs calls them too).

#![allow(unused_imports)]

use rt_core::chan::{self, Chan};
use rt_core::{gosched, select, spawn, Runtime, WaitGroup};
use std::sync::Arc;

pub fn a_blocked_select_wakes_on_the_case_that_becomes_ready() {
    let got = Runtime::new(2).block_on(|| {
        let a = chan::make::<u32>(0);
        let b = chan::make::<&'static str>(0);
        let (a2, b2) = (a.clone(), b.clone());
        spawn(move || {
            for _ in 0..50 {
                gosched();
            }
            b2.send("from b");
            a2.send(1);
        });
        let mut got = Vec::new();
        for _ in 0..2 {
            let s = select! {
                recv(a) -> v => format!("a:{}", v.unwrap()),
                recv(b) -> v => format!("b:{}", v.unwrap()),
            };
            got.push(s);
        }
        got
    });
    assert_eq!(got, ["b:from b", "a:1"]);
}

pub fn a_blocked_send_case_hands_its_value_to_a_late_receiver() {
    let got = Runtime::new(2).block_on(|| {
        let a = chan::make::<u32>(0);
        let b = chan::make::<u32>(0);
        let (a2, b2) = (a.clone(), b.clone());
        let done = chan::make::<u32>(1);
        let d2 = done.clone();
        spawn(move || {
            let which = select! {
                send(a2, 10) => 1,
                send(b2, 20) => 2,
            };
            d2.send(which);
        });
        for _ in 0..50 {
            gosched();
        }
        let v = b.recv().unwrap();
        let which = done.recv().unwrap();
        // The other case was withdrawn: nothing is left waiting on a.
        assert_eq!(a.try_recv(), Err(chan::TryRecvError::Empty));
        (v, which)
    });
    assert_eq!(got, (20, 2));
}

pub fn receive_from_a_closed_channel_is_ready_and_yields_none() {
    Runtime::new(2).block_on(|| {
        let a = chan::make::<u32>(0);
        let never = chan::make::<u32>(0);
        let a2 = a.clone();
        spawn(move || {
            for _ in 0..20 {
                gosched();
            }
            a2.close();
        });
        let r = select! {
            recv(never) -> _ => "never",
            recv(a) -> v => if v.is_none() { "closed" } else { "value" },
        };
        assert_eq!(r, "closed");
    });
}

/// Every body here, by name (for deterministic.rs).
#[allow(dead_code)]
pub const ALL: &[(&str, fn())] = &[
    (
        "select::a_blocked_select_wakes_on_the_case_that_becomes_ready",
        a_blocked_select_wakes_on_the_case_that_becomes_ready,
    ),
    (
        "select::a_blocked_send_case_hands_its_value_to_a_late_receiver",
        a_blocked_send_case_hands_its_value_to_a_late_receiver,
    ),
    (
        "select::receive_from_a_closed_channel_is_ready_and_yields_none",
        receive_from_a_closed_channel_is_ready_and_yields_none,
    ),
];

//! `select!` on host threads: Go's rules for select (from the spec): a ready case proceeds,
//! `default` runs only when none is, a blocked select wakes on whichever case becomes ready,
//! a receive from a closed channel is ready, a send on a closed channel panics, and when
//! several cases are ready the choice is uniformly random (fairness).

use std::sync::Arc;

use rt_core::chan::{self, Chan};
use rt_core::{select, spawn, Runtime, WaitGroup};

/// The bodies that deterministic.rs also runs under many seeds.
#[path = "shared/select.rs"]
mod shared;

#[test]
fn default_runs_only_when_no_case_is_ready() {
    Runtime::new(1).block_on(|| {
        let a = chan::make::<u32>(1);
        let b = chan::make::<u32>(0);
        let r = select! {
            recv(a) -> v => v,
            recv(b) -> v => v,
            default => Some(99),
        };
        assert_eq!(r, Some(99), "nothing was ready");
        a.send(7);
        let r = select! {
            recv(a) -> v => v,
            recv(b) -> v => v,
            default => Some(99),
        };
        assert_eq!(r, Some(7), "a was ready");
        // A send case with room proceeds.
        let sent = select! {
            send(a, 5) => true,
            default => false,
        };
        assert!(sent);
        assert_eq!(a.recv(), Some(5));
        // And one without room, or without a receiver, does not.
        a.send(1);
        let sent = select! {
            send(a, 2) => true,
            send(b, 3) => true,
            default => false,
        };
        assert!(!sent);
    });
}

#[test]
fn a_blocked_select_wakes_on_the_case_that_becomes_ready() {
    shared::a_blocked_select_wakes_on_the_case_that_becomes_ready()
}

#[test]
fn a_blocked_send_case_hands_its_value_to_a_late_receiver() {
    shared::a_blocked_send_case_hands_its_value_to_a_late_receiver()
}

#[test]
fn receive_from_a_closed_channel_is_ready_and_yields_none() {
    shared::receive_from_a_closed_channel_is_ready_and_yields_none()
}

#[test]
fn send_case_on_a_closed_channel_panics() {
    let msg = Runtime::new(1).block_on(|| {
        let a = chan::make::<u32>(1);
        a.close();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            select! {
                send(a, 1) => (),
                default => (),
            }
        }));
        *r.unwrap_err().downcast::<&str>().unwrap()
    });
    assert_eq!(msg, "send on closed channel");
}

/// Go's fairness: with every case ready, each is chosen about equally often. 4 cases, 10 000
/// rounds: each expected 2 500 times; a fair choice falls outside ±400 (over 9 standard
/// deviations) with negligible probability, while a biased one (e.g. always the first ready
/// case, as a plain in-order poll would) is far outside.
#[test]
fn ready_cases_are_chosen_about_equally_over_10k_rounds() {
    let counts = Runtime::new(1).block_on(|| {
        let chans: Vec<Chan<u32>> = (0..4).map(|_| chan::make(1)).collect();
        let mut counts = [0u32; 4];
        for _ in 0..10_000 {
            for c in &chans {
                if c.is_empty() {
                    c.send(0);
                }
            }
            let i = select! {
                recv(chans[0]) -> _ => 0,
                recv(chans[1]) -> _ => 1,
                recv(chans[2]) -> _ => 2,
                recv(chans[3]) -> _ => 3,
            };
            counts[i] += 1;
        }
        counts
    });
    for (i, &c) in counts.iter().enumerate() {
        assert!(
            (2100..=2900).contains(&c),
            "case {i} chosen {c} times of 10000: {counts:?}"
        );
    }
}

/// Two selects over the same pair of channels in opposite textual order, many times, from
/// several goroutines on 4 Ms: locking in address order means they never deadlock, and every
/// value sent is received exactly once.
#[test]
fn selects_over_shared_channels_lose_nothing_and_never_deadlock() {
    const PER: u64 = 20_000;
    let (sum, n) = Runtime::new(4).block_on(|| {
        let a = chan::make::<u64>(0);
        let b = chan::make::<u64>(4);
        let wg = Arc::new(WaitGroup::new());
        for s in 0..4u64 {
            let (a, b, wg) = (a.clone(), b.clone(), wg.clone());
            wg.add(1);
            spawn(move || {
                for i in 0..PER {
                    let v = s * PER + i;
                    if i % 2 == 0 {
                        select! { send(a, v) => (), send(b, v) => () }
                    } else {
                        select! { send(b, v) => (), send(a, v) => () }
                    }
                }
                wg.done();
            });
        }
        let out = chan::make::<(u64, u64)>(4);
        for _ in 0..3 {
            let (a, b, out) = (a.clone(), b.clone(), out.clone());
            spawn(move || {
                let (mut sum, mut n) = (0u64, 0u64);
                // Select over both until one is closed, then drain the other.
                let rest = loop {
                    let (v, other) = select! {
                        recv(a) -> v => (v, &b),
                        recv(b) -> v => (v, &a),
                    };
                    match v {
                        Some(v) => {
                            sum += v;
                            n += 1;
                        }
                        None => break other.clone(),
                    }
                };
                for v in rest {
                    sum += v;
                    n += 1;
                }
                out.send((sum, n));
            });
        }
        wg.wait();
        a.close();
        b.close();
        let (mut sum, mut n) = (0, 0);
        for _ in 0..3 {
            let (s, k) = out.recv().unwrap();
            sum += s;
            n += k;
        }
        (sum, n)
    });
    let total = 4 * PER;
    assert_eq!(n, total, "values lost or duplicated");
    assert_eq!(sum, total * (total - 1) / 2);
}

/// The dynamic `Select`'s non-blocking forms, and `Option<&Chan>` cases (each of these was a
/// mutant no test noticed: `try_wait` and `try_recv_any` made to return `None`, and an
/// `Option<&Chan>` case taken as nil even when it is `Some`).
#[test]
fn a_dynamic_select_proceeds_now_if_it_can_and_says_so() {
    Runtime::new(1).block_on(|| {
        let (a, b) = (chan::make::<u32>(1), chan::make::<u32>(1));
        let mut s = rt_core::select::Select::new();
        s.recv(&a);
        s.recv(&b);
        assert_eq!(s.try_wait(), None, "nothing is ready");
        b.send(7);
        assert_eq!(
            s.try_wait(),
            Some(rt_core::select::Selected {
                index: 1,
                value: Some(7)
            })
        );
        let nil: Option<&Chan<u32>> = None;
        assert_eq!(rt_core::select::try_recv_any([nil, Some(&a)]), None);
        a.send(8);
        assert_eq!(
            rt_core::select::try_recv_any([nil, Some(&a)]),
            Some((1, Some(8)))
        );
        a.send(9);
        assert_eq!(rt_core::select::recv_any([Some(&a), nil]), (0, Some(9)));
    });
}

/// A disabled send case sends nothing, and a `Select` waited on again receives again.
#[test]
fn a_disabled_send_never_sends_and_a_select_can_be_waited_on_again() {
    Runtime::new(1).block_on(|| {
        let (a, b) = (chan::make::<u32>(1), chan::make::<u32>(2));
        let mut s = rt_core::select::Select::new();
        let send = s.send(&a, 1);
        s.recv(&b);
        s.disable(send);
        assert_eq!(
            s.try_wait(),
            None,
            "the only enabled case is an empty receive"
        );
        assert_eq!(a.len(), 0, "the disabled case sent");
        b.send(10);
        b.send(11);
        let first = s.wait();
        let second = s.wait();
        assert_eq!((first.index, first.value), (1, Some(10)));
        assert_eq!((second.index, second.value), (1, Some(11)));
    });
}

/// Two cases on one channel: the engine locks each channel once (locking it twice would
/// spin for ever on its own lock), and either case may win.
#[test]
fn two_cases_on_one_channel_lock_it_once() {
    Runtime::new(2).block_on(|| {
        let a = chan::make::<u32>(1);
        a.send(1);
        let got = select! {
            recv(a) -> v => v,
            recv(a) -> v => v,
        };
        assert_eq!(got, Some(1));
        // Blocking, then woken by a sender on another goroutine.
        let a2 = a.clone();
        spawn(move || a2.send(2));
        let mut s = rt_core::select::Select::new();
        s.recv(&a);
        s.recv(&a);
        assert_eq!(s.wait().value, Some(2));
    });
}

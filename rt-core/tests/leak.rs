//! Leaked goroutines found without a garbage collector (rt-core/src/leak.rs): goroutines
//! parked on channels whose every handle is held by goroutines parked on them. Go's
//! canonical leak is reported, on demand and at `block_on`'s return, with Go 1.26's
//! `goroutine N [chan send (leaked)]:` headers; a goroutine that something can still wake
//! (a sleeping or running holder of a handle, a handle in an `Arc`'d struct, a timer) is not.
//! Host tests; nothing is timed (sleeps only order events, and the checks count).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rt_core::chan::{self, Chan};
use rt_core::leak::LeakReport;
use rt_core::select::Select;
use rt_core::time::{after, sleep};
use rt_core::trace::leaked_goroutines;
use rt_core::{gosched, select, spawn, Runtime};

/// Runs `main`, returning its result and the leak report handed to `on_leak` (None: no
/// goroutine leaked at `block_on`'s return).
fn run<R: Send + 'static>(main: impl FnOnce() -> R + Send + 'static) -> (R, Option<LeakReport>) {
    let got = Arc::new(Mutex::new(None));
    let g = got.clone();
    let r = Runtime::new(2)
        .on_leak(move |rep| *g.lock().unwrap() = Some(rep))
        .block_on(main);
    let rep = got.lock().unwrap().take();
    (r, rep)
}

/// Waits (yielding) until `ch` has `senders` blocked senders and `receivers` receivers.
fn wait_parked<T: Send>(ch: &Chan<T>, senders: usize, receivers: usize) {
    while ch.waiting() != (senders, receivers) {
        gosched();
    }
}

const WORKERS: usize = 6;

/// Go's canonical leak: workers send their results on an unbuffered channel and the
/// receiver returns after the first; the others block for ever.
fn first_of_workers() -> u64 {
    let results = chan::make::<u64>(0);
    for i in 0..WORKERS {
        let r = results.clone();
        spawn(move || r.send(i as u64 * 10));
    }
    let first = results.recv().unwrap();
    wait_parked(&results, WORKERS - 1, 0);
    first
}

#[test]
fn the_canonical_leak_is_reported_at_block_on_return() {
    let (first, rep) = run(first_of_workers);
    assert_eq!(first % 10, 0);
    let rep = rep.expect("the leaked workers were reported");
    println!("{}", rep.text);
    assert_eq!(rep.goroutines.len(), WORKERS - 1, "{}", rep.text);
    assert!(rep.goroutines.iter().all(|g| g.wait == "chan send"));
    assert_eq!(
        rep.text.matches("[chan send (leaked)]:").count(),
        WORKERS - 1,
        "{}",
        rep.text
    );
    assert_eq!(
        rep.text.matches("created by").count(),
        WORKERS - 1,
        "{}",
        rep.text
    );
    assert!(rep.text.contains("first_of_workers"), "{}", rep.text);
}

#[test]
fn the_canonical_leak_is_reported_on_demand_once_the_last_outside_handle_is_gone() {
    let ((before, after_drop), rep) = run(|| {
        let results = chan::make::<u64>(0);
        for i in 0..WORKERS {
            let r = results.clone();
            spawn(move || r.send(i as u64));
        }
        results.recv().unwrap();
        wait_parked(&results, WORKERS - 1, 0);
        // We (running) still hold a handle: we could receive the rest.
        let before = leaked_goroutines().len();
        drop(results);
        let after_drop = leaked_goroutines();
        (before, after_drop)
    });
    assert_eq!(
        before, 0,
        "a goroutine that a running one can still wake was reported"
    );
    assert_eq!(after_drop.len(), WORKERS - 1);
    assert!(after_drop.iter().all(|g| g.wait == "chan send"));
    assert_eq!(rep.map(|r| r.goroutines.len()), Some(WORKERS - 1));
}

#[test]
fn a_receiver_whose_senders_are_all_gone_is_leaked() {
    let (n, rep) = run(|| {
        let ch = chan::make::<u32>(0);
        let c = ch.clone();
        spawn(move || {
            c.recv();
        });
        wait_parked(&ch, 0, 1);
        assert!(leaked_goroutines().is_empty(), "we still hold a handle");
        drop(ch);
        leaked_goroutines()
    });
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].wait, "chan receive");
    let rep = rep.expect("reported at return");
    assert!(
        rep.text.contains("[chan receive (leaked)]:"),
        "{}",
        rep.text
    );
}

#[test]
fn a_waiter_whose_channel_a_sleeping_goroutine_holds_is_not_leaked() {
    let ((seen, got), rep) = run(|| {
        let ch = chan::make::<u32>(0);
        let (c, w) = (ch.clone(), ch.clone());
        let out = chan::make::<u32>(1);
        let o = out.clone();
        spawn(move || o.send(w.recv().unwrap()));
        spawn(move || {
            sleep(Duration::from_millis(30));
            c.send(7);
        });
        wait_parked(&ch, 0, 1);
        drop(ch);
        // The sleeper holds a handle (in its closure) and will send.
        let seen = leaked_goroutines();
        (seen, out.recv())
    });
    assert!(seen.is_empty(), "reported: {seen:?}");
    assert_eq!(got, Some(7), "the waiter woke");
    assert!(rep.is_none(), "nothing leaked at return");
}

#[test]
fn a_waiter_whose_handle_is_in_an_arc_shared_with_a_running_goroutine_is_not_leaked() {
    struct Shared {
        ch: Chan<u32>,
    }
    let ((seen, got), rep) = run(|| {
        let shared = Arc::new(Shared {
            ch: chan::make::<u32>(0),
        });
        let s = shared.clone();
        let out = chan::make::<u32>(1);
        let o = out.clone();
        // The waiter borrows the one handle there is, inside the Arc (the heap).
        spawn(move || o.send(s.ch.recv().unwrap()));
        wait_parked(&shared.ch, 0, 1);
        let seen = leaked_goroutines();
        shared.ch.send(9);
        (seen, out.recv())
    });
    assert!(seen.is_empty(), "reported: {seen:?}");
    assert_eq!(got, Some(9));
    assert!(rep.is_none());
}

#[test]
fn a_select_on_a_dead_channel_and_a_live_timer_is_not_leaked() {
    let ((seen, got), rep) = run(|| {
        let ch = chan::make::<u32>(0);
        let c = ch.clone();
        let out = chan::make::<&'static str>(1);
        let o = out.clone();
        spawn(move || {
            let r = select! {
                recv(c) -> _ => "value",
                recv(after(Duration::from_millis(30))) -> _ => "timeout",
            };
            o.send(r);
        });
        wait_parked(&ch, 0, 1);
        drop(ch);
        // `ch` is dead, but the timer (which holds its channel) can wake the select.
        let seen = leaked_goroutines();
        (seen, out.recv())
    });
    assert!(seen.is_empty(), "reported: {seen:?}");
    assert_eq!(got, Some("timeout"));
    assert!(rep.is_none());
}

#[test]
fn selects_waiting_only_on_each_others_channels_are_leaked() {
    let (seen, rep) = run(|| {
        let (a, b) = (chan::make::<u32>(0), chan::make::<u32>(0));
        for _ in 0..2 {
            let (a, b) = (a.clone(), b.clone());
            spawn(move || {
                select! {
                    recv(a) -> _ => (),
                    recv(b) -> _ => (),
                }
            });
        }
        // A dynamic select too, over both and a nil case.
        let (a2, b2) = (a.clone(), b.clone());
        spawn(move || {
            let mut s = Select::new();
            s.recv(&a2);
            s.recv(None);
            s.recv(&b2);
            s.wait();
        });
        wait_parked(&a, 0, 3);
        wait_parked(&b, 0, 3);
        let before = leaked_goroutines().len();
        drop((a, b));
        (before, leaked_goroutines())
    });
    assert_eq!(seen.0, 0, "reported while we held both channels");
    assert_eq!(seen.1.len(), 3, "{:?}", seen.1);
    assert!(seen.1.iter().all(|g| g.wait == "select"));
    let rep = rep.expect("reported at return");
    assert_eq!(
        rep.text.matches("[select (leaked)]:").count(),
        3,
        "{}",
        rep.text
    );
}

/// The same with send cases: a select blocked sending is live while another goroutine holds
/// a channel it sends on, and leaked once nobody does.
#[test]
fn a_select_blocked_sending_is_leaked_only_once_its_channels_are_unreachable() {
    let (seen, _) = run(|| {
        let (a, b) = (chan::make::<u32>(0), chan::make::<u32>(0));
        let (a2, b2) = (a.clone(), b.clone());
        spawn(move || {
            select! {
                send(a2, 1) => (),
                send(b2, 2) => (),
            }
        });
        wait_parked(&a, 1, 0);
        wait_parked(&b, 1, 0);
        let before = leaked_goroutines().len();
        drop((a, b));
        (before, leaked_goroutines())
    });
    assert_eq!(seen.0, 0, "reported while we held both channels");
    assert_eq!(seen.1.len(), 1, "{:?}", seen.1);
    assert_eq!(seen.1[0].wait, "select");
}

#[test]
fn a_select_with_no_enabled_case_is_leaked() {
    let (seen, _) = run(|| {
        let (tx, rx) = (chan::make::<()>(0), chan::make::<()>(0));
        let t = tx.clone();
        spawn(move || {
            // Every case nil: blocks for ever.
            let nil: Option<&Chan<u32>> = None;
            select! {
                recv(nil) -> _ => (),
            }
            drop(t);
        });
        spawn(move || {
            Select::<u32>::new().wait();
        });
        // Wait until both are parked: their wait reasons say so.
        loop {
            let l = leaked_goroutines();
            if l.len() == 2 {
                drop((tx, rx));
                return l;
            }
            gosched();
        }
    });
    // In the order they were spawned (goids grow): a select whose cases are all nil waits
    // in "select", one with no case at all in "select (no cases)", as in Go. (Sorted by
    // wait reason instead, a mutant that swapped the two reasons passed.)
    let mut seen = seen;
    seen.sort_by_key(|g| g.goid);
    let waits: Vec<_> = seen.iter().map(|g| g.wait).collect();
    assert_eq!(waits, ["select", "select (no cases)"]);
}

#[test]
fn a_handle_captured_in_a_large_closure_counts_as_its_goroutines_own() {
    // A large closure is run in place in its heap block (not moved to the stack), so the
    // handle it borrows lies in that block: the finder accepts it as the goroutine's own.
    let (seen, _) = run(|| {
        let ch = chan::make::<u64>(0);
        let c = ch.clone();
        let big = [7u8; 16 * 1024];
        spawn(move || {
            let s: u64 = big.iter().map(|&b| b as u64).sum();
            c.send(s);
        });
        wait_parked(&ch, 1, 0);
        drop(ch);
        leaked_goroutines()
    });
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].wait, "chan send");
}

#[test]
fn the_finder_reports_nothing_while_goroutines_and_channels_come_and_go() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const WORKERS: usize = 4;
    const ROUNDS: usize = 1_500;
    let ((looks, reported), rep) = run(|| {
        let done = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicUsize::new(0));
        for w in 0..WORKERS {
            let finished = finished.clone();
            spawn(move || {
                for i in 0..ROUNDS {
                    // A fresh channel each round, parked on and dropped: the finder must never
                    // see a waiter as leaked, nor read a channel being freed.
                    let c = chan::make::<usize>(0);
                    let c2 = c.clone();
                    if (w + i) % 2 == 0 {
                        spawn(move || c2.send(i));
                        let v = select! {
                            recv(c) -> v => v,
                            recv(after(Duration::from_secs(60))) -> _ => None,
                        };
                        assert_eq!(v, Some(i));
                    } else {
                        spawn(move || assert_eq!(c2.recv(), Some(i)));
                        c.send(i);
                    }
                }
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        // A second finder that looks as often as it can, into the same result.
        let (d, tight) = (done.clone(), Arc::new(Mutex::new(Vec::new())));
        let t = tight.clone();
        spawn(move || {
            while !d.load(Ordering::SeqCst) {
                t.lock().unwrap().extend(leaked_goroutines());
                gosched();
            }
        });
        let out = chan::make::<(usize, Vec<rt_core::trace::LeakedGoroutine>)>(1);
        let (o, d2) = (out.clone(), done.clone());
        spawn(move || {
            let mut looks = 0usize;
            let mut reported = Vec::new();
            while !d2.load(Ordering::SeqCst) {
                reported.extend(leaked_goroutines());
                looks += 1;
                sleep(Duration::from_micros(50));
            }
            o.send((looks, reported));
        });
        while finished.load(Ordering::SeqCst) < WORKERS {
            sleep(Duration::from_millis(1));
        }
        done.store(true, Ordering::SeqCst);
        let (looks, mut reported) = out.recv().unwrap();
        reported.extend(tight.lock().unwrap().drain(..));
        (looks, reported)
    });
    eprintln!("finder looked {looks} times (the sleeping one)");
    assert!(looks > 0, "the finder ran");
    assert!(reported.is_empty(), "reported while busy: {reported:?}");
    assert!(rep.is_none(), "nothing leaked at return");
}

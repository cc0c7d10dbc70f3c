//! A loom model of `select`'s claim (select.rs, chan.rs `WaitQ::dequeue`): a goroutine parked
//! in a select over two channels, and a sender on each racing to complete it. Exactly one case
//! wins; the goroutine is readied once; the losing sender finds the select's other sudog
//! already claimed and skips it (its value stays in its channel, nothing is lost or
//! duplicated); and once woken, the select takes its other sudog off its queue, so none is
//! left behind when it returns.
//!
//! What is real and what is mirrored: the claim itself, the one atomic step of the protocol,
//! is the runtime's own [`Claim`] (select.rs; built with `--cfg loom`, its atomics are loom's),
//! the type `SelWait` holds and `WaitQ::dequeue` calls. Around it the model mirrors, step by
//! step, the code that runs under the channel locks: `select` mirrors `selectgo` (lock all in
//! lock order, poll, enqueue a sudog per case, park with `selparkcommit` releasing the locks,
//! then read `won`, lock all, `dequeue` the other cases, unlock), `send` mirrors
//! `Chan::send` → `try_send_locked` → `WaitQ::dequeue` (skip a claimed sudog) → fill its
//! `elem`, `success` → unlock → `goready`. Each channel's queue and buffer are a loom `Mutex`
//! (the runtime lock); parking is `loom_util::Parked` (gopark/goready).
//!
//! Bounds, and why they suffice: one select over two receive cases on buffered channels
//! (cap 1), one sender per channel: the least that has two wakers race for one select; the
//! poll order is fixed (case 0 first: the random order only changes which ready case is
//! taken before parking, not the claim). Preemption bound 4: the double claim needs one
//! preemption (between a claim's test and its set), a late sudog two; the margin costs ~2 s
//! in release (~13,000 interleavings).
//!
//! Teeth: `Claim::new_broken` tests `done` and then sets it (no atomic swap); the model of it
//! must fail (two senders claim the select: it is readied twice, or a value vanishes).
//!
//! Run with: `RUSTFLAGS="--cfg loom" cargo test -p rt-core --release --test loom_select`
//! (`cargo xtask test` does, in its own target directory).

#![cfg(loom)]

mod loom_util;

use std::collections::VecDeque;

use loom::cell::UnsafeCell;
use loom::sync::{Arc, Mutex};
use loom::thread;
use loom_util::{expect_bug, model, Parked};
use rt_core::select::Claim;

const BOUND: usize = 4;

/// The parked select's state: `SelWait` (its claim), its goroutine, and each case's sudog
/// `elem` and `success` (on the selecting goroutine's stack in the runtime).
struct Sel<const ATOMIC: bool> {
    claim: Claim<ATOMIC>,
    g: Parked,
    elem: [UnsafeCell<Option<u32>>; 2],
}

/// A queued sudog of the select: which case it stands for.
struct Sudog<const ATOMIC: bool> {
    sel: Arc<Sel<ATOMIC>>,
    case: usize,
}

/// A channel's `State` under its lock: a buffer of one value and the receive queue.
struct ChanState<const ATOMIC: bool> {
    buf: Option<u32>,
    recvq: VecDeque<Sudog<ATOMIC>>,
}

type Chan<const ATOMIC: bool> = Arc<Mutex<ChanState<ATOMIC>>>;

fn make<const ATOMIC: bool>() -> Chan<ATOMIC> {
    Arc::new(Mutex::new(ChanState {
        buf: None,
        recvq: VecDeque::new(),
    }))
}

/// Mirrors `Chan::send` with `try_send_locked` and `WaitQ::dequeue` (a buffered channel with
/// room: it never blocks). True: handed to the select.
fn send<const ATOMIC: bool>(ch: &Chan<ATOMIC>, v: u32) -> bool {
    let mut st = ch.lock().unwrap();
    // WaitQ::dequeue: the first sudog whose select this sender can still claim.
    while let Some(sg) = st.recvq.pop_front() {
        if !sg.sel.claim.try_claim(sg.case) {
            continue; // another case won: drop the sudog
        }
        // SAFETY: off the queue and claimed: the sudog is ours to fill until we ready its G
        // (loom reports an access that does not happen after the other party's).
        sg.sel.elem[sg.case].with_mut(|e| unsafe { *e = Some(v) });
        drop(st);
        sg.sel.g.ready(); // goready, after the unlock
        return true;
    }
    assert!(st.buf.is_none(), "one send per channel: there is room");
    st.buf = Some(v);
    false
}

/// Mirrors `selectgo` for `select { recv(a), recv(b) }`: which case won and what it got.
fn select<const ATOMIC: bool>(chans: &[Chan<ATOMIC>; 2], sel: Arc<Sel<ATOMIC>>) -> (usize, u32) {
    // lock_all (lock order: the model's channels are distinct; a then b), then poll.
    let mut st: Vec<_> = chans.iter().map(|c| c.lock().unwrap()).collect();
    for (i, s) in st.iter_mut().enumerate() {
        if let Some(v) = s.buf.take() {
            return (i, v); // Poll::Ready: unlock_all (the guards drop)
        }
    }
    // Enqueue a sudog per case, all sharing `sel`, and park (selparkcommit unlocks all).
    for (i, s) in st.iter_mut().enumerate() {
        s.recvq.push_back(Sudog {
            sel: sel.clone(),
            case: i,
        });
    }
    drop(st);
    sel.g.park();
    // Readied by the peer that claimed `sel`.
    let won = sel.claim.won();
    assert!(won < 2, "select woken without a winning case");
    let mut st: Vec<_> = chans.iter().map(|c| c.lock().unwrap()).collect();
    for (i, s) in st.iter_mut().enumerate() {
        if i != won {
            // Case::dequeue: our sudog off this queue, if still there.
            s.recvq.retain(|sg| !Arc::ptr_eq(&sg.sel, &sel));
        }
    }
    drop(st);
    // Case::won: the value the winner left in our sudog.
    // SAFETY: the winner filled it before readying us (loom checks it).
    let v = sel.elem[won].with_mut(|e| unsafe { (*e).take() });
    (won, v.expect("a winning receive case holds a value"))
}

fn select_vs_two_senders<const ATOMIC: bool>(claim: fn() -> Claim<ATOMIC>) {
    let chans = [make::<ATOMIC>(), make::<ATOMIC>()];
    let senders: Vec<_> = (0..2)
        .map(|i| {
            let ch = chans[i].clone();
            thread::spawn(move || send(&ch, 10 + i as u32))
        })
        .collect();
    let sel = Arc::new(Sel {
        claim: claim(),
        g: Parked::new(),
        elem: [UnsafeCell::new(None), UnsafeCell::new(None)],
    });
    let (won, v) = select(&chans, sel.clone());
    assert_eq!(v, 10 + won as u32, "case {won} got another channel's value");
    // The select has returned: its stack (the sudogs) is gone, so no queue may still hold one.
    for (i, c) in chans.iter().enumerate() {
        let st = c.lock().unwrap();
        assert!(
            !st.recvq.iter().any(|sg| Arc::ptr_eq(&sg.sel, &sel)),
            "select returned with its sudog still on channel {i}'s queue"
        );
    }
    let handed: Vec<bool> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    assert!(
        handed.iter().filter(|&&h| h).count() <= 1,
        "two senders both completed the select: {handed:?}"
    );
    // Nothing lost, nothing duplicated: the value received plus those left in the buffers.
    let mut all = vec![v];
    for (i, c) in chans.iter().enumerate() {
        let st = c.lock().unwrap();
        assert!(st.recvq.is_empty(), "channel {i}'s queue is not empty");
        all.extend(st.buf);
    }
    all.sort();
    assert_eq!(all, [10, 11], "every value exactly once");
    for (i, e) in sel.elem.iter().enumerate() {
        // SAFETY: every sender has been joined.
        let empty = e.with(|e| unsafe { (*e).is_none() });
        assert!(empty, "case {i}'s sudog was filled but did not win");
    }
}

#[test]
fn one_case_wins_and_the_other_sudog_is_dropped() {
    model("select: two senders race for one select", BOUND, || {
        select_vs_two_senders(Claim::new)
    });
}

#[test]
#[ignore = "the broken variant: run (and expected to fail) by broken_select_is_caught"]
fn broken_select_claim_without_swap() {
    model(
        "select (broken: claim is a load, then a store)",
        BOUND,
        || select_vs_two_senders(Claim::new_broken),
    );
}

#[test]
fn broken_select_is_caught() {
    expect_bug("broken_select_claim_without_swap", "woken twice");
}

//! Go's `context` in rt-core, on host threads: a tree of goroutines stopped by cancelling its
//! root, deadlines (never early, `DeadlineExceeded`), a child of a cancelled parent born
//! cancelled, cancellation that goes down the tree and never up or sideways, and cancelled
//! children leaving their parent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rt_core::chan::{self, TryRecvError};
use rt_core::context::{with_cancel, with_deadline, with_timeout};
use rt_core::time::now;
use rt_core::{gosched, select, spawn, Context, ContextError, Runtime, WaitGroup};

const MS: u64 = 1_000_000;

fn is_done(ctx: &Context) -> bool {
    ctx.done().try_recv() == Err(TryRecvError::Closed)
}

/// 1 root, 4 children, 3 grandchildren each, 3 great-grandchildren each (4 + 12 + 36 = 52
/// goroutines), each selecting on its context's `done` and a shared work channel. Cancelling
/// the root stops them all, and each sees `Canceled`.
#[test]
fn cancelling_the_root_stops_a_tree_of_goroutines() {
    let (exited, canceled, work_done) = Runtime::new(4).block_on(|| {
        let (root, cancel) = with_cancel(&Context::background());
        let work = chan::make::<u32>(0);
        let wg = Arc::new(WaitGroup::new());
        let exited = Arc::new(AtomicUsize::new(0));
        let canceled = Arc::new(AtomicUsize::new(0));
        let work_done = Arc::new(AtomicUsize::new(0));
        // Each goroutine keeps its own CancelFunc uncalled: only the root's cancels.
        let mut keep = Vec::new();
        let spawn_worker = |ctx: Context| {
            let (wg, exited, canceled, work_done, work) = (
                wg.clone(),
                exited.clone(),
                canceled.clone(),
                work_done.clone(),
                work.clone(),
            );
            wg.add(1);
            spawn(move || {
                loop {
                    let stop = select! {
                        recv(ctx.done()) -> _ => true,
                        recv(work) -> _ => {
                            work_done.fetch_add(1, Ordering::SeqCst);
                            false
                        },
                    };
                    if stop {
                        break;
                    }
                }
                if ctx.err() == Some(ContextError::Canceled) {
                    canceled.fetch_add(1, Ordering::SeqCst);
                }
                exited.fetch_add(1, Ordering::SeqCst);
                wg.done();
            });
        };
        for _ in 0..4 {
            let (c1, k1) = with_cancel(&root);
            keep.push(k1);
            spawn_worker(c1.clone());
            for _ in 0..3 {
                let (c2, k2) = with_cancel(&c1);
                keep.push(k2);
                spawn_worker(c2.clone());
                for _ in 0..3 {
                    let (c3, k3) = with_cancel(&c2);
                    keep.push(k3);
                    spawn_worker(c3);
                }
            }
        }
        // Some work first: the workers are running and taking it.
        for i in 0..100 {
            work.send(i);
        }
        assert_eq!(
            exited.load(Ordering::SeqCst),
            0,
            "a worker stopped before the cancel"
        );
        cancel.cancel();
        wg.wait();
        assert_eq!(root.err(), Some(ContextError::Canceled));
        (
            exited.load(Ordering::SeqCst),
            canceled.load(Ordering::SeqCst),
            work_done.load(Ordering::SeqCst),
        )
    });
    assert_eq!(exited, 52, "not every worker exited");
    assert_eq!(canceled, 52, "not every worker saw Canceled");
    assert_eq!(work_done, 100);
}

#[test]
fn a_deadline_cancels_with_deadline_exceeded_and_never_early() {
    Runtime::new(2).block_on(|| {
        let when = now() + 3 * MS;
        let (ctx, _cancel) = with_deadline(&Context::background(), when);
        assert_eq!(ctx.deadline(), Some(when));
        assert_eq!(ctx.err(), None);
        // A child inherits the earlier deadline, and is cancelled with it.
        let (child, _c) = with_timeout(&ctx, Duration::from_secs(3600));
        assert_eq!(
            child.deadline(),
            Some(when),
            "a child's deadline is the earlier one"
        );
        let (grandchild, _g) = with_cancel(&child);
        let r = select! {
            recv(ctx.done()) -> _ => "done",
            recv(rt_core::time::after(Duration::from_secs(30))) -> _ => "timeout",
        };
        let t = now();
        assert_eq!(r, "done");
        assert!(t >= when, "done {} ns before the deadline", when - t);
        assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
        grandchild.done().recv();
        assert_eq!(child.err(), Some(ContextError::DeadlineExceeded));
        assert_eq!(grandchild.err(), Some(ContextError::DeadlineExceeded));
        // A child's own earlier deadline is its own.
        let (outer, _o) = with_timeout(&Context::background(), Duration::from_secs(3600));
        let w = now() + MS;
        let (inner, _i) = with_deadline(&outer, w);
        assert_eq!(inner.deadline(), Some(w));
        inner.done().recv();
        assert!(now() >= w);
        assert_eq!(inner.err(), Some(ContextError::DeadlineExceeded));
        assert_eq!(
            outer.err(),
            None,
            "the child's deadline cancelled its parent"
        );
        // A deadline already passed: born cancelled.
        let (past, _p) = with_deadline(&Context::background(), now());
        assert!(is_done(&past));
        assert_eq!(past.err(), Some(ContextError::DeadlineExceeded));
    });
}

#[test]
fn cancel_before_the_deadline_wins_and_stops_the_timer() {
    // If the timer were not stopped, its after_func would keep the program alive for an hour:
    // the deadlock at the end is reported (within the watchdog's 30 s) only because it is.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| {
            Runtime::new(2).block_on(|| {
                let (ctx, cancel) = with_timeout(&Context::background(), Duration::from_secs(3600));
                cancel.cancel();
                assert_eq!(ctx.err(), Some(ContextError::Canceled));
                chan::make::<u32>(0).recv();
            })
        });
        let msg = match r {
            Ok(()) => String::from("(no panic)"),
            Err(p) => p.downcast_ref::<String>().cloned().unwrap_or_default(),
        };
        let _ = tx.send(msg);
    });
    let msg = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("no deadlock reported within 30 s: the deadline's timer was not stopped");
    assert!(
        msg.contains("all goroutines are asleep - deadlock!"),
        "{msg}"
    );
}

#[test]
fn a_child_of_a_cancelled_parent_is_born_cancelled() {
    Runtime::new(1).block_on(|| {
        let (parent, cancel) = with_cancel(&Context::background());
        cancel.cancel();
        let (child, _c) = with_cancel(&parent);
        assert!(is_done(&child));
        assert_eq!(child.err(), Some(ContextError::Canceled));
        let (timed, _t) = with_timeout(&parent, Duration::from_secs(3600));
        assert!(is_done(&timed));
        assert_eq!(timed.err(), Some(ContextError::Canceled));
    });
}

#[test]
fn cancelling_a_child_cancels_neither_its_parent_nor_its_siblings() {
    Runtime::new(2).block_on(|| {
        let (parent, pcancel) = with_cancel(&Context::background());
        let (a, acancel) = with_cancel(&parent);
        let (b, _bcancel) = with_cancel(&parent);
        let (a1, _a1cancel) = with_cancel(&a);
        acancel.cancel();
        acancel.cancel(); // idempotent
        assert_eq!(a.err(), Some(ContextError::Canceled));
        assert!(is_done(&a1), "a child of the cancelled one");
        assert_eq!(parent.err(), None, "the parent was cancelled by its child");
        assert_eq!(b.err(), None, "a sibling was cancelled");
        assert!(!is_done(&parent) && !is_done(&b));
        pcancel.cancel();
        assert_eq!(b.err(), Some(ContextError::Canceled));
        // Background (and TODO) is never done.
        for bg in [Context::background(), Context::todo()] {
            assert_eq!(bg.err(), None);
            assert_eq!(bg.deadline(), None);
            assert_eq!(bg.done().try_recv(), Err(TryRecvError::Empty));
        }
        // The methods are the functions.
        let root = Context::todo();
        let (m, mcancel) = root.with_cancel();
        let (md, _mdc) = m.with_deadline(now() + 3_600_000 * MS);
        let (mt, _mtc) = md.with_timeout(Duration::from_secs(1));
        assert!(mt.deadline().unwrap() < md.deadline().unwrap());
        mcancel.cancel();
        assert_eq!(mt.err(), Some(ContextError::Canceled));
        assert_eq!(root.err(), None);
    });
}

/// A cancelled child leaves its parent's children (no leak while the parent lives); an
/// uncancelled one stays, as in Go, until it or the parent is cancelled.
#[test]
fn a_cancelled_child_is_removed_from_its_parent() {
    Runtime::new(1).block_on(|| {
        let (parent, pcancel) = with_cancel(&Context::background());
        let kids: Vec<_> = (0..10).map(|_| with_cancel(&parent)).collect();
        let (timed, tcancel) = with_timeout(&parent, Duration::from_secs(3600));
        assert_eq!(parent.children(), 11);
        for (_, k) in &kids[..4] {
            k.cancel();
        }
        tcancel.cancel();
        assert_eq!(
            parent.children(),
            6,
            "cancelled children still held by the parent"
        );
        assert_eq!(timed.err(), Some(ContextError::Canceled));
        // A child of a child is held by its own parent only.
        let (_g, _gk) = with_cancel(&kids[5].0);
        assert_eq!(parent.children(), 6);
        assert_eq!(kids[5].0.children(), 1);
        pcancel.cancel();
        assert_eq!(parent.children(), 0);
        assert_eq!(
            kids[5].0.children(),
            0,
            "a cancelled descendant keeps its children"
        );
    });
}

#[test]
fn errors_read_as_go_s() {
    assert_eq!(ContextError::Canceled.to_string(), "context canceled");
    assert_eq!(
        ContextError::DeadlineExceeded.to_string(),
        "context deadline exceeded"
    );
}

/// Cancels racing from many goroutines (and a deadline) on 4 Ps: each context is cancelled
/// once, its `done` closed once (a second close would panic), every descendant cancelled.
#[test]
fn concurrent_cancels_of_a_tree_are_idempotent() {
    Runtime::new(4).block_on(|| {
        for round in 0..20 {
            let (root, rcancel) = with_timeout(&Context::background(), Duration::from_micros(500));
            let mut leaves = Vec::new();
            let mut cancels = vec![rcancel];
            for _ in 0..5 {
                let (c, k) = with_cancel(&root);
                cancels.push(k);
                for _ in 0..5 {
                    let (l, k) = with_cancel(&c);
                    cancels.push(k);
                    leaves.push(l);
                }
            }
            let wg = Arc::new(WaitGroup::new());
            for chunk in cancels.chunks(4) {
                let chunk = chunk.to_vec();
                let wg = wg.clone();
                wg.add(1);
                spawn(move || {
                    for k in chunk.iter().rev() {
                        k.cancel();
                        gosched();
                    }
                    wg.done();
                });
            }
            wg.wait();
            for l in &leaves {
                assert!(is_done(l), "round {round}: a leaf not cancelled");
                assert!(l.err().is_some());
            }
        }
    });
}

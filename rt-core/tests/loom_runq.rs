//! A loom model of the local run queue (runq.rs): every interleaving (up to loom's preemption
//! bound) of an owner putting and getting while thieves steal. No item may be lost or taken
//! twice, and `runnext` is respected.
//!
//! Run with: `RUSTFLAGS="--cfg loom" cargo test -p rt-core --release --test loom_runq`
//! (`cargo xtask test` does, in its own target directory).

#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use rt_core::runq::RunQueue;

type Q = RunQueue<u8, 4>;

fn item(i: usize) -> *mut u8 {
    i as *mut u8 // never dereferenced: the queue only moves pointers
}

static ITER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    ITER.store(0, std::sync::atomic::Ordering::Relaxed);
    b.check(move || {
        ITER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    eprintln!(
        "iterations: {}",
        ITER.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// Collects everything a queue still holds (owner's view, after all threads joined).
fn drain(q: &Q) -> Vec<usize> {
    core::iter::from_fn(|| q.get())
        .map(|(p, _)| p as usize)
        .collect()
}

/// A thief thread: steals from `victim` into a queue of its own, returns all it got.
fn spawn_thief(victim: Arc<Q>) -> thread::JoinHandle<Vec<usize>> {
    thread::spawn(move || {
        let t = Q::new();
        let mut got: Vec<usize> = t
            .steal_from(&victim, false, &|| {})
            .map(|p| p as usize)
            .into_iter()
            .collect();
        got.extend(drain(&t));
        got
    })
}

fn assert_exactly_once(mut got: Vec<usize>, expected: &[usize]) {
    got.sort();
    assert_eq!(got, expected, "every item exactly once");
}

#[test]
fn put_get_and_steal_lose_and_duplicate_nothing() {
    model(|| {
        let victim = Arc::new(Q::new());
        victim.put(item(1), false);
        victim.put(item(2), false);
        let stealer = spawn_thief(victim.clone());
        // The owner keeps working meanwhile: one more put, one get.
        victim.put(item(3), false);
        let mut got: Vec<usize> = victim.get().map(|(p, _)| p as usize).into_iter().collect();
        got.extend(stealer.join().unwrap());
        got.extend(drain(&victim));
        assert_exactly_once(got, &[1, 2, 3]);
    });
}

#[test]
fn runnext_is_taken_once_by_owner_or_last_pass_thief() {
    model(|| {
        let victim = Arc::new(Q::new());
        let thief = Arc::new(Q::new());
        victim.put(item(7), true); // only runnext holds work
        let (v, t) = (victim.clone(), thief.clone());
        let stealer = thread::spawn(move || {
            // Not the last pass: must not take runnext.
            assert!(t.steal_from(&v, false, &|| {}).is_none());
            t.steal_from(&v, true, &|| {}).map(|p| p as usize)
        });
        let owner = victim.get();
        let stolen = stealer.join().unwrap();
        match (owner, stolen) {
            (Some((p, inherit)), None) => {
                assert_eq!(p as usize, 7);
                assert!(inherit, "runnext inherits the time slice");
            }
            (None, Some(7)) => {}
            other => panic!("runnext taken {other:?}"),
        }
        assert!(victim.is_empty() && thief.is_empty());
    });
}

#[test]
fn overflow_to_global_races_with_a_thief() {
    model(|| {
        let victim = Arc::new(Q::new());
        for i in 1..=4 {
            victim.put(item(i), false); // the ring (capacity 4) is now full
        }
        let stealer = spawn_thief(victim.clone());
        // A fifth put either fits (the thief made room) or overflows half + 1 to "global".
        let mut got: Vec<usize> = match victim.put(item(5), false) {
            None => Vec::new(),
            Some(over) => over.items[..over.len].iter().map(|&p| p as usize).collect(),
        };
        got.extend(stealer.join().unwrap());
        got.extend(drain(&victim));
        assert_exactly_once(got, &[1, 2, 3, 4, 5]);
    });
}

#[test]
fn two_thieves_and_the_owner() {
    model(|| {
        let victim = Arc::new(Q::new());
        for i in 1..=3 {
            victim.put(item(i), false);
        }
        let a = spawn_thief(victim.clone());
        let b = spawn_thief(victim.clone());
        let mut got: Vec<usize> = victim.get().map(|(p, _)| p as usize).into_iter().collect();
        got.extend(a.join().unwrap());
        got.extend(b.join().unwrap());
        got.extend(drain(&victim));
        assert_exactly_once(got, &[1, 2, 3]);
    });
}

//! The local run queue on its own (rt-core/src/runq.rs), the runq lab's tests: order,
//! `runnext`, overflow to the global queue, stealing half, and an owner racing two thieves on
//! real threads. (The loom model in loom_runq.rs checks every interleaving of a small queue;
//! these check the behaviour Go's proc.go gives `runqput`, `runqget` and `runqgrab`.)

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use rt_core::runq::RunQueue;

type Q = RunQueue<u64, 256>;

/// A distinct, never-dereferenced item for `i` (the queue only moves pointers).
fn item(i: usize) -> *mut u64 {
    ((i + 1) * 8) as *mut u64
}

fn id(p: *mut u64) -> usize {
    p as usize / 8 - 1
}

fn drain(q: &Q) -> Vec<(usize, bool)> {
    std::iter::from_fn(|| q.get().map(|(p, next)| (id(p), next))).collect()
}

#[test]
fn the_ring_is_fifo() {
    let q = Q::new();
    assert!(q.is_empty());
    for i in 0..200 {
        assert!(
            q.put(item(i), false).is_none(),
            "a ring with room overflowed"
        );
    }
    assert_eq!(q.len(), 200);
    let got = drain(&q);
    let want: Vec<(usize, bool)> = (0..200).map(|i| (i, false)).collect();
    assert_eq!(got, want);
    assert!(q.is_empty() && q.get().is_none());
}

#[test]
fn runnext_runs_first_and_kicks_its_old_item_to_the_tail() {
    let q = Q::new();
    q.put(item(0), false);
    q.put(item(1), true);
    assert_eq!(q.len(), 2);
    // A newer runnext displaces the old one to the ring's tail.
    q.put(item(2), true);
    assert_eq!(q.len(), 3);
    assert_eq!(drain(&q), [(2, true), (0, false), (1, false)]);
}

#[test]
fn a_full_ring_gives_up_its_older_half_and_the_new_item() {
    let q = Q::new();
    for i in 0..256 {
        assert!(q.put(item(i), false).is_none(), "overflow at {i} of 256");
    }
    let over = q.put(item(256), false).expect("a full ring overflows");
    let moved: Vec<usize> = over.items[..over.len].iter().map(|&p| id(p)).collect();
    let want: Vec<usize> = (0..128).chain([256]).collect();
    assert_eq!(
        moved, want,
        "the older half, oldest first, then the new item"
    );
    let left: Vec<usize> = drain(&q).into_iter().map(|(i, _)| i).collect();
    assert_eq!(left, (128..256).collect::<Vec<_>>());
}

#[test]
fn a_thief_takes_half_rounded_up_and_runs_the_last() {
    for n in [1usize, 2, 7, 100, 256] {
        let victim = Q::new();
        let thief = Q::new();
        for i in 0..n {
            victim.put(item(i), false);
        }
        let stolen = n - n / 2;
        let run = thief
            .steal_from(&victim, false, &|| {})
            .expect("a queue with items can be stolen from");
        // The thief runs the last of what it took and queues the rest, in order.
        assert_eq!(id(run), stolen - 1, "n = {n}");
        let queued: Vec<usize> = drain(&thief).into_iter().map(|(i, _)| i).collect();
        assert_eq!(queued, (0..stolen - 1).collect::<Vec<_>>(), "n = {n}");
        let left: Vec<usize> = drain(&victim).into_iter().map(|(i, _)| i).collect();
        assert_eq!(left, (stolen..n).collect::<Vec<_>>(), "n = {n}");
    }
    let empty = Q::new();
    assert!(Q::new().steal_from(&empty, true, &|| {}).is_none());
}

#[test]
fn runnext_is_stolen_only_on_request_from_an_empty_ring() {
    let victim = Q::new();
    let thief = Q::new();
    victim.put(item(7), true);
    assert!(
        thief.steal_from(&victim, false, &|| {}).is_none(),
        "runnext taken without steal_runnext"
    );
    let waited = AtomicBool::new(false);
    let run = thief.steal_from(&victim, true, &|| waited.store(true, Ordering::Relaxed));
    assert_eq!(run.map(id), Some(7));
    assert!(
        waited.load(Ordering::Relaxed),
        "no grace before taking runnext"
    );
    assert!(victim.is_empty());
    // With items in the ring, a thief takes from the ring and leaves runnext.
    victim.put(item(1), false);
    victim.put(item(2), true);
    assert_eq!(thief.steal_from(&victim, true, &|| {}).map(id), Some(1));
    assert_eq!(drain(&victim), [(2, true)]);
}

#[test]
fn an_owner_and_two_thieves_lose_and_duplicate_nothing() {
    const TOTAL: usize = 200_000;
    let victim = Arc::new(Q::new());
    let done = Arc::new(AtomicBool::new(false));
    let taken = Arc::new(AtomicUsize::new(0));
    let thieves: Vec<_> = (0..2)
        .map(|_| {
            let (victim, done, taken) = (victim.clone(), done.clone(), taken.clone());
            std::thread::spawn(move || {
                let mine = Q::new();
                let mut got = Vec::new();
                while !done.load(Ordering::Acquire) || !victim.is_empty() {
                    if let Some(p) = mine.steal_from(&victim, true, &std::thread::yield_now) {
                        got.push(id(p));
                        got.extend(drain(&mine).into_iter().map(|(i, _)| i));
                    }
                }
                taken.fetch_add(got.len(), Ordering::Relaxed);
                got
            })
        })
        .collect();
    let mut owner = Vec::new();
    let mut overflowed = Vec::new();
    for i in 0..TOTAL {
        if let Some(over) = victim.put(item(i), i % 3 == 0) {
            overflowed.extend(over.items[..over.len].iter().map(|&p| id(p)));
        }
        if i % 4 == 0 {
            if let Some((p, _)) = victim.get() {
                owner.push(id(p));
            }
        }
    }
    done.store(true, Ordering::Release);
    let mut all: Vec<usize> = owner;
    all.extend(overflowed);
    for t in thieves {
        all.extend(t.join().unwrap());
    }
    all.extend(drain(&victim).into_iter().map(|(i, _)| i));
    let distinct: HashSet<usize> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "an item was taken twice");
    assert_eq!(all.len(), TOTAL, "items lost");
    assert!(
        taken.load(Ordering::Relaxed) > 0,
        "the thieves never took anything"
    );
}

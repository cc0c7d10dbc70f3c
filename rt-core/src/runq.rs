//! A P's local run queue: a fixed ring that only its owner appends to and anyone may take
//! from, plus the `runnext` slot. Go's `p.runq`, `runqhead`, `runqtail`, `runnext` and the
//! functions `runqput`, `runqget`, `runqgrab`, `runqsteal` in proc.go.
//!
//! Invariants (the same as Go's):
//! - `tail` is written only by the owner; `head` is advanced by CAS, by the owner (get) or by
//!   a thief (steal), so each slot between `head` and `tail` is taken exactly once;
//! - `tail - head` never exceeds the capacity; a thief that reads an inconsistent pair
//!   (`tail - head > capacity`) retries;
//! - slots are atomics (relaxed) because a thief may read a slot that the owner is about to
//!   overwrite; the thief's CAS on `head` then fails and it discards what it read;
//! - `runnext` holds one item that the owner prefers to run next (the G its running G just
//!   readied: a producer/consumer pair then ping-pongs on one P). Thieves take it only on their
//!   last pass and only from a P whose queue is otherwise empty.
//!
//! The queue is generic over the item (`*mut T`) and the capacity so that the loom model in
//! `tests/loom_runq.rs` can exhaustively check a small one; the scheduler uses `RunQueue<G, 256>`.

#[cfg(not(loom))]
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use core::ptr::null_mut;

/// Go's `len(p.runq)`.
pub const RUNQ_SIZE: usize = 256;

pub struct RunQueue<T, const N: usize> {
    head: AtomicU32,
    tail: AtomicU32,
    ring: [AtomicPtr<T>; N],
    runnext: AtomicPtr<T>,
}

// SAFETY: all shared state is atomic; items are raw pointers whose ownership moves with them.
unsafe impl<T, const N: usize> Send for RunQueue<T, N> {}
// SAFETY: as for `Send` above.
unsafe impl<T, const N: usize> Sync for RunQueue<T, N> {}

/// What `put` could not keep: the full ring's older half plus the new item, to go to the
/// global queue (Go's `runqputslow`), oldest first.
pub struct Overflow<T, const N: usize> {
    pub items: [*mut T; N],
    pub len: usize,
}

impl<T, const N: usize> Default for RunQueue<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> RunQueue<T, N> {
    const _POW2: () = assert!(N.is_power_of_two() && N >= 2 && N <= (u32::MAX as usize) / 2);

    #[cfg(not(loom))]
    pub const fn new() -> Self {
        let () = Self::_POW2;
        RunQueue {
            head: AtomicU32::new(0),
            tail: AtomicU32::new(0),
            ring: [const { AtomicPtr::new(null_mut()) }; N],
            runnext: AtomicPtr::new(null_mut()),
        }
    }

    #[cfg(loom)]
    pub fn new() -> Self {
        let () = Self::_POW2;
        RunQueue {
            head: AtomicU32::new(0),
            tail: AtomicU32::new(0),
            ring: core::array::from_fn(|_| AtomicPtr::new(null_mut())),
            runnext: AtomicPtr::new(null_mut()),
        }
    }

    fn slot(&self, i: u32) -> &AtomicPtr<T> {
        &self.ring[i as usize % N]
    }

    /// Items in the ring plus runnext (a snapshot; exact only for the owner with no thieves).
    pub fn len(&self) -> usize {
        loop {
            let h = self.head.load(Ordering::Acquire);
            let t = self.tail.load(Ordering::Acquire);
            if self.head.load(Ordering::Acquire) == h {
                let next = usize::from(!self.runnext.load(Ordering::Acquire).is_null());
                return t.wrapping_sub(h) as usize + next;
            }
        }
    }

    /// Go's `runqempty`: no item in the ring and none in runnext. The double read of `tail`
    /// guards against seeing runnext empty while an item moves from runnext to the ring.
    pub fn is_empty(&self) -> bool {
        loop {
            let h = self.head.load(Ordering::Acquire);
            let t = self.tail.load(Ordering::Acquire);
            let next = self.runnext.load(Ordering::Acquire);
            if self.tail.load(Ordering::Acquire) == t {
                return h == t && next.is_null();
            }
        }
    }

    /// Owner only. Go's `runqput`: with `next`, `item` goes to runnext and the item it displaces
    /// goes to the ring's tail. If the ring is full, half of it and the item come back as an
    /// [`Overflow`] for the global queue.
    pub fn put(&self, mut item: *mut T, next: bool) -> Option<Overflow<T, N>> {
        // LAB(runq) begin: put, Go's runqput
        // LAB(runq) hint: Chapter 3. With `next`, swap `item` into runnext; if that displaced an
        // LAB(runq) hint: old item, the old one goes on to the ring instead. Then, in a loop:
        // LAB(runq) hint: read head (Acquire: consumers move it) and tail (only you write it); if
        // LAB(runq) hint: tail - head < N, store the item in slot(tail) and publish it with a
        // LAB(runq) hint: Release store of tail + 1. If the ring is full, `put_slow` takes its
        // LAB(runq) hint: older half for the global queue (None back: a consumer made room, retry).
        // LAB(runq) stub: let _ = (&mut item, next, Self::put_slow);
        // LAB(runq) stub: todo!("LAB(runq): put (runqput)")
        if next {
            let old = self.runnext.swap(item, Ordering::AcqRel);
            if old.is_null() {
                return None;
            }
            item = old; // Kick the old runnext out to the regular queue.
        }
        loop {
            let h = self.head.load(Ordering::Acquire); // synchronise with consumers
            let t = self.tail.load(Ordering::Relaxed); // only we write it
            if (t.wrapping_sub(h) as usize) < N {
                self.slot(t).store(item, Ordering::Relaxed);
                self.tail.store(t.wrapping_add(1), Ordering::Release); // publish the item
                return None;
            }
            if let Some(over) = self.put_slow(item, h, t) {
                return Some(over);
            }
            // A consumer took something meanwhile: the ring has room now.
        }
        // LAB(runq) end
    }

    /// Go's `runqputslow`: takes the older half of a full ring (by CAS on head, racing
    /// thieves) and returns it with `item` appended.
    fn put_slow(&self, item: *mut T, h: u32, t: u32) -> Option<Overflow<T, N>> {
        let n = (t.wrapping_sub(h) / 2) as usize;
        debug_assert_eq!(n, N / 2, "put_slow on a queue that is not full");
        let mut items = [null_mut(); N];
        for (i, it) in items.iter_mut().enumerate().take(n) {
            *it = self.slot(h.wrapping_add(i as u32)).load(Ordering::Relaxed);
        }
        if self
            .head
            .compare_exchange(
                h,
                h.wrapping_add(n as u32),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return None;
        }
        items[n] = item;
        Some(Overflow { items, len: n + 1 })
    }

    /// Owner only. Go's `runqget`: runnext first (`true`: the caller should let it inherit
    /// the rest of the current time slice), then the ring's head.
    pub fn get(&self) -> Option<(*mut T, bool)> {
        // LAB(runq) begin: get, Go's runqget
        // LAB(runq) hint: runnext first: take it with a CAS to null (a thief may take it at the
        // LAB(runq) hint: same time: if the CAS fails, fall through), and return (item, true) so
        // LAB(runq) hint: that it inherits the time slice. Then the ring: read head and tail, empty
        // LAB(runq) hint: if equal; else read slot(head) and claim it by CAS head -> head + 1
        // LAB(runq) hint: (thieves CAS head too); retry if the CAS fails. Return (item, false).
        // LAB(runq) stub: todo!("LAB(runq): get (runqget)")
        let next = self.runnext.load(Ordering::Acquire);
        // Only we can put into runnext, so if the CAS fails a thief took it: fall through.
        if !next.is_null()
            && self
                .runnext
                .compare_exchange(next, null_mut(), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return Some((next, true));
        }
        loop {
            let h = self.head.load(Ordering::Acquire);
            let t = self.tail.load(Ordering::Relaxed);
            if t == h {
                return None;
            }
            let item = self.slot(h).load(Ordering::Relaxed);
            if self
                .head
                .compare_exchange(h, h.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Some((item, false));
            }
        }
        // LAB(runq) end
    }

    /// Go's `runqgrab`: a thief moves half of `self`'s items into `dst`'s ring starting at
    /// `dst_tail` (without publishing them). Returns how many. With `steal_runnext`, may take
    /// runnext from a queue that is otherwise empty. `yield_before_runnext` is called before
    /// taking runnext (Go sleeps 3 µs there so that a P about to run its runnext gets to).
    fn grab(
        &self,
        dst: &Self,
        dst_tail: u32,
        steal_runnext: bool,
        yield_before_runnext: &dyn Fn(),
    ) -> u32 {
        // LAB(runq) begin: grab, Go's runqgrab
        // LAB(runq) hint: Take half of the ring, rounded up: n = size - size / 2, where size =
        // LAB(runq) hint: tail - head (both read with Acquire). Copy slots head..head + n into
        // LAB(runq) hint: dst.slot(dst_tail + i), then claim them with one CAS of head -> head + n;
        // LAB(runq) hint: if the CAS fails another consumer moved head: start over. n > N / 2
        // LAB(runq) hint: means you read an inconsistent pair: retry. An empty ring: if
        // LAB(runq) hint: `steal_runnext`, call `yield_before_runnext()`, then take runnext by CAS
        // LAB(runq) hint: into dst.slot(dst_tail) and return 1. Return how many you took.
        // LAB(runq) stub: let _ = (dst, dst_tail, steal_runnext, yield_before_runnext);
        // LAB(runq) stub: todo!("LAB(runq): grab (runqgrab)")
        loop {
            let h = self.head.load(Ordering::Acquire);
            let t = self.tail.load(Ordering::Acquire);
            let size = t.wrapping_sub(h);
            let n = size - size / 2;
            if n == 0 {
                if steal_runnext {
                    let next = self.runnext.load(Ordering::Acquire);
                    if !next.is_null() {
                        yield_before_runnext();
                        if self
                            .runnext
                            .compare_exchange(next, null_mut(), Ordering::AcqRel, Ordering::Relaxed)
                            .is_err()
                        {
                            continue;
                        }
                        dst.slot(dst_tail).store(next, Ordering::Relaxed);
                        return 1;
                    }
                }
                return 0;
            }
            if n as usize > N / 2 {
                continue; // read an inconsistent h and t
            }
            for i in 0..n {
                let item = self.slot(h.wrapping_add(i)).load(Ordering::Relaxed);
                dst.slot(dst_tail.wrapping_add(i))
                    .store(item, Ordering::Relaxed);
            }
            if self
                .head
                .compare_exchange(h, h.wrapping_add(n), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return n;
            }
        }
        // LAB(runq) end
    }

    /// `self` is the thief's own queue (owner only). Go's `runqsteal`: grabs half of
    /// `victim`'s items, returns one of them to run and queues the rest on `self`.
    pub fn steal_from(
        &self,
        victim: &Self,
        steal_runnext: bool,
        yield_before_runnext: &dyn Fn(),
    ) -> Option<*mut T> {
        let t = self.tail.load(Ordering::Relaxed);
        let n = victim.grab(self, t, steal_runnext, yield_before_runnext);
        if n == 0 {
            return None;
        }
        let n = n - 1;
        let item = self.slot(t.wrapping_add(n)).load(Ordering::Relaxed);
        if n == 0 {
            return Some(item);
        }
        let h = self.head.load(Ordering::Acquire);
        assert!(
            (t.wrapping_sub(h).wrapping_add(n) as usize) < N,
            "runqsteal: runq overflow"
        );
        self.tail.store(t.wrapping_add(n), Ordering::Release);
        Some(item)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn item(i: usize) -> *mut u8 {
        i as *mut u8 // never dereferenced: the queue only moves pointers
    }

    #[test]
    fn fifo_with_runnext_first() {
        let q: RunQueue<u8, 8> = RunQueue::new();
        assert!(q.is_empty());
        assert!(q.put(item(1), false).is_none());
        assert!(q.put(item(2), false).is_none());
        assert!(q.put(item(3), true).is_none());
        assert!(q.put(item(4), true).is_none()); // kicks 3 to the tail
        assert_eq!(q.len(), 4);
        let got: Vec<(usize, bool)> = core::iter::from_fn(|| q.get())
            .map(|(p, n)| (p as usize, n))
            .collect();
        assert_eq!(got, [(4, true), (1, false), (2, false), (3, false)]);
        assert!(q.is_empty());
    }

    #[test]
    fn full_queue_overflows_half_plus_one_oldest_first() {
        let q: RunQueue<u8, 8> = RunQueue::new();
        for i in 1..=8 {
            assert!(q.put(item(i), false).is_none());
        }
        let over = q.put(item(9), false).expect("overflow");
        let moved: Vec<usize> = over.items[..over.len].iter().map(|&p| p as usize).collect();
        assert_eq!(moved, [1, 2, 3, 4, 9]);
        let left: Vec<usize> = core::iter::from_fn(|| q.get())
            .map(|(p, _)| p as usize)
            .collect();
        assert_eq!(left, [5, 6, 7, 8]);
    }

    #[test]
    fn steal_takes_half_and_runnext_only_when_asked() {
        let victim: RunQueue<u8, 8> = RunQueue::new();
        let thief: RunQueue<u8, 8> = RunQueue::new();
        for i in 1..=5 {
            victim.put(item(i), false);
        }
        victim.put(item(6), true);
        // Half of 5, rounded up: 3 (1, 2, 3); the thief runs the last one grabbed.
        assert_eq!(
            thief.steal_from(&victim, false, &|| {}).map(|p| p as usize),
            Some(3)
        );
        assert_eq!(thief.len(), 2);
        assert_eq!(victim.len(), 3); // 4, 5 and runnext 6
        assert_eq!(
            thief.steal_from(&victim, false, &|| {}).map(|p| p as usize),
            Some(4)
        );
        assert_eq!(
            thief.steal_from(&victim, false, &|| {}).map(|p| p as usize),
            Some(5)
        );
        // Only runnext is left: not taken unless asked.
        assert_eq!(thief.steal_from(&victim, false, &|| {}), None);
        assert_eq!(
            thief.steal_from(&victim, true, &|| {}).map(|p| p as usize),
            Some(6)
        );
        assert!(victim.is_empty());
    }

    #[test]
    fn indices_wrap_around_u32() {
        let q: RunQueue<u8, 4> = RunQueue::new();
        q.head.store(u32::MAX - 1, Ordering::Relaxed);
        q.tail.store(u32::MAX - 1, Ordering::Relaxed);
        for i in 1..=4 {
            assert!(q.put(item(i), false).is_none());
        }
        assert_eq!(q.len(), 4);
        let got: Vec<usize> = core::iter::from_fn(|| q.get())
            .map(|(p, _)| p as usize)
            .collect();
        assert_eq!(got, [1, 2, 3, 4]);
    }
}

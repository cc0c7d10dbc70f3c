//! `Cond`: a condition variable for goroutines holding an rt-core [`Mutex`](super::Mutex) (Go's
//! `sync.Cond`, sync/cond.go, over the runtime's `notifyList`, runtime/sema.go).
//!
//! Go's ticket scheme. `wait` takes a ticket (`wait_ticket`, incremented atomically while
//! the caller still holds the mutex), unlocks, then parks unless its ticket has been notified
//! already. `notify` is the next ticket to notify: `signal` advances it by one and readies the
//! waiter holding that ticket if it is on the list; `broadcast` advances it to `wait_ticket`
//! and readies the whole list. A waiter that took its ticket but had not yet parked when it
//! was notified is not lost: it finds `ticket < notify` (under the list lock) and does not
//! park. So `signal` wakes the oldest waiter (the lowest ticket not yet notified) and at most
//! one; `broadcast` wakes every goroutine that took a ticket before it.
//!
//! Invariants: `notify` only changes under the list lock, and never passes `wait_ticket`;
//! every waiter on the list holds a ticket `>= notify` (a notifier takes the notified tickets'
//! waiters off under the lock that advanced `notify`); a waiter on the list is parked (it
//! parks with the list lock held, g0 releases it, park.rs), and whoever takes it off readies
//! it exactly once. Tickets wrap; comparisons are modulo 2^32 (Go's `less`), fine while fewer
//! than 2^31 goroutines wait on one `Cond`.
//!
//! A list node lives on its waiter's stack (Go's `sudog`, without a pool): goroutine stacks do
//! not move, and the waiter stays parked, its frame alive, until a notifier has taken the node
//! off the list and read it for the last time.

use core::ptr::null_mut;
use core::sync::atomic::{AtomicU32, Ordering};

use super::mutex::MutexGuard;
use crate::g::{WaitReason, G};
use crate::lock::{park_unlock, Mutex as RtLock};
use crate::m::getg;
use crate::park::{gopark, goready};

/// A condition variable (Go's `sync.Cond`), used with a [`Mutex`](super::Mutex) guard: Go's
/// `c.L` is the mutex of the guard passed to [`Cond::wait`]. All waiters of one `Cond`
/// should use the same mutex.
pub struct Cond {
    /// The next ticket to hand out (Go's `notifyList.wait`): atomic, taken outside the lock.
    wait_ticket: AtomicU32,
    /// The next ticket to notify (Go's `notifyList.notify`): read anywhere, written only
    /// under `list`.
    notify: AtomicU32,
    /// The parked waiters in the order they queued (about ticket order), under this lock.
    list: RtLock<WaitList>,
}

struct WaitList {
    head: *mut Waiter,
    tail: *mut Waiter,
}

// SAFETY: the nodes are owned by parked goroutines, and only touched under the list lock (or
// by the notifier that took them off it).
unsafe impl Send for WaitList {}

/// One parked waiter (Go's `sudog` for a notify list), on its goroutine's stack.
struct Waiter {
    ticket: u32,
    gp: *mut G,
    next: *mut Waiter,
}

/// `a < b` for running counts that may wrap (Go's `less`).
fn less(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl Default for Cond {
    fn default() -> Self {
        Self::new()
    }
}

impl Cond {
    pub const fn new() -> Self {
        Cond {
            wait_ticket: AtomicU32::new(0),
            notify: AtomicU32::new(0),
            list: RtLock::new(WaitList {
                head: null_mut(),
                tail: null_mut(),
            }),
        }
    }

    /// Go's `Wait`: atomically unlocks the guard's mutex and parks until [`signal`] or
    /// [`broadcast`] wakes this goroutine; relocks the mutex before returning its guard. As
    /// in Go there are no spurious wake-ups, but the condition may have changed again by the
    /// time the mutex is relocked: wait in a loop that re-checks it.
    ///
    /// [`signal`]: Cond::signal
    /// [`broadcast`]: Cond::broadcast
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let m = guard.mutex();
        let t = self.add();
        drop(guard);
        self.wait_for(t);
        m.lock()
    }

    /// Go's `notifyListAdd`: the caller's ticket.
    fn add(&self) -> u32 {
        self.wait_ticket.fetch_add(1, Ordering::SeqCst)
    }

    /// Whether ticket `t` has been notified. The list lock must be held for the answer to
    /// stay true until the caller parks (it always stays true once true).
    fn notified(&self, t: u32) -> bool {
        less(t, self.notify.load(Ordering::SeqCst))
    }

    /// Go's `notifyListWait`: returns once ticket `t` has been notified, parked until then.
    /// Outside a goroutine (nothing to park) it polls, yielding the CPU.
    fn wait_for(&self, t: u32) {
        let gp = getg();
        if gp.is_null() {
            loop {
                let l = self.list.lock();
                if self.notified(t) {
                    return;
                }
                drop(l);
                crate::platform::get().osyield();
            }
        }
        self.list.raw_lock();
        if self.notified(t) {
            // SAFETY: taken by raw_lock above.
            unsafe { self.list.raw_unlock() };
            return;
        }
        let mut node = Waiter {
            ticket: t,
            gp,
            next: null_mut(),
        };
        let np: *mut Waiter = &mut node;
        // SAFETY: the list lock is held (raw_lock) until g0 releases it (park_unlock).
        let list = unsafe { self.list.get_locked() };
        if list.tail.is_null() {
            list.head = np;
        } else {
            // SAFETY: the tail is a node of a parked waiter, on the list we hold the lock of.
            unsafe { (*list.tail).next = np };
        }
        list.tail = np;
        gopark(
            Some(park_unlock::<WaitList>),
            &self.list as *const RtLock<WaitList> as usize,
            WaitReason::SyncCondWait,
        );
        // A notifier took `node` off the list before readying us, and no longer touches it.
        // Keep it (and its storage) alive to here in the compiler's eyes as well.
        core::hint::black_box(&mut node);
    }

    /// Go's `Signal`: wakes one waiting goroutine, the one that has waited longest (the
    /// lowest ticket not yet notified), if any. The caller may, but need not, hold the mutex.
    pub fn signal(&self) {
        // No waiter since the last notification: nothing to do, no lock.
        if self.wait_ticket.load(Ordering::SeqCst) == self.notify.load(Ordering::SeqCst) {
            return;
        }
        let mut l = self.list.lock();
        let t = self.notify.load(Ordering::Relaxed);
        if t == self.wait_ticket.load(Ordering::SeqCst) {
            return;
        }
        self.notify.store(t.wrapping_add(1), Ordering::SeqCst);
        // Find ticket t's waiter. If it has not queued yet, it will see that it was notified
        // and not park. It is near the front: waiters queue in about ticket order.
        let mut prev: *mut Waiter = null_mut();
        let mut s = l.head;
        while !s.is_null() {
            // SAFETY: s is a node on the list, whose waiter is parked; we hold the list lock.
            let (ticket, next) = unsafe { ((*s).ticket, (*s).next) };
            if ticket == t {
                if prev.is_null() {
                    l.head = next;
                } else {
                    // SAFETY: prev is a node on the list, as s.
                    unsafe { (*prev).next = next };
                }
                if next.is_null() {
                    l.tail = prev;
                }
                // SAFETY: as above; this is our last touch of the node.
                let gp = unsafe { (*s).gp };
                drop(l);
                // SAFETY: gp was on the list, so it is parked (it parked holding the list
                // lock), and we took it off under that lock: we are its only waker.
                unsafe { goready(gp) };
                return;
            }
            prev = s;
            s = next;
        }
    }

    /// Go's `Broadcast`: wakes every goroutine waiting. The caller may, but need not, hold
    /// the mutex.
    pub fn broadcast(&self) {
        if self.wait_ticket.load(Ordering::SeqCst) == self.notify.load(Ordering::SeqCst) {
            return;
        }
        let mut l = self.list.lock();
        let mut s = core::mem::replace(&mut l.head, null_mut());
        l.tail = null_mut();
        // Every ticket handed out so far is notified: those waiters are on the list we took,
        // or will see it when they try to queue.
        self.notify
            .store(self.wait_ticket.load(Ordering::SeqCst), Ordering::SeqCst);
        drop(l);
        while !s.is_null() {
            // SAFETY: s is a node we took off the list; its waiter is parked until we ready
            // it, so it is alive; read it before readying its owner, which frees it.
            let (gp, next) = unsafe { ((*s).gp, (*s).next) };
            // SAFETY: gp was on the list, so parked, and we took it off: its only waker.
            unsafe { goready(gp) };
            s = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{less, Cond};

    /// The lost-wake-up window: a waiter that took its ticket (under the mutex) and unlocked,
    /// but has not parked yet, is notified all the same: it will find its ticket notified and
    /// not park. (No runtime: nothing here parks.)
    #[test]
    fn a_signal_before_the_waiter_parks_is_not_lost() {
        let c = Cond::new();
        let t0 = c.add();
        let t1 = c.add();
        assert!(!c.notified(t0) && !c.notified(t1));
        c.signal();
        assert!(c.notified(t0), "the oldest ticket is notified first");
        assert!(!c.notified(t1), "one signal notifies one ticket");
        c.signal();
        assert!(c.notified(t1));
        c.signal(); // Nobody left: a no-op, and the next waiter is not pre-notified.
        let t2 = c.add();
        assert!(
            !c.notified(t2),
            "a signal with no waiter is not saved for later"
        );
        let t3 = c.add();
        c.broadcast();
        assert!(
            c.notified(t2) && c.notified(t3),
            "broadcast notifies every ticket"
        );
        let t4 = c.add();
        assert!(!c.notified(t4), "nor is a broadcast saved for later");
    }

    #[test]
    fn tickets_compare_across_wrap_around() {
        assert!(less(u32::MAX, 0));
        assert!(!less(0, u32::MAX));
        assert!(less(5, 6) && !less(6, 6));
    }
}

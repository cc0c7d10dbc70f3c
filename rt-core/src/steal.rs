//! Work stealing (Go's `stealWork`, `runqsteal`): an M whose P has nothing to run takes half
//! of another P's local queue. Victims are visited in a random order (a random start and a
//! step coprime with GOMAXPROCS, Go's `randomOrder`), 4 passes over all Ps; a victim's
//! `runnext` is taken only on the last pass, so that a P that just readied a G gets to run it.
//! The queue side (the grab of half a ring, lock-free against the owner) is runq.rs.
//!
//! Invariant: the thief owns its own P (`pp`); other Ps are touched only through their atomic
//! queues and status.

use core::sync::atomic::Ordering;

use crate::g::G;
use crate::m::M;
use crate::p::{PStatus, P};
use crate::platform;

/// Go's `stealWork`: 4 passes over all other Ps in random order, stealing half of a run
/// queue; `runnext` only on the last pass.
///
/// # Safety
/// On `m`'s g0 (`m` is the current M), and `pp` is m's P.
pub(crate) unsafe fn steal_work(m: *mut M, pp: *mut P) -> Option<*mut G> {
    // SAFETY: an M's runtime outlives the M.
    let sched = unsafe { &*(*m).runtime };
    let n = sched.allp.len();
    if n == 1 {
        return None;
    }
    const STEAL_TRIES: usize = 4;
    for i in 0..STEAL_TRIES {
        let last = i == STEAL_TRIES - 1;
        // SAFETY: m is the current M; its random state is used only by itself.
        let r = unsafe { crate::m::cheaprand(m) } as usize;
        let step = sched.coprimes[r % sched.coprimes.len()];
        let mut pos = (r / sched.coprimes.len()) % n;
        for _ in 0..n {
            let p2 = sched.allp[pos];
            pos = (pos + step) % n;
            // SAFETY: Ps live as long as the runtime; a P's status is an atomic.
            if p2 == pp || unsafe { (*p2).status() } == PStatus::Idle {
                continue;
            }
            // Go sleeps 3 µs before taking a running P's runnext so that P gets to run it;
            // a sleep that short is ~60 µs on Linux VMs (timer slack), so we yield instead.
            // SAFETY: m owns pp (the owner its queue's `steal_from` requires); p2 lives as
            // long as the runtime and is only touched through its atomic queue.
            if let Some(gp) = unsafe {
                (*pp)
                    .runq
                    .steal_from(&(*p2).runq, last, &|| platform::get().osyield())
            } {
                // SAFETY: pp is m's P; `nstolen` is an atomic.
                unsafe { (*pp).nstolen.fetch_add(1, Ordering::Relaxed) };
                return Some(gp);
            }
        }
    }
    None
}

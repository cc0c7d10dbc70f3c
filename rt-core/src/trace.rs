//! The scheduler trace: Go's `GODEBUG=schedtrace=X` line and, with `scheddetail=1`, a line
//! per P, per M and per G (proc.go, `schedtrace`).
//!
//! Who calls it: the kernel, from CPU 0's timer tick (interrupt context), and tests, from
//! anywhere. So it reads only atomics, allocates nothing, and takes the M and G lists with
//! [`Mutex::try_peek`](crate::lock::Mutex::try_peek): a list whose lock stays busy is reported
//! as skipped, never waited for (the interrupted code on this CPU may be the holder).
//!
//! Invariants it relies on: Ps, Ms and G slabs live as long as the runtime; every field read
//! here that its owner writes while the runtime runs is an atomic (G: `goid`, `atomicstatus`,
//! `waitreason`, `m`; M: `curg`, `locks`, `spinning`, `blocked`; P: `status`, the tick
//! counters, `m`, the run queue and free-list lengths). A line is a snapshot of racing values,
//! as Go's is ("even if we hold schedlock, most data can be changed concurrently").
//!
//! Fields of Go's lines that have no counterpart here (no garbage collector, no
//! `LockOSThread`, no `mallocgc` re-entrancy) print Go's zero value, so that
//! tools written for Go's output read ours.

use core::fmt::{self, Write};
use core::sync::atomic::Ordering;

use crate::g::G;
use crate::m::M;
use crate::sched::Sched;

// Leaked goroutines (leak.rs), beside the other views of the runtime's goroutines.
pub use crate::leak::{leak_report, leaked_goroutines, LeakReport, LeakedGoroutine};

/// What the caller knows that the runtime does not.
#[derive(Debug, Clone, Copy)]
pub struct TraceArgs {
    /// Milliseconds since the runtime (or the machine) started: the `SCHED 1000ms` figure.
    pub now_ms: u64,
    /// Ms asleep (Go's `sched.nmidle`). The kernel counts halted CPUs; pass `None` to count
    /// the Ms whose `blocked` flag is set.
    pub idlethreads: Option<usize>,
    /// Go's `scheddetail=1`: the per-P, per-M and per-G lines.
    pub detailed: bool,
    /// Attempts at the M and G list locks before reporting them as skipped.
    pub lock_tries: u32,
}

/// Writes the trace. Returns whether every list could be read (false: some were skipped).
pub fn schedtrace(sched: &Sched, w: &mut dyn Write, a: &TraceArgs) -> Result<bool, fmt::Error> {
    let idle = match a.idlethreads {
        Some(n) => Some(n),
        None => sched.allms.try_peek(a.lock_tries, |ms| {
            ms.iter()
                // SAFETY: Ms live as long as the runtime; `blocked` is an atomic.
                .filter(|&&m| unsafe { (*m).blocked.load(Ordering::Relaxed) })
                .count()
        }),
    };
    write!(
        w,
        "SCHED {}ms: gomaxprocs={} idleprocs={} threads={} spinningthreads={} idlethreads=",
        a.now_ms,
        sched.gomaxprocs.load(core::sync::atomic::Ordering::Relaxed),
        sched.npidle.load(Ordering::Relaxed),
        sched.mcount.load(Ordering::Relaxed),
        sched.nmspinning.load(Ordering::Relaxed),
    )?;
    match idle {
        Some(n) => write!(w, "{n}")?,
        None => w.write_str("?")?,
    }
    write!(w, " runqueue={}", sched.runqsize.load(Ordering::Relaxed))?;
    // The Ps in use, as Go's `allp` (whose `procresize` drops the others).
    let nprocs = sched
        .gomaxprocs
        .load(Ordering::Relaxed)
        .min(sched.allp.len());
    if !a.detailed {
        w.write_str(" [")?;
        for (i, &pp) in sched.allp[..nprocs].iter().enumerate() {
            // SAFETY: Ps live as long as the runtime; the run queue length is read from atomics.
            let len = unsafe { (*pp).runq.len() };
            write!(w, "{}{len}", if i == 0 { "" } else { " " })?;
        }
        w.write_str("]\n")?;
        return Ok(idle.is_some());
    }
    w.write_str(" gcwaiting=false nmidlelocked=0 stopwait=0 sysmonwait=false\n")?;
    for (i, &pp) in sched.allp[..nprocs].iter().enumerate() {
        // SAFETY: Ps live as long as the runtime; every field read is an atomic.
        let p = unsafe { &*pp };
        write!(
            w,
            "  P{i}: status={} schedtick={} syscalltick={} m=",
            p.status.load(Ordering::Relaxed),
            p.schedtick.load(Ordering::Relaxed),
            p.syscalltick.load(Ordering::Relaxed),
        )?;
        write_m_id(w, p.m.load(Ordering::Relaxed))?;
        write!(
            w,
            " runqsize={} gfreecnt={} timerslen=",
            p.runq.len(),
            p.gfree.len()
        )?;
        // The heap is behind its own lock, which the interrupted M may hold: try, as for the
        // M and G lists below.
        match p.timers.try_peek(a.lock_tries, |t| t.len()) {
            Some(n) => writeln!(w, "{n}")?,
            None => w.write_str("?\n")?,
        }
    }
    let ms_ok = sched.allms.try_peek(a.lock_tries, |ms| -> fmt::Result {
        for &m in ms {
            // SAFETY: Ms live as long as the runtime; id is immutable, the rest are atomics.
            let mr = unsafe { &*m };
            write!(w, "  M{}: p=", mr.id)?;
            // Go reads `m.p`; ours is the M's own field, so find the P that names this M.
            match sched
                .allp
                .iter()
                // SAFETY: as above, for Ps.
                .position(|&pp| unsafe { (*pp).m.load(Ordering::Relaxed) } == m)
            {
                Some(id) => write!(w, "{id}")?,
                None => w.write_str("nil")?,
            }
            w.write_str(" curg=")?;
            write_goid(w, mr.curg.load(Ordering::Relaxed))?;
            writeln!(
                w,
                " mallocing=0 throwing=0 preemptoff= locks={} dying=0 spinning={} blocked={} lockedg=nil",
                mr.locks.load(Ordering::Relaxed),
                mr.spinning.load(Ordering::Relaxed),
                mr.blocked.load(Ordering::Relaxed),
            )?;
        }
        Ok(())
    });
    match ms_ok {
        Some(r) => r?,
        None => w.write_str("  (M list busy: skipped)\n")?,
    }
    let gs_ok = sched.allgs.try_peek(a.lock_tries, |slabs| -> fmt::Result {
        for &slab in slabs {
            // SAFETY: slabs live as long as the runtime; only atomics are read from each G.
            for g in unsafe { &*slab } {
                // A slab's never-spawned Gs (goid 0): Go's allgs holds only Gs that were
                // handed to a `go` statement at least once.
                if g.goid() == 0 {
                    continue;
                }
                let status = g.atomicstatus.load(Ordering::Relaxed);
                write!(
                    w,
                    "  G{}: status={}({}) m=",
                    g.goid(),
                    status,
                    g.waitreason().as_str()
                )?;
                write_m_id(w, g.m.load(Ordering::Relaxed))?;
                w.write_str(" lockedm=nil\n")?;
            }
        }
        Ok(())
    });
    match gs_ok {
        Some(r) => r?,
        None => w.write_str("  (G list busy: skipped)\n")?,
    }
    Ok(idle.is_some() && ms_ok.is_some() && gs_ok.is_some())
}

fn write_m_id(w: &mut dyn Write, m: *mut M) -> fmt::Result {
    if m.is_null() {
        w.write_str("nil")
    } else {
        // SAFETY: Ms live as long as the runtime; `id` never changes.
        write!(w, "{}", unsafe { (*m).id })
    }
}

fn write_goid(w: &mut dyn Write, g: *mut G) -> fmt::Result {
    if g.is_null() {
        w.write_str("nil")
    } else {
        // SAFETY: Gs live as long as the runtime; `goid` is an atomic.
        write!(w, "{}", unsafe { (*g).goid() })
    }
}

/// [`schedtrace`] of the runtime the calling goroutine (or M) belongs to; `None` when the
/// caller is not an M of any runtime.
pub fn schedtrace_current(w: &mut dyn Write, a: &TraceArgs) -> Option<Result<bool, fmt::Error>> {
    let m = crate::m::getm();
    if m.is_null() {
        return None;
    }
    // SAFETY: an M's runtime outlives it.
    Some(schedtrace(unsafe { &*(*m).runtime }, w, a))
}

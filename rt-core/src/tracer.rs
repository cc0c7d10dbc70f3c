//! The execution tracer: what the scheduler does, event by event, on every M (Go's
//! `runtime/trace`: traceevent.go, tracebuf.go). The format is rt-trace's (rt-trace/src/format.rs);
//! decoding and drawing are on the host (rt-trace's views, `cargo xtask trace`).
//!
//! # Cost
//!
//! Off (the default), a trace point is one load of [`ON`] and a branch the CPU predicts
//! not-taken: the recording itself is out of line ([`record`] is `#[cold]`). On, a point reads
//! the platform's clock (the TSC in the kernel), the M's P and its run-queue length, and
//! stores a 40-byte record in the M's own buffer.
//!
//! # Invariants
//!
//! - An M's buffer ([`M::trace`]) is written only by that M, on its own thread or CPU, and
//!   never from an interrupt handler (the kernel's async preemption reports its GoStop from
//!   g0, after the switch). Callers pass the current M.
//! - Sysmon's records go to one buffer of their own ([`SYSMON_BUF`]), which only one sysmon
//!   writes at a time (a flag, tried, never waited for: the kernel's sysmon is CPU 0's timer
//!   interrupt, which may interrupt CPU 0 while it writes).
//! - A full buffer is written out through the platform ([`Platform::trace_write`]); if the
//!   platform cannot take it, its records are counted as lost and a Lost record says so. No
//!   event is dropped without being counted.
//! - Each M writes out what is left in its buffer when it leaves its scheduling loop; the
//!   runtime then writes sysmon's buffer, its own counters and the End record ([`stop`]). An M
//!   that never leaves (stuck in a goroutine) is counted in End as unflushed.
//! - Events are timestamped before the action they report is published (a GoUnblock before
//!   the G goes on a queue, a GoStop before the G can be taken by another M), so that in a
//!   merged trace a G's events are in causal order.
//!
//! One runtime records at a time ([`start`] refuses a second).

use alloc::vec::Vec;
use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{AtomicBool, Ordering};

use rt_trace::format::{Counter, Kind, Record, NO_P, RECORD_BYTES, SYSMON, VERSION};

use crate::m::M;
use crate::platform;
use crate::sched::Sched;
use rt_trace::format::UnblockSource;

// Records are written out as their memory (format.rs: five little-endian u64 words).
const _: () = assert!(cfg!(target_endian = "little"));
const _: () = assert!(core::mem::size_of::<Record>() == RECORD_BYTES);

/// Whether events are being recorded (Go's `trace.enabled`).
pub(crate) static ON: AtomicBool = AtomicBool::new(false);

/// Whether a runtime owns the tracer (set by [`start`], cleared by [`stop`]).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Records per M buffer before it is written out.
pub const BUF_RECORDS: usize = 8192;

/// One M's buffer (or sysmon's).
pub(crate) struct Buf {
    recs: Vec<Record>,
    /// Records lost so far (the platform could not take a full buffer).
    lost: u64,
    /// The M whose buffer this is (format.rs's `head.m`).
    m: u16,
}

impl Buf {
    pub(crate) const fn new(m: u16) -> Buf {
        Buf {
            recs: Vec::new(),
            lost: 0,
            m,
        }
    }

    fn push(&mut self, r: Record, wait: bool) {
        if self.recs.len() == self.recs.capacity() {
            if self.recs.capacity() == 0 {
                self.recs.reserve_exact(BUF_RECORDS);
            } else if !self.flush(wait) {
                // The writer is busy and we may not wait (sysmon in an interrupt): keep what
                // the buffer holds for the next try, and count this record lost.
                self.lost += 1;
                return;
            }
        }
        self.recs.push(r);
    }

    /// Writes the buffer out and empties it. When the platform refuses: with `wait` the
    /// records are counted lost (the platform cannot take a trace at all), without it they are
    /// kept for a later try; returns false then.
    fn flush(&mut self, wait: bool) -> bool {
        let plat = platform::get();
        // SAFETY: Record is five u64s with no padding (asserted above); on a little-endian
        // machine its memory is exactly its bytes in format.rs's layout. The slice covers the
        // initialised records only and lives as long as this borrow of the buffer.
        let bytes = unsafe {
            core::slice::from_raw_parts(
                self.recs.as_ptr() as *const u8,
                self.recs.len() * RECORD_BYTES,
            )
        };
        if !bytes.is_empty() && !plat.trace_write(bytes, wait) {
            if !wait {
                return false;
            }
            self.lost += self.recs.len() as u64;
        }
        self.recs.clear();
        if self.lost > 0 {
            let lost = Record {
                ts: plat.trace_clock(),
                head: Record::head(Kind::Lost as u8, self.m, NO_P, 0, 0),
                a: self.lost,
                ..Record::default()
            };
            // A Lost record that cannot be written is itself lost; the next one (cumulative)
            // says how many.
            let _ = plat.trace_write(&lost.to_bytes(), wait);
        }
        true
    }
}

/// Per-M tracer state (a field of [`M`]), owned by the M's own thread or CPU.
pub(crate) struct MTrace {
    buf: UnsafeCell<Buf>,
    /// What readies goroutines while this M is on g0 (an [`UnblockSource`]): set around
    /// running timers and the netpoller.
    pub(crate) src: Cell<u8>,
}

impl MTrace {
    pub(crate) const fn new(m: u16) -> MTrace {
        MTrace {
            buf: UnsafeCell::new(Buf::new(m)),
            src: Cell::new(UnblockSource::Runtime as u8),
        }
    }
}

/// Sysmon's buffer, and whether a sysmon is writing it.
struct SysmonBuf {
    busy: AtomicBool,
    buf: UnsafeCell<Buf>,
}

// SAFETY: `buf` is used only by the holder of `busy` (a swap from false to true).
unsafe impl Sync for SysmonBuf {}

static SYSMON_BUF: SysmonBuf = SysmonBuf {
    busy: AtomicBool::new(false),
    buf: UnsafeCell::new(Buf::new(SYSMON)),
};

/// Whether tracing is on: one relaxed load.
#[inline(always)]
pub(crate) fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// A trace point on the current M `m`: one predictable branch when tracing is off. A macro, so
/// that its arguments (a goid read, a queue length) are evaluated only when tracing is on.
macro_rules! ev {
    ($m:expr, $kind:expr, $arg:expr, $a:expr, $b:expr, $c:expr $(,)?) => {
        if $crate::tracer::on() {
            $crate::tracer::ev_on($m, $kind, $arg, $a, $b, $c)
        }
    };
}
pub(crate) use ev;

/// [`ev!`] once tracing is known to be on.
#[inline(always)]
pub(crate) fn ev_on(m: *mut M, kind: Kind, arg: u8, a: u64, b: u64, c: u64) {
    // SAFETY: callers pass the current M (the module's first invariant).
    unsafe { record(m, kind, arg, a, b, c) };
}

/// [`ev!`] for a caller that does not have the current M at hand.
#[inline(always)]
pub(crate) fn ev_here(kind: Kind, arg: u8, a: u64, b: u64, c: u64) {
    if on() {
        let m = crate::m::getm();
        if !m.is_null() {
            // SAFETY: m is the current M.
            unsafe { record(m, kind, arg, a, b, c) };
        }
    }
}

/// Stores one record in `m`'s buffer.
///
/// # Safety
/// `m` is the current M, and the caller is not an interrupt handler.
#[cold]
#[inline(never)]
unsafe fn record(m: *mut M, kind: Kind, arg: u8, a: u64, b: u64, c: u64) {
    let plat = platform::get();
    // SAFETY: m is the current M: its `p` is its own, and Ps live as long as the runtime
    // (their run queues' lengths are atomics).
    let (p, qlen) = unsafe {
        let pp = (*m).p;
        if pp.is_null() {
            (NO_P, 0)
        } else {
            ((*pp).id as u16, (*pp).runq.len() as u16)
        }
    };
    // SAFETY: m is the current M; its id is fixed.
    let mid = unsafe { (*m).id } as u16;
    // SAFETY: only the current M touches its buffer, never from an interrupt handler (the
    // caller's promise), so this is the only reference to it.
    let buf = unsafe { &mut *(*m).trace.buf.get() };
    if buf.recs.capacity() == 0 {
        let (cpu, kernel) = match plat.cpu_id() {
            Some(c) => (c, 1),
            None => (mid as u64, 0),
        };
        buf.push(
            Record {
                ts: plat.trace_clock(),
                head: Record::head(Kind::MInfo as u8, mid, NO_P, 0, kernel),
                a: cpu,
                ..Record::default()
            },
            true,
        );
    }
    buf.push(
        Record {
            ts: plat.trace_clock(),
            head: Record::head(kind as u8, mid, p, qlen, arg),
            a,
            b,
            c,
        },
        true,
    );
}

/// A sysmon trace point (the host's sysmon thread, the kernel's timer tick): into sysmon's
/// own buffer, or counted lost if another sysmon is writing it.
#[inline(always)]
pub(crate) fn ev_sysmon(kind: Kind, a: u64, b: u64) {
    if on() {
        record_sysmon(kind, a, b);
    }
}

#[cold]
#[inline(never)]
fn record_sysmon(kind: Kind, a: u64, b: u64) {
    if SYSMON_BUF.busy.swap(true, Ordering::Acquire) {
        // Another sysmon holds the buffer: count the record where the next holder adds it in.
        LOST_SYSMON.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if !on() {
        // The trace ended between the check and the flag: `stop` has written this buffer.
        SYSMON_BUF.busy.store(false, Ordering::Release);
        return;
    }
    let plat = platform::get();
    // SAFETY: we hold `busy`, so this is the only reference to sysmon's buffer.
    let buf = unsafe { &mut *SYSMON_BUF.buf.get() };
    buf.lost += LOST_SYSMON.swap(0, Ordering::Relaxed);
    // Sysmon may run in an interrupt handler (the kernel): never wait for the platform's
    // writer, which the interrupted code may hold.
    buf.push(
        Record {
            ts: plat.trace_clock(),
            head: Record::head(kind as u8, SYSMON, NO_P, 0, 0),
            a,
            b,
            c: 0,
        },
        false,
    );
    SYSMON_BUF.busy.store(false, Ordering::Release);
}

/// Sysmon records that found sysmon's buffer busy.
static LOST_SYSMON: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Starts recording for `sched`: writes the header and turns the trace points on. Panics if
/// another runtime is recording.
pub(crate) fn start(sched: &Sched) {
    if ACTIVE.swap(true, Ordering::AcqRel) {
        panic!("rt-core: a trace is already being recorded by another runtime");
    }
    let plat = platform::get();
    // The rate first: a platform may choose its clock there (the host calibrates the TSC).
    let hz = plat.trace_clock_hz();
    let header = Record {
        ts: plat.trace_clock(),
        head: Record::head(Kind::Header as u8, SYSMON, NO_P, 0, 0),
        a: hz,
        b: sched.gomaxprocs.load(Ordering::Relaxed) as u64,
        c: VERSION,
    };
    LOST_SYSMON.store(0, Ordering::Relaxed);
    while SYSMON_BUF.busy.swap(true, Ordering::Acquire) {
        core::hint::spin_loop();
    }
    // SAFETY: we hold `busy`; a sysmon left over from an earlier trace may have stored
    // records after that trace's end: they are not this trace's.
    unsafe { *SYSMON_BUF.buf.get() = Buf::new(SYSMON) };
    SYSMON_BUF.busy.store(false, Ordering::Release);
    if !plat.trace_write(&header.to_bytes(), true) {
        plat.write_str("rt-core: trace: the platform cannot write a trace; tracing stays off\n");
        ACTIVE.store(false, Ordering::Release);
        return;
    }
    ON.store(true, Ordering::Release);
}

/// Writes out the current M's buffer: called by each M as it leaves its loop.
///
/// # Safety
/// `m` is the current M.
pub(crate) unsafe fn flush_m(m: *mut M) {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    // SAFETY: the current M's buffer, touched only by it (the caller's promise).
    let buf = unsafe { &mut *(*m).trace.buf.get() };
    buf.flush(true);
}

/// Ends the trace of `sched`, whose Ms have left their loops (`unflushed` of them have not):
/// writes sysmon's buffer, the runtime's counters and the End record.
pub(crate) fn stop(sched: &Sched, unflushed: u64) {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    ON.store(false, Ordering::Release);
    let plat = platform::get();
    // Wait out a sysmon that is writing its buffer (it never blocks while it holds it).
    while SYSMON_BUF.busy.swap(true, Ordering::Acquire) {
        core::hint::spin_loop();
    }
    // SAFETY: we hold `busy`.
    let sbuf = unsafe { &mut *SYSMON_BUF.buf.get() };
    sbuf.lost += LOST_SYSMON.swap(0, Ordering::Relaxed);
    sbuf.flush(true);
    *sbuf = Buf::new(SYSMON);
    SYSMON_BUF.busy.store(false, Ordering::Release);

    let st = &sched.stats;
    let get = |c: &core::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let steals: u64 = sched
        .allp
        .iter()
        // SAFETY: Ps live as long as the runtime; `nstolen` is an atomic.
        .map(|&pp| unsafe { (*pp).nstolen.load(Ordering::Relaxed) })
        .sum();
    let counters = [
        (Counter::GoCreated, sched.goidgen.load(Ordering::Relaxed)),
        (Counter::Steals, steals),
        (Counter::PreemptSync, get(&st.nsync_preempt)),
        (Counter::PreemptAsync, get(&st.nasync_preempt)),
        (Counter::PreemptRequests, get(&st.npreempt_requests)),
        (Counter::Retakes, get(&st.nretake_syscall)),
        (Counter::TimersRun, get(&st.ntimers_run)),
    ];
    let now = plat.trace_clock();
    let mut out = Vec::with_capacity((counters.len() + 1) * RECORD_BYTES);
    for (c, v) in counters {
        let r = Record {
            ts: now,
            head: Record::head(Kind::Counter as u8, SYSMON, NO_P, 0, 0),
            a: c as u64,
            b: v,
            c: 0,
        };
        out.extend_from_slice(&r.to_bytes());
    }
    let end = Record {
        ts: now,
        head: Record::head(Kind::End as u8, SYSMON, NO_P, 0, 0),
        a: unflushed,
        ..Record::default()
    };
    out.extend_from_slice(&end.to_bytes());
    let _ = plat.trace_write(&out, true);
    plat.trace_finish();
    ACTIVE.store(false, Ordering::Release);
}

/// Runs `f` with `src` as what readies goroutines on the current M while it is on g0 (timers,
/// the netpoller). Nothing when tracing is off.
#[inline(always)]
pub(crate) fn with_src<R>(src: UnblockSource, f: impl FnOnce() -> R) -> R {
    if !on() {
        return f();
    }
    let m = crate::m::getm();
    if m.is_null() {
        return f();
    }
    // SAFETY: m is the current M; `src` is its own (a Cell used only on its thread or CPU).
    let old = unsafe { (*m).trace.src.replace(src as u8) };
    let r = f();
    // SAFETY: as above.
    unsafe { (*m).trace.src.set(old) };
    r
}

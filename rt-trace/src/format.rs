//! The wire format of an execution trace: a stream of fixed-size 40-byte records, little
//! endian, in no particular order between Ms (each M's records are in the order it wrote
//! them; the decoder merges them by timestamp).
//!
//! A record is five `u64` words: `ts`, `head`, `a`, `b`, `c`.
//! - `ts`: the clock of the platform (the TSC in the kernel, nanoseconds of the monotonic clock
//!   on the host); [`Kind::Header`]'s `a` says how many ticks make a second.
//! - `head`: bits 0..8 the [`Kind`], 8..24 the M that wrote it ([`SYSMON`] for sysmon's own
//!   buffer), 24..40 the P that M held ([`NO_P`] for none), 40..56 that P's local run-queue
//!   length at the moment (0 without a P), 56..64 a small argument (a reason).
//! - `a`, `b`, `c`: the event's arguments, as each [`Kind`] says.
//!
//! The vocabulary is Go 1.22's (`src/runtime/traceevent.go`, `traceruntime.go`): GoCreate,
//! GoStart, GoStop, GoBlock, GoUnblock, GoDestroy, GoSyscallBegin/End/EndBlocked, ProcStart,
//! ProcStop, ProcSteal. Go has no events for what a bare-metal scheduler adds (spinning Ms, a
//! CPU that halts, a timer or an interrupt that readies a goroutine, the global queue), so
//! those carry names of ours in the same style. One difference: Go's ProcSteal is a P taken
//! from a syscall; ours is a run-queue steal (thief, victim, how many), and a P taken from a
//! syscall is [`Kind::ProcRetake`].
//!
//! A complete trace has one [`Kind::Header`] and one [`Kind::End`]; meta records
//! ([`Kind::MInfo`], [`Kind::Lost`], [`Kind::Counter`]) sit anywhere. Events an M could not
//! keep (its buffer was full and could not be written out) are counted in [`Kind::Lost`]
//! records, never dropped silently.

/// The kernel's trace window (kernel/src/dev/tracemem.rs), as xtask makes it (xtask/src/qemu.rs):
/// its header's first word, "GORTTRC1" in little-endian bytes, and the header's size. The
/// header's words: magic, size, bytes reserved, end of the data written.
pub const WINDOW_MAGIC: u64 = u64::from_le_bytes(*b"GORTTRC1");
pub const WINDOW_HEADER: u64 = 4096;

/// Bytes in one record.
pub const RECORD_BYTES: usize = 40;

/// The format's version, in [`Kind::Header`]'s `c`.
pub const VERSION: u64 = 1;

/// The `m` of records written by sysmon (the host's sysmon thread, the kernel's timer tick).
pub const SYSMON: u16 = 0xffff;

/// The `p` of a record written by an M that held no P.
pub const NO_P: u16 = 0xffff;

/// What a record is. Values are fixed: they are the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    /// The M took the P in `head.p` (Go's ProcStart).
    ProcStart = 1,
    /// The M dropped the P in `head.p` (Go's ProcStop).
    ProcStop = 2,
    /// The M's P stole from another P's run queue: `a` = victim P, `b` = Gs taken (the one run
    /// next included).
    ProcSteal = 3,
    /// A goroutine was created: `a` = its goid, `b` = the creation site's PC (a return address
    /// in the creating function), `c` = the creator's goid (0: the runtime, for main).
    GoCreate = 4,
    /// The M started running goroutine `a` (Go's GoStart). `b` = 1 if it kept the previous
    /// run's time slice.
    GoStart = 5,
    /// The running goroutine `a` stopped and is runnable: `head.arg` = a [`StopReason`].
    GoStop = 6,
    /// The running goroutine `a` blocked: `head.arg` = its wait reason ([`WAIT_REASONS`]).
    GoBlock = 7,
    /// Goroutine `a` was made runnable: `head.arg` = an [`UnblockSource`], `b` = the goid that
    /// readied it (0 if none: a timer, an interrupt, the runtime).
    GoUnblock = 8,
    /// Goroutine `a` exited (Go's GoDestroy).
    GoDestroy = 9,
    /// The running goroutine `a` entered a blocking call; its P is left in syscall state.
    GoSyscallBegin = 10,
    /// Goroutine `a` came back from its call and got a P at once (`head.p`; `b` = 1 if it was
    /// its old P).
    GoSyscallEnd = 11,
    /// Goroutine `a` came back from its call and found no P: it waits on the global queue.
    GoSyscallEndBlocked = 12,
    /// The M started spinning (looking for work to steal).
    SpinStart = 13,
    /// The M stopped spinning (`head.arg` = 1 if it found work).
    SpinStop = 14,
    /// The M went to sleep: the CPU halts, the thread waits (`head.arg` = 0 on the idle list,
    /// 1 as the poller; `a` = the poller's deadline in clock ticks, 0 if none).
    MSleep = 15,
    /// The M woke up.
    MWake = 16,
    /// Due timers ran on this M: `a` = how many.
    TimerFire = 17,
    /// The M's P took `a` goroutines from the global queue (one to run, the rest to its
    /// local queue).
    GlobalRunqGet = 18,
    /// Sysmon took P `a` from the M that was in a blocking call with it (Go's ProcSteal). `b`
    /// is 0: that M already dropped the P at its GoSyscallBegin (ProcStop).
    ProcRetake = 19,
    /// Sysmon asked goroutine `a`, running on P `b`, to yield (its time slice is up).
    PreemptRequest = 20,

    /// The trace starts: `ts` = its first instant, `a` = clock ticks per second, `b` =
    /// GOMAXPROCS, `c` = [`VERSION`].
    Header = 0xe0,
    /// The M in `head.m` runs on CPU `a` (the kernel), or is host thread `a` (`head.arg` = 1
    /// in the kernel, 0 on the host).
    MInfo = 0xe1,
    /// The M in `head.m` lost `a` events (its buffer was full and could not be written out).
    Lost = 0xe2,
    /// The runtime's own count `a` (a [`Counter`]) was `b` when the trace ended.
    Counter = 0xe3,
    /// The trace ends at `ts`: `a` = Ms whose buffers could not be written out (still
    /// running when the runtime ended; their events are missing and counted here).
    End = 0xe4,
}

impl Kind {
    pub const ALL: [Kind; 25] = [
        Kind::ProcStart,
        Kind::ProcStop,
        Kind::ProcSteal,
        Kind::GoCreate,
        Kind::GoStart,
        Kind::GoStop,
        Kind::GoBlock,
        Kind::GoUnblock,
        Kind::GoDestroy,
        Kind::GoSyscallBegin,
        Kind::GoSyscallEnd,
        Kind::GoSyscallEndBlocked,
        Kind::SpinStart,
        Kind::SpinStop,
        Kind::MSleep,
        Kind::MWake,
        Kind::TimerFire,
        Kind::GlobalRunqGet,
        Kind::ProcRetake,
        Kind::PreemptRequest,
        Kind::Header,
        Kind::MInfo,
        Kind::Lost,
        Kind::Counter,
        Kind::End,
    ];

    pub fn from_u8(v: u8) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| *k as u8 == v)
    }

    /// The event's name, Go's where Go has one.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ProcStart => "ProcStart",
            Kind::ProcStop => "ProcStop",
            Kind::ProcSteal => "ProcSteal",
            Kind::GoCreate => "GoCreate",
            Kind::GoStart => "GoStart",
            Kind::GoStop => "GoStop",
            Kind::GoBlock => "GoBlock",
            Kind::GoUnblock => "GoUnblock",
            Kind::GoDestroy => "GoDestroy",
            Kind::GoSyscallBegin => "GoSyscallBegin",
            Kind::GoSyscallEnd => "GoSyscallEnd",
            Kind::GoSyscallEndBlocked => "GoSyscallEndBlocked",
            Kind::SpinStart => "SpinStart",
            Kind::SpinStop => "SpinStop",
            Kind::MSleep => "MSleep",
            Kind::MWake => "MWake",
            Kind::TimerFire => "TimerFire",
            Kind::GlobalRunqGet => "GlobalRunqGet",
            Kind::ProcRetake => "ProcRetake",
            Kind::PreemptRequest => "PreemptRequest",
            Kind::Header => "Header",
            Kind::MInfo => "MInfo",
            Kind::Lost => "Lost",
            Kind::Counter => "Counter",
            Kind::End => "End",
        }
    }

    /// Whether this is a meta record rather than a scheduler event.
    pub fn is_meta(self) -> bool {
        self as u8 >= 0xe0
    }
}

/// Why a running goroutine stopped while still runnable ([`Kind::GoStop`]'s `head.arg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StopReason {
    /// It yielded (`gosched`; Go: "runtime.Gosched").
    Yield = 0,
    /// It honoured a preemption request at a safe point (Go: "preempted").
    PreemptSync = 1,
    /// The timer interrupt stopped it where it stood (Go: "preempted", asynchronously).
    PreemptAsync = 2,
}

impl StopReason {
    pub fn from_u8(v: u8) -> Option<StopReason> {
        match v {
            0 => Some(StopReason::Yield),
            1 => Some(StopReason::PreemptSync),
            2 => Some(StopReason::PreemptAsync),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Yield => "yield",
            StopReason::PreemptSync => "preempted at a safe point",
            StopReason::PreemptAsync => "preempted by the timer interrupt",
        }
    }
}

/// What made a goroutine runnable ([`Kind::GoUnblock`]'s `head.arg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum UnblockSource {
    /// Another goroutine (`b`), through a channel, a lock, a WaitGroup.
    Goroutine = 0,
    /// A timer (a sleep ended, a timer channel fired).
    Timer = 1,
    /// An I/O event: in the kernel, the serial interrupt.
    Netpoll = 2,
    /// The runtime itself (g0, with no goroutine running).
    Runtime = 3,
}

impl UnblockSource {
    pub fn from_u8(v: u8) -> Option<UnblockSource> {
        match v {
            0 => Some(UnblockSource::Goroutine),
            1 => Some(UnblockSource::Timer),
            2 => Some(UnblockSource::Netpoll),
            3 => Some(UnblockSource::Runtime),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UnblockSource::Goroutine => "goroutine",
            UnblockSource::Timer => "timer",
            UnblockSource::Netpoll => "I/O interrupt",
            UnblockSource::Runtime => "runtime",
        }
    }
}

/// The runtime's counts written at the end ([`Kind::Counter`]'s `a`), for checking a trace
/// against the runtime's own bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Counter {
    /// Goroutines created (the goid generator).
    GoCreated = 0,
    /// Successful run-queue steals (the Ps' `nstolen`).
    Steals = 1,
    /// Preemptions honoured at a safe point.
    PreemptSync = 2,
    /// Goroutines stopped from the timer interrupt.
    PreemptAsync = 3,
    /// Preemption requests made by sysmon.
    PreemptRequests = 4,
    /// Ps taken from Ms in a blocking call.
    Retakes = 5,
    /// Timers run.
    TimersRun = 6,
}

impl Counter {
    pub const ALL: [Counter; 7] = [
        Counter::GoCreated,
        Counter::Steals,
        Counter::PreemptSync,
        Counter::PreemptAsync,
        Counter::PreemptRequests,
        Counter::Retakes,
        Counter::TimersRun,
    ];

    pub fn from_u64(v: u64) -> Option<Counter> {
        Counter::ALL.iter().copied().find(|c| *c as u64 == v)
    }

    pub fn name(self) -> &'static str {
        match self {
            Counter::GoCreated => "goroutines created",
            Counter::Steals => "steals",
            Counter::PreemptSync => "preemptions at a safe point",
            Counter::PreemptAsync => "preemptions from the timer interrupt",
            Counter::PreemptRequests => "preemption requests",
            Counter::Retakes => "Ps retaken from syscalls",
            Counter::TimersRun => "timers run",
        }
    }
}

/// Go's wait reasons (runtime2.go, `waitReasonStrings`), indexed by rt-core's `WaitReason`
/// (the code in [`Kind::GoBlock`]'s `head.arg`). rt-core's own strings are these.
pub const WAIT_REASONS: [&str; 15] = [
    "",
    "sync.WaitGroup.Wait",
    "chan send",
    "chan receive",
    "chan send (nil chan)",
    "chan receive (nil chan)",
    "select",
    "select (no cases)",
    "sleep",
    "sync.Mutex.Lock",
    "IO wait",
    "other",
    "sync.RWMutex.RLock",
    "sync.RWMutex.Lock",
    "sync.Cond.Wait",
];

/// One record, as its words. `repr(C)`: on a little-endian machine its memory is its bytes,
/// so a recorder can write a buffer of records out as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct Record {
    pub ts: u64,
    pub head: u64,
    pub a: u64,
    pub b: u64,
    pub c: u64,
}

impl Record {
    /// Builds a record's `head` word.
    #[inline(always)]
    pub const fn head(kind: u8, m: u16, p: u16, qlen: u16, arg: u8) -> u64 {
        kind as u64 | (m as u64) << 8 | (p as u64) << 24 | (qlen as u64) << 40 | (arg as u64) << 56
    }

    /// The kind byte (see [`Kind::from_u8`]).
    pub fn kind_byte(&self) -> u8 {
        self.head as u8
    }

    pub fn kind(&self) -> Option<Kind> {
        Kind::from_u8(self.kind_byte())
    }

    pub fn m(&self) -> u16 {
        (self.head >> 8) as u16
    }

    /// The P the writing M held, `None` for [`NO_P`].
    pub fn p(&self) -> Option<u16> {
        let p = (self.head >> 24) as u16;
        (p != NO_P).then_some(p)
    }

    pub fn qlen(&self) -> u16 {
        (self.head >> 40) as u16
    }

    pub fn arg(&self) -> u8 {
        (self.head >> 56) as u8
    }

    pub fn to_bytes(&self) -> [u8; RECORD_BYTES] {
        let mut out = [0u8; RECORD_BYTES];
        for (i, w) in [self.ts, self.head, self.a, self.b, self.c]
            .iter()
            .enumerate()
        {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(b: &[u8; RECORD_BYTES]) -> Record {
        let w = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(x)
        };
        Record {
            ts: w(0),
            head: w(1),
            a: w(2),
            b: w(3),
            c: w(4),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_through_its_bytes_and_head_fields() {
        let r = Record {
            ts: 0x0102_0304_0506_0708,
            head: Record::head(Kind::GoBlock as u8, 513, 7, 256, 3),
            a: 42,
            b: u64::MAX,
            c: 9,
        };
        let back = Record::from_bytes(&r.to_bytes());
        assert_eq!(back, r);
        assert_eq!(back.kind(), Some(Kind::GoBlock));
        assert_eq!(
            (back.m(), back.p(), back.qlen(), back.arg()),
            (513, Some(7), 256, 3)
        );
        let none = Record {
            head: Record::head(Kind::MWake as u8, SYSMON, NO_P, 0, 0),
            ..Record::default()
        };
        assert_eq!((none.m(), none.p()), (SYSMON, None));
    }

    #[test]
    fn every_kind_decodes_from_its_own_byte_and_no_other() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_u8(k as u8), Some(k), "{}", k.name());
        }
        assert_eq!(Kind::from_u8(0), None);
        assert_eq!(Kind::from_u8(0xff), None);
    }
}

//! A decoded trace as the views draw it: one track per M (CPU), slices of goroutine runs,
//! spans where the M halted or spun, instant marks, flows from a wake-up to the run it caused,
//! and per-P run-queue samples. Built from a [`crate::decode::Trace`] by [`build`]; times are
//! nanoseconds from the trace's start.
//!
//! Invariants of what [`build`] returns: every track's slices, halts and spins are in time
//! order and end at or before `duration_ns`; a slice never starts before the previous one on
//! its track ended (a GoStart on an M whose run is still open cuts that run off there, as
//! `SliceEnd::Unfinished`, and [`crate::check`] reports it); every flow ends at a GoStart at
//! or after its GoUnblock; `procs` has exactly `gomaxprocs` entries. Building never fails:
//! whatever is out of order is drawn as best it can be and left to [`crate::check`].

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::decode::Trace;
use crate::format::{Kind, Record, StopReason, UnblockSource, SYSMON};

/// How a slice (one run of a goroutine on an M) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceEnd {
    /// GoStop: still runnable.
    Stop(StopReason),
    /// GoBlock with this wait reason (an index into `format::WAIT_REASONS`).
    Block(u8),
    /// GoDestroy: its function returned.
    Destroy,
    /// GoSyscallBegin: it went into a blocking call (its run on this M goes on in the call).
    Syscall,
    /// The trace ended while it ran.
    Unfinished,
}

/// One run of a goroutine on an M.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub goid: u64,
    /// The P the M held when the run began (None: the M held none, e.g. after a syscall).
    pub p: Option<u16>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub end: SliceEnd,
}

/// An interval on an M's track that is not a goroutine's run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start_ns: u64,
    pub end_ns: u64,
}

/// What an instant mark on a track shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    /// GoCreate of `goid` by the goroutine running there.
    Create,
    /// ProcSteal: the M's P took `n` Gs from P `victim`.
    Steal { victim: u16, n: u64 },
    /// GoStop with a preemption reason (`goid` was stopped).
    Preempt(StopReason),
    /// Sysmon asked `goid` to yield (on sysmon's track).
    PreemptRequest,
    /// Sysmon took P `p` from an M in a blocking call (on sysmon's track).
    Retake { p: u16 },
    /// Timers ran (`n` of them).
    TimerFire { n: u64 },
    /// The P took `n` Gs from the global queue.
    GlobalRunqGet { n: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub ts_ns: u64,
    pub kind: MarkKind,
    /// The goroutine the mark is about (0 if none).
    pub goid: u64,
}

/// One M's track.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub m: u16,
    /// The CPU it runs on in the kernel (`MInfo`), or the host thread number.
    pub cpu: Option<u64>,
    /// "CPU n (Mn)" in the kernel, "thread n (Mn)" on the host, "sysmon" for sysmon's records.
    pub label: String,
    /// Runs, in time order, none overlapping (else [`crate::check`] reports it).
    pub slices: Vec<Slice>,
    /// Halted (MSleep..MWake).
    pub halts: Vec<Span>,
    /// Spinning (SpinStart..SpinStop).
    pub spins: Vec<Span>,
    pub marks: Vec<Mark>,
}

/// A wake-up: GoUnblock of `goid` on track `from_m` at `from_ns`, joined to that goroutine's
/// next GoStart on track `to_m` at `to_ns` (`to_ns >= from_ns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub goid: u64,
    pub source: UnblockSource,
    /// The goroutine that readied it (0 if none).
    pub waker: u64,
    pub from_m: u16,
    pub from_ns: u64,
    pub to_m: u16,
    pub to_ns: u64,
}

/// What is known of a goroutine.
#[derive(Debug, Clone, PartialEq)]
pub struct GInfo {
    pub goid: u64,
    /// "G17 worker": the id and the creating function's short name (or "main" for goroutine 1
    /// when it was created by the runtime).
    pub label: String,
    pub creator: u64,
    pub create_pc: u64,
    pub created_ns: Option<u64>,
}

/// One P's track: who held it when, and its run-queue length over time.
#[derive(Debug, Clone, PartialEq)]
pub struct PTrack {
    pub p: u16,
    /// (M, from, to): the M held this P over that interval.
    pub held: Vec<(u16, Span)>,
    /// (time, local run-queue length) samples, in time order.
    pub runq: Vec<(u64, u16)>,
}

/// The whole trace, ready to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// "kernel" or "host" (from MInfo), for labels.
    pub kernel: bool,
    pub gomaxprocs: u32,
    pub duration_ns: u64,
    /// M tracks in M order; sysmon's (if it wrote anything) last.
    pub tracks: Vec<Track>,
    pub procs: Vec<PTrack>,
    pub flows: Vec<Flow>,
    pub goroutines: BTreeMap<u64, GInfo>,
    /// Events lost, per M (only Ms that lost any).
    pub lost: BTreeMap<u16, u64>,
    /// Ms whose buffers were never written out.
    pub unflushed_ms: u64,
}

// ---------------------------------------------------------------------------------------
// Building the model from a trace.
//
// Each M's events go through one state machine ([`walk_ms`]), each goroutine's through
// another ([`lives`]), which [`crate::check`] runs again to report what did not fit.

/// Builds the model of a decoded trace. `name_of` maps a creation site's PC (GoCreate's `b`)
/// to the full name of the function that created the goroutine ("tests::sched::worker"),
/// or `None` if it does not know it; goroutine labels use its last segment ([`short_name`]).
pub fn build(t: &Trace, name_of: &dyn Fn(u64) -> Option<String>) -> Model {
    let (tracks, _) = walk_ms(t);
    let lives = lives(t);
    Model {
        kernel: t.ms.values().any(|&(_, cpu)| cpu),
        gomaxprocs: t.gomaxprocs,
        duration_ns: t.ns(t.end),
        tracks,
        procs: build_procs(t),
        flows: build_flows(t, &lives),
        goroutines: build_goroutines(t, name_of),
        lost: t
            .lost
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(&m, &n)| (m, n))
            .collect(),
        unflushed_ms: t.unflushed_ms,
    }
}

/// The short name of a function for a goroutine's label: the last `::` segment once generic
/// arguments (`<...>`), closure segments (`{{closure}}`, `{closure#0}`) and a symbol hash
/// (`h0123456789abcdef`) are taken out. "showcase::main::{{closure}}" → "main",
/// "<F as core::ops::FnOnce<()>>::call_once" → "call_once". `None` if nothing is left.
pub fn short_name(full: &str) -> Option<String> {
    let mut plain = String::with_capacity(full.len());
    let mut depth = 0usize;
    let mut prev = '\0';
    for c in full.chars() {
        match c {
            '<' => depth += 1,
            // The `>` of an arrow (`Fn() -> T`) closes nothing.
            '>' if prev != '-' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
        prev = c;
    }
    let is_hash = |s: &str| {
        s.len() == 17 && s.starts_with('h') && s[1..].chars().all(|c| c.is_ascii_hexdigit())
    };
    plain
        .split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.starts_with('{') && !is_hash(s))
        .last()
        .map(ToString::to_string)
}

/// The name of an M in messages: "M3", or "sysmon".
pub(crate) fn m_name(m: u16) -> String {
    if m == SYSMON {
        "sysmon".to_string()
    } else {
        format!("M{m}")
    }
}

/// Something the per-M walk of a trace found out of order (reported by [`crate::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MIssue {
    /// A GoStart or GoSyscallEnd (event `idx`) on an M whose run of `open` (since `since_ns`)
    /// had not ended.
    StartWhileOpen {
        idx: usize,
        open: u64,
        since_ns: u64,
    },
    /// A GoStop, GoBlock, GoDestroy or GoSyscallBegin (event `idx`) for a goroutine that was
    /// not running on that M (`running` was, or nothing).
    NotRunning { idx: usize, running: Option<u64> },
}

/// One M's state during the walk.
struct MWalk {
    track: Track,
    /// The run in progress: goid, P, start.
    open: Option<(u64, Option<u16>, u64)>,
    halt: Option<u64>,
    spin: Option<u64>,
}

fn track_label(t: &Trace, m: u16) -> (Option<u64>, String) {
    if m == SYSMON {
        return (None, "sysmon".to_string());
    }
    match t.ms.get(&m) {
        Some(&(n, true)) => (Some(n), format!("CPU {n} (M{m})")),
        Some(&(n, false)) => (Some(n), format!("thread {n} (M{m})")),
        None => (None, format!("M{m}")),
    }
}

/// The slice end a closing event gives.
fn slice_end(kind: Kind, arg: u8) -> SliceEnd {
    match kind {
        // An unknown reason (check.rs reports it) is drawn as a yield.
        Kind::GoStop => SliceEnd::Stop(StopReason::from_u8(arg).unwrap_or(StopReason::Yield)),
        Kind::GoBlock => SliceEnd::Block(arg),
        Kind::GoDestroy => SliceEnd::Destroy,
        _ => SliceEnd::Syscall,
    }
}

/// Walks every M's events through its state machine: its tracks (in M order, sysmon's last)
/// and what was out of order.
pub(crate) fn walk_ms(t: &Trace) -> (Vec<Track>, Vec<MIssue>) {
    let dur = t.ns(t.end);
    let mut ms: BTreeMap<u16, MWalk> = BTreeMap::new();
    let mut issues = Vec::new();
    for (idx, r) in t.events.iter().enumerate() {
        let Some(kind) = r.kind() else { continue };
        let ns = t.ns(r.ts);
        let st = ms.entry(r.m()).or_insert_with(|| {
            let (cpu, label) = track_label(t, r.m());
            MWalk {
                track: Track {
                    m: r.m(),
                    cpu,
                    label,
                    slices: Vec::new(),
                    halts: Vec::new(),
                    spins: Vec::new(),
                    marks: Vec::new(),
                },
                open: None,
                halt: None,
                spin: None,
            }
        });
        let mut mark = |kind: MarkKind, goid: u64| {
            st.track.marks.push(Mark {
                ts_ns: ns,
                kind,
                goid,
            })
        };
        match kind {
            Kind::GoCreate => mark(MarkKind::Create, r.a),
            Kind::ProcSteal => mark(
                MarkKind::Steal {
                    victim: r.a as u16,
                    n: r.b,
                },
                0,
            ),
            Kind::PreemptRequest => mark(MarkKind::PreemptRequest, r.a),
            Kind::ProcRetake => mark(MarkKind::Retake { p: r.a as u16 }, 0),
            Kind::TimerFire => mark(MarkKind::TimerFire { n: r.a }, 0),
            Kind::GlobalRunqGet => mark(MarkKind::GlobalRunqGet { n: r.a }, 0),
            Kind::GoStop => {
                if let Some(why @ (StopReason::PreemptSync | StopReason::PreemptAsync)) =
                    StopReason::from_u8(r.arg())
                {
                    mark(MarkKind::Preempt(why), r.a)
                }
            }
            _ => {}
        }
        match kind {
            Kind::GoStart | Kind::GoSyscallEnd => {
                if let Some((goid, p, start_ns)) = st.open.take() {
                    issues.push(MIssue::StartWhileOpen {
                        idx,
                        open: goid,
                        since_ns: start_ns,
                    });
                    st.track.slices.push(Slice {
                        goid,
                        p,
                        start_ns,
                        end_ns: ns,
                        end: SliceEnd::Unfinished,
                    });
                }
                st.open = Some((r.a, r.p(), ns));
            }
            Kind::GoStop | Kind::GoBlock | Kind::GoDestroy | Kind::GoSyscallBegin => {
                match st.open {
                    Some((goid, p, start_ns)) if goid == r.a => {
                        st.open = None;
                        st.track.slices.push(Slice {
                            goid,
                            p,
                            start_ns,
                            end_ns: ns,
                            end: slice_end(kind, r.arg()),
                        });
                    }
                    other => issues.push(MIssue::NotRunning {
                        idx,
                        running: other.map(|(g, _, _)| g),
                    }),
                }
            }
            Kind::MSleep => {
                st.halt.get_or_insert(ns);
            }
            Kind::MWake => {
                if let Some(start_ns) = st.halt.take() {
                    st.track.halts.push(Span {
                        start_ns,
                        end_ns: ns,
                    });
                }
            }
            Kind::SpinStart => {
                st.spin.get_or_insert(ns);
            }
            Kind::SpinStop => {
                if let Some(start_ns) = st.spin.take() {
                    st.track.spins.push(Span {
                        start_ns,
                        end_ns: ns,
                    });
                }
            }
            _ => {}
        }
    }
    let tracks = ms
        .into_values()
        .map(|mut st| {
            if let Some((goid, p, start_ns)) = st.open {
                st.track.slices.push(Slice {
                    goid,
                    p,
                    start_ns,
                    end_ns: dur.max(start_ns),
                    end: SliceEnd::Unfinished,
                });
            }
            if let Some(start_ns) = st.halt {
                st.track.halts.push(Span {
                    start_ns,
                    end_ns: dur.max(start_ns),
                });
            }
            if let Some(start_ns) = st.spin {
                st.track.spins.push(Span {
                    start_ns,
                    end_ns: dur.max(start_ns),
                });
            }
            st.track
        })
        .collect();
    (tracks, issues)
}

/// Where a goroutine is in its life (see [`lives`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GState {
    /// No event of it yet: it was created before the trace began, or is about to be.
    Unseen,
    Runnable,
    Running,
    Waiting,
    InSyscall,
    Dead,
    /// After an event that fit nowhere: anything but a GoCreate may come next.
    Uncertain,
}

impl GState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            GState::Unseen => "not yet seen",
            GState::Runnable => "runnable",
            GState::Running => "running",
            GState::Waiting => "waiting (blocked)",
            GState::InSyscall => "in a blocking call",
            GState::Dead => "destroyed",
            GState::Uncertain => "in doubt after an event out of order",
        }
    }
}

/// The kinds that move a goroutine (`a`) through its life.
pub(crate) fn is_life_event(k: Kind) -> bool {
    matches!(
        k,
        Kind::GoCreate
            | Kind::GoStart
            | Kind::GoStop
            | Kind::GoBlock
            | Kind::GoUnblock
            | Kind::GoDestroy
            | Kind::GoSyscallBegin
            | Kind::GoSyscallEnd
            | Kind::GoSyscallEndBlocked
    )
}

/// The state a life event needs the goroutine in, and the state it leaves it in.
pub(crate) fn life_transition(k: Kind) -> (GState, GState) {
    match k {
        Kind::GoCreate => (GState::Unseen, GState::Runnable),
        Kind::GoStart => (GState::Runnable, GState::Running),
        Kind::GoStop => (GState::Running, GState::Runnable),
        Kind::GoBlock => (GState::Running, GState::Waiting),
        Kind::GoUnblock => (GState::Waiting, GState::Runnable),
        Kind::GoDestroy => (GState::Running, GState::Dead),
        Kind::GoSyscallBegin => (GState::Running, GState::InSyscall),
        Kind::GoSyscallEnd => (GState::InSyscall, GState::Running),
        Kind::GoSyscallEndBlocked => (GState::InSyscall, GState::Runnable),
        // Not a life event: it changes nothing.
        _ => (GState::Unseen, GState::Unseen),
    }
}

/// The state after `k` from `s`, if `k` may happen in `s`. A goroutine not seen yet may be
/// anywhere in its life (the trace may have begun after it was created).
fn life_step(s: GState, k: Kind) -> Option<GState> {
    let (need, next) = life_transition(k);
    let any = match s {
        GState::Unseen => is_life_event(k),
        GState::Uncertain => is_life_event(k) && k != Kind::GoCreate,
        _ => false,
    };
    (s == need || any).then_some(next)
}

/// One goroutine's life events in an order that makes it valid where one exists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Life {
    /// Indices into `Trace::events`: by timestamp, and within a timestamp in an order the
    /// life allows (equal timestamps are concurrent).
    pub(crate) order: Vec<usize>,
    /// Events that no order could make valid, with the state the goroutine was in. After
    /// one, the goroutine's state is [`GState::Uncertain`], so one mistake is reported once.
    pub(crate) errors: Vec<(usize, GState)>,
}

/// Every goroutine's life, by goid.
pub(crate) fn lives(t: &Trace) -> BTreeMap<u64, Life> {
    let mut per: BTreeMap<u64, Vec<(usize, Kind)>> = BTreeMap::new();
    for (i, r) in t.events.iter().enumerate() {
        if let Some(k) = r.kind().filter(|&k| is_life_event(k)) {
            per.entry(r.a).or_default().push((i, k));
        }
    }
    per.into_iter()
        .map(|(g, evs)| (g, resolve_life(t, &evs)))
        .collect()
}

fn resolve_life(t: &Trace, evs: &[(usize, Kind)]) -> Life {
    let mut life = Life::default();
    let mut s = GState::Unseen;
    let mut rest = evs;
    while let Some(&(first, _)) = rest.first() {
        let ts = t.events[first].ts;
        let n = rest
            .iter()
            .take_while(|(i, _)| t.events[*i].ts == ts)
            .count();
        let mut group: Vec<(usize, Kind)> = rest[..n].to_vec();
        rest = &rest[n..];
        while !group.is_empty() {
            let best = best_order(s, &group);
            for &(i, k) in &best {
                s = life_step(s, k).unwrap_or(s);
                life.order.push(i);
            }
            group.retain(|e| !best.contains(e));
            if !group.is_empty() {
                // Nothing fits here: report the first in stream order and go on after it.
                let (i, _) = group.remove(0);
                life.errors.push((i, s));
                s = GState::Uncertain;
                life.order.push(i);
            }
        }
    }
    life
}

/// The longest valid ordering of `group` from `s` found (all of it if any exists), trying
/// stream order first; the search is bounded for pathological groups.
fn best_order(s: GState, group: &[(usize, Kind)]) -> Vec<(usize, Kind)> {
    fn dfs(
        s: GState,
        group: &[(usize, Kind)],
        used: &mut [bool],
        cur: &mut Vec<(usize, Kind)>,
        best: &mut Vec<(usize, Kind)>,
        budget: &mut u32,
    ) -> bool {
        if cur.len() > best.len() {
            best.clone_from(cur);
        }
        if cur.len() == group.len() {
            return true;
        }
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        for j in 0..group.len() {
            if used[j] {
                continue;
            }
            if let Some(next) = life_step(s, group[j].1) {
                used[j] = true;
                cur.push(group[j]);
                if dfs(next, group, used, cur, best, budget) {
                    return true;
                }
                cur.pop();
                used[j] = false;
            }
        }
        false
    }
    let mut best = Vec::new();
    let mut used = alloc::vec![false; group.len()];
    let mut budget = 10_000;
    dfs(s, group, &mut used, &mut Vec::new(), &mut best, &mut budget);
    best
}

/// Each GoUnblock joined to its goroutine's next GoStart in its life's order.
fn build_flows(t: &Trace, lives: &BTreeMap<u64, Life>) -> Vec<Flow> {
    let mut flows: Vec<(usize, Flow)> = Vec::new();
    for (&goid, life) in lives {
        let mut pending: Vec<(usize, &Record)> = Vec::new();
        for &i in &life.order {
            let r = &t.events[i];
            match r.kind() {
                Some(Kind::GoUnblock) => pending.push((i, r)),
                Some(Kind::GoStart) => {
                    for (i_u, u) in pending.drain(..) {
                        flows.push((
                            i_u,
                            Flow {
                                goid,
                                // An unknown source (check.rs reports it) is drawn as the runtime.
                                source: UnblockSource::from_u8(u.arg())
                                    .unwrap_or(UnblockSource::Runtime),
                                waker: u.b,
                                from_m: u.m(),
                                from_ns: t.ns(u.ts),
                                to_m: r.m(),
                                to_ns: t.ns(r.ts),
                            },
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    flows.sort_by_key(|&(i, _)| i);
    flows.into_iter().map(|(_, f)| f).collect()
}

/// The Ps' tracks: who held each P (ProcStart..ProcStop, or until sysmon retook it), and its
/// run-queue length as every event written with it reported.
fn build_procs(t: &Trace) -> Vec<PTrack> {
    let dur = t.ns(t.end);
    let n = t.gomaxprocs as usize;
    let mut procs: Vec<PTrack> = (0..n)
        .map(|p| PTrack {
            p: p as u16,
            held: Vec::new(),
            runq: Vec::new(),
        })
        .collect();
    // M → (the P it holds, since when).
    let mut holding: BTreeMap<u16, (u16, u64)> = BTreeMap::new();
    fn close(procs: &mut [PTrack], m: u16, (p, start_ns): (u16, u64), end_ns: u64) {
        if let Some(pt) = procs.get_mut(p as usize) {
            pt.held.push((m, Span { start_ns, end_ns }));
        }
    }
    for r in &t.events {
        let ns = t.ns(r.ts);
        let m = r.m();
        if let Some(pt) = r.p().and_then(|p| procs.get_mut(p as usize)) {
            if pt.runq.last().map(|&(_, q)| q) != Some(r.qlen()) {
                pt.runq.push((ns, r.qlen()));
            }
        }
        match r.kind() {
            Some(Kind::ProcStart) => {
                let Some(p) = r.p() else { continue };
                match holding.get(&m) {
                    Some(&(held, _)) if held == p => {}
                    _ => {
                        if let Some(old) = holding.insert(m, (p, ns)) {
                            close(&mut procs, m, old, ns);
                        }
                    }
                }
            }
            Some(Kind::ProcStop) => {
                if let Some(&(held, _)) = holding.get(&m) {
                    if r.p().is_none_or(|p| p == held) {
                        let old = holding.remove(&m).expect("just looked up");
                        close(&mut procs, m, old, ns);
                    }
                }
            }
            Some(Kind::ProcRetake) => {
                let (p, victim) = (r.a as u16, r.b as u16);
                if holding.get(&victim).is_some_and(|&(held, _)| held == p) {
                    let old = holding.remove(&victim).expect("just looked up");
                    close(&mut procs, victim, old, ns);
                }
            }
            _ => {}
        }
    }
    for (m, old) in holding {
        close(&mut procs, m, old, dur.max(old.1));
    }
    for pt in &mut procs {
        pt.held.sort_by_key(|&(m, s)| (s.start_ns, m));
    }
    procs
}

/// What is known of every goroutine the trace mentions (as the subject of an event, a
/// creator or a waker).
fn build_goroutines(t: &Trace, name_of: &dyn Fn(u64) -> Option<String>) -> BTreeMap<u64, GInfo> {
    let mut gs: BTreeMap<u64, GInfo> = BTreeMap::new();
    fn see(gs: &mut BTreeMap<u64, GInfo>, goid: u64) {
        gs.entry(goid).or_insert_with(|| GInfo {
            goid,
            label: String::new(),
            creator: 0,
            create_pc: 0,
            created_ns: None,
        });
    }
    for r in &t.events {
        let Some(kind) = r.kind() else { continue };
        match kind {
            Kind::GoCreate => {
                see(&mut gs, r.a);
                let g = gs.get_mut(&r.a).expect("just inserted");
                if g.created_ns.is_none() {
                    g.creator = r.c;
                    g.create_pc = r.b;
                    g.created_ns = Some(t.ns(r.ts));
                }
                if r.c != 0 {
                    see(&mut gs, r.c);
                }
            }
            Kind::GoUnblock => {
                see(&mut gs, r.a);
                if r.b != 0 {
                    see(&mut gs, r.b);
                }
            }
            k if is_life_event(k) || k == Kind::PreemptRequest => see(&mut gs, r.a),
            _ => {}
        }
    }
    for g in gs.values_mut() {
        let short = match g.created_ns {
            // Goroutine 1 made by the runtime is main, whatever runtime function made it.
            Some(_) if g.goid == 1 && g.creator == 0 => Some("main".to_string()),
            Some(_) => name_of(g.create_pc).and_then(|n| short_name(&n)),
            None => None,
        };
        g.label = match short {
            Some(s) => format!("G{} {s}", g.goid),
            None => format!("G{}", g.goid),
        };
    }
    gs
}

#[cfg(test)]
pub(crate) mod tests {
    //! Hand-made traces, shared with check.rs's and summary.rs's tests.

    use super::*;
    use crate::decode::decode;
    use crate::format::{Counter, NO_P, VERSION};
    use Kind::*;

    /// The header's timestamp: event times are given in ns since it (1 tick = 1 ns).
    pub(crate) const T0: u64 = 1_000;
    pub(crate) const PC_MAIN: u64 = 0x1000;
    pub(crate) const PC_WORKER: u64 = 0x2000;
    pub(crate) const PC_ANON: u64 = 0x3000;

    /// An event at `ns` on M `m` with argument `a`, written with no P.
    pub(crate) fn ev(ns: u64, kind: Kind, m: u16, a: u64) -> Record {
        Record {
            ts: T0 + ns,
            head: Record::head(kind as u8, m, NO_P, 0, 0),
            a,
            ..Record::default()
        }
    }

    /// Setters for the rest of a record.
    pub(crate) trait With {
        fn with_p(self, p: u16, qlen: u16) -> Self;
        fn with_arg(self, arg: u8) -> Self;
        fn with_b(self, b: u64) -> Self;
        fn with_c(self, c: u64) -> Self;
    }

    impl With for Record {
        fn with_p(self, p: u16, qlen: u16) -> Record {
            let h = self.head;
            Record {
                head: Record::head(h as u8, (h >> 8) as u16, p, qlen, (h >> 56) as u8),
                ..self
            }
        }
        fn with_arg(self, arg: u8) -> Record {
            let h = self.head;
            Record {
                head: Record::head(
                    h as u8,
                    (h >> 8) as u16,
                    (h >> 24) as u16,
                    (h >> 40) as u16,
                    arg,
                ),
                ..self
            }
        }
        fn with_b(self, b: u64) -> Record {
            Record { b, ..self }
        }
        fn with_c(self, c: u64) -> Record {
            Record { c, ..self }
        }
    }

    pub(crate) fn minfo(m: u16, n: u64, cpu: bool) -> Record {
        ev(0, MInfo, m, n).with_arg(cpu as u8)
    }

    pub(crate) fn counter(c: Counter, v: u64) -> Record {
        ev(0, Kind::Counter, SYSMON, c as u64).with_b(v)
    }

    /// A whole trace: header, the records in the order given, End at `end_ns`; decoded.
    pub(crate) fn trace(records: &[Record], end_ns: u64) -> Trace {
        let header = Record {
            ts: T0,
            head: Record::head(Header as u8, SYSMON, NO_P, 0, 0),
            a: 1_000_000_000,
            b: 2,
            c: VERSION,
        };
        let bytes: Vec<u8> = [header]
            .iter()
            .chain(records)
            .chain(&[ev(end_ns, End, SYSMON, 0)])
            .flat_map(|r| r.to_bytes())
            .collect();
        decode(&bytes).expect("a hand-made trace decodes")
    }

    pub(crate) fn names(pc: u64) -> Option<String> {
        match pc {
            PC_MAIN => Some("showcase::main::{{closure}}".to_string()),
            PC_WORKER => Some("tests::sched::worker".to_string()),
            _ => None,
        }
    }

    /// A correct two-CPU trace of 300 ns. G1 (main) creates G2, blocks; G2 creates G3 and
    /// wakes G1, which M1 (woken from a halt, spinning) steals and runs: a flow from M0 to
    /// M1. G1 makes a short syscall (back with its P), then a long one during which sysmon
    /// retakes P1, so it comes back without a P and M0 runs it from the global queue. G2 is
    /// preempted at a safe point after sysmon's request, G3 by the timer, G3 yields once.
    /// M0 halts twice (the second halt lasts to the end), M1 spins three times (the last to
    /// the end). Stream order: M1's records, sysmon's, then M0's.
    pub(crate) fn sample_records() -> Vec<Record> {
        let m1 = [
            ev(0, ProcStart, 1, 0).with_p(1, 0),
            ev(0, SpinStart, 1, 0).with_p(1, 0),
            ev(20, SpinStop, 1, 0).with_p(1, 0),
            ev(20, ProcStop, 1, 0).with_p(1, 0),
            ev(20, MSleep, 1, 0),
            ev(65, MWake, 1, 0),
            ev(65, ProcStart, 1, 0).with_p(1, 0),
            ev(65, SpinStart, 1, 0).with_p(1, 0),
            ev(70, ProcSteal, 1, 0).with_p(1, 0).with_b(1),
            ev(70, SpinStop, 1, 0).with_p(1, 0).with_arg(1),
            ev(70, GoStart, 1, 1).with_p(1, 0),
            ev(80, GoSyscallBegin, 1, 1).with_p(1, 0),
            ev(90, GoSyscallEnd, 1, 1).with_p(1, 0).with_b(1),
            ev(120, GoSyscallBegin, 1, 1).with_p(1, 0),
            ev(140, GoSyscallEndBlocked, 1, 1),
            ev(140, MSleep, 1, 0),
            ev(250, MWake, 1, 0),
            ev(250, SpinStart, 1, 0),
        ];
        let sysmon = [
            ev(90, PreemptRequest, SYSMON, 2).with_b(0),
            ev(130, ProcRetake, SYSMON, 1).with_b(1),
        ];
        let m0 = [
            ev(0, ProcStart, 0, 0).with_p(0, 0),
            ev(0, GoCreate, 0, 1).with_p(0, 0).with_b(PC_MAIN).with_c(0),
            ev(10, GoStart, 0, 1).with_p(0, 0),
            ev(20, GoCreate, 0, 2)
                .with_p(0, 0)
                .with_b(PC_WORKER)
                .with_c(1),
            ev(30, GoBlock, 0, 1).with_p(0, 1).with_arg(1),
            ev(30, GoStart, 0, 2).with_p(0, 0),
            ev(50, GoCreate, 0, 3)
                .with_p(0, 0)
                .with_b(PC_ANON)
                .with_c(2),
            ev(60, GoUnblock, 0, 1).with_p(0, 1).with_arg(0).with_b(2),
            ev(100, GoStop, 0, 2).with_p(0, 1).with_arg(1),
            ev(100, GoStart, 0, 3).with_p(0, 1),
            ev(150, GoStop, 0, 3).with_p(0, 1).with_arg(2),
            ev(150, GoStart, 0, 2).with_p(0, 1),
            ev(200, GoDestroy, 0, 2).with_p(0, 1),
            ev(200, GoStart, 0, 3).with_p(0, 0),
            ev(205, GoStop, 0, 3).with_p(0, 0).with_arg(0),
            ev(205, GoStart, 0, 3).with_p(0, 0),
            ev(210, GoDestroy, 0, 3).with_p(0, 0),
            ev(210, GlobalRunqGet, 0, 1).with_p(0, 0),
            ev(210, GoStart, 0, 1).with_p(0, 0),
            ev(220, GoDestroy, 0, 1).with_p(0, 0),
            ev(220, ProcStop, 0, 0).with_p(0, 0),
            ev(220, MSleep, 0, 0),
            ev(280, MWake, 0, 0),
            ev(285, ProcStart, 0, 0).with_p(0, 0),
            ev(285, TimerFire, 0, 2).with_p(0, 0),
            ev(290, ProcStop, 0, 0).with_p(0, 0),
            ev(290, MSleep, 0, 0),
        ];
        let meta = [
            minfo(0, 0, true),
            minfo(1, 3, true),
            counter(Counter::GoCreated, 3),
            counter(Counter::Steals, 1),
            counter(Counter::PreemptSync, 1),
            counter(Counter::PreemptAsync, 1),
            counter(Counter::PreemptRequests, 1),
            counter(Counter::Retakes, 1),
            counter(Counter::TimersRun, 2),
        ];
        m1.into_iter().chain(sysmon).chain(meta).chain(m0).collect()
    }

    pub(crate) fn sample() -> (Trace, Model) {
        let t = trace(&sample_records(), 300);
        let m = build(&t, &names);
        (t, m)
    }

    fn slice(goid: u64, p: u16, start_ns: u64, end_ns: u64, end: SliceEnd) -> Slice {
        Slice {
            goid,
            p: Some(p),
            start_ns,
            end_ns,
            end,
        }
    }

    fn span(start_ns: u64, end_ns: u64) -> Span {
        Span { start_ns, end_ns }
    }

    fn mark(ts_ns: u64, kind: MarkKind, goid: u64) -> Mark {
        Mark { ts_ns, kind, goid }
    }

    #[test]
    fn the_sample_gives_its_tracks_slices_spans_and_marks() {
        let (_, m) = sample();
        assert!(m.kernel);
        assert_eq!((m.gomaxprocs, m.duration_ns), (2, 300));
        let labels: Vec<_> = m
            .tracks
            .iter()
            .map(|t| (t.m, t.cpu, t.label.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                (0, Some(0), "CPU 0 (M0)"),
                (1, Some(3), "CPU 3 (M1)"),
                (SYSMON, None, "sysmon")
            ]
        );
        let [m0, m1, sm] = &m.tracks[..] else {
            panic!("three tracks")
        };
        use SliceEnd::*;
        assert_eq!(
            m0.slices,
            [
                slice(1, 0, 10, 30, Block(1)),
                slice(2, 0, 30, 100, Stop(StopReason::PreemptSync)),
                slice(3, 0, 100, 150, Stop(StopReason::PreemptAsync)),
                slice(2, 0, 150, 200, Destroy),
                slice(3, 0, 200, 205, Stop(StopReason::Yield)),
                slice(3, 0, 205, 210, Destroy),
                slice(1, 0, 210, 220, Destroy),
            ]
        );
        assert_eq!(m0.halts, [span(220, 280), span(290, 300)]);
        assert_eq!(m0.spins, []);
        assert_eq!(
            m0.marks,
            [
                mark(0, MarkKind::Create, 1),
                mark(20, MarkKind::Create, 2),
                mark(50, MarkKind::Create, 3),
                mark(100, MarkKind::Preempt(StopReason::PreemptSync), 2),
                mark(150, MarkKind::Preempt(StopReason::PreemptAsync), 3),
                mark(210, MarkKind::GlobalRunqGet { n: 1 }, 0),
                mark(285, MarkKind::TimerFire { n: 2 }, 0),
            ]
        );
        assert_eq!(
            m1.slices,
            [slice(1, 1, 70, 80, Syscall), slice(1, 1, 90, 120, Syscall)]
        );
        assert_eq!(m1.halts, [span(20, 65), span(140, 250)]);
        assert_eq!(m1.spins, [span(0, 20), span(65, 70), span(250, 300)]);
        assert_eq!(m1.marks, [mark(70, MarkKind::Steal { victim: 0, n: 1 }, 0)]);
        assert_eq!((sm.slices.len(), sm.halts.len(), sm.spins.len()), (0, 0, 0));
        assert_eq!(
            sm.marks,
            [
                mark(90, MarkKind::PreemptRequest, 2),
                mark(130, MarkKind::Retake { p: 1 }, 0)
            ]
        );
    }

    #[test]
    fn the_sample_gives_its_flow_procs_and_goroutines() {
        let (_, m) = sample();
        assert_eq!(
            m.flows,
            [Flow {
                goid: 1,
                source: UnblockSource::Goroutine,
                waker: 2,
                from_m: 0,
                from_ns: 60,
                to_m: 1,
                to_ns: 70,
            }]
        );
        assert_eq!(m.procs.len(), 2);
        assert_eq!(m.procs[0].p, 0);
        assert_eq!(m.procs[0].held, [(0, span(0, 220)), (0, span(285, 290))]);
        assert_eq!(
            m.procs[0].runq,
            [(0, 0), (30, 1), (30, 0), (60, 1), (200, 0)]
        );
        // P1 is held until sysmon retakes it from M1's syscall.
        assert_eq!(m.procs[1].held, [(1, span(0, 20)), (1, span(65, 130))]);
        assert_eq!(m.procs[1].runq, [(0, 0)]);
        let gs: Vec<_> = m
            .goroutines
            .values()
            .map(|g| {
                (
                    g.goid,
                    g.label.as_str(),
                    g.creator,
                    g.create_pc,
                    g.created_ns,
                )
            })
            .collect();
        assert_eq!(
            gs,
            [
                (1, "G1 main", 0, PC_MAIN, Some(0)),
                (2, "G2 worker", 1, PC_WORKER, Some(20)),
                (3, "G3", 2, PC_ANON, Some(50)),
            ]
        );
        assert!(m.lost.is_empty());
        assert_eq!(m.unflushed_ms, 0);
    }

    #[test]
    fn short_names_drop_paths_closures_generics_and_hashes() {
        let cases = [
            ("tests::sched::worker", Some("worker")),
            ("showcase::main::{{closure}}", Some("main")),
            ("showcase::main::{{closure}}::{{closure}}", Some("main")),
            ("app::serve::{closure#0}", Some("serve")),
            ("tests::sched::spin::<u32>", Some("spin")),
            (
                "<alloc::boxed::Box<F> as core::ops::FnOnce<A>>::call_once",
                Some("call_once"),
            ),
            ("rt::spawn::<fn() -> u32>::h0123456789abcdef", Some("spawn")),
            ("hello", Some("hello")),
            ("{{closure}}", None),
            ("", None),
        ];
        for (full, want) in cases {
            assert_eq!(short_name(full).as_deref(), want, "{full}");
        }
    }

    #[test]
    fn host_labels_unknown_ms_and_goroutines_from_before_the_trace() {
        let t = trace(
            &[
                minfo(2, 7, false),
                ev(5, GoStart, 2, 9).with_p(0, 0),
                ev(6, GoStop, 2, 9).with_p(0, 0),
                ev(7, GoCreate, 4, 10).with_b(0x99).with_c(9),
                ev(8, GoCreate, 4, 1).with_b(PC_WORKER).with_c(9),
            ],
            10,
        );
        let m = build(&t, &names);
        assert!(!m.kernel);
        let labels: Vec<_> = m
            .tracks
            .iter()
            .map(|t| (t.m, t.cpu, t.label.as_str()))
            .collect();
        assert_eq!(labels, [(2, Some(7), "thread 7 (M2)"), (4, None, "M4")]);
        let gs: Vec<_> = m
            .goroutines
            .values()
            .map(|g| (g.goid, g.label.as_str()))
            .collect();
        // G9 ran before the trace knew where it came from; G10's creator is unknown to
        // name_of; G1 created by a goroutine is named like any other.
        assert_eq!(gs, [(1, "G1 worker"), (9, "G9"), (10, "G10")]);
        assert_eq!(m.goroutines[&9].created_ns, None);
    }

    #[test]
    fn equal_timestamps_across_ms_are_ordered_as_the_life_allows() {
        // M1's GoStart of G5 comes first in the stream, at the same instant as M0's
        // GoUnblock that made it runnable: the flow still joins them.
        let t = trace(
            &[
                ev(40, GoStart, 1, 5).with_p(1, 0),
                ev(50, GoDestroy, 1, 5).with_p(1, 0),
                ev(10, GoStart, 0, 5).with_p(0, 0),
                ev(20, GoBlock, 0, 5).with_p(0, 0).with_arg(3),
                ev(40, GoUnblock, 0, 5).with_arg(1),
            ],
            60,
        );
        let m = build(&t, &names);
        assert_eq!(
            m.flows,
            [Flow {
                goid: 5,
                source: UnblockSource::Timer,
                waker: 0,
                from_m: 0,
                from_ns: 40,
                to_m: 1,
                to_ns: 40,
            }]
        );
        let life = &lives(&t)[&5];
        assert_eq!(life.errors, []);
        let kinds: Vec<_> = life
            .order
            .iter()
            .map(|&i| t.events[i].kind().unwrap())
            .collect();
        assert_eq!(kinds, [GoStart, GoBlock, GoUnblock, GoStart, GoDestroy]);
    }

    #[test]
    fn an_unblock_without_a_later_start_gives_no_flow_and_open_runs_end_at_the_end() {
        let t = trace(
            &[
                ev(10, GoStart, 0, 5).with_p(0, 0),
                ev(20, GoBlock, 0, 5).with_p(0, 0),
                ev(30, GoUnblock, 0, 5),
                ev(35, GoStart, 0, 6).with_p(0, 0),
                ev(36, MSleep, 1, 0),
            ],
            50,
        );
        let m = build(&t, &names);
        assert_eq!(m.flows, []);
        assert_eq!(
            m.tracks[0].slices[1],
            Slice {
                goid: 6,
                p: Some(0),
                start_ns: 35,
                end_ns: 50,
                end: SliceEnd::Unfinished
            }
        );
        assert_eq!(m.tracks[1].halts, [span(36, 50)]);
    }
}

//! A loom model of the park/wake protocol of idle Ms (idle.rs, sched.rs; Go's "Worker thread
//! parking/unparking" comment in proc.go): a submitter readies a goroutine (`runqput` +
//! `wakep`) while the only spinning M gives up. The goroutine must run: it is never left in a
//! run queue with every other M asleep (the lost wake-up: the spinner drops its P, the
//! submitter sees `nmspinning > 0` and wakes no one, then the spinner sleeps).
//!
//! What is real and what is mirrored: the run queues are the runtime's own
//! [`RunQueue`](rt_core::runq::RunQueue) (built with `--cfg loom`). The protocol around them
//! cannot be run apart from G/M switching, so the model mirrors it step by step, under the same
//! names, with the same atomic orderings: `wakep`, `startm`, `newm` (a new loom thread),
//! `mget`, `stopm`, `pidleput`/`pidleget`, `acquirep`/`releasep`, `become_spinning`,
//! `reset_spinning` (idle.rs), and `find_runnable` with `steal_work` and `last_look`
//! (sched.rs: the local queue, the steal with runnext on the last pass, the "stop:" path that
//! releases the P, drops `spinning` and re-checks every run queue). `sched.lock` is a loom
//! `Mutex`; an M's note (m.rs `Note`) is a flag and a loom `Notify`.
//!
//! Left out, because they are not part of this race: the global run queue (no goroutine goes
//! there here), timers and the poller (`poll::idle` with nothing pending is `stopm`), syscalls
//! and retaken Ps, `checkdead`, and the time a spinner keeps spinning (one steal pass: the
//! later passes look at the same queues, and the race is at the pass's end).
//!
//! Bounds, and why they suffice: 2 Ps and one goroutine (the least with a submitter and a
//! spinner: the submitter's P holds the work, the spinner's P is the one that goes idle);
//! Ms: the submitter (the main thread, whose goroutine keeps running: it never looks for work
//! itself), the spinner, and those that `newm` starts (at most two more: loom's thread limit,
//! and the model asserts it is not reached); run queues of 4 slots (`runq.rs`'s loom size).
//! Preemption bound 4: the lost wake-up needs one preemption of the spinner (between its
//! `pidleput` and its `nmspinning` decrement) and one of the submitter; the others let a
//! `newm`'d M or a woken one interleave with both (~49,000 interleavings, ~11 s in release;
//! bound 5 would take minutes).
//!
//! Memory order: the model keeps the runtime's orderings, and loom explores the executions they
//! allow (a load may read a value older than the latest). Written first against the code as
//! it was, the model found the lost wake-up with no bug in the logic: the submitter read the
//! spinner's old `nmspinning` (1) while the spinner, after its decrement, read the submitter's
//! old, empty queue (store buffering: release and acquire orderings, even on RMWs, do not
//! forbid each side's load missing the other side's earlier store). Go's design asks for a StoreLoad barrier on both sides; the runtime now has
//! them (`fence(SeqCst)` at the top of `wakep`, and in `find_runnable` between the decrement
//! and `last_look`), and so does the model, at the same places. (loom treats SeqCst loads and
//! RMWs as AcqRel, but models SeqCst fences exactly.)
//!
//! Teeth: two broken variants, each of which must end in loom's "deadlock" (the goroutine
//! queued, the submitter waiting for it, every other M asleep): `NO_RECHECK` drops
//! `last_look` (the spinner's re-check of every run queue once it stopped spinning), and
//! `NO_FENCE` drops the two fences.
//!
//! Run with: `RUSTFLAGS="--cfg loom" cargo test -p rt-core --release --test loom_park`
//! (`cargo xtask test` does, in its own target directory).

#![cfg(loom)]

mod loom_util;

use loom::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex, Notify};
use loom::thread;
use loom_util::{expect_bug, model, Parked};
use rt_core::runq::RunQueue;

const BOUND: usize = 4;

/// The variants of the protocol: the runtime's, and two broken ones the model must catch.
const SOUND: u8 = 0;
/// `find_runnable` without `last_look`.
const NO_RECHECK: u8 = 1;
/// Without the two `fence(SeqCst)`s (`wakep`'s and `find_runnable`'s before `last_look`).
const NO_FENCE: u8 = 2;
const NP: usize = 2;
/// Ms the model may have: the submitter, the spinner, and two that `newm` may start.
const NM: usize = 4;
const NONE: usize = usize::MAX;
const IDLE: u32 = 0;
const RUNNING: u32 = 1;

/// The one goroutine (the queue moves pointers; this one is never dereferenced).
const G: *mut u8 = std::ptr::dangling_mut::<u8>();

/// m.rs `Note`: an M's sleep and wake-up.
struct Note {
    key: AtomicBool,
    n: Notify,
}

impl Note {
    fn new() -> Self {
        Note {
            key: AtomicBool::new(false),
            n: Notify::new(),
        }
    }
    fn wakeup(&self) {
        assert!(
            !self.key.swap(true, Ordering::Release),
            "notewakeup - double wakeup"
        );
        self.n.notify();
    }
    fn sleep(&self) {
        while !self.key.load(Ordering::Acquire) {
            self.n.wait();
        }
    }
    fn clear(&self) {
        self.key.store(false, Ordering::Relaxed);
    }
}

/// m.rs `M`: the fields the protocol uses.
struct M {
    park: Note,
    nextp: AtomicUsize,
    spinning: AtomicBool,
    /// Only the M itself writes its `p` (a plain field in m.rs).
    p: AtomicUsize,
}

/// p.rs `P`: its run queue and status.
struct P {
    runq: RunQueue<u8, 4>,
    status: AtomicU32,
}

/// sched.rs `SchedLocked`: the idle lists.
struct Locked {
    pidle: Vec<usize>,
    midle: Vec<usize>,
    mnext: usize,
}

/// sched.rs `Sched`, the fields of the protocol; `V` is the variant (`SOUND`, ...).
struct Sched<const V: u8> {
    lock: Mutex<Locked>,
    nmspinning: AtomicI32,
    npidle: AtomicI32,
    exiting: AtomicBool,
    allp: [P; NP],
    ms: [M; NM],
    /// The Ms that `newm` started, for the submitter to join at the end.
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
    /// The goroutine ran (its M readies the waiting submitter: once, or `Parked` panics).
    ran: Parked,
}

type S<const V: u8> = Arc<Sched<V>>;

fn new_sched<const V: u8>() -> S<V> {
    let m = || M {
        park: Note::new(),
        nextp: AtomicUsize::new(NONE),
        spinning: AtomicBool::new(false),
        p: AtomicUsize::new(NONE),
    };
    let p = || P {
        runq: RunQueue::new(),
        status: AtomicU32::new(RUNNING),
    };
    Arc::new(Sched {
        lock: Mutex::new(Locked {
            pidle: Vec::new(),
            midle: Vec::new(),
            mnext: 2,
        }),
        nmspinning: AtomicI32::new(0),
        npidle: AtomicI32::new(0),
        exiting: AtomicBool::new(false),
        allp: [p(), p()],
        ms: [m(), m(), m(), m()],
        threads: Mutex::new(Vec::new()),
        ran: Parked::new(),
    })
}

/// idle.rs `become_spinning`.
fn become_spinning<const V: u8>(s: &Sched<V>, m: usize) {
    s.ms[m].spinning.store(true, Ordering::Relaxed);
    s.nmspinning.fetch_add(1, Ordering::AcqRel);
}

/// idle.rs `reset_spinning`.
fn reset_spinning<const V: u8>(s: &S<V>, m: usize) {
    s.ms[m].spinning.store(false, Ordering::Relaxed);
    assert!(
        s.nmspinning.fetch_sub(1, Ordering::AcqRel) > 0,
        "resetspinning: negative nmspinning"
    );
    wakep(s);
}

/// idle.rs `wakep`.
fn wakep<const V: u8>(s: &S<V>) {
    // wakep's fence: the caller's runqput before our reads of npidle and nmspinning.
    if V != NO_FENCE {
        fence(Ordering::SeqCst);
    }
    if s.npidle.load(Ordering::Relaxed) == 0
        || s.nmspinning.load(Ordering::Relaxed) != 0
        || s.nmspinning
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let pp = pidleget(s, &mut s.lock.lock().unwrap());
    if pp == NONE {
        s.nmspinning.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    startm(s, pp, true);
}

/// idle.rs `startm` with a P (the only way `wakep` calls it).
fn startm<const V: u8>(s: &S<V>, pp: usize, spinning: bool) {
    let mut l = s.lock.lock().unwrap();
    if s.exiting.load(Ordering::Acquire) {
        pidleput(s, &mut l, pp);
        if spinning {
            s.nmspinning.fetch_sub(1, Ordering::AcqRel);
        }
        return;
    }
    match l.midle.pop() {
        // mget
        Some(nmp) => {
            drop(l);
            s.ms[nmp].spinning.store(spinning, Ordering::Relaxed);
            s.ms[nmp].nextp.store(pp, Ordering::Release);
            s.ms[nmp].park.wakeup();
        }
        None => {
            let id = l.mnext;
            l.mnext += 1;
            drop(l);
            newm(s, id, pp, spinning);
        }
    }
}

/// idle.rs `newm`: a new M (a loom thread) starts with `pp`.
fn newm<const V: u8>(s: &S<V>, id: usize, pp: usize, spinning: bool) {
    assert!(id < NM, "model bound: more than {NM} Ms");
    s.ms[id].spinning.store(spinning, Ordering::Relaxed);
    s.ms[id].nextp.store(pp, Ordering::Release);
    let s2 = s.clone();
    let h = thread::spawn(move || mstart(&s2, id));
    s.threads.lock().unwrap().push(h);
}

/// idle.rs `pidleput` (with `releasep`'s status store done by the caller).
fn pidleput<const V: u8>(s: &Sched<V>, l: &mut Locked, pp: usize) {
    assert!(
        s.allp[pp].runq.is_empty() || s.exiting.load(Ordering::Acquire),
        "pidleput: P {pp} has a non-empty run queue"
    );
    s.allp[pp].status.store(IDLE, Ordering::Release);
    l.pidle.push(pp);
    s.npidle.fetch_add(1, Ordering::AcqRel);
}

/// idle.rs `pidleget`.
fn pidleget<const V: u8>(s: &Sched<V>, l: &mut Locked) -> usize {
    match l.pidle.pop() {
        Some(pp) => {
            s.npidle.fetch_sub(1, Ordering::AcqRel);
            pp
        }
        None => NONE,
    }
}

/// idle.rs `acquirep`.
fn acquirep<const V: u8>(s: &Sched<V>, m: usize, pp: usize) {
    assert_eq!(
        s.ms[m].p.load(Ordering::Relaxed),
        NONE,
        "acquirep: M {m} already wired"
    );
    s.ms[m].p.store(pp, Ordering::Relaxed);
    s.allp[pp].status.store(RUNNING, Ordering::Release);
}

/// idle.rs `releasep`.
fn releasep<const V: u8>(s: &Sched<V>, m: usize) -> usize {
    let pp = s.ms[m].p.load(Ordering::Relaxed);
    s.allp[pp].status.store(IDLE, Ordering::Release);
    s.ms[m].p.store(NONE, Ordering::Relaxed);
    pp
}

/// idle.rs `stopm`: on the idle list, asleep until `startm` hands over a P (or exit).
fn stopm<const V: u8>(s: &Sched<V>, m: usize) {
    {
        let mut l = s.lock.lock().unwrap();
        if s.exiting.load(Ordering::Acquire) {
            return;
        }
        l.midle.push(m);
    }
    s.ms[m].park.sleep();
    s.ms[m].park.clear();
    let pp = s.ms[m].nextp.swap(NONE, Ordering::AcqRel);
    if pp != NONE {
        acquirep(s, m, pp);
    }
}

/// sched.rs `steal_work`: the other P (if not idle), runnext included (the last pass).
fn steal_work<const V: u8>(s: &Sched<V>, pp: usize) -> Option<*mut u8> {
    (0..NP)
        .filter(|&p2| p2 != pp && s.allp[p2].status.load(Ordering::Acquire) != IDLE)
        .find_map(|p2| s.allp[pp].runq.steal_from(&s.allp[p2].runq, true, &|| {}))
}

/// sched.rs `last_look`.
fn last_look<const V: u8>(s: &Sched<V>, m: usize) -> bool {
    for p2 in &s.allp {
        if !p2.runq.is_empty() {
            let pp = pidleget(s, &mut s.lock.lock().unwrap());
            if pp != NONE {
                acquirep(s, m, pp);
                become_spinning(s, m);
                return true;
            }
            return false;
        }
    }
    false
}

/// sched.rs `find_runnable` (the parts of this race; see the header).
fn find_runnable<const V: u8>(s: &S<V>, m: usize) -> Option<*mut u8> {
    let me = &s.ms[m];
    loop {
        if s.exiting.load(Ordering::Acquire) {
            if me.spinning.swap(false, Ordering::Relaxed) {
                s.nmspinning.fetch_sub(1, Ordering::AcqRel);
            }
            return None;
        }
        let pp = me.p.load(Ordering::Relaxed);
        if pp == NONE {
            stopm(s, m);
            continue;
        }
        // queued_work: the local queue.
        if let Some((gp, _)) = s.allp[pp].runq.get() {
            return Some(gp);
        }
        let busy = NP as i32 - s.npidle.load(Ordering::Relaxed);
        if me.spinning.load(Ordering::Relaxed) || 2 * s.nmspinning.load(Ordering::Relaxed) < busy {
            if !me.spinning.load(Ordering::Relaxed) {
                become_spinning(s, m);
            }
            if let Some(gp) = steal_work(s, pp) {
                return Some(gp);
            }
        }
        // stop:
        let mut l = s.lock.lock().unwrap();
        if s.exiting.load(Ordering::Acquire) {
            continue;
        }
        let pp = releasep(s, m);
        pidleput(s, &mut l, pp);
        drop(l);
        if me.spinning.swap(false, Ordering::Relaxed) {
            assert!(
                s.nmspinning.fetch_sub(1, Ordering::AcqRel) > 0,
                "findrunnable: negative nmspinning"
            );
            // find_runnable's fence: our decrement before last_look's reads of the queues.
            if V != NO_FENCE {
                fence(Ordering::SeqCst);
            }
            if V != NO_RECHECK && last_look(s, m) {
                continue;
            }
        }
        // poll::idle, with no timer or I/O pending: stopm (at the loop's top).
    }
}

/// run.rs `mstart` → sched.rs `schedule`: runs the goroutine if it finds it (`reset_spinning`
/// first, as `schedule` does), and ends when the runtime exits.
fn mstart<const V: u8>(s: &S<V>, m: usize) {
    let p = s.ms[m].nextp.swap(NONE, Ordering::AcqRel);
    if p != NONE {
        acquirep(s, m, p);
    }
    while let Some(gp) = find_runnable(s, m) {
        if s.ms[m].spinning.load(Ordering::Relaxed) {
            reset_spinning(s, m);
        }
        assert_eq!(gp, G, "ran something that was never queued");
        s.ran.ready();
    }
}

/// The submitter (M 0 on P 0, running a goroutine that readies G) and the spinner (M 1 on
/// P 1, spinning with nothing to find yet).
fn submit_while_the_spinner_gives_up<const V: u8>() {
    let s = new_sched::<V>();
    acquirep(&s, 0, 0);
    // M 1 starts as `wakep` would start it: with P 1, counted as spinning.
    s.nmspinning.store(1, Ordering::Relaxed);
    s.ms[1].spinning.store(true, Ordering::Relaxed);
    s.ms[1].nextp.store(1, Ordering::Relaxed);
    let s1 = s.clone();
    let spinner = thread::spawn(move || mstart(&s1, 1));
    // goready(G): runqput to our P's runnext, then wakep.
    assert!(s.allp[0].runq.put(G, true).is_none());
    wakep(&s);
    // Our goroutine keeps running; G must run elsewhere.
    s.ran.park();
    // The runtime exits: every idle M wakes and leaves (idle.rs `wake_all_idle`).
    {
        let mut l = s.lock.lock().unwrap();
        s.exiting.store(true, Ordering::Release);
        while let Some(m) = l.midle.pop() {
            s.ms[m].park.wakeup();
        }
    }
    spinner.join().unwrap();
    loop {
        let h = s.threads.lock().unwrap().pop();
        match h {
            Some(h) => h.join().unwrap(),
            None => break,
        }
    }
}

#[test]
fn a_submitted_goroutine_always_runs() {
    model(
        "park: submit + wakep vs the last spinner",
        BOUND,
        submit_while_the_spinner_gives_up::<SOUND>,
    );
}

#[test]
#[ignore = "the broken variant: run (and expected to fail) by broken_park_is_caught"]
fn broken_park_without_last_look() {
    model(
        "park (broken: no re-check after spinning)",
        BOUND,
        submit_while_the_spinner_gives_up::<NO_RECHECK>,
    );
}

#[test]
fn broken_park_is_caught() {
    expect_bug("broken_park_without_last_look", "deadlock");
}

#[test]
#[ignore = "the broken variant: run (and expected to fail) by broken_park_fences_are_caught"]
fn broken_park_without_fences() {
    model(
        "park (broken: no StoreLoad fences)",
        BOUND,
        submit_while_the_spinner_gives_up::<NO_FENCE>,
    );
}

#[test]
fn broken_park_fences_are_caught() {
    expect_bug("broken_park_without_fences", "deadlock");
}

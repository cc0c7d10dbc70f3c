//! The soak: for `soak=N` minutes (kernel argument; `cargo xtask soak --minutes N` sets it,
//! with a random tick and time slice), rounds that mix everything the runtime does at once:
//! spawning and exiting in bursts (other Ps steal), channels and selects with timeouts,
//! timers started and stopped, `Mutex` and `WaitGroup` work, deep stacks that grow (demand
//! paging) and are trimmed again, syscall hand-offs, tight loops preempted asynchronously and
//! loops with safe points preempted synchronously.
//!
//! Every round checks its own books exactly (each value sent is received once, each counter
//! reaches its total, each timer not stopped fires once and a stopped one never). At the end
//! of every minute, with the round's goroutines gone, it prints the resources in use: frames,
//! heap, live goroutines and the stacks the runtime holds; the run fails if, after the first
//! minute (the caches warm up), any of them grows past its first value by more than a margin,
//! or if live goroutines differ at all: that would be growth without bound in a longer run.
//! @smp 2
//! @args soak=2
//! @timeout 420

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::time::Duration;
use rt_core::sync::Mutex;
use rt_core::{chan, select, spawn, time, WaitGroup};

kernel::test_kernel!(soak);

/// xorshift64* (Vigna): the soak's choices, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// What the rounds did: printed each minute (all counted after the round's checks passed).
#[derive(Default, Clone, Copy)]
struct Tally {
    rounds: u64,
    messages: u64,
    select_timeouts: u64,
    spawned: u64,
    lock_sections: u64,
    timers_fired: u64,
    timers_stopped: u64,
    deep_stacks: u64,
    syscalls: u64,
}

/// The resources a leak would grow.
#[derive(Clone, Copy, Debug)]
struct Resources {
    frames: u64,
    heap_bytes: u64,
    live_gs: usize,
    /// G structs the runtime has made (Go's allgs: reused, never freed).
    allgs: usize,
    /// Ms made (Go's mcount).
    ms: usize,
    stacks_held: u64,
}

fn resources() -> Resources {
    // A goroutine that has called `done` may not have exited yet: give the round's last ones
    // a moment to finish (only the main goroutine should be left).
    let until = time::now() + 500_000_000;
    while rt_core::num_goroutine() > 1 && time::now() < until {
        time::sleep(Duration::from_millis(1));
    }
    let m = kernel::rt::stats::mem_snapshot();
    let (allocs, frees, _) = kernel::rt::stats::stack_counts().expect("the runtime runs");
    Resources {
        frames: m.frames,
        heap_bytes: m.heap_bytes,
        live_gs: rt_core::num_goroutine(),
        allgs: m.gs,
        ms: m.ms,
        stacks_held: allocs - frees,
    }
}

fn soak() {
    let args = kernel::args::get();
    let minutes = args.soak_minutes.max(1);
    let seed = if args.seed != 0 {
        args.seed
    } else {
        kernel::x86::tsc::rdtsc() | 1
    };
    kernel::println!(
        "soak: {minutes} minute(s), seed {seed}, tick {} ms, time slice {} ms, {} CPU(s)",
        args.tick_ms(),
        args.timeslice_ms(),
        kernel::x86::percpu::ONLINE.load(Ordering::SeqCst)
    );
    kernel::rt::run::run(0, move || {
        let mut rng = Rng(seed);
        let start = time::now();
        let mut total = Tally::default();
        let mut first: Option<Resources> = None;
        for minute in 1..=minutes {
            let end = start + minute * 60_000_000_000;
            let mut t = Tally::default();
            while time::now() < end {
                round(&mut rng, &mut t);
            }
            let r = resources();
            total.rounds += t.rounds;
            kernel::println!(
                "soak: minute {minute}/{minutes}: {} rounds, {} messages ({} select timeouts), {} goroutines, {} lock sections, {} timers fired and {} stopped, {} deep stacks, {} syscalls; frames in use {}, heap in use {} KiB, live Gs {} ({} G structs), Ms {}, stacks held {}",
                t.rounds,
                t.messages,
                t.select_timeouts,
                t.spawned,
                t.lock_sections,
                t.timers_fired,
                t.timers_stopped,
                t.deep_stacks,
                t.syscalls,
                r.frames,
                r.heap_bytes / 1024,
                r.live_gs,
                r.allgs,
                r.ms,
                r.stacks_held
            );
            assert!(t.rounds > 0, "minute {minute}: no round finished");
            match first {
                None => first = Some(r),
                Some(f) => bounded(minute, &f, &r),
            }
        }
        let p = kernel::rt::stats::preemptions().expect("the runtime runs");
        kernel::println!(
            "soak: done: {} rounds, preemptions {} requested, {} at safe points, {} asynchronous",
            total.rounds,
            p.requests,
            p.sync,
            p.asynchronous
        );
        assert!(p.sync > 0, "no synchronous preemption in the whole soak");
        if !kernel::args::get().async_preempt_off && !kernel::args::get().preempt_off {
            assert!(
                p.asynchronous > 0,
                "no asynchronous preemption in the whole soak"
            );
        }
    });
}

/// Fails if `now` has grown past `first` (the end of minute 1) by more than a margin: a
/// quarter, plus a fixed slack for what one round may leave cached.
fn bounded(minute: u64, first: &Resources, now: &Resources) {
    assert_eq!(
        now.live_gs, first.live_gs,
        "minute {minute}: live goroutines {} after minute 1, {} now: goroutines leak",
        first.live_gs, now.live_gs
    );
    let grew = |what: &str, a: u64, b: u64, slack: u64| {
        assert!(
            b <= a + a / 4 + slack,
            "minute {minute}: {what} grew from {a} after minute 1 to {b}: a leak"
        );
    };
    grew("frames in use", first.frames, now.frames, 512);
    grew(
        "heap bytes in use",
        first.heap_bytes,
        now.heap_bytes,
        512 * 1024,
    );
    grew("stacks held", first.stacks_held, now.stacks_held, 64);
    grew("G structs", first.allgs as u64, now.allgs as u64, 64);
    grew("Ms", first.ms as u64, now.ms as u64, 4);
}

/// How long one round may take: rounds take milliseconds (2333 in a minute at `-smp 4`), so
/// a round still unfinished after this is hung, not slow.
const ROUND_LIMIT: Duration = Duration::from_secs(30);

/// One round: every kind of work at once, then its books checked.
fn round(rng: &mut Rng, t: &mut Tally) {
    let wg = Arc::new(WaitGroup::new());
    let spawned = Arc::new(AtomicU64::new(0));
    let go = |wg: &Arc<WaitGroup>, f: alloc::boxed::Box<dyn FnOnce() + Send>| {
        wg.add(1);
        spawned.fetch_add(1, Ordering::Relaxed);
        let wg = wg.clone();
        spawn(move || {
            f();
            wg.done();
        });
    };

    // Channels and select with timeouts: producers send every value of 0..n exactly once,
    // over a buffered or an unbuffered channel, retrying after a timeout; consumers mark each
    // value in a bitmap (a second mark is a duplicate) until both channels are closed.
    let producers = rng.range(1, 4);
    let per = rng.range(50, 400);
    let n = producers * per;
    let seen: Arc<Vec<AtomicU64>> =
        Arc::new((0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect());
    let dups = Arc::new(AtomicU64::new(0));
    let timeouts = Arc::new(AtomicU64::new(0));
    let buffered = chan::make::<u64>(rng.range(1, 64) as usize);
    let unbuffered = chan::make::<u64>(0);
    let senders = Arc::new(WaitGroup::new());
    for p in 0..producers {
        senders.add(1);
        let (b, u, s, to) = (
            buffered.clone(),
            unbuffered.clone(),
            senders.clone(),
            timeouts.clone(),
        );
        let wait_us = rng.range(50, 2000);
        go(
            &wg,
            alloc::boxed::Box::new(move || {
                for i in 0..per {
                    let v = p * per + i;
                    loop {
                        let timeout = time::after(Duration::from_micros(wait_us));
                        let sent = select! {
                            send(b, v) => true,
                            send(u, v) => true,
                            recv(timeout) -> _ => false,
                        };
                        if sent {
                            break;
                        }
                        to.fetch_add(1, Ordering::Relaxed);
                    }
                }
                s.done();
            }),
        );
    }
    {
        // The closer: once every producer is done.
        let (b, u, s) = (buffered.clone(), unbuffered.clone(), senders.clone());
        go(
            &wg,
            alloc::boxed::Box::new(move || {
                s.wait();
                b.close();
                u.close();
            }),
        );
    }
    for _ in 0..rng.range(1, 3) {
        let (b, u, seen, dups, to) = (
            buffered.clone(),
            unbuffered.clone(),
            seen.clone(),
            dups.clone(),
            timeouts.clone(),
        );
        go(
            &wg,
            alloc::boxed::Box::new(move || {
                let (mut b, mut u) = (Some(b), Some(u));
                while b.is_some() || u.is_some() {
                    let timeout = time::after(Duration::from_millis(1));
                    let got = select! {
                        recv(b.as_ref()) -> v => v.ok_or(0u8),
                        recv(u.as_ref()) -> v => v.ok_or(1u8),
                        recv(timeout) -> _ => Err(2u8),
                    };
                    match got {
                        Ok(v) => {
                            let bit = 1u64 << (v % 64);
                            if seen[(v / 64) as usize].fetch_or(bit, Ordering::Relaxed) & bit != 0 {
                                dups.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        // A closed channel: Go's idiom, the case becomes nil.
                        Err(0) => b = None,
                        Err(1) => u = None,
                        Err(_) => {
                            to.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }),
        );
    }

    // Mutex: k goroutines each add `each` under the lock, yielding inside now and then.
    let counter = Arc::new(Mutex::new(0u64));
    let (k, each) = (rng.range(2, 6), rng.range(20, 200));
    for _ in 0..k {
        let c = counter.clone();
        go(
            &wg,
            alloc::boxed::Box::new(move || {
                for i in 0..each {
                    let mut g = c.lock();
                    *g += 1;
                    if i.is_multiple_of(16) {
                        rt_core::gosched();
                    }
                    drop(g);
                }
            }),
        );
    }

    // A burst: one goroutine spawns many tiny ones (the other Ps steal them).
    let burst = rng.range(50, 400);
    let ran = Arc::new(AtomicU64::new(0));
    {
        let ran = ran.clone();
        let inner = wg.clone();
        go(
            &wg,
            alloc::boxed::Box::new(move || {
                for _ in 0..burst {
                    inner.add(1);
                    let (ran, inner) = (ran.clone(), inner.clone());
                    spawn(move || {
                        ran.fetch_add(1, Ordering::Relaxed);
                        inner.done();
                    });
                }
            }),
        );
    }

    // Deep stacks: recursion through 1 KiB frames, checked against the closed form.
    let deep = rng.range(1, 3);
    let depth = rng.range(32, 400);
    let bad_deep = Arc::new(AtomicU64::new(0));
    for _ in 0..deep {
        let bad = bad_deep.clone();
        go(
            &wg,
            alloc::boxed::Box::new(move || {
                if recurse(depth) != depth * (depth + 1) / 2 {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
            }),
        );
    }

    // A syscall hand-off: the P may be retaken while the goroutine "blocks".
    let syscall_us = rng.range(100, 5000);
    go(
        &wg,
        alloc::boxed::Box::new(move || {
            rt_core::entersyscall();
            let until = kernel::x86::tsc::nanos() + syscall_us * 1000;
            while kernel::x86::tsc::nanos() < until {
                core::hint::spin_loop();
            }
            rt_core::exitsyscall();
        }),
    );

    // Spinners: a tight loop without safe points (asynchronous preemption) and one with them.
    let spin_us = rng.range(1000, 15_000);
    go(
        &wg,
        alloc::boxed::Box::new(move || {
            let until = kernel::x86::tsc::nanos() + spin_us * 1000;
            while kernel::x86::tsc::nanos() < until {
                core::hint::spin_loop();
            }
        }),
    );
    go(
        &wg,
        alloc::boxed::Box::new(move || {
            let until = kernel::x86::tsc::nanos() + spin_us * 1000;
            while kernel::x86::tsc::nanos() < until {
                rt_core::preempt_point();
            }
        }),
    );

    // Timers: each fires once unless stopped first; a stopped one (stop() == true) never.
    let ntimers = rng.range(4, 24) as usize;
    let fired: Arc<Vec<AtomicU32>> = Arc::new((0..ntimers).map(|_| AtomicU32::new(0)).collect());
    let mut timers = Vec::new();
    for i in 0..ntimers {
        let f = fired.clone();
        let d = Duration::from_micros(rng.range(0, 3000));
        timers.push(time::after_func(d, move || {
            f[i].fetch_add(1, Ordering::SeqCst);
        }));
    }
    let mut stopped = Vec::new();
    for (i, tm) in timers.iter().enumerate() {
        if rng.next().is_multiple_of(3) && tm.stop() {
            stopped.push(i);
        }
    }

    // A round that does not finish is a hang: after ROUND_LIMIT the soak prints every
    // goroutine's traceback (the Ctrl-\\ dump, kernel/src/rt/dump.rs) and fails, instead of
    // leaving the harness to time out an hour later with one busy CPU and no clue.
    let finished = chan::make::<()>(1);
    let (f, w) = (finished.clone(), wg.clone());
    spawn(move || {
        w.wait();
        f.send(());
    });
    let limit = time::after(ROUND_LIMIT);
    select! {
        recv(finished) -> _ => {},
        recv(limit) -> _ => {
            kernel::rt::dump::on_demand(None);
            panic!(
                "a round did not finish within {} s (its goroutine dump is above)",
                ROUND_LIMIT.as_secs()
            );
        },
    }

    // The books.
    let mut marked = 0u64;
    for (w, word) in seen.iter().enumerate() {
        let bits = word.load(Ordering::Relaxed);
        marked += bits.count_ones() as u64;
        let valid = if (w as u64 + 1) * 64 <= n {
            u64::MAX
        } else {
            (1u64 << (n % 64)) - 1
        };
        assert_eq!(bits & !valid, 0, "a value outside 0..{n} was received");
    }
    assert_eq!(
        dups.load(Ordering::Relaxed),
        0,
        "a value was received twice"
    );
    assert_eq!(marked, n, "values lost: {} of {n} received", marked);
    assert_eq!(*counter.lock(), k * each, "Mutex: an update was lost");
    assert_eq!(
        ran.load(Ordering::Relaxed),
        burst,
        "a burst goroutine did not run"
    );
    assert_eq!(
        bad_deep.load(Ordering::Relaxed),
        0,
        "a deep stack's data changed"
    );
    // Timers that were not stopped fire once, within a while.
    let until = time::now() + 2_000_000_000;
    loop {
        let pending = (0..ntimers)
            .filter(|i| !stopped.contains(i) && fired[*i].load(Ordering::SeqCst) == 0)
            .count();
        if pending == 0 {
            break;
        }
        assert!(time::now() < until, "{pending} timer(s) never fired");
        time::sleep(Duration::from_millis(1));
    }
    for (i, f) in fired.iter().enumerate() {
        let want = u32::from(!stopped.contains(&i));
        assert_eq!(
            f.load(Ordering::SeqCst),
            want,
            "timer {i} fired {} times",
            f.load(Ordering::SeqCst)
        );
    }

    t.rounds += 1;
    t.messages += n;
    t.select_timeouts += timeouts.load(Ordering::Relaxed);
    t.spawned += spawned.load(Ordering::Relaxed) + burst;
    t.lock_sections += k * each;
    t.timers_fired += (ntimers - stopped.len()) as u64;
    t.timers_stopped += stopped.len() as u64;
    t.deep_stacks += deep;
    t.syscalls += 1;
}

/// Sums 1..=n through n frames of 1 KiB each (the stack grows by demand faults).
#[inline(never)]
fn recurse(n: u64) -> u64 {
    let mut pad = [0u8; 1024];
    pad[(n % 1024) as usize] = n as u8;
    let pad = core::hint::black_box(pad);
    if n == 0 {
        return pad[0] as u64;
    }
    rt_core::preempt_point();
    n + recurse(n - 1) + pad[(n % 1024) as usize] as u64 - (n as u8) as u64
}

//! rt-core's scheduler benchmarks on host threads (run by `cargo xtask bench`, which sets Go's
//! runtime beside them). A program, not a test: prints one JSON object per line,
//! `{"name": ..., "procs": ..., "ns_per_op": ...}`, each the median of several runs.
//!
//! - `switch`: one `swtch` between two contexts (no scheduler), the cost a goroutine switch
//!   rests on; `floor_switch`: the same ping-pong with `corosensei` (the physical floor).
//! - `gosched`: the round trip of one goroutine yielding and getting the processor back;
//!   `gosched_pingpong`: two goroutines taking turns (GOMAXPROCS 1 and 2).
//! - `spawn`: spawn + run + exit of one goroutine, 1M of them (GOMAXPROCS 1 and 2);
//!   `spawn_nocache`: the same, 100k, with rt-core's per-P stack cache off.
//! - `chan_pingpong`: two goroutines bounce a value over two unbuffered channels, per round
//!   trip (a send and a receive each way); `chan_buffered`: one producer, one consumer, a
//!   channel of capacity 128, per message (GOMAXPROCS 1 and 2).
//! - `preempt_point`: one safe-point check with no request pending (Go's prologue compare).
//! - `preempt_latency` (and `_max`): at GOMAXPROCS=1, how late a goroutine sleeping 1 ms
//!   wakes beside a loop with no safe point at all (no call, no `preempt_point`), which only
//!   asynchronous preemption (sysmon's signal, host/signal.rs) can stop: Go's experiment with
//!   its `for {}`, row for row.
//! - `sleep_late` (and `_max`): how late `time::sleep(1 ms)` wakes with nothing else running
//!   (`time::now()` after waking minus the deadline), median and max over 200 sleeps: the
//!   timer path alone (heap, poller M, the platform's sleep) (GOMAXPROCS 1 and 2).
//! - `select_timeout`: a `select!` on a never-ready channel and `time::after(100 us)`, per
//!   select including the wait (so 100 us + the timer's overhead) (GOMAXPROCS 1 and 2).
//!
//! The whole-program rows, each run alone in its process by `--only NAME --procs P` (so that
//! no stack cache or freed memory from the rows before it is left for it, and a failure loses
//! that row alone), the median of 3 runs (1 with `--quick`):
//! - `skynet`: a tree of goroutines of fan-out 10 with 10^6 leaves (1,111,111 goroutines in
//!   all); each leaf sends its number up an unbuffered channel, each inner node sends the sum of
//!   its 10 children up, the root checks 499999500000; ns per leaf.
//! - `ring`: 503 goroutines in a ring of unbuffered channels pass a token 10^6 hops (the
//!   benchmark game's thread-ring); ns per hop.
//! - `parked_<n>` (`--only parked --n N`, N = 1,000,000 by default; `cargo xtask bench` runs
//!   10k, 100k and 1m): n goroutines that each block receiving on one unbuffered channel; ns per
//!   goroutine until all are parked, and `"bytes_per_g"` on the line, the growth of VmRSS
//!   (/proc/self/status) per parked goroutine; then the channel is closed. Every goroutine here
//!   gets a never-used stack slot (host/stacks.rs: its guard installed and top page committed
//!   when carved), so this row is the cost of fresh stacks; `spawn_nocache` reuses slots.
//!
//! The command line is the one every benchmark program of `cargo xtask bench` takes:
//! `[--quick] [--procs P] [--only skynet|ring|parked [--n N]]`
//! (and `--only chan_pingpong`: that row alone, to compare a channel change before and after); without `--only` the rows
//! above it, at `--procs P` alone if given, else at 1 and 2.

use std::time::Instant;

use rt_core::arch::Gobuf;
use rt_core::arch::{prepare_new, swtch};
use rt_core::{gosched, spawn, Runtime, WaitGroup};

// The command line, the output lines, the VmRSS reading and the whole-program rows' shapes are
// those of every benchmark program of `cargo xtask bench`: one source, the peers' library
// (which builds outside this workspace, so it is included here as a module, not a crate).
#[allow(dead_code)] // the peers' failure lines and helpers that this program does not need
#[path = "../../xtask/bench/peers/src/lib.rs"]
mod common;
use common::{
    median, parked_name, report, report_with_bytes, vm_rss, whole_runs, Args, RING_HOPS, RING_SIZE,
    RUNS, SKYNET_LEAVES, SKYNET_SUM,
};

// --- switch: main <-> a context that switches straight back ---------------------------------

/// A saved context shared by the benchmark's two sides (which never run at the same time).
struct Ctx(std::cell::UnsafeCell<Gobuf>);
// SAFETY: only one of the two contexts runs at any time, and they hand over by `swtch`.
unsafe impl Sync for Ctx {}

static MAIN: Ctx = Ctx(std::cell::UnsafeCell::new(Gobuf {
    sp: 0,
    pc: 0,
    bp: 0,
}));
static OTHER: Ctx = Ctx(std::cell::UnsafeCell::new(Gobuf {
    sp: 0,
    pc: 0,
    bp: 0,
}));

extern "C" fn bouncer() -> ! {
    loop {
        // SAFETY: only this benchmark's two contexts use MAIN and OTHER, one at a time.
        unsafe { swtch(OTHER.0.get(), MAIN.0.get()) };
    }
}

fn bench_switch(iters: u64) -> f64 {
    let stack = vec![0u8; 64 * 1024].into_boxed_slice();
    let hi = (stack.as_ptr() as usize + stack.len()) & !15;
    // SAFETY: the stack is ours for the benchmark; the bouncer never returns.
    unsafe { prepare_new(&mut *OTHER.0.get(), hi, bouncer) };
    let t = Instant::now();
    for _ in 0..iters {
        // SAFETY: OTHER is a context on `stack`, which lives until the end of this function.
        unsafe { swtch(MAIN.0.get(), OTHER.0.get()) };
    }
    let ns = t.elapsed().as_nanos() as f64 / (2 * iters) as f64; // two switches per round trip
    drop(stack);
    ns
}

fn bench_floor(iters: u64) -> f64 {
    use corosensei::{Coroutine, CoroutineResult};
    let mut co = Coroutine::new(|y, ()| loop {
        y.suspend(());
    });
    let t = Instant::now();
    for _ in 0..iters {
        match co.resume(()) {
            CoroutineResult::Yield(()) => {}
            CoroutineResult::Return(()) => unreachable!(),
        }
    }
    t.elapsed().as_nanos() as f64 / (2 * iters) as f64
}

// Go's benchmark closures capture their `sync.WaitGroup` by reference (no reference count);
// a static is the equivalent here (an `Arc` would add two contended atomics per goroutine).
static WG: WaitGroup = WaitGroup::new();

// --- preempt_point: the safe-point check alone -------------------------------------------------

fn bench_preempt_point(iters: u64) -> f64 {
    Runtime::new(1).block_on(move || {
        let start = Instant::now();
        for _ in 0..iters {
            rt_core::preempt_point();
            std::hint::black_box(());
        }
        start.elapsed().as_nanos() as f64 / iters as f64
    })
}

// --- preempt_latency: a 1 ms sleep beside a loop with no safe point at GOMAXPROCS=1 ---------

fn bench_preempt_latency(rounds: usize) -> (f64, f64) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    Runtime::new(1).block_on(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        spawn(move || {
            // Go's loop: no function call, so no safe point; only a signal can stop it.
            let mut x = 1u64;
            while !s.load(Ordering::Relaxed) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            std::hint::black_box(x);
        });
        gosched();
        let mut late: Vec<f64> = (0..rounds)
            .map(|_| {
                let deadline = Instant::now() + std::time::Duration::from_millis(1);
                rt_core::time::sleep(std::time::Duration::from_millis(1));
                (Instant::now() - deadline).as_nanos() as f64
            })
            .collect();
        stop.store(true, Ordering::Relaxed);
        late.sort_by(f64::total_cmp);
        (late[late.len() / 2], late[late.len() - 1])
    })
}

// --- sleep_late: how late a 1 ms sleep wakes, nothing else running --------------------------

fn bench_sleep_late(procs: usize, rounds: usize) -> (f64, f64) {
    use std::time::Duration;
    Runtime::new(procs).block_on(move || {
        let mut late: Vec<f64> = (0..rounds)
            .map(|_| {
                let deadline = rt_core::time::now() + 1_000_000;
                rt_core::time::sleep(Duration::from_millis(1));
                rt_core::time::now().saturating_sub(deadline) as f64
            })
            .collect();
        late.sort_by(f64::total_cmp);
        (late[late.len() / 2], late[late.len() - 1])
    })
}

// --- select_timeout: a select whose only ready case is a 100 us time::after -----------------

fn bench_select_timeout(procs: usize, iters: u64) -> f64 {
    use std::time::Duration;
    Runtime::new(procs).block_on(move || {
        let never = rt_core::chan::make::<u64>(0);
        let mut timeouts = 0u64;
        let start = Instant::now();
        for _ in 0..iters {
            rt_core::select! {
                recv(never) -> _ => unreachable!("nothing sends on `never`"),
                recv(rt_core::time::after(Duration::from_micros(100))) -> _ => timeouts += 1,
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / iters as f64;
        assert_eq!(timeouts, iters);
        ns
    })
}

// --- gosched: one goroutine yields and gets the processor back (the round trip) -------------

fn bench_gosched(procs: usize, iters: u64) -> f64 {
    Runtime::new(procs).block_on(move || {
        let start = Instant::now();
        for _ in 0..iters {
            gosched();
        }
        start.elapsed().as_nanos() as f64 / iters as f64
    })
}

// --- gosched_pingpong: two goroutines take turns ------------------------------------------------

fn bench_gosched_pingpong(procs: usize, iters: u64) -> f64 {
    Runtime::new(procs).block_on(move || {
        let start = Instant::now();
        WG.add(2);
        for _ in 0..2 {
            spawn(move || {
                for _ in 0..iters {
                    gosched();
                }
                WG.done();
            });
        }
        WG.wait();
        start.elapsed().as_nanos() as f64 / (2 * iters) as f64
    })
}

// --- chan_pingpong: a value bounced over two unbuffered channels -------------------------------

fn bench_chan_pingpong(procs: usize, iters: u64) -> f64 {
    Runtime::new(procs).block_on(move || {
        let ping = rt_core::chan::make::<u64>(0);
        let pong = rt_core::chan::make::<u64>(0);
        WG.add(1);
        let (rx, tx) = (ping.clone(), pong.clone());
        spawn(move || {
            while let Some(v) = rx.recv() {
                tx.send(v + 1);
            }
            WG.done();
        });
        let start = Instant::now();
        let mut v = 0u64;
        for _ in 0..iters {
            ping.send(v);
            v = pong.recv().expect("pong is never closed");
        }
        let ns = start.elapsed().as_nanos() as f64 / iters as f64;
        assert_eq!(v, iters);
        ping.close();
        WG.wait();
        ns
    })
}

// --- chan_buffered: one producer, one consumer, capacity 128 ------------------------------------

fn bench_chan_buffered(procs: usize, n: u64) -> f64 {
    Runtime::new(procs).block_on(move || {
        let ch = rt_core::chan::make::<u64>(128);
        let tx = ch.clone();
        let start = Instant::now();
        spawn(move || {
            for i in 0..n {
                tx.send(i);
            }
            tx.close();
        });
        let mut sum = 0u64;
        while let Some(v) = ch.recv() {
            sum = sum.wrapping_add(v);
        }
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        assert_eq!(sum, n * (n - 1) / 2);
        ns
    })
}

// --- spawn: 1M goroutines that each just finish -------------------------------------------------

fn bench_spawn(procs: usize, n: u64) -> f64 {
    bench_spawn_on(Runtime::new(procs), n)
}

fn bench_spawn_on(rt: Runtime, n: u64) -> f64 {
    rt.block_on(move || {
        let start = Instant::now();
        WG.add(n as i32);
        for _ in 0..n {
            spawn(|| WG.done());
        }
        WG.wait();
        start.elapsed().as_nanos() as f64 / n as f64
    })
}

// --- skynet: a tree of 1,111,111 goroutines summing their leaves' numbers ---------------------

/// One node: `size` leaves numbered from `num`; sends their sum on `up`.
fn skynet(up: rt_core::Chan<u64>, num: u64, size: u64) {
    if size == 1 {
        up.send(num);
        return;
    }
    let rc = rt_core::chan::make::<u64>(0);
    let child = size / 10;
    for i in 0..10 {
        let rc = rc.clone();
        spawn(move || skynet(rc, num + i * child, child));
    }
    let sum: u64 = (0..10)
        .map(|_| rc.recv().expect("rc is never closed"))
        .sum();
    up.send(sum);
}

fn bench_skynet(procs: usize) -> f64 {
    Runtime::new(procs).block_on(|| {
        let start = Instant::now();
        let c = rt_core::chan::make::<u64>(0);
        let up = c.clone();
        spawn(move || skynet(up, 0, SKYNET_LEAVES));
        let sum = c.recv().expect("c is never closed");
        let ns = start.elapsed().as_nanos() as f64 / SKYNET_LEAVES as f64;
        assert_eq!(sum, SKYNET_SUM);
        ns
    })
}

// --- ring: 503 goroutines pass a token 10^6 hops (the thread-ring) ----------------------------

fn bench_ring(procs: usize) -> f64 {
    Runtime::new(procs).block_on(|| {
        let chans: Vec<rt_core::Chan<u64>> =
            (0..RING_SIZE).map(|_| rt_core::chan::make(0)).collect();
        let done = rt_core::chan::make::<usize>(0);
        for i in 0..RING_SIZE {
            let (rx, next, done) = (
                chans[i].clone(),
                chans[(i + 1) % RING_SIZE].clone(),
                done.clone(),
            );
            spawn(move || {
                while let Some(v) = rx.recv() {
                    if v == 0 {
                        done.send(i);
                    } else {
                        next.send(v - 1);
                    }
                }
            });
        }
        let start = Instant::now();
        chans[0].send(RING_HOPS);
        let last = done.recv().expect("done is never closed");
        let ns = start.elapsed().as_nanos() as f64 / RING_HOPS as f64;
        assert_eq!(last, RING_HOPS as usize % RING_SIZE);
        for c in &chans {
            c.close();
        }
        ns
    })
}

// --- parked_<n>: n goroutines parked on one channel: time to park them, memory each ----------

static PARKED: WaitGroup = WaitGroup::new();
static RELEASED: WaitGroup = WaitGroup::new();

/// (ns per goroutine until all `n` are parked, resident bytes per parked goroutine).
fn bench_parked(procs: usize, n: u64) -> (f64, f64) {
    Runtime::new(procs).block_on(move || {
        let ch = rt_core::chan::make::<()>(0);
        let rss = vm_rss();
        let start = Instant::now();
        PARKED.add(n as i32);
        RELEASED.add(n as i32);
        for _ in 0..n {
            let ch = ch.clone();
            spawn(move || {
                PARKED.done();
                assert!(ch.recv().is_none(), "nothing sends on the parking channel");
                RELEASED.done();
            });
        }
        PARKED.wait();
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        let bytes = vm_rss().saturating_sub(rss) as f64 / n as f64;
        ch.close();
        RELEASED.wait();
        (ns, bytes)
    })
}

fn main() {
    let args = Args::parse();
    let (quick, procs_list) = (args.quick, args.procs_list());
    let scale = args.scale();
    if let Some(only) = &args.only {
        let runs = whole_runs(quick);
        let n = args.n.unwrap_or(1_000_000);
        for &procs in &procs_list {
            match only.as_str() {
                "skynet" => report(
                    "skynet",
                    procs,
                    median((0..runs).map(|_| bench_skynet(procs)).collect()),
                ),
                "ring" => report(
                    "ring",
                    procs,
                    median((0..runs).map(|_| bench_ring(procs)).collect()),
                ),
                // The per-round row alone (to compare a channel change before and after).
                "chan_pingpong" => report(
                    "chan_pingpong",
                    procs,
                    median(
                        (0..RUNS)
                            .map(|_| bench_chan_pingpong(procs, 200_000))
                            .collect(),
                    ),
                ),
                "parked" => {
                    let (ns, bytes) = bench_parked(procs, n);
                    report_with_bytes(&parked_name(n), procs, ns, Some(bytes));
                }
                other => panic!("no whole-program row {other:?}"),
            }
        }
        return;
    }
    let with_1 = procs_list.contains(&1);
    if with_1 {
        report(
            "switch",
            1,
            median((0..RUNS).map(|_| bench_switch(2_000_000 / scale)).collect()),
        );
        report(
            "floor_switch",
            1,
            median((0..RUNS).map(|_| bench_floor(2_000_000 / scale)).collect()),
        );
    }
    for &procs in &procs_list {
        report(
            "gosched",
            procs,
            median(
                (0..RUNS)
                    .map(|_| bench_gosched(procs, 400_000 / scale))
                    .collect(),
            ),
        );
        report(
            "gosched_pingpong",
            procs,
            median(
                (0..RUNS)
                    .map(|_| bench_gosched_pingpong(procs, 200_000 / scale))
                    .collect(),
            ),
        );
        report(
            "chan_pingpong",
            procs,
            median(
                (0..RUNS)
                    .map(|_| bench_chan_pingpong(procs, 200_000 / scale))
                    .collect(),
            ),
        );
        report(
            "chan_buffered",
            procs,
            median(
                (0..RUNS)
                    .map(|_| bench_chan_buffered(procs, 1_000_000 / scale))
                    .collect(),
            ),
        );
    }
    if with_1 {
        report(
            "preempt_point",
            1,
            median(
                (0..RUNS)
                    .map(|_| bench_preempt_point(20_000_000 / scale))
                    .collect(),
            ),
        );
        let (med, max) = bench_preempt_latency(100 / scale as usize);
        report("preempt_latency", 1, med);
        report("preempt_latency_max", 1, max);
    }
    for &procs in &procs_list {
        let (med, max) = bench_sleep_late(procs, 200 / scale as usize);
        report("sleep_late", procs, med);
        report("sleep_late_max", procs, max);
        report(
            "select_timeout",
            procs,
            median(
                (0..RUNS)
                    .map(|_| bench_select_timeout(procs, 1_000 / scale))
                    .collect(),
            ),
        );
    }
    for &procs in &procs_list {
        report(
            "spawn",
            procs,
            median(
                (0..RUNS)
                    .map(|_| bench_spawn(procs, 1_000_000 / scale))
                    .collect(),
            ),
        );
        // The same without rt-core's stack cache: every stack from the host's allocator and
        // back to it at exit (host/stacks.rs: its hot list of freed slots, then released ones).
        report(
            "spawn_nocache",
            procs,
            median(
                (0..RUNS)
                    .map(|_| {
                        bench_spawn_on(Runtime::new(procs).without_stack_cache(), 100_000 / scale)
                    })
                    .collect(),
            ),
        );
    }
}

//! The `may` peer of `cargo xtask bench`: rt-core/benches/sched.rs's rows on `may`'s stackful
//! coroutines (the Go-like choice in Rust: `go!`, blocking-style channels, `select!`), printed
//! as the same JSON lines.
//!
//! - procs = `may::config().set_workers(n)`, which holds from the scheduler's first use to the
//!   process's end: one process measures one worker count. Without `--procs` this program runs
//!   itself once per count. Worker pinning is left at may's default (on). Every benchmark body
//!   runs in a coroutine (`go!(..).join()`), as rt-core's runs in its main goroutine.
//! - `gosched`, `gosched_pingpong`: `may::coroutine::yield_now`.
//! - `spawn`: `go!` of a coroutine that decrements a counter (the last one posts a semaphore:
//!   Go's `WaitGroup` without a reference count per coroutine); the JoinHandle is dropped.
//! - `chan_pingpong`: may has no unbuffered (nor any bounded) channel: two `may::sync::mpsc`
//!   channels, which are unbounded; with one value in flight each way that is a ping-pong all
//!   the same.
//! - `chan_buffered`: an unbounded `mpsc` again (no capacity 128 to be had): the producer never
//!   blocks, which favours may over the others' bounded channels.
//! - `select_timeout`: `may::select!` on a never-ready receiver and `coroutine::sleep(100 us)`;
//!   may's select runs each arm in a coroutine of its own, so this is two spawns per select.
//! - `sleep_late` (and `_max`): `coroutine::sleep(1 ms)`, lateness past the deadline.
//! - `skynet`, `ring`: as in sched.rs, over unbounded `mpsc` channels.
//! - `parked_<n>`: coroutines each block in `recv` on a clone of one `may::sync::mpmc`
//!   receiver; dropping the sender releases them all. `bytes_per_g`: VmRSS growth per parked
//!   coroutine. may gives each coroutine its own mmap'd stack with a guard page (two mappings),
//!   so past ~32k live coroutines it meets vm.max_map_count (65530) as rt-core's host stacks
//!   do: the larger parked rows (and skynet, if enough coroutines live at once) fail here.
//!
//! No `preempt_*` or `switch` rows: may does not preempt a running coroutine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bench_peers::{
    measure, median, panic_message, parked_name, report, report_failed, report_with_bytes, vm_rss,
    whole_runs, Args, RING_HOPS, RING_SIZE, RING_STOP, RUNS, SKYNET_LEAVES, SKYNET_SUM,
};
use may::coroutine;
use may::sync::{mpmc, mpsc, Semphore};

/// Runs `f` in a coroutine and returns its result.
fn in_coroutine<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    may::go!(f)
        .join()
        .unwrap_or_else(|e| panic!("{}", panic_message(&*e)))
}

/// Go's `WaitGroup` as the benchmarks use it: a count, and a semaphore for its last `done`.
struct WaitGroup {
    left: AtomicU64,
    zero: LazyLock<Semphore>,
}

impl WaitGroup {
    const fn new() -> WaitGroup {
        WaitGroup {
            left: AtomicU64::new(0),
            zero: LazyLock::new(|| Semphore::new(0)),
        }
    }
    fn add(&self, n: u64) {
        self.left.fetch_add(n, Ordering::Relaxed);
    }
    fn done(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.zero.post();
        }
    }
    fn wait(&self) {
        // A post left over from a wait that found the count at zero only costs a loop here.
        while self.left.load(Ordering::Acquire) != 0 {
            self.zero.wait();
        }
    }
}

static WG: WaitGroup = WaitGroup::new();
static WG2: WaitGroup = WaitGroup::new();

fn gosched(iters: u64) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        coroutine::yield_now();
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

fn gosched_pingpong(iters: u64) -> f64 {
    let start = Instant::now();
    WG.add(2);
    for _ in 0..2 {
        may::go!(move || {
            for _ in 0..iters {
                coroutine::yield_now();
            }
            WG.done();
        });
    }
    WG.wait();
    start.elapsed().as_nanos() as f64 / (2 * iters) as f64
}

fn chan_pingpong(iters: u64) -> f64 {
    // Unbounded: may has no unbuffered channel (see the header).
    let (ping_tx, ping_rx) = mpsc::channel::<u64>();
    let (pong_tx, pong_rx) = mpsc::channel::<u64>();
    let echo = may::go!(move || {
        while let Ok(v) = ping_rx.recv() {
            pong_tx.send(v + 1).expect("pong's receiver lives");
        }
    });
    let start = Instant::now();
    let mut v = 0;
    for _ in 0..iters {
        ping_tx.send(v).expect("ping's receiver lives");
        v = pong_rx.recv().expect("pong is never closed");
    }
    let ns = start.elapsed().as_nanos() as f64 / iters as f64;
    assert_eq!(v, iters);
    drop(ping_tx);
    echo.join().expect("the echo coroutine");
    ns
}

fn chan_buffered(n: u64) -> f64 {
    let (tx, rx) = mpsc::channel::<u64>();
    let start = Instant::now();
    may::go!(move || {
        for i in 0..n {
            tx.send(i).expect("the receiver lives");
        }
    });
    let mut sum = 0u64;
    while let Ok(v) = rx.recv() {
        sum = sum.wrapping_add(v);
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    assert_eq!(sum, n * (n - 1) / 2);
    ns
}

fn spawn(n: u64) -> f64 {
    let start = Instant::now();
    WG.add(n);
    for _ in 0..n {
        may::go!(|| WG.done());
    }
    WG.wait();
    start.elapsed().as_nanos() as f64 / n as f64
}

fn sleep_late(rounds: usize) -> (f64, f64) {
    let mut late: Vec<f64> = (0..rounds)
        .map(|_| {
            let deadline = Instant::now() + Duration::from_millis(1);
            coroutine::sleep(Duration::from_millis(1));
            Instant::now()
                .saturating_duration_since(deadline)
                .as_nanos() as f64
        })
        .collect();
    late.sort_by(f64::total_cmp);
    (late[late.len() / 2], late[late.len() - 1])
}

fn select_timeout(iters: u64) -> f64 {
    let (_never_tx, never) = mpsc::channel::<u64>();
    let mut timeouts = 0;
    let start = Instant::now();
    for _ in 0..iters {
        let which = may::select!(
            _ = never.recv() => unreachable!("nothing sends on `never`"),
            _ = coroutine::sleep(Duration::from_micros(100)) => {}
        );
        assert_eq!(which, 1);
        timeouts += 1;
    }
    let ns = start.elapsed().as_nanos() as f64 / iters as f64;
    assert_eq!(timeouts, iters);
    ns
}

/// One skynet node: `size` leaves numbered from `num`; sends their sum on `up`.
fn skynet_node(up: mpsc::Sender<u64>, num: u64, size: u64) {
    if size == 1 {
        up.send(num).expect("the parent receives");
        return;
    }
    let (tx, rx) = mpsc::channel();
    let child = size / 10;
    for i in 0..10 {
        let tx = tx.clone();
        may::go!(move || skynet_node(tx, num + i * child, child));
    }
    let sum: u64 = (0..10).map(|_| rx.recv().expect("a child's sum")).sum();
    up.send(sum).expect("the parent receives");
}

fn skynet() -> f64 {
    let start = Instant::now();
    let (tx, rx) = mpsc::channel();
    may::go!(move || skynet_node(tx, 0, SKYNET_LEAVES));
    let sum = rx.recv().expect("the root's sum");
    let ns = start.elapsed().as_nanos() as f64 / SKYNET_LEAVES as f64;
    assert_eq!(sum, SKYNET_SUM);
    ns
}

fn ring() -> f64 {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..RING_SIZE).map(|_| mpsc::channel::<u64>()).unzip();
    let (done_tx, done_rx) = mpsc::channel::<usize>();
    let mut members = Vec::with_capacity(RING_SIZE);
    for (i, rx) in rxs.into_iter().enumerate() {
        let next = txs[(i + 1) % RING_SIZE].clone();
        let done = done_tx.clone();
        members.push(may::go!(move || {
            while let Ok(v) = rx.recv() {
                if v == RING_STOP {
                    // Pass the stop on (the first member is gone by the time it comes back).
                    let _ = next.send(RING_STOP);
                    break;
                } else if v == 0 {
                    done.send(i).expect("main waits");
                } else {
                    next.send(v - 1).expect("the next member lives");
                }
            }
        }));
    }
    let start = Instant::now();
    txs[0].send(RING_HOPS).expect("the ring lives");
    let last = done_rx.recv().expect("the token's end");
    let ns = start.elapsed().as_nanos() as f64 / RING_HOPS as f64;
    assert_eq!(last, RING_HOPS as usize % RING_SIZE);
    // Each member holds its successor's sender, so dropping ours would not end the ring.
    txs[0].send(RING_STOP).expect("the ring lives");
    for m in members {
        m.join().expect("a ring member");
    }
    ns
}

/// Spawns `n` coroutines that each park on one channel; (ns per coroutine until all are
/// parked, resident bytes per parked coroutine).
fn parked(n: u64) -> (f64, f64) {
    let (tx, rx) = mpmc::channel::<()>();
    let rss = vm_rss();
    let start = Instant::now();
    WG.add(n);
    WG2.add(n);
    for _ in 0..n {
        let rx = rx.clone();
        may::go!(move || {
            WG.done();
            // Err once the sender is gone: that is the release.
            let _ = rx.recv();
            WG2.done();
        });
    }
    WG.wait();
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    let bytes = vm_rss().saturating_sub(rss) as f64 / n as f64;
    drop(tx);
    WG2.wait();
    (ns, bytes)
}

fn main() {
    let args = Args::parse();
    let Some(procs) = args.procs else {
        // One worker count per process: run ourselves once for each.
        for p in [1, 2] {
            let status = std::process::Command::new(std::env::current_exe().expect("argv[0]"))
                .args(std::env::args().skip(1))
                .args(["--procs", &p.to_string()])
                .status()
                .expect("the may benchmark runs itself");
            assert!(status.success(), "the may benchmark at --procs {p} failed");
        }
        return;
    };
    may::config().set_workers(procs);
    let scale = args.scale();
    if let Some(only) = args.only.as_deref() {
        // A coroutine that panics (its stack could not be mapped, say) takes nobody with it,
        // and whoever waits for it may wait forever: in a whole-program row, any panic ends the
        // run, after the default hook has printed it.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            hook(info);
            std::process::exit(101);
        }));
        let runs = whole_runs(args.quick);
        match only {
            "skynet" => report(
                "skynet",
                procs,
                median((0..runs).map(|_| in_coroutine(skynet)).collect()),
            ),
            "ring" => report(
                "ring",
                procs,
                median((0..runs).map(|_| in_coroutine(ring)).collect()),
            ),
            "parked" => {
                let n = args.n.unwrap_or(1_000_000);
                let (ns, bytes) = in_coroutine(move || parked(n));
                report_with_bytes(&parked_name(n), procs, ns, Some(bytes));
            }
            other => panic!("no whole-program row {other:?}"),
        }
        return;
    }
    let p = procs;
    report(
        "gosched",
        p,
        measure(|| in_coroutine(move || gosched(400_000 / scale))),
    );
    report(
        "gosched_pingpong",
        p,
        measure(|| in_coroutine(move || gosched_pingpong(200_000 / scale))),
    );
    report(
        "chan_pingpong",
        p,
        measure(|| in_coroutine(move || chan_pingpong(200_000 / scale))),
    );
    report(
        "chan_buffered",
        p,
        measure(|| in_coroutine(move || chan_buffered(1_000_000 / scale))),
    );
    let (med, max) = in_coroutine(move || sleep_late(200 / scale as usize));
    report("sleep_late", p, med);
    report("sleep_late_max", p, max);
    report(
        "select_timeout",
        p,
        measure(|| in_coroutine(move || select_timeout(1_000 / scale))),
    );
    // may's spawn needs a stack mapping per live coroutine, and 1M of them live at once here
    // (main spawns them all before it waits): past vm.max_map_count the spawn panics, and the
    // row says so instead of a figure.
    let runs: Result<Vec<f64>, String> = (0..RUNS)
        .map(|_| {
            may::go!(move || spawn(1_000_000 / scale))
                .join()
                .map_err(|e| panic_message(&*e))
        })
        .collect();
    match runs {
        Ok(v) => report("spawn", p, median(v)),
        Err(why) => report_failed("spawn", p, &why),
    }
}

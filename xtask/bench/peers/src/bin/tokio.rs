//! The `tokio` peer of `cargo xtask bench`: rt-core/benches/sched.rs's rows on tokio's
//! multi-thread scheduler, written as a tokio user would (tasks, `tokio::sync`, `tokio::time`),
//! printed as the same JSON lines.
//!
//! - procs = `worker_threads`: `Builder::new_multi_thread().worker_threads(n)`, also for 1
//!   (rather than the current-thread runtime, which would be the idiomatic pick for one
//!   thread) so that both rows measure the same scheduler, with its work stealing and wakeups.
//!   Every benchmark body is itself a spawned task (`block_on` would run it on the main thread,
//!   outside the workers).
//! - `gosched`, `gosched_pingpong`: `tokio::task::yield_now`.
//! - `spawn`: `tokio::spawn` of a task that decrements a counter (the last one wakes the waiter
//!   through a `Notify`: Go's `WaitGroup`, without a reference count per task).
//! - `chan_pingpong`: tokio has no unbuffered channel; the closest is `mpsc::channel(1)` (a
//!   send completes once the value is queued, not when it is received; with one value in
//!   flight each way the two behave alike).
//! - `chan_buffered`: `mpsc::channel(128)`, one producer task, one consumer.
//! - `select_timeout`: `tokio::select!` on a never-ready receiver and `time::sleep(100 us)`.
//!   tokio's timer wheel has 1 ms slots, so every sleep rounds up to the next millisecond:
//!   this row is ~1 ms per select by design, not by overhead.
//! - `sleep_late` (and `_max`): `time::sleep(1 ms)`, lateness past the deadline (same 1 ms
//!   granularity).
//! - `skynet`, `ring`: as in sched.rs, over `mpsc::channel(1)`.
//! - `parked_<n>`: tasks each await `changed()` on a clone of one `watch` receiver (tokio's
//!   closest to many receivers on one channel); dropping the sender releases them all.
//!   `bytes_per_g`: VmRSS growth per parked task.
//!
//! No `preempt_*` or `switch` rows: tokio has no preemption of a running task and no context
//! switch of its own (a task is a state machine polled by its worker).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench_peers::{
    measure, median, parked_name, report, report_with_bytes, vm_rss, whole_runs, Args, RING_HOPS,
    RING_SIZE, RING_STOP, SKYNET_LEAVES, SKYNET_SUM,
};
use tokio::sync::{mpsc, watch, Notify};

/// Runs `f`'s future as a task on a fresh multi-thread runtime of `procs` workers.
fn on_runtime<F, T>(procs: usize, f: F) -> T
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(procs)
        .enable_time()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async move { tokio::spawn(f).await.expect("the benchmark task") })
}

/// Go's `WaitGroup` as the benchmarks use it: a count, and a `Notify` for its last `done`.
struct WaitGroup {
    left: AtomicU64,
    zero: Notify,
}

impl WaitGroup {
    const fn new() -> WaitGroup {
        WaitGroup {
            left: AtomicU64::new(0),
            zero: Notify::const_new(),
        }
    }
    fn add(&self, n: u64) {
        self.left.fetch_add(n, Ordering::Relaxed);
    }
    fn done(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            // notify_one keeps a permit if `wait` is not waiting yet.
            self.zero.notify_one();
        }
    }
    async fn wait(&self) {
        while self.left.load(Ordering::Acquire) != 0 {
            self.zero.notified().await;
        }
    }
}

static WG: WaitGroup = WaitGroup::new();
static WG2: WaitGroup = WaitGroup::new();

async fn gosched(iters: u64) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        tokio::task::yield_now().await;
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

async fn gosched_pingpong(iters: u64) -> f64 {
    let start = Instant::now();
    WG.add(2);
    for _ in 0..2 {
        tokio::spawn(async move {
            for _ in 0..iters {
                tokio::task::yield_now().await;
            }
            WG.done();
        });
    }
    WG.wait().await;
    start.elapsed().as_nanos() as f64 / (2 * iters) as f64
}

async fn chan_pingpong(iters: u64) -> f64 {
    // Capacity 1: tokio has no unbuffered channel (see the header).
    let (ping_tx, mut ping_rx) = mpsc::channel::<u64>(1);
    let (pong_tx, mut pong_rx) = mpsc::channel::<u64>(1);
    let echo = tokio::spawn(async move {
        while let Some(v) = ping_rx.recv().await {
            pong_tx.send(v + 1).await.expect("pong's receiver lives");
        }
    });
    let start = Instant::now();
    let mut v = 0;
    for _ in 0..iters {
        ping_tx.send(v).await.expect("ping's receiver lives");
        v = pong_rx.recv().await.expect("pong is never closed");
    }
    let ns = start.elapsed().as_nanos() as f64 / iters as f64;
    assert_eq!(v, iters);
    drop(ping_tx);
    echo.await.expect("the echo task");
    ns
}

async fn chan_buffered(n: u64) -> f64 {
    let (tx, mut rx) = mpsc::channel::<u64>(128);
    let start = Instant::now();
    tokio::spawn(async move {
        for i in 0..n {
            tx.send(i).await.expect("the receiver lives");
        }
    });
    let mut sum = 0u64;
    while let Some(v) = rx.recv().await {
        sum = sum.wrapping_add(v);
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    assert_eq!(sum, n * (n - 1) / 2);
    ns
}

async fn spawn(n: u64) -> f64 {
    let start = Instant::now();
    WG.add(n);
    for _ in 0..n {
        tokio::spawn(async { WG.done() });
    }
    WG.wait().await;
    start.elapsed().as_nanos() as f64 / n as f64
}

async fn sleep_late(rounds: usize) -> (f64, f64) {
    let mut late = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let deadline = Instant::now() + Duration::from_millis(1);
        tokio::time::sleep(Duration::from_millis(1)).await;
        late.push(
            Instant::now()
                .saturating_duration_since(deadline)
                .as_nanos() as f64,
        );
    }
    late.sort_by(f64::total_cmp);
    (late[late.len() / 2], late[late.len() - 1])
}

async fn select_timeout(iters: u64) -> f64 {
    let (_never_tx, mut never) = mpsc::channel::<u64>(1);
    let mut timeouts = 0;
    let start = Instant::now();
    for _ in 0..iters {
        tokio::select! {
            _ = never.recv() => unreachable!("nothing sends on `never`"),
            _ = tokio::time::sleep(Duration::from_micros(100)) => timeouts += 1,
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / iters as f64;
    assert_eq!(timeouts, iters);
    ns
}

/// One skynet node: `size` leaves numbered from `num`; sends their sum on `up`.
fn skynet_node(
    up: mpsc::Sender<u64>,
    num: u64,
    size: u64,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        if size == 1 {
            up.send(num).await.expect("the parent receives");
            return;
        }
        let (tx, mut rx) = mpsc::channel(1);
        let child = size / 10;
        for i in 0..10 {
            tokio::spawn(skynet_node(tx.clone(), num + i * child, child));
        }
        let mut sum = 0;
        for _ in 0..10 {
            sum += rx.recv().await.expect("a child's sum");
        }
        up.send(sum).await.expect("the parent receives");
    })
}

async fn skynet() -> f64 {
    let start = Instant::now();
    let (tx, mut rx) = mpsc::channel(1);
    tokio::spawn(skynet_node(tx, 0, SKYNET_LEAVES));
    let sum = rx.recv().await.expect("the root's sum");
    let ns = start.elapsed().as_nanos() as f64 / SKYNET_LEAVES as f64;
    assert_eq!(sum, SKYNET_SUM);
    ns
}

async fn ring() -> f64 {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..RING_SIZE).map(|_| mpsc::channel::<u64>(1)).unzip();
    let (done_tx, mut done_rx) = mpsc::channel::<usize>(1);
    let mut members = Vec::with_capacity(RING_SIZE);
    for (i, mut rx) in rxs.into_iter().enumerate() {
        let next = txs[(i + 1) % RING_SIZE].clone();
        let done = done_tx.clone();
        members.push(tokio::spawn(async move {
            while let Some(v) = rx.recv().await {
                if v == RING_STOP {
                    // Pass the stop on (the first member is gone by the time it comes back).
                    let _ = next.send(RING_STOP).await;
                    break;
                } else if v == 0 {
                    done.send(i).await.expect("main waits");
                } else {
                    next.send(v - 1).await.expect("the next member lives");
                }
            }
        }));
    }
    let start = Instant::now();
    txs[0].send(RING_HOPS).await.expect("the ring lives");
    let last = done_rx.recv().await.expect("the token's end");
    let ns = start.elapsed().as_nanos() as f64 / RING_HOPS as f64;
    assert_eq!(last, RING_HOPS as usize % RING_SIZE);
    // Each member holds its successor's sender, so dropping ours would not end the ring.
    txs[0].send(RING_STOP).await.expect("the ring lives");
    for m in members {
        m.await.expect("a ring member");
    }
    ns
}

/// Spawns `n` tasks that each park on one channel; (ns per task until all are parked,
/// resident bytes per parked task).
async fn parked(n: u64) -> (f64, f64) {
    let (tx, rx) = watch::channel(());
    let rss = vm_rss();
    let start = Instant::now();
    WG.add(n);
    WG2.add(n);
    for _ in 0..n {
        let mut rx = rx.clone();
        tokio::spawn(async move {
            WG.done();
            // Err once the sender is gone: that is the release.
            let _ = rx.changed().await;
            WG2.done();
        });
    }
    WG.wait().await;
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    let bytes = vm_rss().saturating_sub(rss) as f64 / n as f64;
    drop(tx);
    WG2.wait().await;
    (ns, bytes)
}

fn main() {
    let args = Args::parse();
    let scale = args.scale();
    if let Some(only) = args.only.as_deref() {
        let runs = whole_runs(args.quick);
        for procs in args.procs_list() {
            match only {
                "skynet" => report(
                    "skynet",
                    procs,
                    median((0..runs).map(|_| on_runtime(procs, skynet())).collect()),
                ),
                "ring" => report(
                    "ring",
                    procs,
                    median((0..runs).map(|_| on_runtime(procs, ring())).collect()),
                ),
                "parked" => {
                    let n = args.n.unwrap_or(1_000_000);
                    let (ns, bytes) = on_runtime(procs, parked(n));
                    report_with_bytes(&parked_name(n), procs, ns, Some(bytes));
                }
                other => panic!("no whole-program row {other:?}"),
            }
        }
        return;
    }
    for procs in args.procs_list() {
        let p = procs;
        report(
            "gosched",
            p,
            measure(|| on_runtime(p, gosched(400_000 / scale))),
        );
        report(
            "gosched_pingpong",
            p,
            measure(|| on_runtime(p, gosched_pingpong(200_000 / scale))),
        );
        report(
            "chan_pingpong",
            p,
            measure(|| on_runtime(p, chan_pingpong(200_000 / scale))),
        );
        report(
            "chan_buffered",
            p,
            measure(|| on_runtime(p, chan_buffered(1_000_000 / scale))),
        );
        let (med, max) = on_runtime(p, sleep_late(200 / scale as usize));
        report("sleep_late", p, med);
        report("sleep_late_max", p, max);
        report(
            "select_timeout",
            p,
            measure(|| on_runtime(p, select_timeout(1_000 / scale))),
        );
        report(
            "spawn",
            p,
            measure(|| on_runtime(p, spawn(1_000_000 / scale))),
        );
    }
}

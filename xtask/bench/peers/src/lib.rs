//! What every benchmark program in Rust shares: the command line, the output lines, the
//! resident-memory reading and the whole-program rows' shapes. The peers link it as this
//! crate's library; rt-core/benches/sched.rs includes this file as a module (`#[path]`),
//! since this crate builds outside rt-core's workspace. The lines are the ones rt-core/benches/sched.rs and
//! xtask/bench/go/main.go print, `{"name": ..., "procs": ..., "ns_per_op": ...}` (plus
//! `"bytes_per_g"` on the parked rows), read by `cargo xtask bench` (xtask/src/bench.rs).

use serde::Serialize;

/// Each micro-benchmark's figure is the median of this many runs, as in the other programs.
pub const RUNS: usize = 7;

/// The command line, the same for every benchmark program of `cargo xtask bench`:
/// `[--quick] [--procs P] [--only skynet|ring|parked [--n N]]`. Without `--only`, the
/// micro-benchmarks (at `--procs P` alone if given, else at 1 and 2); with it, that one
/// whole-program row, alone in this process (so that the runs before it leave no warm caches
/// or freed memory behind for it, and a failure loses that row alone).
pub struct Args {
    pub quick: bool,
    pub procs: Option<usize>,
    pub only: Option<String>,
    pub n: Option<u64>,
}

impl Args {
    pub fn parse() -> Args {
        let mut a = Args {
            quick: false,
            procs: None,
            only: None,
            n: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = |what: &str| {
                it.next()
                    .unwrap_or_else(|| panic!("{arg} needs {what}"))
                    .parse::<u64>()
                    .unwrap_or_else(|e| panic!("{arg}: {e}"))
            };
            match arg.as_str() {
                "--quick" => a.quick = true,
                "--procs" => a.procs = Some(value("a count") as usize),
                "--n" => a.n = Some(value("a count")),
                "--only" => a.only = it.next(),
                // `cargo bench` passes `--bench`; nothing else is expected.
                _ => {}
            }
        }
        a
    }

    /// The worker counts to measure: `--procs`, else 1 and 2.
    pub fn procs_list(&self) -> Vec<usize> {
        self.procs.map_or(vec![1, 2], |p| vec![p])
    }

    /// A tenth of the iterations with `--quick`.
    pub fn scale(&self) -> u64 {
        if self.quick {
            10
        } else {
            1
        }
    }
}

#[derive(Serialize)]
struct Line<'a> {
    name: &'a str,
    procs: usize,
    ns_per_op: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_per_g: Option<f64>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Prints one result line.
pub fn report(name: &str, procs: usize, ns: f64) {
    report_with_bytes(name, procs, ns, None);
}

/// Prints one result line, with resident bytes per goroutine (task) where measured.
pub fn report_with_bytes(name: &str, procs: usize, ns: f64, bytes_per_g: Option<f64>) {
    let line = Line {
        name,
        procs,
        ns_per_op: round2(ns),
        bytes_per_g: bytes_per_g.map(round2),
    };
    println!(
        "{}",
        serde_json::to_string(&line).expect("a line serialises")
    );
}

/// Prints the line of a row that could not be measured, with why: the table shows the reason
/// in that row's cell.
pub fn report_failed(name: &str, procs: usize, why: &str) {
    #[derive(Serialize)]
    struct Failed<'a> {
        name: &'a str,
        procs: usize,
        failed: &'a str,
    }
    let line = Failed {
        name,
        procs,
        failed: why,
    };
    println!(
        "{}",
        serde_json::to_string(&line).expect("a line serialises")
    );
}

/// A panic's message, for [`report_failed`].
pub fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".into())
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median of [`RUNS`] runs of `f`.
pub fn measure(mut f: impl FnMut() -> f64) -> f64 {
    median((0..RUNS).map(|_| f()).collect())
}

/// This process's resident memory, bytes: VmRSS in /proc/self/status.
pub fn vm_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

/// The parked row's name for `n` goroutines: parked_10k, parked_100k, parked_1m, else
/// parked_<n>.
pub fn parked_name(n: u64) -> String {
    match n {
        1_000_000 => "parked_1m".into(),
        n if n % 1000 == 0 => format!("parked_{}k", n / 1000),
        n => format!("parked_{n}"),
    }
}

/// Skynet's shape: 10^6 leaves under a tree of fan-out 10, the leaves numbered 0..10^6.
pub const SKYNET_LEAVES: u64 = 1_000_000;
pub const SKYNET_SUM: u64 = SKYNET_LEAVES * (SKYNET_LEAVES - 1) / 2;
/// The thread ring: this many goroutines pass one token this many hops.
pub const RING_SIZE: usize = 503;
pub const RING_HOPS: u64 = 1_000_000;
/// The token that ends the ring once the run is measured: each member passes it on and exits.
pub const RING_STOP: u64 = u64::MAX;
/// How many runs a whole-program row's figure is the median of (one with `--quick`).
pub fn whole_runs(quick: bool) -> usize {
    if quick {
        1
    } else {
        3
    }
}

//! The showcase kernel that `cargo xtask qemu` boots: brings every core up, prints the boot
//! banner, runs its demos on rt-core with every core as an M (wake-up latency, a parallel sum,
//! preemption of a tight loop, goroutine stacks, channels and timers), and exits QEMU with the
//! verdict.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bootloader_api::BootInfo;
use kernel::println;
use rt_core::{spawn, WaitGroup};

bootloader_api::entry_point!(kernel_main, config = &kernel::BOOTLOADER_CONFIG);

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    let facts = kernel::init(boot_info);
    kernel::print_banner(facts);
    if let Some((median, max)) = kernel::x86::smp::measure_wake_latency(20) {
        println!(
            "smp: wake-up IPI to an idle CPU: median {} us, max {} us (emulated time, 20 per AP)",
            median / 1000,
            max / 1000
        );
    }
    demo_parallel_sum();
    demo_preemption();
    demo_stacks();
    demo_channels();
    let (frames_used, frames_total) = kernel::mm::frame::frame_stats();
    println!(
        "boot complete: {} of {} frames in use, {} KiB of heap in use",
        frames_used,
        frames_total,
        kernel::mm::heap::used() >> 10
    );
    kernel::dev::qemu::exit(kernel::dev::qemu::ExitCode::Success)
}

/// Sums 0..N with one goroutine per chunk, spawned from the main goroutine on P0: the other
/// Ps get their share by stealing and from the global queue.
fn demo_parallel_sum() {
    const N: u64 = 20_000_000;
    const CHUNKS: u64 = 2_000;
    let gomaxprocs = kernel::args::get().gomaxprocs;
    let total = Arc::new(AtomicU64::new(0));
    let t = total.clone();
    let start = kernel::x86::tsc::nanos();
    let stats = kernel::rt::run::run(gomaxprocs, move || {
        let wg = Arc::new(WaitGroup::new());
        wg.add(CHUNKS as i32);
        for c in 0..CHUNKS {
            let (wg, t) = (wg.clone(), t.clone());
            spawn(move || {
                let (lo, hi) = (c * N / CHUNKS, (c + 1) * N / CHUNKS);
                let mut s = 0u64;
                for i in lo..hi {
                    s = s.wrapping_add(core::hint::black_box(i));
                }
                t.fetch_add(s, Ordering::Relaxed);
                wg.done();
            });
        }
        wg.wait();
    });
    let ms = (kernel::x86::tsc::nanos() - start) / 1_000_000;
    let sum = total.load(Ordering::Relaxed);
    println!(
        "demo: sum of 0..{N} = {sum} ({}) by {CHUNKS} goroutines on {} Ps in {ms} ms (emulated)",
        if sum == N * (N - 1) / 2 {
            "correct"
        } else {
            "WRONG"
        },
        stats.len()
    );
    let per_p: Vec<_> = stats
        .iter()
        .enumerate()
        .map(|(i, (ran, stolen))| alloc::format!("P{i}: ran {ran}, stole {stolen}"))
        .collect();
    println!("demo: {}", per_p.join("; "));
    println!("demo: CPUs as Ms: {}", kernel::rt::stats::cpu_to_m());
    if sum != N * (N - 1) / 2 {
        kernel::dev::qemu::exit(kernel::dev::qemu::ExitCode::Failure);
    }
}

/// One P, a goroutine spinning in `loop {}` with no safe point, and a neighbour that wants
/// the CPU every millisecond: the tick preempts the spinner (from the interrupt, since it
/// reaches no safe point), so the neighbour keeps running. With `-- preempt=0` the neighbour
/// starves (this demo then stops the spinner after its 300 ms budget).
fn demo_preemption() {
    const ROUNDS: u64 = 10;
    let late = Arc::new(spin::Mutex::new(Vec::new()));
    let l2 = late.clone();
    kernel::rt::run::run(1, move || {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        spawn(move || {
            let budget = kernel::x86::tsc::nanos() + 300_000_000;
            while !s.load(Ordering::Relaxed) && kernel::x86::tsc::nanos() < budget {
                core::hint::spin_loop();
            }
        });
        rt_core::gosched();
        for _ in 0..ROUNDS {
            // A timer readies the sleeper; with the P kept busy by the spinner, the timer is
            // run when the tick preempts the spinner.
            let deadline = rt_core::time::now() + 1_000_000;
            rt_core::time::sleep(core::time::Duration::from_millis(1));
            l2.lock().push(rt_core::time::now() - deadline);
        }
        stop.store(true, Ordering::Relaxed);
    });
    let mut late = late.lock().clone();
    let median = kernel::testing::measure::median(&mut late);
    let p = kernel::rt::stats::last_run_preemptions();
    println!(
        "preempt: a tight loop beside a goroutine sleeping 1 ms at GOMAXPROCS=1: the sleeper woke {} times, late by median {} us, max {} us (emulated; time slice {} ms)",
        late.len(),
        median / 1000,
        late[late.len() - 1] / 1000,
        kernel::args::get().timeslice_ms()
    );
    println!(
        "preempt: {} requests, {} at safe points, {} from the timer interrupt",
        p.requests, p.sync, p.asynchronous
    );
}

/// Goroutine stacks (kernel/src/mm/stack.rs): what a parked goroutine holds compared with an M's
/// own stack, and what spawn+exit costs with the stack cache and without it.
fn demo_stacks() {
    let args = kernel::args::get();
    let n = if args.parked == 0 {
        20_000
    } else {
        args.parked as usize
    };
    let out = Arc::new(spin::Mutex::new(None));
    let o = out.clone();
    kernel::rt::run::run(args.gomaxprocs, move || {
        let t0 = kernel::x86::tsc::nanos();
        let (before, parked) = kernel::testing::measure::park_many(n);
        let park_ms = (kernel::x86::tsc::nanos() - t0) / 1_000_000;
        // The same cycles with the cache, then without (every stack from and back to the
        // page tables: map, unmap, TLB shootdown).
        kernel::testing::measure::spawn_exit(2_000, 100);
        let cached = kernel::testing::measure::spawn_exit(20_000, 100);
        kernel::rt::stats::set_stack_cache(false);
        let uncached = kernel::testing::measure::spawn_exit(20_000, 100);
        kernel::rt::stats::set_stack_cache(true);
        *o.lock() = Some((before, parked, cached, uncached, park_ms));
    });
    let (before, parked, cached, uncached, park_ms) = out.lock().take().expect("the demo ran");
    let c = kernel::testing::measure::per_goroutine(&before, &parked, n);
    let slot = kernel::mm::stack::slot_size();
    println!(
        "stacks: {n} parked goroutines in {park_ms} ms (spawned, parked and released; emulated) hold {} bytes each ({} stack page, {} page tables, {} heap) in {} KiB slots; an M's stack is {} KiB, mapped whole ({}x)",
        c.total,
        c.stack,
        c.page_tables,
        c.heap,
        slot / 1024,
        kernel::x86::smp::AP_STACK_SIZE / 1024,
        kernel::x86::smp::AP_STACK_SIZE as u64 / c.total.max(1)
    );
    println!(
        "stacks: spawn+exit {cached} ns with the stack cache, {uncached} ns without (emulated); {} demand faults, {} TLB shootdowns so far",
        kernel::mm::stack::stats().faults,
        kernel::x86::tlb::shootdowns()
    );
}

/// Channels, select and timers: Go's concurrent prime sieve (a chain of filter goroutines
/// joined by unbuffered channels), a `select` that times out, and how late 1 ms sleeps wake
/// when the CPUs have nothing else to do (the poller halts until the LAPIC one-shot).
fn demo_channels() {
    use core::time::Duration;
    use rt_core::{chan, select, time};
    const PRIMES: usize = 1000;
    const SLEEPS: usize = 20;
    let out = Arc::new(spin::Mutex::new((Vec::new(), Vec::new(), "")));
    let o = out.clone();
    let t0 = kernel::x86::tsc::nanos();
    kernel::rt::run::run(0, move || {
        let first = chan::make::<u64>(0);
        let gen = first.clone();
        spawn(move || {
            for i in 2.. {
                gen.send(i);
            }
        });
        let mut ch = first;
        let mut primes = Vec::new();
        for _ in 0..PRIMES {
            let p = ch.recv().unwrap();
            primes.push(p);
            let next = chan::make::<u64>(0);
            let (input, tx) = (ch.clone(), next.clone());
            spawn(move || {
                for v in input {
                    if v % p != 0 {
                        tx.send(v);
                    }
                }
            });
            ch = next;
        }
        let never = chan::make::<u8>(0);
        let how = select! {
            recv(never) -> _ => "a value",
            recv(time::after(Duration::from_millis(2))) -> _ => "the timeout",
        };
        let mut late = Vec::new();
        for _ in 0..SLEEPS {
            let deadline = time::now() + 1_000_000;
            time::sleep(Duration::from_millis(1));
            late.push(time::now() - deadline);
        }
        *o.lock() = (primes, late, how);
    });
    let ms = (kernel::x86::tsc::nanos() - t0) / 1_000_000;
    let (primes, mut late, how) = core::mem::take(&mut *out.lock());
    println!(
        "chan: prime sieve: {} primes through {} filter goroutines, the last {} ({}) in {ms} ms (emulated)",
        primes.len(),
        primes.len(),
        primes.last().copied().unwrap_or(0),
        if primes.last() == Some(&7919) { "correct" } else { "WRONG" }
    );
    let median = kernel::testing::measure::median(&mut late);
    println!(
        "chan: select on a silent channel and time::after(2 ms) chose {how}; {SLEEPS} sleeps of 1 ms woke late by median {} us, max {} us (emulated)",
        median / 1000,
        late[SLEEPS - 1] / 1000
    );
    if primes.last() != Some(&7919) || how != "the timeout" {
        kernel::dev::qemu::exit(kernel::dev::qemu::ExitCode::Failure);
    }
}

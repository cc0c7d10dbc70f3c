//! Preemption in the kernel: the tick as sysmon flags a goroutine that overran its time
//! slice, and a loop with no safe point is preempted from the timer interrupt.
//! @smp 1 2 4
//! @cpu qemu64 qemu64,+x2apic

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use kernel::x86::{percpu, tsc};
use rt_core::{spawn, WaitGroup};
use tests::preempt::{assert_not_starved, tight_loop_beside_a_sleeper};

kernel::test_kernel!(
    tight_loop_does_not_starve_a_sleeper,
    spinners_share_one_p_fairly,
    lock_holder_is_never_preempted_from_the_interrupt,
    every_cpu_preempts_its_goroutines,
    p_stuck_in_a_syscall_is_retaken
);

fn async_total() -> u64 {
    (0..percpu::MAX_CPUS)
        .map_while(percpu::get)
        .map(|p| p.async_preempts.load(Ordering::SeqCst))
        .sum()
}

fn tight_loop_does_not_starve_a_sleeper() {
    let r = tight_loop_beside_a_sleeper(core::hint::spin_loop);
    assert_not_starved(&r, "async preemption");
    let p = kernel::rt::stats::last_run_preemptions();
    assert!(p.asynchronous > 0, "no asynchronous preemption: {p:?}");
    // A tight loop has no safe point: each of its preemptions came from the interrupt.
    kernel::println!("preempt: counts {p:?}");
}

/// N spinners with no safe point on one P take turns round-robin: each gets as many turns as
/// the others, within one or two, and every preemption passes the P on. Counted, not timed: a turn is a change of which spinner runs
/// (one P, so one at a time), so a host that deschedules QEMU's vCPU thread cannot move it;
/// the shares of emulated time are printed beside it, for the reader. (Asserted on those shares
/// within ±10 points, the test failed once in CI with two QEMUs on two loaded cores: [43.8,
/// 27.3, 28.9] %, while the same kernel alone spreads under 5 points.)
fn spinners_share_one_p_fairly() {
    const N: usize = 3;
    const RUN_MS: u64 = 600;
    // Each spinner adds up the time it saw itself running (gaps between its clock reads
    // longer than 200 µs are times it was off the CPU), and counts a turn whenever it finds
    // that the last spinner to run was another.
    let ran: Arc<Vec<AtomicU64>> = Arc::new((0..N).map(|_| AtomicU64::new(0)).collect());
    let turns: Arc<Vec<AtomicU64>> = Arc::new((0..N).map(|_| AtomicU64::new(0)).collect());
    let (ran2, turns2) = (ran.clone(), turns.clone());
    let preempts_before = async_total();
    kernel::rt::run::run(1, move || {
        let wg = Arc::new(WaitGroup::new());
        wg.add(N as i32);
        let end = tsc::nanos() + RUN_MS * 1_000_000;
        let owner = Arc::new(AtomicU64::new(u64::MAX));
        for i in 0..N {
            let (wg, ran, turns, owner) = (wg.clone(), ran2.clone(), turns2.clone(), owner.clone());
            spawn(move || {
                let mut mine = 0;
                let mut last = tsc::nanos();
                while last < end {
                    if owner.swap(i as u64, Ordering::Relaxed) != i as u64 {
                        turns[i].fetch_add(1, Ordering::Relaxed);
                    }
                    let now = tsc::nanos();
                    if now - last < 200_000 {
                        mine += now - last;
                    }
                    last = now;
                }
                ran[i].store(mine, Ordering::SeqCst);
                wg.done();
            });
        }
        wg.wait();
    });
    let shares: Vec<u64> = ran.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    let turns: Vec<u64> = turns.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    let preempts = async_total() - preempts_before;
    let total: u64 = shares.iter().sum();
    assert!(total > 0);
    let pct: Vec<f64> = shares
        .iter()
        .map(|&s| 100.0 * s as f64 / total as f64)
        .collect();
    kernel::println!(
        "preempt: {N} spinners on one P for {RUN_MS} ms: turns {turns:?} for {preempts} preemptions, shares {pct:.1?} % of the time (fair: {:.1} %)",
        100.0 / N as f64,
    );
    let (lo, hi) = (*turns.iter().min().unwrap(), *turns.iter().max().unwrap());
    // 600 ms of 10 ms slices is ~60 turns; fewer than 3 each means the slices did not rotate.
    assert!(
        lo >= 3,
        "turns {turns:?}: a spinner hardly ran (no round-robin among the {N})"
    );
    // Round-robin through the global queue gives each the same number of turns; a spinner
    // that ends its loop first may miss the last round.
    assert!(
        hi - lo <= 2,
        "unfair turns {turns:?}: round-robin gives each spinner the same number, within 2"
    );
    // And each preemption hands the P to the next spinner: a spinner given two slices in a
    // row (equal turns, unequal time) shows as more preemptions than turns.
    let total: u64 = turns.iter().sum();
    assert!(
        preempts <= total + N as u64,
        "{preempts} preemptions but only {total} turns {turns:?}: a preempted spinner ran again"
    );
}

/// A goroutine holding a runtime lock (m.locks > 0) runs past several time slices without an
/// asynchronous preemption; released, the same loop is preempted.
fn lock_holder_is_never_preempted_from_the_interrupt() {
    let result = Arc::new(spin::Mutex::new((0u64, 0u64)));
    let r2 = result.clone();
    kernel::rt::run::run(1, move || {
        static LOCK: rt_core::sync::SpinLock<()> = rt_core::sync::SpinLock::new(());
        let spin_for = |ms: u64| {
            let until = tsc::nanos() + ms * 1_000_000;
            while tsc::nanos() < until {
                core::hint::spin_loop();
            }
        };
        LOCK.raw_lock();
        let before = async_total();
        spin_for(50);
        let during = async_total() - before;
        // SAFETY: taken by raw_lock above, on this M (nothing could move us: no preemption).
        unsafe { LOCK.raw_unlock() };
        let before = async_total();
        spin_for(50);
        let after = async_total() - before;
        *r2.lock() = (during, after);
    });
    let (during, after) = *result.lock();
    assert_eq!(
        during, 0,
        "preempted from the interrupt while holding a runtime lock"
    );
    assert!(
        after > 0,
        "the same loop without the lock was never preempted"
    );
}

/// With every CPU an M, each CPU preempts the tight loops it runs.
///
/// The loops spin until every CPU has preempted at least once (or 10 s of guest time pass),
/// not for a fixed time: under TCG on a loaded host a vCPU can be descheduled for longer than
/// any fixed loop, and CI saw one CPU come up empty after the others finished 100 ms loops.
fn every_cpu_preempts_its_goroutines() {
    let ncpu = percpu::ONLINE.load(Ordering::SeqCst) as usize;
    let count = |i: usize| {
        percpu::get(i)
            .unwrap()
            .async_preempts
            .load(Ordering::SeqCst)
    };
    let before: Arc<Vec<u64>> = Arc::new((0..ncpu).map(count).collect());
    let delta =
        move |before: &[u64]| -> Vec<u64> { (0..ncpu).map(|i| count(i) - before[i]).collect() };
    let b = before.clone();
    kernel::rt::run::run(0, move || {
        let wg = Arc::new(WaitGroup::new());
        let n = 2 * ncpu;
        wg.add(n as i32);
        for _ in 0..n {
            let (wg, b) = (wg.clone(), b.clone());
            spawn(move || {
                tests::wait_for(0, || !delta(&b).contains(&0), core::hint::spin_loop);
                wg.done();
            });
        }
        wg.wait();
    });
    let per_cpu = delta(&before);
    kernel::println!("preempt: async preemptions per CPU: {per_cpu:?}");
    for (cpu, &n) in per_cpu.iter().enumerate() {
        assert!(n > 0, "cpu {cpu} preempted nothing: {per_cpu:?}");
    }
}

/// GOMAXPROCS=1: a goroutine blocks 60 ms in a "syscall" (entersyscall, a busy wait standing
/// for a device, exitsyscall). CPU 0's tick retakes the P (at every CPU count: the retake
/// counter grows during the call) and an idle M on another CPU picks it up, so a second
/// goroutine runs meanwhile. With one CPU there is no other M to hand the P to: the second
/// goroutine waits.
fn p_stuck_in_a_syscall_is_retaken() {
    use core::sync::atomic::AtomicBool;
    let ncpu = percpu::ONLINE.load(Ordering::SeqCst);
    let in_syscall = Arc::new(AtomicBool::new(false));
    let ran_meanwhile = Arc::new(AtomicBool::new(false));
    let retaken_meanwhile = Arc::new(AtomicU64::new(0));
    let (a, b, r) = (
        in_syscall.clone(),
        ran_meanwhile.clone(),
        retaken_meanwhile.clone(),
    );
    kernel::rt::run::run(1, move || {
        let wg = Arc::new(WaitGroup::new());
        wg.add(2);
        let done = Arc::new(AtomicBool::new(false));
        {
            let (wg, a, b, d, r) = (wg.clone(), a.clone(), b.clone(), done.clone(), r.clone());
            spawn(move || {
                let retakes = || kernel::rt::stats::syscall_retakes().expect("a runtime runs");
                let before = retakes();
                rt_core::entersyscall();
                a.store(true, Ordering::SeqCst);
                // 60 ms, or, with another CPU to take the P, until the other goroutine ran
                // (at most 10 s): a loaded host may not run that vCPU within 60 ms.
                let ran = || b.load(Ordering::SeqCst);
                if ncpu >= 2 {
                    tests::wait_for(0, ran, core::hint::spin_loop);
                } else {
                    let until = tsc::nanos() + 60_000_000;
                    while tsc::nanos() < until {
                        core::hint::spin_loop();
                    }
                }
                a.store(false, Ordering::SeqCst);
                r.store(retakes() - before, Ordering::SeqCst);
                rt_core::exitsyscall();
                d.store(true, Ordering::SeqCst);
                wg.done();
            });
        }
        {
            let (wg, a, b, done) = (wg.clone(), a.clone(), b.clone(), done.clone());
            spawn(move || {
                // Look for the other goroutine's syscall until it is over.
                while !done.load(Ordering::SeqCst) {
                    if a.load(Ordering::SeqCst) {
                        b.store(true, Ordering::SeqCst);
                        break;
                    }
                    rt_core::gosched();
                }
                wg.done();
            });
        }
        wg.wait();
    });
    let ran = ran_meanwhile.load(Ordering::SeqCst);
    let retaken = retaken_meanwhile.load(Ordering::SeqCst);
    kernel::println!(
        "preempt: during a syscall at GOMAXPROCS=1 on {ncpu} CPUs: P retaken {retaken} times, \
         another goroutine ran: {ran}"
    );
    assert!(
        retaken > 0,
        "the P stayed with the M in the syscall for 60 ms: never retaken"
    );
    if ncpu >= 2 {
        assert!(ran, "the P was retaken but no M took it: nothing else ran");
    } else {
        assert!(
            !ran,
            "another goroutine ran during the syscall with no CPU but the syscall's own"
        );
    }
}

//! An idle M really halts (its CPU sleeps in `hlt` instead of spinning) and wakes when work
//! arrives: after a burst that starts every M, the main goroutine waits alone for 50 ms (the
//! other Ms find nothing, spin briefly, park and halt: each CPU is then asleep on its M's
//! park note, having executed only a few `hlt`s), then spawns more work, which wakes parked
//! Ms through the wake-up IPI. The Ms of the first burst were handed to halted APs, and each
//! hand-off's own IPI woke its AP (not the AP's next tick).
//! @smp 4
//! @cpu qemu64 qemu64,+x2apic

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use rt_core::{spawn, WaitGroup};

kernel::test_kernel!(idle_ms_halt_and_wake_for_work);

fn burst(n: i32) {
    let wg = Arc::new(WaitGroup::new());
    wg.add(n);
    for _ in 0..n {
        let wg = wg.clone();
        spawn(move || {
            for _ in 0..20_000 {
                core::hint::spin_loop();
            }
            wg.done();
        });
    }
    wg.wait();
}

fn ticks() -> Vec<u64> {
    let cpus = kernel::x86::percpu::ONLINE.load(Ordering::SeqCst) as usize;
    (0..cpus)
        .map(|i| {
            kernel::x86::percpu::get(i)
                .unwrap()
                .ticks
                .load(Ordering::SeqCst)
        })
        .collect()
}

fn counters() -> (Vec<u64>, Vec<u64>) {
    let cpus = kernel::x86::percpu::ONLINE.load(Ordering::SeqCst) as usize;
    let halts = (0..cpus)
        .map(|i| {
            kernel::x86::percpu::get(i)
                .unwrap()
                .halts
                .load(Ordering::SeqCst)
        })
        .collect();
    let wakes = (0..cpus)
        .map(|i| {
            kernel::x86::percpu::get(i)
                .unwrap()
                .wakeups
                .load(Ordering::SeqCst)
        })
        .collect();
    (halts, wakes)
}

fn idle_ms_halt_and_wake_for_work() {
    let report = Arc::new(spin::Mutex::new(None));
    let r = report.clone();
    let stats = kernel::rt::run::run(4, move || {
        burst(2_000); // every M gets started
        let (h0, _) = counters();
        let t0 = ticks();
        // Alone for at least 50 ms of (emulated) time: the other Ms park. Longer (up to 10 s)
        // if some CPU is not asleep yet: under TCG on a loaded host a vCPU may not have run
        // at all in 50 ms, and that is the host's doing, not ours.
        let me = kernel::x86::cpu::index() as usize;
        let ncpu = kernel::x86::percpu::ONLINE.load(Ordering::SeqCst) as usize;
        let all_asleep = || {
            (0..ncpu).filter(|&i| i != me).all(|i| {
                !kernel::x86::percpu::get(i)
                    .unwrap()
                    .sleeping_on
                    .load(Ordering::SeqCst)
                    .is_null()
            })
        };
        tests::wait_for(50_000_000, all_asleep, core::hint::spin_loop);
        let (h1, w1) = counters();
        let t1 = ticks();
        // Which CPUs are asleep right now (halted on their M's park note)?
        let asleep: Vec<bool> = (0..h1.len())
            .map(|i| {
                !kernel::x86::percpu::get(i)
                    .unwrap()
                    .sleeping_on
                    .load(Ordering::SeqCst)
                    .is_null()
            })
            .collect();
        burst(2_000); // wakes parked Ms
        let (_, w2) = counters();
        *r.lock() = Some((h0, h1, w1, w2, me, asleep, t0, t1));
    });
    let (h0, h1, w1, w2, me, asleep, t0, t1) = report.lock().take().expect("main goroutine ran");
    kernel::println!(
        "main on cpu {me}; asleep after 50 ms idle: {asleep:?}; halts {h0:?} -> {h1:?}; \
         wake-ups {w1:?} -> {w2:?}; per-P {stats:?}"
    );
    for cpu in (0..h0.len()).filter(|&c| c != me) {
        assert!(
            asleep[cpu],
            "cpu {cpu} is not halted on its M's park note after 50 ms with nothing to do"
        );
        // Halting means sleeping until an interrupt: the 1 ms tick wakes a halted CPU once
        // per tick, and it halts again; a spinning CPU would halt thousands of times.
        let halted = h1[cpu] - h0[cpu];
        let ticked = t1[cpu] - t0[cpu];
        assert!(
            halted <= ticked + 10,
            "cpu {cpu} halted {halted} times over {ticked} ticks: it is spinning"
        );
    }
    // Every AP was handed its M (rt/platform.rs `new_os_thread`) while it halted in its idle
    // loop. The hand-off's wake-up IPI ends that halt at once; without it the M would wait for
    // the CPU's next tick, which the AP counts as a late hand-off (smp.rs `ap_idle`). A tick can
    // beat the IPI only in the few instructions between the AP's wake-up and its look at
    // `pending_m`, so late ones must be the exception.
    let (woken, late): (u64, u64) = (1..h0.len())
        .map(|i| {
            let c = kernel::x86::percpu::get(i).unwrap();
            (
                c.handoffs_woken.load(Ordering::SeqCst),
                c.handoffs_late.load(Ordering::SeqCst),
            )
        })
        .fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
    kernel::println!("Ms handed to halted APs: {woken} woken by the IPI, {late} found at a tick");
    assert!(
        woken >= 1 && woken > late,
        "Ms handed to halted APs waited for a tick instead of being woken by the hand-off's \
         IPI: {woken} woken, {late} late"
    );
    let woken = (0..w1.len()).filter(|&c| c != me && w2[c] > w1[c]).count();
    assert!(woken >= 1, "no parked M was woken for the second burst");
    assert!(
        stats.iter().filter(|&&(ran, _)| ran > 0).count() >= 2,
        "work ran on several Ps: {stats:?}"
    );
}

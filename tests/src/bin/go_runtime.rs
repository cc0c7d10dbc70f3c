//! Go's `runtime` package in the kernel: `num_goroutine`, `set_gomaxprocs` while goroutines
//! run on every CPU (Ps retired and brought back, none of their goroutines or timers lost), and
//! `goexit` (which in the kernel, without unwinding, ends the goroutine at once). The host's
//! counterparts: rt-core/tests/runtime_go.rs.
//! @smp 2 4
//! @timeout 180

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core::time::Duration;
use rt_core::time::{now, sleep};
use rt_core::{
    chan, goexit, gomaxprocs, gosched, num_goroutine, set_gomaxprocs, spawn, SetGomaxprocsError,
    WaitGroup,
};

kernel::test_kernel!(
    num_goroutine_counts_the_living,
    set_gomaxprocs_shrinks_and_grows_while_goroutines_run,
    sleepers_on_removed_ps_still_wake,
    goexit_ends_the_goroutine_there,
);

fn num_goroutine_counts_the_living() {
    let out = Arc::new(spin::Mutex::new((0, 0, 0)));
    let o = out.clone();
    kernel::rt::run::run(0, move || {
        let before = num_goroutine();
        let gate = chan::make::<()>(0);
        let wg = Arc::new(WaitGroup::new());
        for _ in 0..10 {
            let (g, wg) = (gate.clone(), wg.clone());
            wg.add(1);
            spawn(move || {
                g.recv();
                wg.done();
            });
        }
        let during = num_goroutine();
        gate.close();
        wg.wait();
        let mut after = num_goroutine();
        for _ in 0..1000 {
            if after == 1 {
                break;
            }
            sleep(Duration::from_millis(1));
            after = num_goroutine();
        }
        *o.lock() = (before, during, after);
    });
    assert_eq!(*out.lock(), (1, 11, 1), "(before, with 10 parked, after)");
}

/// Per phase (the value of `phase` when a slice starts): how many slices are inside at once
/// and the most seen. Counting by the phase a slice *started* in keeps a slice that began
/// before a change (on a thread or vCPU the host then left unscheduled for a while) out of
/// the next phase's count.
struct Load {
    phase: AtomicUsize,
    inside: [AtomicUsize; 8],
    most: [AtomicUsize; 8],
    work: AtomicUsize,
    stop: AtomicBool,
}

impl Load {
    fn new() -> Load {
        Load {
            phase: AtomicUsize::new(0),
            inside: Default::default(),
            most: Default::default(),
            work: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        }
    }
}

fn set_gomaxprocs_shrinks_and_grows_while_goroutines_run() {
    let out = Arc::new(spin::Mutex::new(Vec::new()));
    let o = out.clone();
    kernel::rt::run::run(0, move || {
        let ncpu = gomaxprocs();
        let l = Arc::new(Load::new());
        let wg = Arc::new(WaitGroup::new());
        for _ in 0..16 {
            let (l, wg) = (l.clone(), wg.clone());
            wg.add(1);
            spawn(move || {
                while !l.stop.load(Ordering::Relaxed) {
                    let ph = l.phase.load(Ordering::SeqCst);
                    let n = l.inside[ph].fetch_add(1, Ordering::SeqCst) + 1;
                    l.most[ph].fetch_max(n, Ordering::SeqCst);
                    let t0 = now();
                    while now() - t0 < 200_000 {
                        core::hint::spin_loop();
                    }
                    l.inside[ph].fetch_sub(1, Ordering::SeqCst);
                    l.work.fetch_add(1, Ordering::Relaxed);
                    gosched();
                }
                wg.done();
            });
        }
        let mut phases = Vec::new();
        for (i, n) in [1, ncpu, 1, 2, 1].into_iter().enumerate() {
            let old = set_gomaxprocs(n).unwrap();
            sleep(Duration::from_millis(30));
            l.phase.store(i + 1, Ordering::SeqCst);
            let w0 = l.work.load(Ordering::Relaxed);
            sleep(Duration::from_millis(100));
            phases.push((
                old,
                n,
                gomaxprocs(),
                l.most[i + 1].load(Ordering::SeqCst),
                l.work.load(Ordering::Relaxed) - w0,
            ));
        }
        l.stop.store(true, Ordering::Relaxed);
        wg.wait();
        assert_eq!(
            set_gomaxprocs(ncpu + 1),
            Err(SetGomaxprocsError::OutOfRange {
                asked: ncpu + 1,
                max: ncpu
            })
        );
        *o.lock() = phases;
    });
    let phases = out.lock().clone();
    kernel::println!("gomaxprocs phases (old, new, now, most at once, work): {phases:?}");
    for &(_, n, now, most, work) in &phases {
        assert_eq!(now, n);
        assert!(work > 0, "no work at GOMAXPROCS {n}: goroutines lost");
        if n == 1 {
            assert!(most <= 1, "{most} goroutines at once at GOMAXPROCS 1");
        }
    }
    assert!(
        phases.iter().any(|&(_, n, _, most, _)| n > 1 && most > 1),
        "no phase with several Ps ran goroutines in parallel"
    );
}

fn sleepers_on_removed_ps_still_wake() {
    let out = Arc::new(spin::Mutex::new(Vec::new()));
    let o = out.clone();
    kernel::rt::run::run(0, move || {
        let done = chan::make::<u32>(256);
        let wg = Arc::new(WaitGroup::new());
        for i in 0..200u32 {
            let (d, wg) = (done.clone(), wg.clone());
            wg.add(1);
            spawn(move || {
                sleep(Duration::from_millis(5 + (i % 20) as u64));
                d.send(i);
                wg.done();
            });
        }
        sleep(Duration::from_millis(2));
        set_gomaxprocs(1).unwrap();
        wg.wait();
        done.close();
        let mut seen: Vec<u32> = done.collect();
        seen.sort();
        *o.lock() = seen;
    });
    assert_eq!(*out.lock(), (0..200).collect::<Vec<_>>());
}

fn goexit_ends_the_goroutine_there() {
    let after = Arc::new(AtomicBool::new(false));
    let a = after.clone();
    let got = Arc::new(AtomicUsize::new(0));
    let g2 = got.clone();
    kernel::rt::run::run(0, move || {
        let wg = Arc::new(WaitGroup::new());
        wg.add(1);
        let w = wg.clone();
        spawn(move || {
            w.done();
            exit_if(core::hint::black_box(true));
            a.store(true, Ordering::SeqCst);
        });
        wg.wait();
        let c = chan::make::<usize>(1);
        let c2 = c.clone();
        spawn(move || c2.send(7));
        g2.store(c.recv().unwrap(), Ordering::SeqCst);
    });
    assert!(!after.load(Ordering::SeqCst), "code after goexit ran");
    assert_eq!(
        got.load(Ordering::SeqCst),
        7,
        "the runtime went on after goexit"
    );
}

fn exit_if(yes: bool) {
    if yes {
        goexit();
    }
}

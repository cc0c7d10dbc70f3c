//! Go 1.23's timers on host threads: `Timer::stop`/`reset` in every state, `Ticker` (never
//! early, whole periods apart, no stale tick after `reset`/`stop`, ticks dropped for a slow
//! receiver), `after_func` (its own goroutine; `stop` prevents it), deadlock detection with
//! tickers and `after_func`, and many timers reset concurrently.
//!
//! Nothing is timed one way but "never early" (deterministic against the clock); counts and
//! orders are what is checked. Tests that expect a deadlock run under a watchdog.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rt_core::chan::{self, TryRecvError};
use rt_core::time::{
    after_func, new_ticker, new_timer, new_timer_at, now, sleep, tick, Ticker, Timer,
};
use rt_core::{goid, gosched, select, spawn, Runtime, WaitGroup};

mod common;
use common::{assert_deadlock, watchdog};

const MS: u64 = 1_000_000;
const HOUR: Duration = Duration::from_secs(3600);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Receives `n` ticks; checks each against the previous: strictly increasing, a whole number
/// of periods apart (Go's next-boundary rule) and never received before it was due.
fn ticks(t: &Ticker, n: usize, period: u64, after: u64) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for i in 0..n {
        let v = t.c.recv().unwrap();
        let at = now();
        assert!(at >= v, "tick {i} (due {v}) received {} ns early", v - at);
        match out.last() {
            None => assert!(
                v >= after + period,
                "first tick due {} ns after the start, before one period",
                v - after
            ),
            Some(&prev) => {
                assert!(v > prev, "tick {i} ({v}) not after tick {} ({prev})", i - 1);
                assert!(
                    v - prev >= period && (v - prev).is_multiple_of(period),
                    "tick {i} {} ns after the previous one (period {period})",
                    v - prev
                );
            }
        }
        out.push(v);
    }
    out
}

#[test]
fn ticks_are_never_early_and_whole_periods_apart() {
    Runtime::new(2).block_on(|| {
        let t0 = now();
        let t = new_ticker(ms(2));
        ticks(&t, 15, 2 * MS, t0);
        t.stop();
    });
}

/// Across `reset`, the ticks of the old period stop (none of them is received afterwards, even
/// one that was sitting unreceived in the channel) and the new period's come, none doubled.
#[test]
fn reset_changes_the_period_with_no_stale_or_doubled_tick() {
    Runtime::new(2).block_on(|| {
        let t0 = now();
        let t = new_ticker(ms(1));
        let before = ticks(&t, 10, MS, t0);
        // Let a tick of the old period wait unreceived in the channel.
        sleep(ms(3));
        let r = now();
        t.reset(ms(3));
        let after = ticks(&t, 8, 3 * MS, r);
        assert!(after[0] > *before.last().unwrap());
        t.stop();
    });
}

#[test]
fn a_slow_receiver_gets_ticks_dropped_not_queued() {
    // One P, so one heap: the ticker's entries and the sleep's pop in deadline order, and the
    // tick due a period after the first has fired (and been dropped) before the sleep ends.
    Runtime::new(1).block_on(|| {
        let p = MS;
        let t = new_ticker(Duration::from_nanos(p));
        sleep(Duration::from_nanos(20 * p));
        let first = t.c.recv().unwrap();
        let second = t.c.recv().unwrap();
        assert!(
            second >= first + 2 * p,
            "the tick after {first} came {} ns later: ticks were queued",
            second - first
        );
        t.stop();
    });
}

#[test]
fn a_stopped_ticker_sends_nothing_more_and_its_unreceived_tick_is_gone() {
    Runtime::new(2).block_on(|| {
        let t = new_ticker(ms(1));
        t.c.recv().unwrap();
        // A tick waits unreceived (one period passes, then some).
        sleep(ms(3));
        t.stop();
        assert_eq!(
            t.c.try_recv(),
            Err(TryRecvError::Empty),
            "stale tick after stop"
        );
        sleep(ms(5));
        assert_eq!(
            t.c.try_recv(),
            Err(TryRecvError::Empty),
            "a tick after stop"
        );
        // A stopped ticker restarts with reset.
        let r = now();
        t.reset(ms(1));
        let v = t.c.recv().unwrap();
        assert!(v >= r + MS);
        t.stop();
    });
}

#[test]
fn tick_ticks_and_tick_zero_never_does() {
    Runtime::new(2).block_on(|| {
        let t0 = now();
        let c = tick(ms(1));
        let a = c.recv().unwrap();
        let b = c.recv().unwrap();
        assert!(a >= t0 + MS && b >= a + MS && (b - a).is_multiple_of(MS));
        let never = tick(Duration::ZERO);
        let r = select! {
            recv(never) -> _ => "ticked",
            recv(rt_core::time::after(ms(5))) -> _ => "timeout",
        };
        assert_eq!(r, "timeout");
    });
}

#[test]
#[should_panic(expected = "non-positive interval for NewTicker")]
fn new_ticker_of_zero_panics() {
    Runtime::new(1).block_on(|| {
        new_ticker(Duration::ZERO);
    });
}

#[test]
#[should_panic(expected = "non-positive interval for Ticker.Reset")]
fn ticker_reset_to_zero_panics() {
    Runtime::new(1).block_on(|| {
        new_ticker(HOUR).reset(Duration::ZERO);
    });
}

/// A timer whose deadline has passed and whose value is waiting (on one P its heap entry runs
/// before the sleep's, and a receive would find it past its deadline either way).
fn fired_unreceived() -> Timer {
    let t = new_timer_at(now());
    sleep(ms(2));
    t
}

/// Go 1.23: a value not yet received counts as not delivered: `stop` and `reset` remove it
/// and report the timer as having been active.
#[test]
fn stop_reports_and_does_what_go_1_23_does_in_every_state() {
    Runtime::new(1).block_on(|| {
        // Pending.
        let t = new_timer(HOUR);
        assert!(t.stop(), "stop of a pending timer");
        // Stopped.
        assert!(!t.stop(), "stop of a stopped timer");
        assert_eq!(t.c.try_recv(), Err(TryRecvError::Empty));
        // Fired, value not received: stop removes it.
        let t = fired_unreceived();
        assert!(
            t.stop(),
            "stop of a fired timer whose value was not received"
        );
        assert_eq!(
            t.c.try_recv(),
            Err(TryRecvError::Empty),
            "stale value after stop"
        );
        assert!(!t.stop());
        // Fired and received.
        let t = new_timer_at(now());
        t.c.recv().unwrap();
        assert!(!t.stop(), "stop of a timer whose value was received");
        sleep(ms(2));
        assert_eq!(t.c.try_recv(), Err(TryRecvError::Empty));
    });
}

#[test]
fn reset_reports_and_does_what_go_1_23_does_in_every_state() {
    Runtime::new(1).block_on(|| {
        // Pending: true, and it fires at the new time only, once.
        let t = new_timer(HOUR);
        let r = now();
        assert!(t.reset(ms(2)), "reset of a pending timer");
        let v = t.c.recv().unwrap();
        assert!(
            v >= r + 2 * MS,
            "fired {} ns before its reset deadline",
            r + 2 * MS - v
        );
        // Fired and received: false, and it fires again.
        let r = now();
        assert!(!t.reset(ms(1)), "reset of a timer whose value was received");
        assert!(t.c.recv().unwrap() >= r + MS);
        sleep(ms(2));
        assert_eq!(t.c.try_recv(), Err(TryRecvError::Empty), "a second value");
        // Fired, value not received: true, the old value is gone, the new one comes later.
        let t = fired_unreceived();
        let r = now();
        assert!(
            t.reset(ms(2)),
            "reset of a fired timer whose value was not received"
        );
        let v = t.c.recv().unwrap();
        assert!(v >= r + 2 * MS, "received the value from before the reset");
        // Stopped: false, and it fires again.
        let t = new_timer(HOUR);
        assert!(t.stop());
        let r = now();
        assert!(!t.reset(ms(1)), "reset of a stopped timer");
        assert!(t.c.recv().unwrap() >= r + MS);
        // A reset to later than a pending deadline: the earlier one does not fire.
        let t = new_timer(ms(1));
        let r = now();
        assert!(t.reset(ms(6)));
        let v = t.c.recv().unwrap();
        assert!(v >= r + 6 * MS, "the deadline from before the reset fired");
    });
}

#[test]
fn after_func_runs_in_its_own_goroutine_and_stop_prevents_it() {
    Runtime::new(2).block_on(|| {
        let me = goid();
        let c = chan::make::<u64>(1);
        let c2 = c.clone();
        let t0 = now();
        let t = after_func(ms(2), move || {
            c2.send(goid());
        });
        let g = c.recv().unwrap();
        assert!(now() >= t0 + 2 * MS, "the function ran early");
        assert_ne!(g, me, "the function ran in the caller's goroutine");
        assert_ne!(g, 0, "the function ran outside a goroutine");
        assert!(!t.stop(), "stop after the function started");
        // Reset after it ran: false, and it runs again.
        assert!(!t.reset(ms(1)));
        assert_ne!(c.recv().unwrap(), me);

        let runs = Arc::new(AtomicUsize::new(0));
        let r2 = runs.clone();
        let t = after_func(ms(2), move || {
            r2.fetch_add(1, Ordering::SeqCst);
        });
        assert!(t.stop(), "stop of a pending after_func");
        assert!(!t.stop());
        // Its deadline passes; then a reset pending: true, and it runs once.
        sleep(ms(5));
        assert_eq!(runs.load(Ordering::SeqCst), 0, "a stopped after_func ran");
        assert!(!t.reset(HOUR));
        assert!(t.reset(ms(1)), "reset of a pending after_func");
        while runs.load(Ordering::SeqCst) == 0 {
            sleep(ms(1));
        }
        sleep(ms(3));
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the function ran twice");
        // Its timer's channel never receives (Go's nil C).
        assert_eq!(t.c.try_recv(), Err(TryRecvError::Empty));
    });
}

/// Many `after_func`s on 4 Ps, half of them stopped: exactly those whose `stop` returned false
/// run, each once.
#[test]
fn after_funcs_run_exactly_when_not_stopped() {
    const N: usize = 200;
    Runtime::new(4).block_on(|| {
        let ran: Arc<Vec<AtomicUsize>> = Arc::new((0..N).map(|_| AtomicUsize::new(0)).collect());
        let timers: Vec<Timer> = (0..N)
            .map(|i| {
                let ran = ran.clone();
                after_func(
                    Duration::from_micros(500 + (i as u64 % 7) * 300),
                    move || {
                        ran[i].fetch_add(1, Ordering::SeqCst);
                    },
                )
            })
            .collect();
        let stopped: Vec<bool> = timers
            .iter()
            .enumerate()
            .map(|(i, t)| i % 2 == 0 && t.stop())
            .collect();
        let expected = stopped.iter().filter(|s| !**s).count();
        loop {
            let n: usize = ran.iter().map(|r| r.load(Ordering::SeqCst)).sum();
            if n >= expected {
                break;
            }
            sleep(ms(1));
        }
        sleep(ms(5));
        for i in 0..N {
            let r = ran[i].load(Ordering::SeqCst);
            assert_eq!(
                r,
                usize::from(!stopped[i]),
                "after_func {i} (stopped: {})",
                stopped[i]
            );
        }
    });
}

/// Several goroutines reset (and stop) the same timers at once on 4 Ps, leaving entries of
/// many old armings in every heap, due before and after the final reset. After the final
/// reset each timer delivers exactly one value, not before its final deadline: nothing lost,
/// nothing doubled, nothing stale.
#[test]
fn timers_reset_concurrently_lose_and_double_nothing() {
    const TIMERS: usize = 16;
    const GS: usize = 4;
    const ROUNDS: usize = 300;
    Runtime::new(4).block_on(|| {
        let timers: Arc<Vec<Timer>> = Arc::new((0..TIMERS).map(|_| new_timer(HOUR)).collect());
        let wg = Arc::new(WaitGroup::new());
        for g in 0..GS {
            let (timers, wg) = (timers.clone(), wg.clone());
            wg.add(1);
            spawn(move || {
                let mut x = g as u64 * 7919 + 1;
                for i in 0..ROUNDS {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let t = &timers[(x >> 33) as usize % TIMERS];
                    if i % 5 == 4 {
                        t.stop();
                    } else {
                        // 0..8 ms: some fire during the churn, some after the final reset.
                        t.reset(Duration::from_micros((x >> 40) % 8000));
                    }
                    if i % 16 == 0 {
                        gosched();
                    }
                }
                wg.done();
            });
        }
        wg.wait();
        let finals: Vec<u64> = timers
            .iter()
            .map(|t| {
                let when = now() + 3 * MS;
                t.reset_at(when);
                when
            })
            .collect();
        for (i, t) in timers.iter().enumerate() {
            let v = t.c.recv().unwrap();
            assert!(
                v >= finals[i],
                "timer {i}: a value {} ns before its final deadline (stale)",
                finals[i] - v
            );
        }
        // Every old arming's entry is due by now: none of them may deliver a second value.
        sleep(ms(12));
        for (i, t) in timers.iter().enumerate() {
            assert_eq!(
                t.c.try_recv(),
                Err(TryRecvError::Empty),
                "timer {i}: doubled"
            );
            assert!(!t.stop(), "timer {i}: still pending after it fired");
        }
    });
}

/// Tickers reset concurrently from several goroutines on 4 Ps (leaving entries of many old
/// armings, with short periods, in every heap): after a final reset each ticks at the final
/// period only, from the final reset on (an old arming's entry that fired or re-armed would
/// show as a tick off the period's grid, or before the reset).
#[test]
fn tickers_reset_concurrently_tick_at_the_last_period_only() {
    const TICKERS: usize = 8;
    Runtime::new(4).block_on(|| {
        let tickers: Arc<Vec<Ticker>> = Arc::new(
            (0..TICKERS)
                .map(|i| new_ticker(Duration::from_micros(300 + 100 * i as u64)))
                .collect(),
        );
        let wg = Arc::new(WaitGroup::new());
        for g in 0..4 {
            let (tickers, wg) = (tickers.clone(), wg.clone());
            wg.add(1);
            spawn(move || {
                for i in 0..200usize {
                    let t = &tickers[(i * 3 + g) % TICKERS];
                    t.reset(Duration::from_micros(200 + ((i * 37 + g) % 9) as u64 * 100));
                    if i % 8 == 0 {
                        sleep(Duration::from_micros(300));
                    }
                }
                wg.done();
            });
        }
        wg.wait();
        let resets: Vec<u64> = tickers
            .iter()
            .map(|t| {
                let r = now();
                t.reset(ms(2));
                r
            })
            .collect();
        for (i, t) in tickers.iter().enumerate() {
            let got = ticks(t, 3, 2 * MS, resets[i]);
            assert!(
                got[0] >= resets[i] + 2 * MS,
                "ticker {i}: a tick from before its reset"
            );
            t.stop();
        }
    });
}

#[test]
fn a_stopped_ticker_does_not_delay_deadlock_detection() {
    assert_deadlock(|| {
        let t = new_ticker(ms(1));
        let c = t.c.clone();
        spawn(move || {
            // Blocked on an active ticker: live, so no deadlock until it is stopped.
            while c.recv().is_some() {}
        });
        while t.c.waiting().1 == 0 {
            gosched();
        }
        t.stop();
        chan::make::<u32>(0).recv();
    });
}

#[test]
fn a_ticker_nobody_receives_from_does_not_delay_deadlock_detection() {
    assert_deadlock(|| {
        let _t = new_ticker(ms(1));
        chan::make::<u32>(0).recv();
    });
}

#[test]
fn a_stopped_after_func_does_not_delay_deadlock_detection() {
    assert_deadlock(|| {
        let c = chan::make::<u32>(0);
        let c2 = c.clone();
        let t = after_func(HOUR, move || c2.send(1));
        assert!(t.stop());
        c.recv();
    });
}

/// The other side: a pending `after_func`, or an active ticker someone is blocked on, keeps
/// the program alive (each is the only thing that can wake main).
#[test]
fn a_pending_after_func_or_a_received_ticker_is_not_a_deadlock() {
    let r = watchdog(|| {
        Runtime::new(2).block_on(|| {
            let c = chan::make::<u32>(0);
            let c2 = c.clone();
            let _t = after_func(ms(20), move || c2.send(7));
            let v = c.recv();
            let t = new_ticker(ms(20));
            let tv = t.c.recv();
            t.stop();
            (v, tv.is_some())
        })
    });
    assert_eq!(r.expect("no deadlock"), (Some(7), true));
}

/// `OneShot`, the old name, still names the timer type.
#[test]
fn oneshot_is_timer() {
    Runtime::new(1).block_on(|| {
        let t: rt_core::time::OneShot = new_timer(HOUR);
        let t: Timer = t;
        assert!(t.stop());
    });
}

/// An `after_func` that comes due while every P is busy is fired by the poller, an M without a
/// P, on g0: its goroutine goes to the global queue and runs once a P is free. Set up with one
/// P: `b` comes back from a blocking call (`entersyscall`) and takes the P, spinning with no
/// safe point, while the M that ran `main` (now blocked) polls for the timer.
#[test]
fn an_after_func_fired_while_every_p_is_busy_still_runs_in_a_goroutine() {
    let r = watchdog(|| {
        Runtime::new(1).block_on(|| {
            let done = chan::make::<()>(1);
            let ran = chan::make::<u64>(1);
            let d2 = done.clone();
            spawn(move || {
                rt_core::entersyscall();
                std::thread::sleep(ms(10));
                rt_core::exitsyscall();
                let until = now() + 30 * MS;
                while now() < until {
                    std::hint::spin_loop();
                }
                d2.send(());
            });
            // Let `b` enter its blocking call; `main` goes on on another M.
            gosched();
            let r2 = ran.clone();
            let t0 = now();
            let _t = after_func(ms(15), move || r2.send(goid()));
            done.recv();
            let g = ran.recv().unwrap();
            (g, now() >= t0 + 15 * MS)
        })
    });
    let (g, late_enough) = r.expect("no deadlock");
    assert_ne!(g, 0, "the function ran outside a goroutine");
    assert!(late_enough);
}

/// Timers stopped or reset long before their deadlines, `after`s whose channel was dropped, and
/// the timers of cancelled contexts do not pile up in the heap until their deadlines (an
/// hour): stale entries are cleaned as the heap grows. Each loop below would leave 10 000
/// entries without it.
#[test]
fn stale_timer_entries_do_not_pile_up() {
    const N: usize = 10_000;
    const BOUND: usize = 1_000;
    Runtime::new(1).block_on(|| {
        let base = rt_core::time::heap_entries();
        let t = new_timer(HOUR);
        for _ in 0..N {
            t.reset(HOUR);
        }
        let n = rt_core::time::heap_entries() - base;
        assert!(n < BOUND, "{n} heap entries after {N} resets of one timer");
        for _ in 0..N {
            drop(rt_core::time::after(HOUR));
        }
        let n = rt_core::time::heap_entries() - base;
        assert!(n < BOUND, "{n} heap entries after {N} dropped afters");
        for _ in 0..N {
            let (_ctx, cancel) =
                rt_core::context::with_timeout(&rt_core::Context::background(), HOUR);
            cancel.cancel();
        }
        let n = rt_core::time::heap_entries() - base;
        assert!(
            n < BOUND,
            "{n} heap entries after {N} cancelled contexts with timeouts"
        );
        let tk = new_ticker(HOUR);
        for _ in 0..N {
            tk.reset(HOUR);
        }
        let n = rt_core::time::heap_entries() - base;
        assert!(n < BOUND, "{n} heap entries after {N} ticker resets");
        // The live ones are still there and still fire.
        assert!(t.reset(ms(1)));
        assert!(t.c.recv().is_some());
    });
}

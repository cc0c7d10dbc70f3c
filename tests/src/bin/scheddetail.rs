//! `schedtrace=MS scheddetail=1` adds Go's per-P, per-M and per-G lines to the SCHED line,
//! printed from CPU 0's timer tick while goroutines run, park and wait.
//! @smp 2
//! @args schedtrace=5 scheddetail=1
//! @expect-output gcwaiting=false nmidlelocked=0 stopwait=0 sysmonwait=false
//! @expect-output P0: status=
//! @expect-output P1: status=
//! @expect-output M0: p=
//! @expect-output M1: p=
//! @expect-output status=4(sync.WaitGroup.Wait) m=nil lockedm=nil
//! @expect-output status=2() m=

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use rt_core::{spawn, WaitGroup};

kernel::test_kernel!(detail_lines_show_running_and_parked_goroutines);

fn detail_lines_show_running_and_parked_goroutines() {
    kernel::rt::run::run(2, || {
        // Three goroutines parked on a WaitGroup, two spinning for ~40 ms (several 5 ms
        // traces), then everything finishes.
        let gate = Arc::new(WaitGroup::new());
        gate.add(1);
        let done = Arc::new(WaitGroup::new());
        done.add(5);
        for _ in 0..3 {
            let (gate, done) = (gate.clone(), done.clone());
            spawn(move || {
                gate.wait();
                done.done();
            });
        }
        let until = kernel::x86::tsc::nanos() + 40_000_000;
        for _ in 0..2 {
            let done = done.clone();
            spawn(move || {
                // Mostly running (so a trace finds them in status 2), yielding every 100 µs.
                while kernel::x86::tsc::nanos() < until {
                    let slice = kernel::x86::tsc::nanos() + 100_000;
                    while kernel::x86::tsc::nanos() < slice {
                        core::hint::spin_loop();
                    }
                    rt_core::gosched();
                }
                done.done();
            });
        }
        while kernel::x86::tsc::nanos() < until {
            rt_core::gosched();
        }
        gate.done();
        done.wait();
    });
    // The lines themselves are checked by the harness (@expect-output); here, that the
    // argument arrived as the trace needs it.
    let args = kernel::args::get();
    assert!(args.scheddetail && args.schedtrace == 5);
}

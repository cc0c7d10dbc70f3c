//! Serial input parks the goroutine, not the M (kernel/src/dev/serial_in.rs): a goroutine waits
//! in `read_line` (status `IO wait`) while others keep running; COM1's interrupt, through the
//! I/O APIC, readies it with the line the harness types. Then, with every goroutine blocked
//! and nothing but the input to wait for, the runtime is not deadlocked: the CPUs halt until
//! the second line arrives.
//! @smp 1 2
//! @timeout 120
//! @input hello gort\n
//! @input second line\r\n

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel::dev::serial_in::{self, WAITING_MARKER};
use rt_core::{chan, spawn};

kernel::test_kernel!(
    a_parked_reader_gets_its_line_while_others_run,
    with_everything_blocked_the_cpus_halt_until_input
);

fn a_parked_reader_gets_its_line_while_others_run() {
    assert!(serial_in::enabled(), "serial input is not interrupt-driven");
    let out = Arc::new(spin::Mutex::new(None));
    let o = out.clone();
    kernel::rt::run::run(0, move || {
        let counter = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        // A goroutine that runs all the time (no safe points: preempted by the tick).
        let (c, s) = (counter.clone(), stop.clone());
        spawn(move || {
            while !s.load(Ordering::Relaxed) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        });
        let got = chan::make::<(String, u64)>(1);
        let (g2, c2) = (got.clone(), counter.clone());
        spawn(move || {
            let line = serial_in::read_line().expect("read_line");
            g2.send((line, c2.load(Ordering::Relaxed)));
        });
        serial_in::until_reader_parked();
        let at_park = counter.load(Ordering::Relaxed);
        kernel::println!("{WAITING_MARKER}");
        let (line, at_wake) = got.recv().unwrap();
        stop.store(true, Ordering::Relaxed);
        *o.lock() = Some((line, at_park, at_wake));
    });
    let (line, at_park, at_wake) = out.lock().take().expect("the runtime ran");
    assert_eq!(line, "hello gort");
    assert!(
        at_wake > at_park,
        "the busy goroutine did not run while the reader waited ({at_park} -> {at_wake})"
    );
    assert!(
        serial_in::IRQS.load(Ordering::Relaxed) > 0,
        "no serial interrupt"
    );
    kernel::println!(
        "serial: line delivered; the busy goroutine counted {} meanwhile",
        at_wake - at_park
    );
}

/// The CPU of the goroutine that waits for the reader halts until the line comes (counted on
/// that CPU: at `-smp 2` an idle AP halts on every tick whatever the runtime does).
fn with_everything_blocked_the_cpus_halt_until_input() {
    let out = Arc::new(spin::Mutex::new(None));
    let o = out.clone();
    kernel::rt::run::run(0, move || {
        let got = chan::make::<String>(0);
        let g2 = got.clone();
        spawn(move || g2.send(serial_in::read_line().expect("read_line")));
        serial_in::until_reader_parked();
        let cpu = kernel::x86::percpu::current()
            .expect("per-CPU data is set up")
            .index;
        let halts = || {
            kernel::x86::percpu::get(cpu)
                .expect("an online CPU")
                .halts
                .load(Ordering::SeqCst)
        };
        let before = halts();
        // Every goroutine blocked for 50 ms (we on a timer, the reader on input): this CPU has
        // nothing to run and must halt, not spin. (Measured from before the marker: the
        // harness may type the line before the CPU has reached its first `hlt`, and a
        // halt-free wait would then pass by luck or fail by it.)
        rt_core::time::sleep(core::time::Duration::from_millis(50));
        kernel::println!("{WAITING_MARKER}");
        // Every goroutine is now blocked (we on the channel, the reader on input): not a
        // deadlock, since an interrupt can still ready the reader.
        let line = got.recv().unwrap();
        *o.lock() = Some((line, cpu, halts() - before));
    });
    let (line, cpu, halted) = out.lock().take().expect("the runtime ran");
    assert_eq!(line, "second line", "\\r\\n ends one line");
    kernel::println!("serial: cpu {cpu} halted {halted} times while waiting for input");
    assert!(
        halted > 0,
        "cpu {cpu}, whose goroutine waited for input, never halted"
    );
}

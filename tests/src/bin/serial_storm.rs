//! A flood of serial input (an interrupt per byte or FIFO-full of it) parks only the reader:
//! the busy goroutine keeps running through it; a line longer than the 4096-byte input ring
//! wakes its reader with a named error (`ReadError::TooLong`, Go's "token too long") instead of
//! waiting for ever for a line end that cannot fit; its rest is dropped up to its end, and the
//! next line reads whole.
//! @smp 2
//! @timeout 120
//! @input-repeat 6000 x
//! @input \nafter the storm\n

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel::dev::serial_in::{self, ReadError, WAITING_MARKER};
use rt_core::{chan, spawn};

kernel::test_kernel!(an_overlong_line_in_a_flood_is_a_named_error_and_the_next_line_reads);

type Read = (Result<String, ReadError>, u64);

fn an_overlong_line_in_a_flood_is_a_named_error_and_the_next_line_reads() {
    assert!(serial_in::enabled(), "serial input is not interrupt-driven");
    let out = Arc::new(spin::Mutex::new(None));
    let o = out.clone();
    kernel::rt::run::run(0, move || {
        let counter = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (counter.clone(), stop.clone());
        spawn(move || {
            while !s.load(Ordering::Relaxed) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        });
        let got = chan::make::<Read>(1);
        let irqs0 = serial_in::IRQS.load(Ordering::Relaxed);
        let mut reads = alloc::vec::Vec::new();
        for _ in 0..2 {
            let (g2, c2) = (got.clone(), counter.clone());
            spawn(move || {
                let r = serial_in::read_line();
                g2.send((r, c2.load(Ordering::Relaxed)));
            });
            serial_in::until_reader_parked();
            let at_park = counter.load(Ordering::Relaxed);
            kernel::println!("{WAITING_MARKER}");
            let (r, at_wake) = got.recv().unwrap();
            reads.push((r, at_park, at_wake));
        }
        stop.store(true, Ordering::Relaxed);
        let irqs = serial_in::IRQS.load(Ordering::Relaxed) - irqs0;
        *o.lock() = Some((reads, irqs, serial_in::dropped()));
    });
    let (reads, irqs, dropped) = out.lock().take().expect("the runtime ran");
    kernel::println!(
        "serial storm: {irqs} interrupts, {dropped} bytes dropped; first read: {:?}",
        reads[0].0.as_ref().map_err(|e| alloc::format!("{e}"))
    );
    assert_eq!(reads[0].0, Err(ReadError::TooLong { kept: 4096 }));
    assert_eq!(reads[1].0, Ok(String::from("after the storm")));
    for (i, (_, at_park, at_wake)) in reads.iter().enumerate() {
        assert!(
            at_wake > at_park,
            "read {i}: the busy goroutine did not run through the flood ({at_park} -> {at_wake})"
        );
    }
    // 6000 bytes of one line, and its end: all but the 4096 the ring kept were dropped.
    assert_eq!(dropped, 6000 - 4096 + 1, "bytes dropped");
    assert!(
        irqs >= 100,
        "only {irqs} serial interrupts for 6000 bytes: not a flood"
    );
}

//! An application processor that never answers INIT-SIPI-SIPI is reported by its APIC id and
//! skipped, and the machine goes on with the CPUs it has: here the BSP, after boot, runs the
//! start-up sequence (smp.rs `start_aps`) for a CPU that does not exist (APIC id 77), which is
//! exactly what a CPU that never answers looks like from the BSP.
//! @smp 2
//! @expect-output smp: cpu with APIC id 77 did not come up within 200 ms; skipped

#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::dev::acpi::{Cpu, Madt};
use kernel::x86::percpu;

kernel::test_kernel!(a_cpu_that_never_answers_is_reported_and_skipped);

fn a_cpu_that_never_answers_is_reported_and_skipped() {
    let online = percpu::ONLINE.load(Ordering::SeqCst);
    let madt = Madt {
        local_apic_address: 0,
        bsp_apic_id: kernel::x86::apic::id(),
        cpus: alloc::vec![Cpu {
            apic_id: 77,
            is_bsp: false,
            enabled: true,
        }],
        io_apics: alloc::vec::Vec::new(),
        com1_gsi: 4,
    };
    let started = kernel::x86::smp::start_aps(&madt);
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].apic_id, 77);
    assert_eq!(started[0].index, None, "a CPU that does not exist came up");
    assert_eq!(
        percpu::ONLINE.load(Ordering::SeqCst),
        online,
        "the online count changed"
    );
    // The machine goes on with every CPU it had.
    let ran = Arc::new(AtomicU64::new(0));
    let r = ran.clone();
    kernel::rt::run::run(0, move || {
        let wg = Arc::new(rt_core::WaitGroup::new());
        for _ in 0..64 {
            wg.add(1);
            let (wg, r) = (wg.clone(), r.clone());
            rt_core::spawn(move || {
                r.fetch_add(1, Ordering::SeqCst);
                wg.done();
            });
        }
        wg.wait();
    });
    assert_eq!(ran.load(Ordering::SeqCst), 64);
}

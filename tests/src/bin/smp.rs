//! Every processor in the MADT comes up: INIT-SIPI-SIPI, the trampoline to long mode, its own
//! GDT/TSS/IDT and per-CPU data through GS base.
//! @smp 1 2 4 8
//! @cpu qemu64 qemu64,+x2apic

#![no_std]
#![no_main]

kernel::test_kernel!(
    every_cpu_comes_up,
    bsp_per_cpu_data_is_reachable_through_gs,
    wake_up_ipi_reaches_exactly_its_cpu
);

fn every_cpu_comes_up() {
    let facts = kernel::boot_facts();
    let madt = facts.acpi.as_ref().expect("ACPI tables");
    let started = kernel::dev::fwcfg::cpu_count().expect("fw_cfg CPU count") as usize;
    assert_eq!(madt.cpus.len(), started);
    assert_eq!(facts.aps.len(), started - 1, "every AP was tried");
    for ap in &facts.aps {
        assert!(
            ap.index.is_some(),
            "AP with APIC id {} did not come up",
            ap.apic_id
        );
    }
    let mut idx: alloc::vec::Vec<usize> = facts.aps.iter().filter_map(|a| a.index).collect();
    idx.sort();
    assert_eq!(
        idx,
        (1..started).collect::<alloc::vec::Vec<_>>(),
        "indices 1..n, once each"
    );
    assert_eq!(
        kernel::x86::percpu::ONLINE.load(core::sync::atomic::Ordering::SeqCst) as usize,
        started
    );
}

fn bsp_per_cpu_data_is_reachable_through_gs() {
    let p = kernel::x86::percpu::current().expect("GS base set on the BSP");
    assert_eq!(p.index, 0);
    assert_eq!(p.apic_id, kernel::x86::apic::id());
    assert_eq!(
        p.apic_id,
        kernel::boot_facts().acpi.as_ref().unwrap().bsp_apic_id
    );
    assert_eq!(kernel::x86::cpu::index(), 0);
}

extern crate alloc;

/// Each AP halts (`sti; hlt`); one wake-up IPI to each wakes exactly that CPU, which runs the
/// wake vector's handler and goes back to sleep.
fn wake_up_ipi_reaches_exactly_its_cpu() {
    use core::sync::atomic::Ordering;
    let facts = kernel::boot_facts();
    for ap in facts.aps.iter().filter(|a| a.index.is_some()) {
        let index = ap.index.unwrap();
        let target = kernel::x86::percpu::get(index).expect("per-CPU data of an online AP");
        assert_eq!(
            target.apic_id, ap.apic_id,
            "cpu {index} reports its own APIC id"
        );
        let before: alloc::vec::Vec<u64> = (0..=facts.aps.len())
            .map(|i| kernel::x86::percpu::get(i).map_or(0, |p| p.wakeups.load(Ordering::SeqCst)))
            .collect();
        kernel::x86::apic::send_fixed(ap.apic_id, kernel::x86::interrupts::WAKE_VECTOR);
        let mut waited_us = 0;
        while target.wakeups.load(Ordering::SeqCst) == before[index] {
            assert!(
                waited_us < 1_000_000,
                "cpu {index} did not take the wake-up IPI within 1 s"
            );
            kernel::dev::pit::delay_us(100);
            waited_us += 100;
        }
        assert_eq!(
            target.wakeups.load(Ordering::SeqCst),
            before[index] + 1,
            "one IPI, one wake-up"
        );
        for (i, &b) in before.iter().enumerate().filter(|&(i, _)| i != index) {
            let now = kernel::x86::percpu::get(i).map_or(0, |p| p.wakeups.load(Ordering::SeqCst));
            assert_eq!(now, b, "cpu {i} was not woken by cpu {index}'s IPI");
        }
    }
}

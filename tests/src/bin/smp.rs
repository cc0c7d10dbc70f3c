//! Every processor in the MADT comes up: INIT-SIPI-SIPI, the trampoline to long mode, its own
//! GDT/TSS/IDT and per-CPU data through GS base.
//! @smp 1 2 4 8

#![no_std]
#![no_main]

kernel::test_kernel!(every_cpu_comes_up, bsp_per_cpu_data_is_reachable_through_gs);

fn every_cpu_comes_up() {
    let facts = kernel::boot_facts();
    let madt = facts.acpi.as_ref().expect("ACPI tables");
    let started = kernel::fwcfg::cpu_count().expect("fw_cfg CPU count") as usize;
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
        kernel::percpu::ONLINE.load(core::sync::atomic::Ordering::SeqCst) as usize,
        started
    );
}

fn bsp_per_cpu_data_is_reachable_through_gs() {
    let p = kernel::percpu::current().expect("GS base set on the BSP");
    assert_eq!(p.index, 0);
    assert_eq!(p.apic_id, kernel::apic::id());
    assert_eq!(
        p.apic_id,
        kernel::boot_facts().acpi.as_ref().unwrap().bsp_apic_id
    );
    assert_eq!(kernel::cpu::index(), 0);
}

extern crate alloc;

//! The boot path: memory, ACPI's view of the CPUs and I/O APICs, the accelerator.
//! @smp 1 2 4
//! @cpu qemu64 qemu64,+x2apic

#![no_std]
#![no_main]

kernel::test_kernel!(
    apic_mode_follows_cpuid,
    memory_is_usable,
    madt_lists_every_cpu_qemu_started,
    madt_lists_the_io_apic,
    hypervisor_is_named
);

/// x2APIC mode exactly when the CPU offers it (the `qemu64,+x2apic` instances on QEMU 10's TCG,
/// and KVM; QEMU's default `qemu64` under TCG does not), and each CPU's APIC ID as read
/// through the chosen mode matches the MADT's.
fn apic_mode_follows_cpuid() {
    let want = if kernel::x86::apic::cpu_has_x2apic() && !kernel::args::get().xapic_only {
        kernel::x86::apic::Mode::X2Apic
    } else {
        kernel::x86::apic::Mode::XApic
    };
    assert_eq!(kernel::x86::apic::mode(), want);
    assert_eq!(
        kernel::x86::apic::id(),
        kernel::x86::percpu::current().unwrap().apic_id,
        "the BSP's APIC ID read through {want:?} differs from the one recorded at boot"
    );
}

fn memory_is_usable() {
    let facts = kernel::boot_facts();
    // xtask gives test kernels 1 GiB; the firmware keeps some of it.
    assert!(
        facts.memory.usable_bytes > 900 << 20,
        "usable: {} bytes",
        facts.memory.usable_bytes
    );
    let (used, total) = kernel::mm::frame::frame_stats();
    assert!(used > 0 && used < total, "{used} of {total} frames in use");
    assert!(kernel::mm::heap::size() >= 4 << 20);
}

fn madt_lists_every_cpu_qemu_started() {
    let madt = kernel::boot_facts().acpi.as_ref().expect("ACPI tables");
    let started = kernel::dev::fwcfg::cpu_count().expect("fw_cfg CPU count") as usize;
    assert_eq!(madt.cpus.len(), started, "MADT cpus {:?}", madt.cpus);
    assert!(madt.cpus[0].is_bsp);
    assert_eq!(madt.cpus[0].apic_id, madt.bsp_apic_id);
    assert_eq!(
        madt.bsp_apic_id,
        kernel::x86::cpu::id(),
        "we run on the bootstrap processor"
    );
    let mut ids: alloc::vec::Vec<u32> = madt.cpus.iter().map(|c| c.apic_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), started, "APIC IDs are distinct");
}

fn madt_lists_the_io_apic() {
    let madt = kernel::boot_facts().acpi.as_ref().expect("ACPI tables");
    // QEMU's PC machine has one I/O APIC at 0xfec00000 with GSI base 0 (hw/i386/pc.c).
    assert_eq!(madt.io_apics.len(), 1);
    assert_eq!(madt.io_apics[0].address, 0xfec0_0000);
    assert_eq!(madt.io_apics[0].gsi_base, 0);
    // The local APIC's architectural default address (Intel SDM Vol. 3A §11.4.1).
    assert_eq!(madt.local_apic_address, 0xfee0_0000);
    // QEMU's I/O APIC has 24 redirection entries (hw/intc/ioapic.c, IOAPIC_NUM_PINS); boot
    // masks them all, then routes one device: COM1's receive interrupt (ISA IRQ 4, no source
    // override on QEMU's PC machine) for serial input.
    assert_eq!(kernel::dev::ioapic::entries(), 24);
    assert_eq!(madt.com1_gsi, 4);
    assert!(!kernel::dev::ioapic::is_masked(4), "COM1's entry is routed");
    assert!(
        (0..24)
            .filter(|&i| i != 4)
            .all(kernel::dev::ioapic::is_masked),
        "every other entry masked at boot"
    );
}

fn hypervisor_is_named() {
    use kernel::x86::cpu::Accelerator;
    let accel = kernel::boot_facts().accel;
    assert!(
        matches!(accel, Accelerator::Tcg | Accelerator::Kvm),
        "under QEMU the hypervisor is named: {accel}"
    );
}

extern crate alloc;

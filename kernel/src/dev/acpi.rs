//! ACPI through the `acpi` crate: the MADT (Multiple APIC Description Table, ACPI 6.5 §5.2.12)
//! lists the processors (their local APIC IDs) and the I/O APICs; x86/smp.rs starts the
//! application processors it names.
//!
//! The crate asks us to map physical regions; all of physical memory is already mapped at the
//! bootloader's offset, so "mapping" is adding that offset.

use alloc::vec::Vec;
use core::ptr::NonNull;

use acpi::platform::interrupt::InterruptModel;
use acpi::platform::ProcessorState;
use acpi::{AcpiTables, Handler, PciAddress, PhysicalMapping};
use x86_64::PhysAddr;

#[derive(Debug, Clone)]
pub struct Cpu {
    pub apic_id: u32,
    pub is_bsp: bool,
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub struct IoApic {
    pub id: u8,
    pub address: u32,
    pub gsi_base: u32,
}

/// What the kernel takes from the MADT.
#[derive(Debug, Clone)]
pub struct Madt {
    pub local_apic_address: u64,
    pub bsp_apic_id: u32,
    /// Every usable processor, the bootstrap processor first.
    pub cpus: Vec<Cpu>,
    pub io_apics: Vec<IoApic>,
    /// The GSI of COM1's ISA IRQ 4: the identity unless an interrupt source override (MADT
    /// entry type 2, ACPI 6.5 §5.2.12.5) says otherwise.
    pub com1_gsi: u32,
}

#[derive(Clone, Copy)]
struct OffsetHandler;

impl Handler for OffsetHandler {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        let virt = crate::mm::paging::phys_to_virt(PhysAddr::new(physical_address as u64));
        PhysicalMapping {
            physical_start: physical_address,
            virtual_start: NonNull::new(virt.as_mut_ptr())
                .expect("physical memory mapped at a null offset"),
            region_length: size,
            mapped_length: size,
            handler: *self,
        }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}

    // The crate's AML interpreter and register access are not used (only static tables are
    // read), so the rest of the interface is not reachable from our calls.
    fn read_u8(&self, _: usize) -> u8 {
        unreachable!("acpi: memory read outside the static tables")
    }
    fn read_u16(&self, _: usize) -> u16 {
        unreachable!("acpi: memory read outside the static tables")
    }
    fn read_u32(&self, _: usize) -> u32 {
        unreachable!("acpi: memory read outside the static tables")
    }
    fn read_u64(&self, _: usize) -> u64 {
        unreachable!("acpi: memory read outside the static tables")
    }
    fn write_u8(&self, _: usize, _: u8) {
        unreachable!("acpi: memory write")
    }
    fn write_u16(&self, _: usize, _: u16) {
        unreachable!("acpi: memory write")
    }
    fn write_u32(&self, _: usize, _: u32) {
        unreachable!("acpi: memory write")
    }
    fn write_u64(&self, _: usize, _: u64) {
        unreachable!("acpi: memory write")
    }
    fn read_io_u8(&self, _: u16) -> u8 {
        unreachable!("acpi: port I/O")
    }
    fn read_io_u16(&self, _: u16) -> u16 {
        unreachable!("acpi: port I/O")
    }
    fn read_io_u32(&self, _: u16) -> u32 {
        unreachable!("acpi: port I/O")
    }
    fn write_io_u8(&self, _: u16, _: u8) {
        unreachable!("acpi: port I/O")
    }
    fn write_io_u16(&self, _: u16, _: u16) {
        unreachable!("acpi: port I/O")
    }
    fn write_io_u32(&self, _: u16, _: u32) {
        unreachable!("acpi: port I/O")
    }
    fn read_pci_u8(&self, _: PciAddress, _: u16) -> u8 {
        unreachable!("acpi: PCI config access")
    }
    fn read_pci_u16(&self, _: PciAddress, _: u16) -> u16 {
        unreachable!("acpi: PCI config access")
    }
    fn read_pci_u32(&self, _: PciAddress, _: u16) -> u32 {
        unreachable!("acpi: PCI config access")
    }
    fn write_pci_u8(&self, _: PciAddress, _: u16, _: u8) {
        unreachable!("acpi: PCI config access")
    }
    fn write_pci_u16(&self, _: PciAddress, _: u16, _: u16) {
        unreachable!("acpi: PCI config access")
    }
    fn write_pci_u32(&self, _: PciAddress, _: u16, _: u32) {
        unreachable!("acpi: PCI config access")
    }
    fn nanos_since_boot(&self) -> u64 {
        0
    }
    fn stall(&self, _: u64) {}
    fn sleep(&self, _: u64) {}
    fn create_mutex(&self) -> acpi::Handle {
        acpi::Handle(0)
    }
    fn acquire(&self, _: acpi::Handle, _: u16) -> Result<(), acpi::aml::AmlError> {
        unreachable!("acpi: AML mutexes (the interpreter is not used)")
    }
    fn release(&self, _: acpi::Handle) {}
}

#[derive(Debug)]
pub enum AcpiError {
    Tables(acpi::AcpiError),
    NoApic,
}

impl core::fmt::Display for AcpiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AcpiError::Tables(e) => write!(f, "ACPI tables unreadable: {e:?}"),
            AcpiError::NoApic => write!(f, "the MADT describes no APIC interrupt model"),
        }
    }
}

/// Reads the MADT through the RSDP at physical address `rsdp`.
pub fn read_madt(rsdp: u64) -> Result<Madt, AcpiError> {
    // SAFETY: `rsdp` comes from the bootloader's BootInfo, which found it in firmware memory;
    // the crate validates its signature and checksums.
    let tables = unsafe { AcpiTables::from_rsdp(OffsetHandler, rsdp as usize) }
        .map_err(AcpiError::Tables)?;
    let (model, processors) = InterruptModel::new(&tables).map_err(AcpiError::Tables)?;
    let InterruptModel::Apic(apic) = model else {
        return Err(AcpiError::NoApic);
    };
    let processors = processors.ok_or(AcpiError::NoApic)?;
    let bsp = processors.boot_processor;
    let mut cpus = Vec::new();
    cpus.push(Cpu {
        apic_id: bsp.local_apic_id,
        is_bsp: true,
        enabled: true,
    });
    for ap in processors.application_processors.iter() {
        cpus.push(Cpu {
            apic_id: ap.local_apic_id,
            is_bsp: false,
            enabled: ap.state != ProcessorState::Disabled,
        });
    }
    cpus.retain(|c| c.enabled);
    Ok(Madt {
        local_apic_address: apic.local_apic_address,
        bsp_apic_id: bsp.local_apic_id,
        cpus,
        com1_gsi: apic
            .interrupt_source_overrides
            .iter()
            .find(|o| o.isa_source == crate::dev::serial_in::COM1_IRQ)
            .map_or(crate::dev::serial_in::COM1_IRQ as u32, |o| {
                o.global_system_interrupt
            }),
        io_apics: apic
            .io_apics
            .iter()
            .map(|io| IoApic {
                id: io.id,
                address: io.address,
                gsi_base: io.global_system_interrupt_base,
            })
            .collect(),
    })
}

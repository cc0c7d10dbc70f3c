//! The bare-metal kernel: boots through `bootloader_api`, brings the machine up, and hosts
//! `rt-core` with every CPU core as an M. This crate is a library so that the showcase kernel
//! (`src/main.rs`) and every integration-test kernel (`tests/src/bin/*.rs`) share one boot
//! path.
//!
//! Its rooms:
//!
//! - [`x86`]: the CPU architecture: GDT and IDT, per-CPU data, the local APIC, the TSC,
//!   starting the application processors, TLB shootdown.
//! - [`dev`]: the devices: serial console and serial input, I/O APIC, PIT, ACPI, fw_cfg,
//!   QEMU's exit device.
//! - [`mm`]: physical frames, paging, the kernel heap, goroutine stacks.
//! - [`rt`]: the kernel as rt-core's platform: running a runtime, its tick, its figures.
//! - [`testing`]: the in-kernel test runner and the measurements tests and showcase share.
//! - at the top: [`args`] (kernel arguments), [`sync`] ([`sync::IrqLock`]), [`panic`](mod@panic).
//!
//! Boot order, like Go's `rt0_go` → `schedinit` → `newproc` → `mstart`:
//!
//! 1. [`dev::console`]: COM1, so that everything after can speak.
//! 2. [`x86::gdt`] and [`x86::interrupts`]: GDT + TSS (IST stacks) and the IDT, so that any
//!    fault from here on is reported with its name, RIP, RSP, CR2 and CPU, never a silent
//!    triple fault.
//! 3. [`mm`]: frames from the bootloader's memory map ([`mm::frame`]), paging through
//!    `OffsetPageTable` ([`mm::paging`]), then the kernel heap ([`mm::heap`]).
//! 4. [`args`]: `key=value` kernel arguments handed in by xtask through QEMU's fw_cfg.
//! 5. [`dev::acpi`]: the MADT's processors and I/O APICs.
//! 6. Every CPU core: per-CPU data ([`x86::percpu`]), the local APIC ([`x86::apic`]), serial
//!    input through the I/O APIC ([`dev::ioapic`], [`dev::serial_in`]), the LAPIC timer and
//!    the TSC ([`x86::tsc`]), then the application processors ([`x86::smp`]).
//!
//! Invariants: [`init`] runs once, on the bootstrap processor, before anything else in this
//! crate is used; every lock an interrupt handler can take is an [`sync::IrqLock`] (interrupts
//! off while held), so no interrupt can deadlock on a lock its own CPU holds.

#![no_std]
#![feature(abi_x86_interrupt)]

extern crate alloc;

pub mod args;
pub mod dev;
pub mod mm;
pub mod panic;
pub mod rt;
pub mod sync;
pub mod testing;
pub mod x86;

pub use bootloader_api;
use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::BootInfo;

/// Where the kernel image is loaded: the top 2 GiB, the x86-64 convention for a kernel's own
/// code (above the bootloader's dynamic mappings, which start at 0xffff_8000_0000_0000 and
/// grow up). xtask/src/symbolize.rs holds the same value (its test checks this line).
pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;

/// How every kernel of this project asks the bootloader to boot it. Pass it to
/// `bootloader_api::entry_point!(main, config = &kernel::BOOTLOADER_CONFIG)`.
pub const BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    // All of physical memory mapped at an offset the bootloader chooses: page tables, ACPI
    // tables and (later) device registers are reached through it.
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    // Keep the bootloader's own dynamic mappings (physical memory, boot info, kernel stack) in
    // the upper half, so the lower half is ours for the heap and goroutine stacks.
    config.mappings.dynamic_range_start = Some(0xffff_8000_0000_0000);
    // The kernel image at a fixed address, so that an address the kernel prints is the ELF's
    // address plus KERNEL_BASE, known before boot: xtask's symbolizer and `cargo xtask gdb`
    // (`symbol-file -o`) rely on it. The kernel is a static PIE; the bootloader places it
    // (bootloader-x86_64-common load_kernel.rs, `Mapping::FixedAddress` for a shared object).
    config.mappings.kernel_base = Mapping::FixedAddress(KERNEL_BASE);
    // The bootstrap processor's stack; it becomes M0's g0 stack.
    config.kernel_stack_size = 256 * 1024;
    config
};

/// The period of every CPU's LAPIC timer tick (the runtime's sysmon tick), in ms: the kernel
/// argument `tick=`, 1 by default.
pub fn tick_ms() -> u64 {
    args::get().tick_ms()
}

/// What the boot found, for the banner and for later stages.
#[derive(Debug)]
pub struct BootFacts {
    pub memory: mm::frame::MemoryFacts,
    pub acpi: Option<dev::acpi::Madt>,
    pub acpi_error: Option<alloc::string::String>,
    pub accel: x86::cpu::Accelerator,
    /// What became of each application processor.
    pub aps: alloc::vec::Vec<x86::smp::ApStart>,
    /// From the kernel's entry to every CPU online (emulated time under TCG).
    pub all_online_ms: u64,
}

/// Brings the machine up on the bootstrap processor (steps 1–6 above). A malformed kernel
/// argument is a fatal, named error here.
pub fn init(boot_info: &'static mut BootInfo) -> &'static BootFacts {
    let boot_tsc = x86::tsc::rdtsc();
    dev::console::init();
    x86::gdt::init_bsp();
    x86::interrupts::load();
    let memory = mm::init(
        boot_info.physical_memory_offset.into_option(),
        &boot_info.memory_regions,
    );
    mm::heap::init(mm::heap::default_mib(memory.usable_bytes));
    // Now that memory is up, the BSP's IST stacks get guard pages (mm/kstack.rs).
    x86::gdt::guard_bsp_ist();
    args::init();
    if args::get().trace {
        // The shared-memory window, else the (slow) debug console. Without either the trace
        // would vanish unseen: refuse, as for a bad argument.
        if let Err(e) = dev::tracemem::init() {
            if !dev::debugcon::present() {
                println!(
                    "kernel: trace=1 but the trace has no way out: {e}, and no debug console (QEMU -debugcon); `cargo xtask trace` starts QEMU with the window"
                );
                dev::qemu::exit(dev::qemu::ExitCode::Failure);
            }
        }
    }
    let (acpi, acpi_error) = match boot_info.rsdp_addr.into_option() {
        Some(rsdp) => match dev::acpi::read_madt(rsdp) {
            Ok(madt) => (Some(madt), None),
            Err(e) => (None, Some(alloc::format!("{e}"))),
        },
        None => (None, Some("the bootloader found no RSDP".into())),
    };
    if args::get().memmap {
        print_memory_map(boot_info);
    }
    // Every CPU core (step 6): per-CPU data, the local APIC, then the APs.
    let aps = match &acpi {
        Some(madt) => {
            x86::percpu::init(0, madt.bsp_apic_id);
            x86::percpu::mark_online();
            x86::apic::mask_legacy_pic();
            x86::apic::init(madt.local_apic_address, !args::get().xapic_only);
            if let Some(io) = madt.io_apics.first() {
                dev::ioapic::init(io.address as u64);
                // Serial input by interrupt, to the BSP: a goroutine waiting for input parks,
                // its M does not.
                if let Some(n) = madt.com1_gsi.checked_sub(io.gsi_base) {
                    dev::serial_in::init(n, madt.bsp_apic_id);
                }
            }
            x86::apic::calibrate_timer();
            x86::tsc::calibrate();
            x86::apic::start_timer(x86::interrupts::TIMER_VECTOR, tick_ms());
            x86::smp::start_aps(madt)
        }
        None => {
            x86::percpu::init(0, x86::cpu::id());
            x86::percpu::mark_online();
            alloc::vec::Vec::new()
        }
    };
    if x86::tsc::hz() == 0 {
        x86::tsc::calibrate();
    }
    let all_online_ms = x86::tsc::ticks_to_nanos(x86::tsc::rdtsc() - boot_tsc) / 1_000_000;
    FACTS.call_once(|| BootFacts {
        memory,
        acpi,
        acpi_error,
        accel: x86::cpu::accelerator(),
        aps,
        all_online_ms,
    })
}

static FACTS: spin::Once<BootFacts> = spin::Once::new();

/// What [`init`] found (panics if called before it).
pub fn boot_facts() -> &'static BootFacts {
    FACTS.get().expect("kernel::init has not run")
}

fn print_memory_map(boot_info: &BootInfo) {
    println!("memory map (from the bootloader):");
    for r in boot_info.memory_regions.iter() {
        println!(
            "  {:#014x}..{:#014x} {:>8} KiB  {:?}",
            r.start,
            r.end,
            (r.end - r.start) >> 10,
            r.kind
        );
    }
}

/// The boot banner: memory, CPUs, accelerator.
pub fn print_banner(facts: &BootFacts) {
    println!(
        "gort kernel {} (rt-core {})",
        env!("CARGO_PKG_VERSION"),
        rt_core::VERSION
    );
    let m = &facts.memory;
    println!(
        "memory: {} MiB usable in {} regions, physical memory mapped at {:#x}, heap {} MiB",
        m.usable_bytes >> 20,
        m.usable_regions,
        m.phys_offset,
        mm::heap::size() >> 20
    );
    if m.ignored_bytes > 0 {
        println!(
            "memory: {} KiB in regions past the allocator's table are unused",
            m.ignored_bytes >> 10
        );
    }
    match (&facts.acpi, &facts.acpi_error) {
        (Some(madt), _) => {
            println!(
                "cpus: {} found in the MADT (bsp apic id {}, aps {:?}), {} I/O APIC(s) at {:x?}, local APIC at {:#x}",
                madt.cpus.len(),
                madt.bsp_apic_id,
                madt.cpus.iter().filter(|c| !c.is_bsp).map(|c| c.apic_id).collect::<alloc::vec::Vec<_>>(),
                madt.io_apics.len(),
                madt.io_apics.iter().map(|io| io.address).collect::<alloc::vec::Vec<_>>(),
                madt.local_apic_address,
            );
        }
        (None, Some(e)) => println!("cpus: ACPI unavailable: {e}"),
        (None, None) => println!("cpus: ACPI unavailable"),
    }
    let up = facts.aps.iter().filter(|a| a.index.is_some()).count();
    println!(
        "smp: {} of {} CPUs online {} ms after kernel entry (cpu 0 = APIC id {}{})",
        up + 1,
        facts.aps.len() + 1,
        facts.all_online_ms,
        x86::percpu::current().map_or(0, |p| p.apic_id),
        facts
            .aps
            .iter()
            .map(|a| match a.index {
                Some(i) => alloc::format!(", cpu {i} = APIC id {}", a.apic_id),
                None => alloc::format!(", APIC id {} did not start", a.apic_id),
            })
            .collect::<alloc::string::String>()
    );
    if facts.acpi.is_some() {
        println!(
            "apic: {} mode{}",
            x86::apic::mode().describe(),
            if x86::apic::mode() == x86::apic::Mode::XApic && x86::apic::cpu_has_x2apic() {
                "; x2APIC available but turned off (x2apic=0)"
            } else {
                ""
            }
        );
    }
    println!("accelerator: {}", facts.accel);
    let a = args::get();
    if !a.given.is_empty() {
        println!("kernel arguments: {}", a.given.join(" "));
    }
}

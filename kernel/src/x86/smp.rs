//! Starting the application processors (APs). Intel SDM Vol. 3A §9.4 ("Multiple-Processor
//! (MP) Initialization") and §9.4.4.1 ("Typical BSP Initialization Sequence").
//!
//! An AP wakes in 16-bit real mode at the address a STARTUP IPI names (a page below 1 MiB), so
//! it first runs a *trampoline* copied to [`TRAMPOLINE`]: real mode → protected mode → long
//! mode on the kernel's own page tables, onto a stack the BSP allocated for it, then a call to
//! [`ap_entry`] in Rust. The BSP starts the APs one at a time: it patches the trampoline's data
//! (page-table root, control registers, stack, entry, CPU index), sends INIT, waits 10 ms,
//! sends STARTUP twice 200 µs apart (the SDM's sequence), and waits for the AP to check in; an
//! AP that does not within [`AP_TIMEOUT_MS`] is reported and skipped.
//!
//! The trampoline page is identity-mapped in the kernel's page tables, because the instruction
//! after the one that turns paging on is fetched at its physical address.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use x86_64::registers::control::{Cr0, Cr3, Cr4};
use x86_64::structures::paging::PageTableFlags;
use x86_64::{PhysAddr, VirtAddr};

use crate::dev::pit;
use crate::mm::paging;
use crate::println;
use crate::x86::{apic, percpu};

/// Physical (and identity-mapped virtual) address of the trampoline: page 8, free below 1 MiB
/// (bootloader 0.11 leaves low memory alone; the frame allocator never hands it out).
pub const TRAMPOLINE: u64 = 0x8000;
/// How long the BSP waits for an AP to check in.
pub const AP_TIMEOUT_MS: u64 = 200;
/// Each AP's boot stack (it becomes the CPU's scheduler stack, its M's g0).
pub const AP_STACK_SIZE: usize = 256 * 1024;

// The trampoline. Assembled into the kernel image between `smp_tramp_start` and
// `smp_tramp_end` (alone in its section, so `.org` offsets are offsets from its start), copied
// to TRAMPOLINE (0x8000) at run time. Jump targets are TRAMPOLINE + (label - smp_tramp_start);
// the GDT and the per-AP data block sit at fixed offsets 0xe00 and 0xf00, so memory operands
// can name them by plain address.
core::arch::global_asm!(
    ".section .rodata.smp_trampoline, \"a\"",
    ".global smp_tramp_start",
    ".global smp_tramp_end",
    ".code16",
    "smp_tramp_start:",
    "    cli",
    "    cld",
    "    xor ax, ax",
    "    mov ds, ax",
    "    mov es, ax",
    "    mov ss, ax",
    // Load the trampoline's GDT (32-bit code 0x08, data 0x10, 64-bit code 0x18).
    "    lgdt [0x8e20]", // tramp_gdt_ptr (offset 0xe20, below)
    // CR0.PE: protected mode; then a far jump loads CS with the 32-bit code segment.
    "    mov eax, cr0",
    "    or eax, 1",
    "    mov cr0, eax",
    "    .byte 0x66, 0xea", // jmp far ptr16:32 (32-bit operand size)
    "    .long 0x8000 + (tramp_pm32 - smp_tramp_start)",
    "    .word 0x08",
    ".code32",
    "tramp_pm32:",
    "    mov ax, 0x10",
    "    mov ds, ax",
    "    mov es, ax",
    "    mov ss, ax",
    // CR4.PAE (bit 5), required for long mode (SDM §9.8.5).
    "    mov eax, cr4",
    "    or eax, 0x20",
    "    mov cr4, eax",
    // The kernel's page-table root (below 4 GiB: checked by the BSP).
    "    mov eax, [0x8f00]", // data.cr3
    "    mov cr3, eax",
    // EFER (MSR 0xC0000080): LME (bit 8), and NXE (bit 11) because kernel pages use NX.
    "    mov ecx, 0xc0000080",
    "    rdmsr",
    "    or eax, 0x900",
    "    wrmsr",
    // CR0.PG (bit 31) | CR0.WP (bit 16): paging on, hence long mode (compatibility mode).
    "    mov eax, cr0",
    "    or eax, 0x80010000",
    "    mov cr0, eax",
    "    .byte 0xea", // jmp far ptr16:32 into the 64-bit segment
    "    .long 0x8000 + (tramp_lm64 - smp_tramp_start)",
    "    .word 0x18",
    ".code64",
    "tramp_lm64:",
    "    xor eax, eax",
    "    mov ds, ax",
    "    mov es, ax",
    "    mov ss, ax",
    // The BSP's full CR4 and CR0 (SSE, PGE, ... as the kernel expects them).
    "    mov rax, [0x8f08]", // data.cr4
    "    mov cr4, rax",
    "    mov rax, [0x8f10]", // data.cr0
    "    mov cr0, rax",
    "    mov rsp, [0x8f18]", // data.stack
    "    mov rdi, [0x8f28]", // data.arg
    "    mov rax, [0x8f20]", // data.entry
    "    xor ebp, ebp",
    "    call rax", // ap_entry(arg): never returns
    "    ud2",
    // The GDT at offset 0xe00 (address 0x8e00), its pointer at 0xe20.
    ".org 0xe00",
    "tramp_gdt:",
    "    .quad 0",
    "    .quad 0x00cf9a000000ffff", // 0x08: 32-bit code, base 0, limit 4 GiB
    "    .quad 0x00cf92000000ffff", // 0x10: data, base 0, limit 4 GiB
    "    .quad 0x00af9a000000ffff", // 0x18: 64-bit code (L bit)
    "tramp_gdt_ptr:",
    "    .word 31",
    "    .long 0x8e00",
    // The data block the BSP patches per AP, at offset 0xf00 (address 0x8f00): TrampData.
    ".org 0xf00",
    "    .quad 0, 0, 0, 0, 0, 0",
    "smp_tramp_end:",
    ".text",
);

unsafe extern "C" {
    static smp_tramp_start: u8;
    static smp_tramp_end: u8;
}

/// Offset of the data block in the trampoline (`.org 0xf00` above).
const DATA_OFFSET: usize = 0xf00;

/// The data block the BSP patches per AP (must match the loads above: 0x8f00, 0x8f08, ...).
#[repr(C)]
struct TrampData {
    cr3: u64,
    cr4: u64,
    cr0: u64,
    stack: u64,
    entry: u64,
    arg: u64,
}

/// What happened to each AP.
#[derive(Debug, Clone)]
pub struct ApStart {
    pub apic_id: u32,
    /// The CPU index it got (1, 2, …), or None if it did not come up in time.
    pub index: Option<usize>,
}

/// Set by each AP when it has finished its own set-up: its CPU index.
static CHECKED_IN: AtomicU32 = AtomicU32::new(0);

/// Starts every AP in `madt`; returns what became of each. The BSP must already have run
/// `percpu::init(0, ..)` and `apic::init`.
pub fn start_aps(madt: &crate::dev::acpi::Madt) -> Vec<ApStart> {
    let code_len = (&raw const smp_tramp_end as usize) - (&raw const smp_tramp_start as usize);
    assert!(code_len <= 4096 && code_len >= DATA_OFFSET + core::mem::size_of::<TrampData>());
    let (l4, _) = Cr3::read();
    let cr3 = l4.start_address().as_u64();
    if cr3 >= 1 << 32 {
        println!(
            "smp: page-table root {cr3:#x} is above 4 GiB; application processors not started"
        );
        return madt
            .cpus
            .iter()
            .filter(|c| !c.is_bsp)
            .map(|c| ApStart {
                apic_id: c.apic_id,
                index: None,
            })
            .collect();
    }
    paging::map_phys(
        VirtAddr::new(TRAMPOLINE),
        PhysAddr::new(TRAMPOLINE),
        4096,
        // Executable and read-only (W^X): the BSP writes it through the physical-memory map.
        PageTableFlags::PRESENT,
    )
    .expect("cannot identity-map the SMP trampoline");
    let tramp = paging::phys_to_virt(PhysAddr::new(TRAMPOLINE)).as_mut_ptr::<u8>();
    // SAFETY: the trampoline page is below 1 MiB, never handed out by the frame allocator, and
    // only the BSP writes it, while no AP runs it (APs start one at a time, below).
    unsafe { core::ptr::copy_nonoverlapping(&raw const smp_tramp_start, tramp, code_len) };
    // SAFETY: the data block is at DATA_OFFSET in the copied trampoline, 8-aligned, and the
    // page is ours (above).
    let data = unsafe { &mut *(tramp.add(DATA_OFFSET) as *mut TrampData) };

    let mut started = Vec::new();
    let mut next_index = 1;
    for cpu in madt.cpus.iter().filter(|c| !c.is_bsp) {
        // A guarded stack (mm/kstack.rs): running off its bottom is a reported page fault.
        let stack =
            crate::mm::kstack::alloc(AP_STACK_SIZE, crate::mm::kstack::Kind::G0, next_index);
        let top = stack.hi & !0xf;
        data.cr3 = cr3;
        data.cr4 = Cr4::read_raw();
        data.cr0 = Cr0::read_raw();
        data.stack = top;
        data.entry = ap_entry as *const () as u64;
        data.arg = next_index as u64;
        CHECKED_IN.store(0, Ordering::SeqCst);
        // INIT, 10 ms, STARTUP, 200 µs, STARTUP (SDM §9.4.4.1).
        apic::send_init(cpu.apic_id);
        pit::delay_us(10_000);
        let page = (TRAMPOLINE >> 12) as u8;
        apic::send_startup(cpu.apic_id, page);
        pit::delay_us(200);
        if CHECKED_IN.load(Ordering::SeqCst) == 0 {
            apic::send_startup(cpu.apic_id, page);
        }
        let mut waited_ms = 0;
        while CHECKED_IN.load(Ordering::SeqCst) == 0 && waited_ms < AP_TIMEOUT_MS {
            pit::delay_us(1000);
            waited_ms += 1;
        }
        if CHECKED_IN.load(Ordering::SeqCst) as usize == next_index {
            started.push(ApStart {
                apic_id: cpu.apic_id,
                index: Some(next_index),
            });
            next_index += 1;
        } else {
            println!(
                "smp: cpu with APIC id {} did not come up within {AP_TIMEOUT_MS} ms; skipped",
                cpu.apic_id
            );
            // Put it back into wait-for-SIPI (SDM §9.4.4.1: INIT resets an AP), so that a late
            // start cannot run the trampoline with the next AP's data, or after it is gone.
            apic::send_init(cpu.apic_id);
            started.push(ApStart {
                apic_id: cpu.apic_id,
                index: None,
            });
        }
    }
    // Every AP is past the trampoline (or given up on): nothing runs at its identity-mapped
    // address again, so it goes, and no executable page is left in low memory that we made.
    let mut frames = Vec::new();
    paging::unmap_keep_frames(VirtAddr::new(TRAMPOLINE), 4096, None, &mut frames);
    // The frame is low memory the allocator never owned: not freed. The APs may hold the
    // translation in their TLBs.
    crate::x86::tlb::shootdown();
    started
}

/// Where an AP arrives in Rust, in long mode on its own stack, with interrupts off.
extern "C" fn ap_entry(index: u64) -> ! {
    // This CPU's GDT, TSS (with IST stacks) and the shared IDT.
    let tables = Box::leak(Box::new(crate::x86::gdt::CpuTables::new()));
    let ist = crate::x86::gdt::guarded_ist(index as usize);
    // SAFETY: the tables are leaked (live forever) and loaded on this CPU only; the IST stacks
    // were just made for this CPU and are never freed.
    unsafe { crate::x86::gdt::load(tables, ist) };
    crate::x86::interrupts::load();
    apic::enable();
    apic::start_timer(crate::x86::interrupts::TIMER_VECTOR, crate::tick_ms());
    percpu::init(index as usize, apic::id());
    percpu::mark_online();
    CHECKED_IN.store(index as u32, Ordering::SeqCst);
    ap_idle()
}

/// Wake-up latency of idle CPUs through the wake-up IPI: the BSP sends `rounds` IPIs to each
/// idle AP and measures, on the TSC, from just before the send to the AP's handler (all vCPUs
/// share QEMU's TSC). Returns (median, max) in nanoseconds, emulated under TCG.
pub fn measure_wake_latency(rounds: usize) -> Option<(u64, u64)> {
    let mut samples = Vec::new();
    for i in 1..percpu::MAX_CPUS {
        let Some(cpu) = percpu::get(i) else { break };
        if !cpu.idle.load(Ordering::SeqCst) {
            continue;
        }
        for _ in 0..rounds {
            let before = cpu.wakeups.load(Ordering::SeqCst);
            let t0 = crate::x86::tsc::rdtsc();
            apic::send_fixed(cpu.apic_id, crate::x86::interrupts::WAKE_VECTOR);
            let deadline = crate::x86::tsc::nanos() + 100_000_000;
            while cpu.wakeups.load(Ordering::SeqCst) == before {
                if crate::x86::tsc::nanos() > deadline {
                    return None;
                }
                core::hint::spin_loop();
            }
            let t1 = cpu.last_wake_tsc.load(Ordering::SeqCst);
            samples.push(crate::x86::tsc::ticks_to_nanos(t1.saturating_sub(t0)));
            // Let it go back to sleep before the next round.
            crate::dev::pit::delay_us(200);
        }
    }
    if samples.is_empty() {
        return None;
    }
    let median = crate::testing::measure::median(&mut samples);
    Some((median, *samples.last().unwrap()))
}

/// What an AP does when it is not an M: sleep until an interrupt; if it was handed an M
/// (`new_os_thread` in rt/platform.rs), run it until the runtime stops, then sleep again.
/// `sti; hlt` as one step (`enable_and_hlt`): an interrupt cannot slip in between the two, so
/// a wake-up sent just before the `hlt` still ends it (SDM Vol. 2B, STI: interrupts are
/// recognised only after the next instruction).
fn ap_idle() -> ! {
    let me = percpu::current().expect("per-CPU data is set up before the idle loop");
    me.idle.store(true, Ordering::SeqCst);
    // The wake-up count when this CPU last halted, if it halted since it last looked for an M.
    let mut halted_at: Option<u64> = None;
    loop {
        x86_64::instructions::interrupts::disable();
        let mut m = me.pending_m.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if let (false, Some(w)) = (m.is_null(), halted_at) {
            // Which interrupt ended the halt: the hand-off's wake-up, or a later tick.
            let counter = if me.wakeups.load(Ordering::Relaxed) != w {
                &me.handoffs_woken
            } else {
                &me.handoffs_late
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        halted_at = None;
        if m.is_null() {
            // A P taken from a syscall may need an M (rt/run.rs); this CPU is free to be it.
            m = crate::rt::run::m_for_retaken_p().map_or(core::ptr::null_mut(), |m| m.cast());
        }
        if !m.is_null() {
            me.idle.store(false, Ordering::SeqCst);
            // Goroutines run with interrupts on (the tick), as on the BSP (rt::run::run).
            x86_64::instructions::interrupts::enable();
            // SAFETY: `new_os_thread` handed us a fresh M of a live runtime; this CPU's boot
            // stack becomes its g0 stack.
            unsafe { rt_core::platform::mstart(m.cast()) };
            x86_64::instructions::interrupts::disable();
            me.idle.store(true, Ordering::SeqCst);
            continue;
        }
        me.halts.fetch_add(1, Ordering::Relaxed);
        halted_at = Some(me.wakeups.load(Ordering::Relaxed));
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}

//! GDT and TSS: one set per CPU. Long mode ignores segmentation except for the code segment's
//! privilege level and the TSS, which holds the Interrupt Stack Table (IST): stacks the CPU
//! switches to unconditionally for chosen vectors (Intel SDM Vol. 3A §6.14.5 "Interrupt Stack
//! Table").
//!
//! Double fault and page fault each get an IST stack of their own, so that a kernel stack
//! overflow (a fault *on* the stack) is still reported instead of escalating to a triple fault,
//! and so that a page fault inside the double-fault path does not clobber it. NMI and machine
//! check get their own too: they can arrive at any instruction. External interrupts share a
//! fifth (see [`IRQ_IST`]): goroutine stacks are mapped on demand.

use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// IST slots (index into `TaskStateSegment::interrupt_stack_table`, 0-based; the IDT entry
/// names them 1-based, which `set_stack_index` takes care of).
pub const DOUBLE_FAULT_IST: u16 = 0;
pub const PAGE_FAULT_IST: u16 = 1;
pub const NMI_IST: u16 = 2;
pub const MACHINE_CHECK_IST: u16 = 3;
/// External interrupts (the timer, IPIs, the spurious vector): their hardware frame must never
/// land on a goroutine stack, whose next page may be unmapped. A fault while the CPU delivers
/// an external interrupt would be taken after the local APIC accepted the interrupt and before
/// its handler ran, so the handler would never run and never send the EOI that unblocks the
/// vector (Intel SDM Vol. 3A §6.15, Table 6-5: an interrupt then a page fault are handled
/// serially; §11.8.4: the in-service bit stays set until EOI). Interrupt gates keep these
/// handlers from nesting, so they share one stack.
pub const IRQ_IST: u16 = 4;
const IST_COUNT: usize = 5;
const IST_STACK_SIZE: usize = 16 * 1024;

/// Everything one CPU's descriptor tables need, kept together at a `'static` address (the CPU
/// keeps pointers to the GDT and the TSS after `lgdt`/`ltr`).
pub struct CpuTables {
    gdt: GlobalDescriptorTable,
    tss: TaskStateSegment,
    stacks: [[u8; IST_STACK_SIZE]; IST_COUNT],
    code: SegmentSelector,
    data: SegmentSelector,
    tss_sel: SegmentSelector,
}

impl CpuTables {
    pub const fn new() -> Self {
        Self {
            gdt: GlobalDescriptorTable::new(),
            tss: TaskStateSegment::new(),
            stacks: [[0; IST_STACK_SIZE]; IST_COUNT],
            code: SegmentSelector(0),
            data: SegmentSelector(0),
            tss_sel: SegmentSelector(0),
        }
    }
}

impl Default for CpuTables {
    fn default() -> Self {
        Self::new()
    }
}

/// The bootstrap processor's tables. Application processors get heap-allocated ones.
static mut BSP_TABLES: CpuTables = CpuTables::new();

/// Fills `t` and loads it on the executing CPU.
///
/// # Safety
/// `t` must live for the rest of the kernel and must not be loaded on any other CPU.
pub unsafe fn load(t: &'static mut CpuTables) {
    for (i, stack) in t.stacks.iter_mut().enumerate() {
        // Stacks grow down: the IST entry is the end of the array, kept 16-byte aligned.
        let top = VirtAddr::from_ptr(stack.as_ptr()) + IST_STACK_SIZE as u64;
        t.tss.interrupt_stack_table[i] = top.align_down(16u64);
    }
    let tss: &'static TaskStateSegment = &t.tss;
    t.code = t.gdt.append(Descriptor::kernel_code_segment());
    t.data = t.gdt.append(Descriptor::kernel_data_segment());
    t.tss_sel = t.gdt.append(Descriptor::tss_segment(tss));
    let gdt: &'static GlobalDescriptorTable = &t.gdt;
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded; the code segment is a valid 64-bit
    // kernel code segment, the data segment a valid data segment, the TSS a valid TSS that
    // lives forever (the caller's promise).
    unsafe {
        CS::set_reg(t.code);
        SS::set_reg(t.data);
        DS::set_reg(t.data);
        ES::set_reg(t.data);
        load_tss(t.tss_sel);
    }
}

/// Loads the bootstrap processor's GDT and TSS.
pub fn init_bsp() {
    // SAFETY: called once, on the bootstrap processor, before any other CPU runs; this is the
    // only reference ever made to `BSP_TABLES`.
    unsafe { load(&mut *core::ptr::addr_of_mut!(BSP_TABLES)) }
}

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
pub const IST_COUNT: usize = 5;
pub const IST_STACK_SIZE: usize = 16 * 1024;

/// Everything one CPU's descriptor tables need, kept together at a `'static` address (the CPU
/// keeps pointers to the GDT and the TSS after `lgdt`/`ltr`).
pub struct CpuTables {
    gdt: GlobalDescriptorTable,
    tss: TaskStateSegment,
    code: SegmentSelector,
    data: SegmentSelector,
    tss_sel: SegmentSelector,
}

impl CpuTables {
    pub const fn new() -> Self {
        Self {
            gdt: GlobalDescriptorTable::new(),
            tss: TaskStateSegment::new(),
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

/// The bootstrap processor's IST stacks until memory is up (a fault during the first steps of
/// boot must still be reported): in the kernel image, without guard pages. [`guard_bsp_ist`]
/// replaces them.
static mut BOOT_IST: [[u8; IST_STACK_SIZE]; IST_COUNT] = [[0; IST_STACK_SIZE]; IST_COUNT];

/// Guarded IST stacks (mm/kstack.rs) for CPU `cpu`: their tops, 16-byte aligned.
pub fn guarded_ist(cpu: usize) -> [VirtAddr; IST_COUNT] {
    core::array::from_fn(|i| {
        let s =
            crate::mm::kstack::alloc(IST_STACK_SIZE, crate::mm::kstack::Kind::Ist(i as u16), cpu);
        VirtAddr::new(s.hi).align_down(16u64)
    })
}

/// Fills `t`, with `ist` as the tops of its IST stacks, and loads it on the executing CPU.
///
/// # Safety
/// `t` must live for the rest of the kernel and must not be loaded on any other CPU; the
/// stacks under `ist` must be this CPU's alone and live for ever.
pub unsafe fn load(t: &'static mut CpuTables, ist: [VirtAddr; IST_COUNT]) {
    t.tss.interrupt_stack_table = table_of(ist);
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
    // Stacks grow down: an IST entry is the end of its array, kept 16-byte aligned.
    let boot = &raw const BOOT_IST as u64;
    let ist = core::array::from_fn(|i| {
        VirtAddr::new(boot + ((i + 1) * IST_STACK_SIZE) as u64).align_down(16u64)
    });
    // SAFETY: called once, on the bootstrap processor, before any other CPU runs; this is the
    // only `&mut` ever made to `BSP_TABLES` (guard_bsp_ist writes through a raw pointer), and
    // BOOT_IST is used by nothing else.
    unsafe { load(&mut *core::ptr::addr_of_mut!(BSP_TABLES), ist) }
}

/// Moves the bootstrap processor's IST stacks to guarded ones (mm/kstack.rs), once memory is
/// up. The CPU reads an IST entry from the TSS at each interrupt that uses it, so changing the
/// entries takes effect at the next such interrupt. Called early in boot, with interrupts off
/// and no exception handler running (we are not on an IST stack); the stores themselves
/// cannot fault (the TSS is in the kernel image's mapped data).
pub fn guard_bsp_ist() {
    let ist = guarded_ist(0);
    // SAFETY: only the BSP touches BSP_TABLES, at init_bsp and here, and nothing reads the
    // entries while we write them (see above).
    unsafe {
        (*core::ptr::addr_of_mut!(BSP_TABLES))
            .tss
            .interrupt_stack_table = table_of(ist)
    };
}

/// The TSS's seven IST entries with ours first (the TSS is packed: its fields are written
/// whole, never through a reference).
fn table_of(ist: [VirtAddr; IST_COUNT]) -> [VirtAddr; 7] {
    let mut all = [VirtAddr::zero(); 7];
    all[..IST_COUNT].copy_from_slice(&ist);
    all
}

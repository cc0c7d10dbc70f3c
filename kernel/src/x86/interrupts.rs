//! The IDT. Every CPU exception (vectors 0–31, Intel SDM Vol. 3A §6.15 "Exception and Interrupt
//! Reference") is fatal here: the handler prints the exception's name, its error code, RIP, RSP,
//! CR2 (for a page fault) and the CPU, then ends the run with a failure exit, except a page
//! fault that is a goroutine growing its stack (mm/stack.rs maps the page and the goroutine goes
//! on) or overflowing it (Go's `fatal error: stack overflow`).
//!
//! External interrupts (the timer, the IPIs) run on an IST stack of their own (gdt.rs
//! `IRQ_IST`): the CPU must never push an interrupt frame onto a goroutine stack, whose next
//! page may not be mapped yet.
//!
//! Vector [`SELF_TEST_VECTOR`] calls a hook that tests install, so that the test kernels can
//! check what happens when an interrupt arrives in the middle of something (a print, say).

use core::sync::atomic::{AtomicUsize, Ordering};
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame, PageFaultErrorCode};

use crate::x86::gdt;

/// A software-interrupt vector (`int 0x81`) whose handler calls [`set_self_test_hook`]'s
/// function. Any free vector above the 32 exceptions would do.
pub const SELF_TEST_VECTOR: u8 = 0x81;

/// The wake-up IPI (`wakep`/`startm` wake a halted M with it: rt/platform.rs `new_os_thread`
/// and `futex_wake`). Its handler only counts and acknowledges: the woken CPU returns from
/// `hlt` and looks for work itself.
pub const WAKE_VECTOR: u8 = 0xf0;

/// The TLB shootdown IPI (tlb.rs): flush, record the generation, acknowledge.
pub const SHOOTDOWN_VECTOR: u8 = 0xf1;

/// The LAPIC timer's vector: each CPU's periodic tick (the runtime's sysmon tick).
pub const TIMER_VECTOR: u8 = 0xe0;

static SELF_TEST_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Installs the function that vector [`SELF_TEST_VECTOR`] calls.
pub fn set_self_test_hook(f: fn()) {
    SELF_TEST_HOOK.store(f as usize, Ordering::SeqCst);
}

static IDT: spin::Once<InterruptDescriptorTable> = spin::Once::new();

fn build_idt() -> InterruptDescriptorTable {
    let mut idt = InterruptDescriptorTable::new();
    idt.divide_error.set_handler_fn(divide_error);
    idt.debug.set_handler_fn(debug);
    idt.breakpoint.set_handler_fn(breakpoint);
    idt.overflow.set_handler_fn(overflow);
    idt.bound_range_exceeded
        .set_handler_fn(bound_range_exceeded);
    idt.invalid_opcode.set_handler_fn(invalid_opcode);
    idt.device_not_available
        .set_handler_fn(device_not_available);
    idt.invalid_tss.set_handler_fn(invalid_tss);
    idt.segment_not_present.set_handler_fn(segment_not_present);
    idt.stack_segment_fault.set_handler_fn(stack_segment_fault);
    idt.general_protection_fault
        .set_handler_fn(general_protection_fault);
    idt.x87_floating_point.set_handler_fn(x87_floating_point);
    idt.alignment_check.set_handler_fn(alignment_check);
    idt.simd_floating_point.set_handler_fn(simd_floating_point);
    idt.virtualization.set_handler_fn(virtualization);
    idt.cp_protection_exception.set_handler_fn(cp_protection);
    idt.hv_injection_exception.set_handler_fn(hv_injection);
    idt.vmm_communication_exception
        .set_handler_fn(vmm_communication);
    idt.security_exception.set_handler_fn(security_exception);
    // SAFETY: each IST index names a stack that `gdt::load` installs in every CPU's TSS before
    // this IDT is loaded on that CPU, and no other vector uses those stacks.
    unsafe {
        idt.double_fault
            .set_handler_fn(double_fault)
            .set_stack_index(gdt::DOUBLE_FAULT_IST);
        idt.page_fault
            .set_handler_fn(page_fault)
            .set_stack_index(gdt::PAGE_FAULT_IST);
        idt.non_maskable_interrupt
            .set_handler_fn(nmi)
            .set_stack_index(gdt::NMI_IST);
        idt.machine_check
            .set_handler_fn(machine_check)
            .set_stack_index(gdt::MACHINE_CHECK_IST);
    }
    idt[SELF_TEST_VECTOR].set_handler_fn(self_test);
    // SAFETY: `timer_entry` is an interrupt entry point (it ends in `iretq` with the stack
    // as it found it) for a vector that pushes no error code, and it is in the kernel's code
    // segment. IRQ_IST is installed in every CPU's TSS (gdt::load) before this IDT is loaded,
    // and only these interrupt gates use it; they never enable interrupts while on it, so
    // none of them nests on it.
    unsafe {
        idt[TIMER_VECTOR]
            .set_handler_addr(x86_64::VirtAddr::new(timer_entry as *const () as u64))
            .set_stack_index(gdt::IRQ_IST);
        idt[WAKE_VECTOR]
            .set_handler_fn(wake)
            .set_stack_index(gdt::IRQ_IST);
        idt[SHOOTDOWN_VECTOR]
            .set_handler_fn(shootdown)
            .set_stack_index(gdt::IRQ_IST);
        idt[crate::x86::apic::SPURIOUS_VECTOR]
            .set_handler_fn(spurious)
            .set_stack_index(gdt::IRQ_IST);
        idt[crate::dev::serial_in::SERIAL_VECTOR]
            .set_handler_fn(serial)
            .set_stack_index(gdt::IRQ_IST);
    }
    idt
}

/// Loads the IDT, which all CPUs share, on the executing CPU: the bootstrap processor at boot
/// (it builds the table), then each application processor as it starts.
pub fn load() {
    IDT.call_once(build_idt).load();
}

/// An optional hex number that prints without allocating (this path may run while the heap
/// lock is held by the code that faulted).
struct OptHex(Option<u64>);

impl core::fmt::Display for OptHex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v:#x}"),
            None => f.write_str("none"),
        }
    }
}

/// Where the code an exception or interrupt stopped stood, for a traceback: the frame the CPU
/// pushed gives RIP and RSP; RBP is the word the handler's own prologue pushed at its frame
/// pointer (every function keeps one: .cargo/config.toml), so this must be inlined into the
/// handler itself.
#[inline(always)]
fn interrupted(frame: &InterruptStackFrame) -> rt_core::traceback::Start {
    let bp = rt_core::arch::frame_pointer();
    rt_core::traceback::Start {
        pc: frame.instruction_pointer.as_u64() as usize,
        ret: false,
        // SAFETY: the handler's prologue pushed the interrupted RBP at [rbp]: a word of the
        // handler's own live frame.
        bp: unsafe { *(bp as *const usize) },
        sp: frame.stack_pointer.as_u64() as usize,
    }
}

/// Prints the report every fatal exception gives, then ends the run.
#[inline(always)]
fn fatal(
    name: &str,
    vector: u8,
    frame: &InterruptStackFrame,
    error_code: Option<u64>,
    cr2: Option<u64>,
) -> ! {
    crate::dev::console::print_fatal(format_args!(
        "\nEXCEPTION: {name} (vector {vector}) on cpu {}\n  error code: {}\n  RIP: {:#018x}  RSP: {:#018x}  CS: {:#x}  RFLAGS: {:#x}\n",
        crate::x86::cpu::index(),
        OptHex(error_code),
        frame.instruction_pointer.as_u64(),
        frame.stack_pointer.as_u64(),
        frame.code_segment.0,
        frame.cpu_flags.bits(),
    ));
    if let Some(addr) = cr2 {
        crate::dev::console::print_fatal(format_args!("  CR2 (faulting address): {addr:#018x}\n"));
    }
    if let (14, Some(code)) = (vector, error_code) {
        crate::dev::console::print_fatal(format_args!("  cause: {}\n", page_fault_cause(code)));
    }
    // The goroutine the exception stopped, if any, from where it stood; then the others.
    rt_core::traceback::print_failure(Some(interrupted(frame)), true);
    crate::dev::qemu::exit(crate::dev::qemu::ExitCode::Failure)
}

/// A page fault's error code in words (Intel SDM Vol. 3A §4.7, "Page-Fault Exceptions": bit 0
/// P, the page was present (a protection violation); bit 1 W/R, a write; bit 4 I/D, an
/// instruction fetch; bit 3 RSVD, a reserved bit set in an entry).
pub fn page_fault_cause(code: u64) -> &'static str {
    let (present, write, fetch, reserved) = (
        code & 1 != 0,
        code & 2 != 0,
        code & 0x10 != 0,
        code & 8 != 0,
    );
    match (present, write, fetch) {
        _ if reserved => "a reserved bit is set in a page-table entry",
        (true, _, true) => "an instruction fetch from a no-execute page (NX)",
        (true, true, _) => "a write to a read-only page",
        (true, false, false) => "a read the page's protection forbids",
        (false, _, true) => "an instruction fetch from an unmapped page",
        (false, true, _) => "a write to an unmapped page",
        (false, false, false) => "a read of an unmapped page",
    }
}

macro_rules! fatal_handler {
    ($fn:ident, $name:literal, $vector:literal) => {
        extern "x86-interrupt" fn $fn(frame: InterruptStackFrame) {
            fatal($name, $vector, &frame, None, None)
        }
    };
    ($fn:ident, $name:literal, $vector:literal, error_code) => {
        extern "x86-interrupt" fn $fn(frame: InterruptStackFrame, code: u64) {
            fatal($name, $vector, &frame, Some(code), None)
        }
    };
}

fatal_handler!(divide_error, "divide error (#DE)", 0);
fatal_handler!(debug, "debug (#DB)", 1);
fatal_handler!(nmi, "non-maskable interrupt (NMI)", 2);
fatal_handler!(breakpoint, "breakpoint (#BP)", 3);
fatal_handler!(overflow, "overflow (#OF)", 4);
fatal_handler!(bound_range_exceeded, "bound range exceeded (#BR)", 5);
fatal_handler!(invalid_opcode, "invalid opcode (#UD)", 6);
fatal_handler!(device_not_available, "device not available (#NM)", 7);
fatal_handler!(invalid_tss, "invalid TSS (#TS)", 10, error_code);
fatal_handler!(
    segment_not_present,
    "segment not present (#NP)",
    11,
    error_code
);
fatal_handler!(
    stack_segment_fault,
    "stack-segment fault (#SS)",
    12,
    error_code
);
fatal_handler!(
    general_protection_fault,
    "general protection fault (#GP)",
    13,
    error_code
);
fatal_handler!(x87_floating_point, "x87 floating-point error (#MF)", 16);
fatal_handler!(alignment_check, "alignment check (#AC)", 17, error_code);
fatal_handler!(
    simd_floating_point,
    "SIMD floating-point exception (#XM)",
    19
);
fatal_handler!(virtualization, "virtualization exception (#VE)", 20);
fatal_handler!(
    cp_protection,
    "control protection exception (#CP)",
    21,
    error_code
);
fatal_handler!(hv_injection, "hypervisor injection exception (#HV)", 28);
fatal_handler!(
    vmm_communication,
    "VMM communication exception (#VC)",
    29,
    error_code
);
fatal_handler!(
    security_exception,
    "security exception (#SX)",
    30,
    error_code
);

extern "x86-interrupt" fn double_fault(frame: InterruptStackFrame, code: u64) -> ! {
    fatal("double fault (#DF)", 8, &frame, Some(code), None)
}

extern "x86-interrupt" fn machine_check(frame: InterruptStackFrame) -> ! {
    fatal("machine check (#MC)", 18, &frame, None, None)
}

extern "x86-interrupt" fn page_fault(frame: InterruptStackFrame, code: PageFaultErrorCode) {
    let cr2 = Cr2::read_raw();
    let present = code.contains(PageFaultErrorCode::PROTECTION_VIOLATION);
    match crate::mm::stack::on_page_fault(cr2, present, interrupted(&frame)) {
        crate::mm::stack::Fault::Grown => {
            if let Some(n) = crate::mm::stack::refaulted(cr2, frame.instruction_pointer.as_u64()) {
                crate::dev::console::print_fatal(format_args!(
                    "\nruntime: stack page {:#x} faulted {n} times in a row although the fault \
                     handler mapped it each time; the walk the CPU makes:",
                    cr2 & !0xfff
                ));
                match crate::mm::paging::walk_entries(x86_64::VirtAddr::new(cr2)) {
                    Some(walk) => {
                        let names = ["PML4E", "PDPTE", "PDE", "PTE"];
                        for (name, e) in names.iter().zip(walk) {
                            if let Some(e) = e {
                                crate::dev::console::print_fatal(format_args!(" {name} {e:#x}"));
                            }
                        }
                    }
                    None => crate::dev::console::print_fatal(format_args!(
                        " unknown (the page-table lock is held)"
                    )),
                }
                crate::dev::console::print_fatal(format_args!("\n"));
                fatal("page fault (#PF)", 14, &frame, Some(code.bits()), Some(cr2))
            }
        }
        crate::mm::stack::Fault::NotOurs => {
            fatal("page fault (#PF)", 14, &frame, Some(code.bits()), Some(cr2))
        }
        crate::mm::stack::Fault::Foreign => {
            crate::dev::console::print_fatal(format_args!(
                "\nthe faulting address is in the goroutine stack region but not in the running goroutine's own stack\n"
            ));
            fatal("page fault (#PF)", 14, &frame, Some(code.bits()), Some(cr2))
        }
    }
}

extern "x86-interrupt" fn shootdown(_frame: InterruptStackFrame) {
    if let Some(p) = crate::x86::percpu::current() {
        crate::x86::tlb::serve(p);
    }
    crate::x86::apic::eoi();
}

/// COM1 received data (routed by the I/O APIC, dev/serial_in.rs).
extern "x86-interrupt" fn serial(frame: InterruptStackFrame) {
    crate::dev::serial_in::irq(interrupted(&frame));
    crate::x86::apic::eoi();
}

extern "x86-interrupt" fn wake(_frame: InterruptStackFrame) {
    if let Some(p) = crate::x86::percpu::current() {
        p.last_wake_tsc
            .store(crate::x86::tsc::rdtsc(), Ordering::Relaxed);
        p.wakeups.fetch_add(1, Ordering::Relaxed);
    }
    crate::x86::apic::eoi();
}

/// What the timer's entry saves on the interrupted stack: the general-purpose registers
/// (pushed by `timer_entry`, r15 lowest), then the frame the CPU pushed (SDM Vol. 3A §6.14.2,
/// "64-Bit Mode Stack Frame"). No SSE state: the kernel is built without SSE (the
/// x86_64-unknown-none target's soft-float), so these are all the registers code uses.
#[repr(C)]
pub struct SavedRegs {
    pub gprs: [u64; 15],
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

extern "C" {
    fn timer_entry();
}

// The timer's entry, on the IRQ IST stack. It saves every general-purpose register there and
// calls `timer`. If `timer` says to preempt the goroutine, the whole saved state (15 registers
// and the CPU's 5-word frame, 160 bytes) is copied onto the goroutine's own stack, just below
// the interrupted RSP, and the handler continues there: the goroutine may then be switched
// away and resumed much later, maybe on another CPU, where `iretq` restores everything. The
// copy is made with ordinary stores, so a store into an unmapped stack page is an ordinary
// page fault that grows the stack (or reports its overflow), never a fault during interrupt
// delivery. Nothing below RSP is live (kernel code has no red zone). Alignment: the IST top
// is 16-aligned, the CPU pushes 5 words and we push 15, so RSP is 16-aligned at the first
// `call`; the copy's base is 16-aligned by construction for the second.
core::arch::global_asm!(
    ".global timer_entry",
    "timer_entry:",
    "push rax",
    "push rbx",
    "push rcx",
    "push rdx",
    "push rsi",
    "push rdi",
    "push rbp",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov rdi, rsp",
    "cld",
    "call {handler}",
    "test al, al",
    "jnz 2f",
    "4:",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rbp",
    "pop rdi",
    "pop rsi",
    "pop rdx",
    "pop rcx",
    "pop rbx",
    "pop rax",
    "iretq",
    "2:",
    // rsi: the saved state on the IST; rdi: its new place on the goroutine stack.
    "mov rsi, rsp",
    "mov rdi, [rsp + 18*8]",
    "and rdi, -16",
    "sub rdi, 160",
    "mov rdx, rdi",
    "mov ecx, 20",
    "3:",
    "mov rax, [rsi]",
    "mov [rdi], rax",
    "add rsi, 8",
    "add rdi, 8",
    "dec ecx",
    "jnz 3b",
    "mov rsp, rdx",
    "call {preempt}",
    "jmp 4b",
    handler = sym timer,
    preempt = sym timer_preempt,
);

/// The per-CPU tick: counts, runs sysmon on CPU 0 (rt/tick.rs `tick_cpu0`), and preempts this
/// CPU's goroutine from the interrupt if it has overrun its slice and reached no safe point
/// (rt/tick.rs `tick_async`). Until the switch it reads only atomics and never allocates or
/// takes a runtime lock, so it is safe wherever the CPU was (docs/design.md §3).
extern "C" fn timer(regs: &SavedRegs) -> bool {
    let mut preempt = false;
    if let Some(p) = crate::x86::percpu::current() {
        p.ticks.fetch_add(1, Ordering::Relaxed);
        if p.index == 0 {
            crate::rt::tick::tick_cpu0();
        }
        preempt = crate::rt::tick::tick_async(p, regs);
    }
    crate::x86::apic::eoi();
    preempt
}

/// The second half of a timer interrupt that preempts its goroutine: `timer_entry` calls it on
/// the goroutine's own stack, with the interrupted state saved just above.
extern "C" fn timer_preempt() {
    // SAFETY: `timer` (tick_async) checked that the interrupted code was the current G at an
    // async-safe point, and `timer_entry` moved us onto that G's stack; the interrupt is
    // acknowledged, and nothing after this uses per-CPU state (the G may resume on another
    // CPU, with `iretq` restoring its registers).
    unsafe { rt_core::platform::async_preempt() };
}

/// The LAPIC's spurious vector: no EOI (SDM §11.9).
extern "x86-interrupt" fn spurious(_frame: InterruptStackFrame) {}

extern "x86-interrupt" fn self_test(_frame: InterruptStackFrame) {
    let hook = SELF_TEST_HOOK.load(Ordering::SeqCst);
    if hook != 0 {
        // SAFETY: the only non-zero value ever stored is a `fn()` (see `set_self_test_hook`).
        let f: fn() = unsafe { core::mem::transmute(hook) };
        f();
    }
}

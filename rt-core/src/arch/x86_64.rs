//! The register switch, x86_64 System V. Go's counterparts are `gogo`, `gosave` and `mcall`
//! in asm_amd64.s; like xv6's `swtch`, everything rests on one routine, [`swtch`]:
//!
//! ```text
//!   swtch(save, load): record this context (SP, PC, BP) in *save; continue the context
//!                      recorded in *load, which sees its own swtch call return.
//! ```
//!
//! Which registers are saved, and where: `swtch` is an inline `asm!` block that `call`s the
//! naked routine [`switch_stacks`] and tells the compiler that every register except rbx, rbp
//! and rsp is clobbered. The compiler therefore saves, around each call site, only the
//! registers that are live there (usually few); `switch_stacks` saves the two the compiler
//! cannot be told about (rbx, rbp) on the stack it leaves, records SP, PC and BP in the gobuf,
//! takes the other context's SP, pops its rbx/rbp and returns into it. A gobuf is therefore
//! just SP/PC/BP (Go's `gobuf` holds the same three), and resuming one is an ordinary return
//! from a call — on another stack. The x87 control word and MXCSR, callee-saved "control bits"
//! in the ABI, are never changed by Rust code and so are not switched.
//!
//! The return is `pop rcx; jmp rcx`, not `ret`: the CPU's return-stack predictor remembers the
//! `call` made on the *other* stack, so a `ret` would mispredict on every switch (~10 ns,
//! PLATFORM.md); an indirect jump is predicted from its history.
//!
//! A new goroutine's stack is laid out as if it had called `swtch` ([`prepare_new`]): the
//! first switch to it "returns" into [`gostart`], which calls the runtime's entry function
//! and never comes back (the entry function ends in `goexit`).

use crate::g::Gobuf;

/// Saves the running context into `save` and continues `load`. Returns when something later
/// continues `save`.
///
/// # Safety
/// `load` must hold a context saved by `swtch` or prepared by [`prepare_new`], whose stack is
/// live and in use by no other CPU; `save` must stay valid until it is continued.
#[inline(always)]
pub unsafe fn swtch(save: *mut Gobuf, load: *const Gobuf) {
    // SAFETY: the caller's promise. Every register the ABI lets the callee keep, other than
    // rbx/rbp/rsp, is declared clobbered (r12–r15 explicitly, the rest by clobber_abi), so
    // the compiler keeps nothing in them across the call; switch_stacks preserves rbx and
    // rbp itself, and rsp is back at its original value when the call returns.
    unsafe {
        core::arch::asm!(
            "call {switch}",
            switch = sym switch_stacks,
            in("rdi") save,
            in("rsi") load,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("C"),
        )
    }
}

/// The stack switch proper (called only from [`swtch`]'s asm).
#[unsafe(naked)]
unsafe extern "C" fn switch_stacks() {
    core::arch::naked_asm!(
        // rdi = save, rsi = load; [rsp] = where our caller resumes.
        "push rbp", // the two registers the caller could not declare clobbered
        "push rbx",
        "mov [rdi], rsp",      // save->sp
        "mov rax, [rsp + 16]", // save->pc: the caller's resume address (for tracebacks)
        "mov [rdi + 8], rax",
        "mov [rdi + 16], rbp", // save->bp: its frame pointer (for tracebacks)
        "mov rsp, [rsi]",      // load->sp: from here on we are on the other stack
        "pop rbx",             // its rbx and rbp, pushed when it was saved
        "pop rbp",
        "pop rcx", // its resume address: "return" there
        "jmp rcx",
    )
}

/// The first code a new goroutine runs: `entry` (in rbx, put there by [`prepare_new`]'s
/// frame) with a zero frame pointer, so tracebacks stop here. `entry` never returns.
#[unsafe(naked)]
unsafe extern "C" fn gostart() {
    core::arch::naked_asm!(
        // SP is 16-byte aligned here, so the call below enters `entry` with the ABI's
        // alignment (SP ≡ 8 mod 16 after the return address is pushed).
        "xor ebp, ebp", // end of the frame-pointer chain
        "call rbx",     // entry(): runs the goroutine, then goexit; never returns
        "ud2",          // unreachable: trap if it ever does
    )
}

/// Lays out a new goroutine's stack so that `swtch` into `buf` starts `entry` on it: from
/// `hi` down, 16 bytes of padding, then what `switch_stacks` pops (rbx = `entry`, rbp = 0)
/// and the resume address `gostart`.
///
/// # Safety
/// `[hi - 64, hi)` must be writable memory owned by the new goroutine; `hi` 16-byte aligned.
pub unsafe fn prepare_new(buf: &mut Gobuf, hi: usize, entry: extern "C" fn() -> !) {
    debug_assert!(hi.is_multiple_of(16));
    // After the three pops SP = top, which must be 16-byte aligned for gostart.
    let top = hi - 16;
    let frame: [usize; 3] = [
        entry as *const () as usize,   // rbx: gostart calls it
        0,                             // rbp: the end of the frame-pointer chain
        gostart as *const () as usize, // the resume address switch_stacks jumps to
    ];
    let sp = top - frame.len() * 8;
    // SAFETY: the caller gives us [hi - 64, hi); the frame is the 24 bytes below hi - 16.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), sp as *mut usize, frame.len()) };
    buf.sp = sp;
    buf.pc = gostart as *const () as usize;
    buf.bp = 0;
}

/// The current stack pointer.
#[inline(always)]
pub fn sp() -> usize {
    let sp: usize;
    // SAFETY: reads a register; touches no memory.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    sp
}

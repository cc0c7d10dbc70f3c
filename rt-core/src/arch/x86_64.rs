//! The register switch, x86_64 System V. Go's counterparts are `gogo`, `gosave` and `mcall`
//! in asm_amd64.s; like xv6's `swtch`, everything rests on one routine, [`swtch`]:
//!
//! ```text
//!   swtch(save, load): push the callee-saved registers on the current stack,
//!                      record SP/PC/BP in *save, take SP/BP from *load, jump to its PC.
//! ```
//!
//! The PC recorded in `*save` is the routine's own tail, which pops those registers and
//! returns: resuming a saved gobuf looks, to the code that called `swtch`, like `swtch`
//! returning. Caller-saved registers need no saving because `swtch` is an ordinary call. The
//! x87 control word and MXCSR are callee-saved "control bits" in the ABI, but Rust code never
//! changes them, so they are the same in every context and are not switched.
//!
//! A new goroutine's gobuf points at [`gostart`] with SP at the top of its stack: the first
//! `swtch` into it "returns" into `gostart`, which calls the runtime's entry function and never
//! comes back (the entry function ends in `goexit`).

use crate::g::Gobuf;

/// Saves the running context into `save` and resumes `load`. Returns when something later
/// resumes `save`.
///
/// # Safety
/// `load` must hold a context saved by `swtch` (or prepared by [`prepare_new`]) whose stack is
/// live and not in use by any other CPU; `save` must stay valid until it is resumed.
#[unsafe(naked)]
pub unsafe extern "C" fn swtch(save: *mut Gobuf, load: *const Gobuf) {
    core::arch::naked_asm!(
        // rdi = save, rsi = load. The return address to our caller is on top of the stack.
        "push rbp", // callee-saved registers, on the stack we are leaving
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "lea rax, [rip + 2f]",     // resume point: the pops below
        "mov [rdi], rsp",          // save->sp
        "mov [rdi + 8], rax",      // save->pc
        "mov [rdi + 16], rbp",     // save->bp (for tracebacks of the suspended context)
        "mov rsp, [rsi]",          // load->sp: we are now on the other stack
        "mov rbp, [rsi + 16]",     // load->bp
        "jmp qword ptr [rsi + 8]", // load->pc: a `2:` below (or gostart, for a new G)
        "2:",
        "pop r15", // we were resumed: restore what we pushed
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret", // back into our caller, as if swtch had just returned
    )
}

/// The first code a new goroutine runs: `entry` (in r12, put there by [`prepare_new`]'s
/// frame) with a zero frame pointer, so tracebacks stop here. `entry` never returns.
#[unsafe(naked)]
unsafe extern "C" fn gostart() {
    core::arch::naked_asm!(
        // SP is 16-byte aligned here, so the call below enters `entry` with the ABI's
        // alignment (SP ≡ 8 mod 16 after the return address is pushed).
        "xor ebp, ebp", // end of the frame-pointer chain
        "call r12",     // entry(): runs the goroutine, then goexit; never returns
        "ud2",          // unreachable: trap if it ever does
    )
}

/// Lays out a new goroutine's stack so that `swtch` into `buf` starts `entry` on it.
///
/// The stack gets, from `hi` down: 16 bytes of padding, then the six registers `swtch`'s tail
/// pops (r15, r14, r13, r12 = `entry`, rbx, rbp = 0) and the "return address" `gostart`.
///
/// # Safety
/// `[hi - 128, hi)` must be writable memory owned by the new goroutine; `hi` 16-byte aligned.
pub unsafe fn prepare_new(buf: &mut Gobuf, hi: usize, entry: extern "C" fn() -> !) {
    debug_assert!(hi.is_multiple_of(16));
    // After the six pops and the `ret`, SP = top, which must be 16-byte aligned for gostart.
    let top = hi - 16;
    let frame: [usize; 7] = [
        0,                             // r15
        0,                             // r14
        0,                             // r13
        entry as *const () as usize,   // r12: gostart calls it
        0,                             // rbx
        0,                             // rbp: the end of the frame-pointer chain
        gostart as *const () as usize, // the `ret` of swtch's tail lands in gostart
    ];
    let sp = top - frame.len() * 8;
    // SAFETY: the caller gives us [hi - 128, hi); the frame is 56 bytes below hi - 16.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), sp as *mut usize, frame.len()) };
    buf.sp = sp;
    buf.pc = resume_pc();
    buf.bp = 0;
}

/// The resume point inside `swtch` (label `2:`), found once by saving a context.
fn resume_pc() -> usize {
    use core::sync::atomic::{AtomicUsize, Ordering};
    static PC: AtomicUsize = AtomicUsize::new(0);
    let pc = PC.load(Ordering::Relaxed);
    if pc != 0 {
        return pc;
    }
    // Switch to ourselves: save into `a`, load `a`'s old contents... instead, save into `a`
    // and immediately resume `a`, which returns here; `a.pc` is then the resume point.
    let mut a = Gobuf::default();
    let a_ptr: *mut Gobuf = &mut a;
    // SAFETY: `load` is read (sp, pc, bp) only after `save` has been written, and both are
    // `a`: swtch saves this context into `a` and then resumes that very context, which
    // returns from this call on the same stack with every callee-saved register restored.
    unsafe { swtch(a_ptr, a_ptr) };
    PC.store(a.pc, Ordering::Relaxed);
    a.pc
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

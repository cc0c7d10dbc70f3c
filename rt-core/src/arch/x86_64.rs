//! The register switch, x86_64 System V. Go's counterparts are `gogo`, `gosave` and `mcall`
//! in asm_amd64.s; like xv6's `swtch`, everything rests on one routine, [`swtch`]:
//!
//! ```text
//!   swtch(save, load): record this context (SP, PC, BP) in *save; continue the context
//!                      recorded in *load, which sees its own swtch call return.
//! ```
//!
//! Which registers are saved, and where: `swtch` is an inline `asm!` block that tells the
//! compiler every register except rbx, rbp and rsp is clobbered, so the compiler saves, around
//! each switch, only the registers live there (usually few). The block itself pushes the two
//! it cannot declare (rbx, rbp) and its own resume address on the stack it leaves, records SP
//! (and PC, BP for tracebacks) in the gobuf, takes the other context's SP, pops that context's
//! resume address and jumps to it; there, the other context pops its rbx and rbp and carries
//! on after its own `swtch`. A gobuf is therefore SP/PC/BP, as Go's `gobuf`. The x87 control
//! word and MXCSR, callee-saved "control bits" in the ABI, are never changed by Rust code and
//! so are not switched.
//!
//! No `call`/`ret` pair is used: a `ret` after a stack switch returns to a caller the CPU's
//! return-stack predictor never saw and mispredicts on every switch (~10 ns, docs/platform.md); the
//! one indirect jump is predicted from its history.
//!
//! A new goroutine's stack is laid out as if it had been saved by `swtch` ([`prepare_new`]),
//! with [`gostart`] as its resume address: gostart calls the runtime's entry function, which
//! never comes back (it ends in `goexit`).

use crate::g::Gobuf;

/// Saves the running context into `save` and continues `load`. Returns when something later
/// continues `save`.
///
/// # Safety
/// `load` must hold a context saved by `swtch` or prepared by [`prepare_new`], whose stack is
/// live and in use by no other CPU; `save` must stay valid until it is continued.
#[inline(always)]
pub unsafe fn swtch(save: *mut Gobuf, load: *const Gobuf) {
    // LAB(switch) begin: swtch, the register switch
    // LAB(switch) hint: Chapter 2. Write one `core::arch::asm!` block: push rbp and rbx (the two
    // LAB(switch) hint: callee-saved registers you cannot declare clobbered), push the address
    // LAB(switch) hint: where this context resumes (a local label), store SP, that PC and RBP in
    // LAB(switch) hint: *save (Gobuf: sp at +0, pc at +8, bp at +16), load SP from *load, pop
    // LAB(switch) hint: its resume address and jump there. At the label, pop rbx and rbp.
    // LAB(switch) hint: Declare r12-r15 as outputs and clobber_abi("C"): the compiler then keeps
    // LAB(switch) hint: nothing else live in registers across the switch. Go: gogo, asm_amd64.s.
    // LAB(switch) stub: let _ = (save, load);
    // LAB(switch) stub: todo!("LAB(switch): swtch: save this context in *save, continue *load")
    // SAFETY: the caller's promise. Every register the ABI lets a callee keep, other than
    // rbx/rbp/rsp, is declared clobbered (r12–r15 explicitly, the rest by clobber_abi), so
    // the compiler keeps nothing in them across the switch; rbx and rbp are saved on the
    // stack we leave and restored when we are continued, and rsp is back at its original
    // value then.
    unsafe {
        core::arch::asm!(
            "push rbp",              // the two registers we cannot declare clobbered
            "push rbx",
            "lea rax, [rip + 2f]",   // where this context resumes: label 2 below
            "push rax",
            "mov [rdi], rsp",        // save->sp
            "mov [rdi + 8], rax",    // save->pc (also on the stack; kept for tracebacks)
            "mov [rdi + 16], rbp",   // save->bp (for tracebacks)
            "mov rsp, [rsi]",        // load->sp: from here on we are on the other stack
            "pop rax",               // its resume address: a label 2 (or gostart)
            "jmp rax",
            "2:",                    // we were continued: the other side popped our address
            "pop rbx",
            "pop rbp",
            in("rdi") save,
            in("rsi") load,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("C"),
        )
    }
    // LAB(switch) end
}

/// The first code a new goroutine runs: pops `entry` (into rbx) and a zero frame pointer from
/// the frame [`prepare_new`] built, and calls `entry`, which never returns.
#[unsafe(naked)]
unsafe extern "C" fn gostart() {
    core::arch::naked_asm!(
        "pop rbx", // entry
        "pop rbp", // 0: the end of the frame-pointer chain
        // SP is now 16-byte aligned, so the call below enters `entry` with the ABI's
        // alignment (SP ≡ 8 mod 16 after the return address is pushed).
        "call rbx", // entry(): runs the goroutine, then goexit; never returns
        "ud2",      // unreachable: trap if it ever does
    )
}

/// Lays out a new goroutine's stack so that `swtch` into `buf` starts `entry` on it: from
/// `hi` down, 16 bytes of padding, then `0` (its rbp), `entry`, and the resume address
/// `gostart`, which `swtch` pops and jumps to.
///
/// # Safety
/// `[hi - 64, hi)` must be writable memory owned by the new goroutine; `hi` 16-byte aligned.
pub unsafe fn prepare_new(buf: &mut Gobuf, hi: usize, entry: extern "C" fn() -> !) {
    // LAB(switch) begin: prepare_new, a new goroutine's first frame
    // LAB(switch) hint: Lay the stack out as swtch would have left it, so that swtch into `buf`
    // LAB(switch) hint: "resumes" at gostart: below hi - 16 (for alignment) put, from the top,
    // LAB(switch) hint: 0 (gostart pops it into rbp), `entry` (popped into rbx and called) and
    // LAB(switch) hint: gostart's address (the resume address swtch pops). Set buf.sp to the
    // LAB(switch) hint: lowest of the three words, buf.pc to gostart, buf.bp to 0. After the pops
    // LAB(switch) hint: SP must be 16-byte aligned. Go: gostartcallfn, stack.go and sys_x86.go.
    // LAB(switch) stub: let _ = (buf, hi, entry, gostart as *const ());
    // LAB(switch) stub: todo!("LAB(switch): prepare_new: build the frame swtch resumes into")
    debug_assert!(hi.is_multiple_of(16));
    // After the three pops SP = top, which must be 16-byte aligned for gostart's call.
    let top = hi - 16;
    let frame: [usize; 3] = [
        gostart as *const () as usize, // the resume address swtch pops and jumps to
        entry as *const () as usize,   // gostart pops it into rbx and calls it
        0,                             // gostart pops it into rbp: the end of the chain
    ];
    let sp = top - frame.len() * 8;
    // SAFETY: the caller gives us [hi - 64, hi); the frame is the 24 bytes below hi - 16.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), sp as *mut usize, frame.len()) };
    buf.sp = sp;
    buf.pc = gostart as *const () as usize;
    buf.bp = 0;
    // LAB(switch) end
}

/// RBP of the function this is inlined into: its frame pointer, where the caller's RBP is
/// saved with the return address above it (every function keeps a frame pointer:
/// .cargo/config.toml). Tracebacks start from it (traceback/mod.rs).
#[inline(always)]
pub fn frame_pointer() -> usize {
    let bp: usize;
    // SAFETY: reads a register; touches no memory.
    unsafe {
        core::arch::asm!("mov {}, rbp", out(reg) bp, options(nomem, nostack, preserves_flags))
    };
    bp
}

/// The return address of the function this is inlined into: the word above the saved RBP at
/// its frame pointer. Use only in a function that is itself `#[inline(never)]`, so that the
/// frame is its own.
#[inline(always)]
pub fn return_address() -> usize {
    let bp = frame_pointer();
    // SAFETY: with frame pointers, [rbp + 8] is the caller's return address, a word of the
    // live current stack.
    unsafe { *((bp + 8) as *const usize) }
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

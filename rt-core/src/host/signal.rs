//! Asynchronous preemption on the host: a goroutine in a loop with no safe point is stopped by a
//! signal, as Go has done since 1.14 (preempt.go, signal_unix.go: `preemptM`, `doSigPreempt`,
//! `asyncPreempt` in preempt_amd64.s).
//!
//! How it goes:
//! 1. sysmon finds a G that has overrun its time slice (preempt.rs `retake` → `preemptone`,
//!    which flags it for the next safe point) and, on the host, also sends SIGURG to its M's
//!    thread ([`preempt_m`], Go's `preemptM`; Go chose SIGURG because programs rarely use it
//!    and the kernel delivers it to the one thread named).
//! 2. The handler ([`on_sigurg`], on the thread's alternate signal stack) asks whether the
//!    interrupted point is async-safe: the G is still flagged and has had a sysmon pass to reach
//!    a safe point ([`crate::preempt::want_async_preempt`]: the M holds no runtime lock, SP lies in the G's own
//!    stack), the PC is not in the few instructions that read the current M and raise its
//!    `locks` (m.rs `acquire_current_m_host`), the PC lies in the program's own text (not in the C library, the dynamic loader
//!    or the vDSO: their code may hold thread-affine state, as glibc's malloc does), no other
//!    injection is in flight on the G, and the stack has room for the saved state.
//! 3. If so it rewrites the signal context so that, when the handler returns, the G "calls"
//!    [`async_preempt_entry`]: below the interrupted SP and its 128-byte red zone (System V ABI
//!    §3.2.2: leaf code may keep data there) it writes the interrupted PC as a return address,
//!    and points SP there and PC at the routine.
//! 4. The routine saves every general register and the flags on the G's stack, then the whole
//!    FPU/SSE/AVX state with XSAVE (its size from CPUID leaf 0DH, 64-byte aligned: Intel SDM
//!    Vol. 1 §13.4), and calls into the runtime, which yields the G to the global queue
//!    (preempt.rs `async_preempt`, as the kernel's timer interrupt does). When the G next runs,
//!    on whatever M, the call returns; the routine restores it all and returns with `ret 128`,
//!    which also steps back over the red zone, to the interrupted instruction with the
//!    interrupted SP.
//!
//! Invariants: an injection is made only on the thread of the M running the G (the signal's
//! target), only while `G::async_inflight` is clear, which it then sets and the G clears when
//! the injected call has returned; the injected frame lies entirely below the red zone, inside
//! the G's stack; the handler itself runs on the alternate signal stack (checked), so the
//! kernel's signal frame never overlaps what it writes.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;

use crate::m::M;

/// The preemption signal (Go's `sigPreempt`).
const SIGPREEMPT: libc::c_int = libc::SIGURG;

/// The System V red zone below SP that the injected frame must not touch (x86-64 psABI §3.2.2).
const RED_ZONE: usize = 128;

/// Stack the injected call needs besides the XSAVE area: 16 saved registers and the flags, the
/// alignment, and the runtime's frames down to the switch (measured: under 1 KiB).
const INJECT_ROOM: usize = 4096;

/// Bytes of the XSAVE area for the features the OS enabled in XCR0, rounded up to 64 (CPUID
/// leaf 0DH sub-leaf 0, EBX: SDM Vol. 2A, CPUID). 0: no XSAVE, so no asynchronous preemption.
static XSAVE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The program's own executable segments (from its program headers), up to four ranges.
static TEXT: [(AtomicUsize, AtomicUsize); 4] =
    [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; 4];

/// What the handler did (for tests and `cargo xtask bench`).
static SIGNALS: AtomicU64 = AtomicU64::new(0);
static INJECTED: AtomicU64 = AtomicU64::new(0);
static FOREIGN_PC: AtomicU64 = AtomicU64::new(0);
/// The PCs of the last injections (a ring indexed by `INJECTED`).
static LAST_PCS: [AtomicUsize; 64] = [const { AtomicUsize::new(0) }; 64];

/// Counts of the host's preemption signals since the process started.
#[derive(Debug, Clone, Default)]
pub struct SignalStats {
    /// SIGURGs handled.
    pub signals: u64,
    /// Of those, the ones that stopped a goroutine (injected the preemption call).
    pub injected: u64,
    /// The ones that found the goroutine flagged, but with its PC outside the program's own
    /// code (in the C library, the loader, the vDSO): not taken.
    pub foreign_pc: u64,
    /// The interrupted PCs of the last (up to 64) injections.
    pub last_pcs: std::vec::Vec<usize>,
}

/// The counts so far (see [`SignalStats`]).
pub fn signal_stats() -> SignalStats {
    let injected = INJECTED.load(Ordering::Relaxed);
    let n = injected.min(LAST_PCS.len() as u64) as usize;
    SignalStats {
        signals: SIGNALS.load(Ordering::Relaxed),
        injected,
        foreign_pc: FOREIGN_PC.load(Ordering::Relaxed),
        last_pcs: LAST_PCS[..n]
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .collect(),
    }
}

/// Whether asynchronous preemption can work on this machine (XSAVE enabled by the OS).
pub(crate) fn supported() -> bool {
    install();
    XSAVE_BYTES.load(Ordering::Relaxed) != 0
}

/// Once per process: sizes the XSAVE area, finds the program's text, installs the handler.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // CPUID.1:ECX bit 27 (OSXSAVE): the OS enabled XSAVE and XCR0 (SDM Vol. 2A, CPUID).
        let osxsave = core::arch::x86_64::__cpuid(1).ecx & (1 << 27) != 0;
        if osxsave {
            // Leaf 0DH exists when XSAVE does.
            let size = core::arch::x86_64::__cpuid_count(0xd, 0).ebx as usize;
            XSAVE_BYTES.store(size.next_multiple_of(64), Ordering::Relaxed);
        }
        find_text();
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value to fill in.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            on_sigurg;
        sa.sa_sigaction = handler as usize;
        // On the alternate stack (std gives every thread it starts one), so the signal frame
        // stays clear of the goroutine's stack, which the handler writes; restarted syscalls,
        // so the signal is invisible to the code it interrupts.
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
        // SAFETY: `sa` is a valid action; the handler is async-signal-safe (atomics only).
        unsafe { libc::sigaction(SIGPREEMPT, &sa, std::ptr::null_mut()) };
    });
}

/// Records the executable segments of the program itself (the first object
/// `dl_iterate_phdr` reports is the main program, ELF `PT_LOAD` with `PF_X`).
fn find_text() {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        _data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid info whose `dlpi_phdr` has `dlpi_phnum` entries.
        let (base, phdrs) = unsafe {
            let i = &*info;
            (
                i.dlpi_addr as usize,
                std::slice::from_raw_parts(i.dlpi_phdr, i.dlpi_phnum as usize),
            )
        };
        let mut k = 0;
        for ph in phdrs {
            if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 && k < TEXT.len() {
                let lo = base + ph.p_vaddr as usize;
                TEXT[k].0.store(lo, Ordering::Relaxed);
                TEXT[k].1.store(lo + ph.p_memsz as usize, Ordering::Relaxed);
                k += 1;
            }
        }
        1 // stop after the first object: the main program
    }
    // SAFETY: the callback only reads what the loader hands it.
    unsafe { libc::dl_iterate_phdr(Some(each), std::ptr::null_mut()) };
}

/// Whether `pc` lies in the program's own code.
fn in_own_text(pc: usize) -> bool {
    TEXT.iter().any(|(lo, hi)| {
        let (lo, hi) = (lo.load(Ordering::Relaxed), hi.load(Ordering::Relaxed));
        lo <= pc && pc < hi
    })
}

/// Go's `preemptM`: asks `m`'s thread to stop its goroutine (sysmon, after `preemptone`).
pub(crate) fn preempt_m(m: *mut M) {
    // SAFETY: Ms live as long as their runtime; procid is an atomic.
    let tid = unsafe { (*m).procid.load(Ordering::Relaxed) };
    if tid == 0 {
        return;
    }
    // SAFETY: tgkill with our own pid can reach only a thread of this process; a thread that
    // is no M any more (or a reused id) runs the handler, which finds no M and returns.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, SIGPREEMPT) };
}

/// Go's `doSigPreempt`: injects the preemption call if the interrupted point is async-safe.
extern "C" fn on_sigurg(_sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
    let m = crate::m::host_current_m();
    // SAFETY: `m` is this thread's M (or null) and this is its signal handler.
    let Some(g) = (unsafe { crate::platform::running_g(m) }) else {
        return;
    };
    let here = &m as *const _ as usize;
    if g.async_inflight.load(Ordering::Relaxed) || (g.stack.lo..g.stack.hi).contains(&here) {
        // One injection at a time; and no alternate signal stack: the kernel's signal frame
        // is on the goroutine's stack, where we would write.
        return;
    }
    let xsave = XSAVE_BYTES.load(Ordering::Relaxed);
    // SAFETY: for a SA_SIGINFO handler the third argument is the interrupted context, which
    // only this handler reads and writes until it returns.
    let gregs = unsafe { &mut (*(ctx as *mut libc::ucontext_t)).uc_mcontext.gregs };
    let pc = gregs[libc::REG_RIP as usize] as usize;
    let sp = gregs[libc::REG_RSP as usize] as usize;
    // The host's own conditions first: a point they refuse leaves `want_async_preempt`'s
    // memory of the G (flagged since the previous signal) as it was, for the next signal.
    if xsave == 0 || !g.preempt.load(Ordering::Relaxed) {
        return;
    }
    let acquire = crate::m::acquire_current_m_host as *const () as usize;
    if (acquire..acquire + crate::m::ACQUIRE_ASM_BYTES).contains(&pc) {
        // Between reading the current M and raising its `locks` (m.rs): moving the G to
        // another thread here would raise the wrong M's count.
        return;
    }
    if !in_own_text(pc) {
        FOREIGN_PC.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if sp.saturating_sub(g.stack.lo) < RED_ZONE + xsave + INJECT_ROOM {
        return;
    }
    // SAFETY: m is this thread's M and we are its signal handler.
    if !unsafe { crate::preempt::want_async_preempt(m, sp) } {
        return;
    }
    let new_sp = sp - RED_ZONE - 8;
    // SAFETY: new_sp is inside the G's stack (room checked), below the interrupted code's red
    // zone, on memory no one else uses while the G is stopped here.
    unsafe { *(new_sp as *mut usize) = pc };
    gregs[libc::REG_RSP as usize] = new_sp as i64;
    gregs[libc::REG_RIP as usize] = async_preempt_entry as *const () as usize as i64;
    g.async_inflight.store(true, Ordering::Relaxed);
    let n = INJECTED.fetch_add(1, Ordering::Relaxed);
    LAST_PCS[n as usize % LAST_PCS.len()].store(pc, Ordering::Relaxed);
}

/// Go's `asyncPreempt` (preempt_amd64.s): entered as if called from the interrupted
/// instruction (the return address on the stack is its PC, 128 bytes below its SP), saves every
/// register, yields, restores them, and returns there with the interrupted SP (`ret 128`).
///
/// Frame, from the top: return address (interrupted PC), interrupted RBP (so a traceback
/// walks on into the interrupted function), RFLAGS, the 15 other general registers, then
/// (64-byte aligned) the XSAVE area; RBX keeps the address of the register block across the
/// call (callee-saved).
#[unsafe(naked)]
unsafe extern "C" fn async_preempt_entry() {
    core::arch::naked_asm!(
        "push rbp",
        "mov rbp, rsp",
        "pushfq",
        "push rax",
        "push rbx",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "cld", // the ABI's direction flag for the call below
        "mov rbx, rsp",
        "sub rsp, qword ptr [rip + {xsave_bytes}]",
        "and rsp, -64",
        // XSAVE writes the header's XSTATE_BV but XRSTOR also checks its other bytes
        // (SDM Vol. 1 §13.4.2): zero the 64-byte header at offset 512.
        "xor eax, eax",
        "mov [rsp + 512], rax",
        "mov [rsp + 520], rax",
        "mov [rsp + 528], rax",
        "mov [rsp + 536], rax",
        "mov [rsp + 544], rax",
        "mov [rsp + 552], rax",
        "mov [rsp + 560], rax",
        "mov [rsp + 568], rax",
        "mov eax, -1", // every state component XCR0 enables
        "mov edx, -1",
        "xsave64 [rsp]",
        "call {resume}",
        "mov eax, -1",
        "mov edx, -1",
        "xrstor64 [rsp]",
        "mov rsp, rbx",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rbx",
        "pop rax",
        "popfq",
        "pop rbp",
        "ret 128", // back to the interrupted PC, and over the red zone to its SP
        xsave_bytes = sym XSAVE_BYTES,
        resume = sym async_preempt_resume,
    )
}

/// The runtime half of the injected call: yield as the kernel's timer interrupt does, then let
/// the next preemption be injected.
extern "C" fn async_preempt_resume() {
    // SAFETY: the handler checked that this G was at an async-safe point (no runtime lock, on
    // its own stack) and nothing has run on it since but the register saves; every register
    // of the interrupted code is saved above us.
    unsafe { crate::preempt::async_preempt() };
    let gp = crate::m::getg();
    // SAFETY: we are this running G (possibly on another M now); the flag is an atomic.
    unsafe { (*gp).async_inflight.store(false, Ordering::Relaxed) };
}

//! Per-CPU data, reached through GS base: the kernel's thread-local storage (Go's `m` is found
//! the same way on every OS: through the thread's TLS). Each CPU's `IA32_GS_BASE` MSR
//! (0xC000_0101, Intel SDM Vol. 4, Table 2-2) holds the address of its [`PerCpu`], whose first
//! word points to itself, so `mov rax, gs:[0]` yields it in one instruction, from any
//! context, interrupt handlers included.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use x86_64::registers::model_specific::GsBase;
use x86_64::VirtAddr;

#[repr(C)]
pub struct PerCpu {
    /// Points to this struct (read through `gs:[0]`).
    self_ptr: *const PerCpu,
    /// 0 for the bootstrap processor, then 1, 2, … in the order the APs came up.
    pub index: usize,
    pub apic_id: u32,
    /// The M running on this CPU (an `rt_core::m::M`), once the scheduler runs here.
    pub m: AtomicPtr<()>,
    /// Interrupts this CPU has taken on its wake-up vector (a statistic for tests).
    pub wakeups: AtomicU64,
    /// `hlt`s this CPU has executed while idle or parked (a statistic: an idle M must halt).
    pub halts: AtomicU64,
    /// The futex word this CPU sleeps on (rt/platform.rs `futex_sleep`), or null.
    pub sleeping_on: AtomicPtr<core::sync::atomic::AtomicU32>,
    /// An M handed to this idle AP to run (rt/platform.rs `new_os_thread`), or null.
    pub pending_m: AtomicPtr<()>,
    /// Ms this idle AP was handed (`pending_m`) and found on waking from a `hlt` that its
    /// wake-up vector ended: the hand-off's IPI did its job (a statistic for tests).
    pub handoffs_woken: AtomicU64,
    /// Ms this idle AP found on waking from a `hlt` that no wake-up interrupt ended (its next
    /// tick did): the M waited up to a tick for its CPU (a statistic for tests).
    pub handoffs_late: AtomicU64,
    /// Whether this CPU is an AP in its idle loop, free to take an M.
    pub idle: core::sync::atomic::AtomicBool,
    /// TSC at this CPU's last wake-up interrupt (for the wake-up latency figure).
    pub last_wake_tsc: AtomicU64,
    /// LAPIC timer ticks taken by this CPU.
    pub ticks: AtomicU64,
    /// The id of the last M that ran on this CPU (-1: none yet), for the boot report.
    pub last_m_id: core::sync::atomic::AtomicI64,
    /// Goroutines this CPU preempted from its timer interrupt (a statistic).
    pub async_preempts: AtomicU64,
    /// The newest TLB shootdown generation this CPU has flushed for (tlb.rs).
    pub tlb_gen: AtomicU64,
    /// Full TLB flushes done for shootdowns.
    pub tlb_flushes: AtomicU64,
    /// Goroutine stack pages mapped on demand by this CPU's page-fault handler (mm/stack.rs).
    pub stack_faults: AtomicU64,
    /// Nanoseconds this CPU's page-fault handler spent growing stacks (TSC time).
    pub stack_fault_ns: AtomicU64,
}

// SAFETY: a PerCpu is written only by its own CPU, except its atomics.
unsafe impl Sync for PerCpu {}

/// Every CPU's data, by index (filled as CPUs come up).
pub const MAX_CPUS: usize = 256;
static ALL: [AtomicPtr<PerCpu>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

/// CPU `index`'s data, if that CPU is up.
pub fn get(index: usize) -> Option<&'static PerCpu> {
    let p = ALL.get(index)?.load(Ordering::Acquire);
    // SAFETY: only pointers to leaked PerCpus are stored.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Sets up the executing CPU's per-CPU data and points GS base at it.
pub fn init(index: usize, apic_id: u32) -> &'static PerCpu {
    let p = Box::leak(Box::new(PerCpu {
        self_ptr: core::ptr::null(),
        index,
        apic_id,
        m: AtomicPtr::new(core::ptr::null_mut()),
        wakeups: AtomicU64::new(0),
        halts: AtomicU64::new(0),
        sleeping_on: AtomicPtr::new(core::ptr::null_mut()),
        pending_m: AtomicPtr::new(core::ptr::null_mut()),
        handoffs_woken: AtomicU64::new(0),
        handoffs_late: AtomicU64::new(0),
        idle: core::sync::atomic::AtomicBool::new(false),
        last_m_id: core::sync::atomic::AtomicI64::new(-1),
        ticks: AtomicU64::new(0),
        last_wake_tsc: AtomicU64::new(0),
        async_preempts: AtomicU64::new(0),
        tlb_gen: AtomicU64::new(0),
        tlb_flushes: AtomicU64::new(0),
        stack_faults: AtomicU64::new(0),
        stack_fault_ns: AtomicU64::new(0),
    }));
    p.self_ptr = p;
    GsBase::write(VirtAddr::from_ptr(p));
    ALL[index].store(p as *const PerCpu as *mut PerCpu, Ordering::Release);
    p
}

/// The executing CPU's data, or `None` before [`init`] ran on it.
#[inline]
pub fn current() -> Option<&'static PerCpu> {
    if GsBase::read().as_u64() == 0 {
        return None;
    }
    let p: *const PerCpu;
    // SAFETY: GS base is non-zero only after `init`, which points it at a leaked PerCpu whose
    // first word is its own address.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) p, options(nostack, readonly, preserves_flags));
        Some(&*p)
    }
}

/// Like [`current`], without the check (for hot paths that run only after init).
///
/// # Safety
/// [`init`] must have run on the executing CPU.
#[inline]
pub unsafe fn current_unchecked() -> &'static PerCpu {
    let p: *const PerCpu;
    // SAFETY: the caller's promise.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) p, options(nostack, readonly, preserves_flags));
        &*p
    }
}

// `gs:[0]` must be `self_ptr`.
const _: () = assert!(core::mem::offset_of!(PerCpu, self_ptr) == 0);

/// Number of CPUs that ran [`init`].
pub static ONLINE: AtomicU64 = AtomicU64::new(0);

/// Marks the executing CPU online.
pub fn mark_online() {
    ONLINE.fetch_add(1, Ordering::AcqRel);
}

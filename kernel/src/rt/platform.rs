//! The kernel platform for rt-core: what the scheduler needs from the machine (DESIGN.md §3),
//! provided by bare metal. Go's counterpart is an OS port (os_linux.go and friends).
//!
//! - The current M lives in the CPU's per-CPU data (GS base): `getm()` is one `gs:` load.
//! - Starting an M (`newosproc`) hands it to an idle AP and wakes that AP with the wake-up
//!   IPI; the AP runs it on its own boot stack, which becomes the M's g0 stack. M0 is the
//!   bootstrap processor. With no idle AP left, the runtime keeps the P idle (Go would make a
//!   thread; a CPU cannot be made).
//! - Parking an M (`futexsleep`) halts its CPU with the lost-wake-up race closed: the CPU
//!   announces the word it sleeps on, re-checks it, and halts with `sti; hlt`; a waker sets the
//!   word, then IPIs every CPU that announced it (sequentially consistent on both sides, so one
//!   of the two sees the other).
//! - The clock is the TSC, calibrated against the PIT.
//! - Goroutine stacks are virtual slots with a guard page, one page mapped at first and the
//!   rest mapped on demand by the page-fault handler (mm/stack.rs); trimming and freeing them is
//!   one TLB shootdown per batch (x86/tlb.rs).

use alloc::boxed::Box;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use rt_core::g::{Stack, G};
use rt_core::m::M;
use rt_core::platform::Platform;
use rt_core::sched::{Failure, Sched};

use crate::x86::{apic, interrupts, percpu, tsc};

pub struct KernelPlatform;

pub static PLATFORM: KernelPlatform = KernelPlatform;

/// Halts this CPU while `*key == 0` (the caller re-checks: any interrupt ends the halt, the
/// wake-up IPI that `futex_wake` sends included). With a `deadline` (the poller's sleep), it
/// also returns at the deadline or when serial input has readied a goroutine: if the deadline
/// comes before the next tick, the LAPIC timer is set one-shot for it (interrupts are off, so
/// it cannot fire before the `hlt`) and the periodic tick restored afterwards.
fn halt_while_zero(key: &AtomicU32, deadline: Option<u64>) {
    // SAFETY: runtime code runs only on CPUs whose per-CPU data is set up.
    let me = unsafe { percpu::current_unchecked() };
    let were_enabled = x86_64::instructions::interrupts::are_enabled();
    me.sleeping_on
        .store(key as *const AtomicU32 as *mut AtomicU32, Ordering::SeqCst);
    x86_64::instructions::interrupts::disable();
    let now = tsc::nanos();
    let go_on = match deadline {
        None => true,
        Some(d) => now < d && !crate::dev::serial_in::ready(),
    };
    if key.load(Ordering::SeqCst) == 0 && go_on {
        let tick = crate::tick_ms();
        let programmed = deadline.is_some_and(|d| {
            d - now < tick * 1_000_000 && apic::one_shot_in(interrupts::TIMER_VECTOR, d - now, tick)
        });
        me.halts.fetch_add(1, Ordering::Relaxed);
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
        if programmed {
            apic::start_timer(interrupts::TIMER_VECTOR, tick);
        }
    }
    me.sleeping_on
        .store(core::ptr::null_mut(), Ordering::SeqCst);
    if were_enabled {
        x86_64::instructions::interrupts::enable();
    }
}

impl Platform for KernelPlatform {
    #[inline]
    fn current_m(&self) -> *mut M {
        // SAFETY: every CPU sets up its per-CPU data before it runs any runtime code.
        unsafe { percpu::current_unchecked() }
            .m
            .load(Ordering::Relaxed)
            .cast()
    }

    // The trait's contract: `m` is null or the live M that starts running on this CPU.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    fn set_current_m(&self, m: *mut M) {
        // SAFETY: as above.
        let me = unsafe { percpu::current_unchecked() };
        me.m.store(m.cast(), Ordering::Relaxed);
        if !m.is_null() {
            // SAFETY: `m` is the live M that starts running on this CPU.
            me.last_m_id.store(unsafe { (*m).id }, Ordering::Relaxed);
        }
    }

    fn nanotime(&self) -> u64 {
        tsc::nanos()
    }

    fn new_os_thread(&self, m: *mut M) -> bool {
        for i in 1..percpu::MAX_CPUS {
            let Some(cpu) = percpu::get(i) else { break };
            if cpu.idle.load(Ordering::SeqCst)
                && cpu
                    .pending_m
                    .compare_exchange(
                        core::ptr::null_mut(),
                        m.cast(),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                if cpu.idle.load(Ordering::SeqCst) {
                    apic::send_fixed(cpu.apic_id, interrupts::WAKE_VECTOR);
                    return true;
                }
                // It stopped being idle meanwhile (it took another M): take ours back.
                if cpu
                    .pending_m
                    .compare_exchange(
                        m.cast(),
                        core::ptr::null_mut(),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_err()
                {
                    // It took ours after all.
                    return true;
                }
            }
        }
        false
    }

    fn futex_sleep(&self, key: &AtomicU32) {
        halt_while_zero(key, None);
    }

    fn poll_sleep(&self, key: &AtomicU32, deadline: u64) {
        halt_while_zero(key, Some(deadline));
    }

    fn netpoll(&self, ready: &mut dyn FnMut(*mut G)) {
        crate::dev::serial_in::netpoll(ready)
    }

    fn netpoll_ready(&self) -> bool {
        crate::dev::serial_in::ready()
    }

    fn io_waiting(&self) -> bool {
        crate::dev::serial_in::waiting()
    }

    fn futex_wake(&self, key: &AtomicU32) {
        let target = key as *const AtomicU32 as *mut AtomicU32;
        for i in 0..percpu::MAX_CPUS {
            let Some(cpu) = percpu::get(i) else { break };
            if cpu.sleeping_on.load(Ordering::SeqCst) == target {
                apic::send_fixed(cpu.apic_id, interrupts::WAKE_VECTOR);
            }
        }
    }

    fn stack_alloc(&self, size: usize) -> Option<Stack> {
        crate::mm::stack::alloc(size)
    }

    unsafe fn stack_free(&self, stacks: &[Stack]) {
        // SAFETY: forwarded from rt-core's promise (unused, freed once).
        unsafe { crate::mm::stack::free(stacks) }
    }

    fn stack_resident(&self, stack: &Stack) -> Option<usize> {
        Some(crate::mm::stack::resident(stack))
    }

    unsafe fn stack_trim(&self, stacks: &[Stack]) -> usize {
        // SAFETY: forwarded from rt-core's promise (no goroutine runs on them).
        unsafe { crate::mm::stack::trim(stacks) }
    }

    fn osyield(&self) {
        for _ in 0..64 {
            core::hint::spin_loop();
        }
    }

    fn usleep(&self, us: u32) {
        let until = tsc::nanos() + us as u64 * 1000;
        while tsc::nanos() < until {
            core::hint::spin_loop();
        }
    }

    fn write_str(&self, s: &str) {
        crate::dev::console::print_fatal(format_args!("{s}"));
    }

    fn exit_fatal(&self) -> ! {
        crate::dev::qemu::exit(crate::dev::qemu::ExitCode::Failure)
    }

    fn ncpu(&self) -> usize {
        percpu::ONLINE.load(Ordering::SeqCst) as usize
    }

    fn after_async_preempt(&self) {
        // g0 continues from the timer interrupt's handler, where interrupts are off; the
        // scheduler runs with them on (an idle M halts with `sti; hlt` and needs the tick).
        x86_64::instructions::interrupts::enable();
    }
}

/// Preemption counts of a runtime (rt_core::sched::Stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Preemptions {
    /// Requests sysmon made (a G overran its slice).
    pub requests: u64,
    /// Honoured at a safe point.
    pub sync: u64,
    /// Made from the timer interrupt where the G stood.
    pub asynchronous: u64,
}

fn preemptions_of(sched: &Sched) -> Preemptions {
    Preemptions {
        requests: sched.stats.npreempt_requests.load(Ordering::Relaxed),
        sync: sched.stats.nsync_preempt.load(Ordering::Relaxed),
        asynchronous: sched.stats.nasync_preempt.load(Ordering::Relaxed),
    }
}

/// The running runtime's preemption counts so far (None when no runtime runs).
pub fn preemptions() -> Option<Preemptions> {
    with_current(preemptions_of)
}

static LAST_RUN: spin::Mutex<Preemptions> = spin::Mutex::new(Preemptions {
    requests: 0,
    sync: 0,
    asynchronous: 0,
});

/// What the goroutines of the running runtime hold in memory right now (tests, the showcase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemSnapshot {
    /// Physical frames allocated (stack pages, page tables, everything; the heap's frames are
    /// mapped at boot, so heap growth shows in `heap_bytes`).
    pub frames: u64,
    /// Heap bytes in use (G structs, closures, run queues...).
    pub heap_bytes: u64,
    /// Goroutine stack pages mapped.
    pub stack_pages: u64,
    /// Gs allocated by the runtime (0 when none runs).
    pub gs: usize,
}

/// Takes a [`MemSnapshot`].
pub fn mem_snapshot() -> MemSnapshot {
    MemSnapshot {
        frames: crate::mm::frame::frame_stats().0,
        heap_bytes: crate::mm::heap::used() as u64,
        stack_pages: crate::mm::stack::stats().mapped_pages,
        gs: with_current(Sched::allg_count).unwrap_or(0),
    }
}

/// The running runtime's stack-cache counters: (stacks asked of the platform, stacks given
/// back, bytes trimmed from cached stacks).
pub fn stack_counts() -> Option<(u64, u64, u64)> {
    with_current(|sched| {
        let st = &sched.stats;
        (
            st.nstackalloc.load(Ordering::Relaxed),
            st.nstackfree.load(Ordering::Relaxed),
            st.nstacktrimmed.load(Ordering::Relaxed),
        )
    })
}

/// Switches the running runtime's stack cache on or off (to measure what it saves).
pub fn set_stack_cache(on: bool) {
    with_current(|sched| sched.stack_cache.store(on, Ordering::Relaxed));
}

/// The preemption counts of the last runtime that `run` finished.
pub fn last_run_preemptions() -> Preemptions {
    *LAST_RUN.lock()
}

/// The runtime running now, for the tick (schedtrace) to read; null when none runs.
static CURRENT: AtomicPtr<Sched> = AtomicPtr::new(core::ptr::null_mut());

/// CPUs (other than the one in `run`) using CURRENT right now: `run` clears CURRENT, then
/// waits for this to drop to zero before it frees the runtime.
static CURRENT_USERS: AtomicU32 = AtomicU32::new(0);

/// For an idle AP (smp::ap_idle), outside interrupt context: a new M for a P that sysmon took
/// from a syscall, if the running runtime has one waiting and no idle M took it. The tick,
/// an interrupt, retakes the P but may not allocate an M; a spare CPU can.
pub fn m_for_retaken_p() -> Option<*mut M> {
    with_current(Sched::new_m_for_retaken).flatten()
}

/// Wakes the running runtime's poller (interrupt context: lock-free), for serial input.
pub fn netpoll_break() {
    with_current(Sched::netpoll_break);
}

/// Runs `f` on the running runtime, if one runs, counted in CURRENT_USERS so that `run`
/// cannot free it meanwhile (from any CPU, outside interrupt context or in it).
fn with_current<R>(f: impl FnOnce(&Sched) -> R) -> Option<R> {
    CURRENT_USERS.fetch_add(1, Ordering::SeqCst);
    let sched = CURRENT.load(Ordering::SeqCst);
    // SAFETY: `run` frees the runtime only after clearing CURRENT and seeing no users, and we
    // counted ourselves before loading it.
    let r = (!sched.is_null()).then(|| f(unsafe { &*sched }));
    CURRENT_USERS.fetch_sub(1, Ordering::SeqCst);
    r
}

/// Called from CPU 0's timer tick (interrupt context: no waiting on locks, no allocation).
/// Prints Go's schedtrace line every `schedtrace=MS` milliseconds while a runtime runs, and
/// with `scheddetail=1` the per-P, per-M and per-G lines (rt_core::trace).
///
/// It is also sysmon (Go's `sysmon` → `retake`): it asks goroutines that overran their time
/// slice to yield, and takes Ps from syscalls, leaving their hand-off to the next M that looks
/// for work (an interrupt handler takes no scheduler lock and starts no M).
pub fn tick_cpu0() {
    let sched = CURRENT.load(Ordering::Acquire);
    if sched.is_null() {
        return;
    }
    // SAFETY: CURRENT is cleared before the runtime is destroyed, by `run` on this same CPU
    // (so never while this tick runs); retake and schedtrace read atomics only and take no lock
    // they would wait for.
    let sched = unsafe { &*sched };
    rt_core::sched::retake(sched, tsc::nanos(), rt_core::sched::Handoff::Deferred);
    let args = crate::args::get();
    if args.schedtrace == 0 {
        return;
    }
    let cpu0 = percpu::get(0);
    let ticks = cpu0.map_or(0, |p| p.ticks.load(Ordering::Relaxed));
    if !ticks.is_multiple_of((args.schedtrace / args.tick_ms()).max(1)) {
        return;
    }
    // The M and G lists are behind runtime locks. If the M this tick interrupted holds a
    // runtime lock, it may hold one of those: try once. Otherwise the holder is another CPU
    // inside a short critical section: wait for it a little.
    let m =
        cpu0.map_or(core::ptr::null_mut(), |p| p.m.load(Ordering::Relaxed)) as *mut rt_core::m::M;
    // SAFETY: a CPU's M outlives its time on the CPU; `locks` is an atomic.
    let interrupted_holds_lock = !m.is_null() && unsafe { (*m).locks.load(Ordering::Relaxed) } > 0;
    // Ms asleep: CPUs whose M is halted on its note.
    let idle_threads = (0..percpu::MAX_CPUS)
        .map_while(percpu::get)
        .filter(|p| !p.sleeping_on.load(Ordering::Relaxed).is_null())
        .count();
    let trace = rt_core::trace::TraceArgs {
        now_ms: tsc::nanos() / 1_000_000,
        idlethreads: Some(idle_threads),
        detailed: args.scheddetail,
        lock_tries: if interrupted_holds_lock { 1 } else { 100_000 },
    };
    crate::dev::console::with_writer(|w| {
        let _ = rt_core::trace::schedtrace(sched, w, &trace);
    });
}

/// Called from every CPU's timer tick: whether to preempt this CPU's goroutine from the
/// interrupt (Go's `preemptM` signal + `isAsyncSafePoint`). Yes when the G was already flagged
/// at this CPU's previous tick, in the same time slice (so it had a tick's time to reach a safe
/// point and did not), and it stands at an async-safe point:
/// - its M holds no runtime lock (`m.locks == 0`; `mcall` also raises it, so the middle of a
///   switch to g0 is excluded);
/// - the interrupted stack pointer lies in the G's own stack (not g0's: the scheduler, the
///   `systemstack` code and the idle loop run on g0);
/// - interrupts were enabled (they were, or the tick would not have come; every kernel lock
///   that an interrupt path touches is an `IrqLock`, held with interrupts off).
pub fn tick_async(cpu: &percpu::PerCpu, regs: &interrupts::SavedRegs) -> bool {
    let m = cpu.m.load(Ordering::Relaxed) as *mut M;
    if m.is_null() {
        return false;
    }
    // SAFETY: the M running on this CPU is live; curg, locks, preempt are atomics. The G's
    // stack bounds are written by this CPU's M before the G runs, so this interrupt (on the
    // same CPU, after those writes) reads them stably.
    unsafe {
        let gp = (*m).curg.load(Ordering::Relaxed);
        if gp.is_null()
            || (*gp).is_g0
            || !(*gp).preempt.load(Ordering::Relaxed)
            || (*gp).status() != rt_core::status::GStatus::Running
        {
            cpu.preempt_seen
                .store(core::ptr::null_mut(), Ordering::Relaxed);
            return false;
        }
        let pp = (*m).p;
        let tick = if pp.is_null() {
            0
        } else {
            (*pp).schedtick.load(Ordering::Relaxed)
        };
        if cpu.preempt_seen.load(Ordering::Relaxed) != gp.cast()
            || cpu.preempt_seen_tick.load(Ordering::Relaxed) != tick
        {
            // First sight of the flag: give the G a tick to reach a safe point.
            cpu.preempt_seen.store(gp.cast(), Ordering::Relaxed);
            cpu.preempt_seen_tick.store(tick, Ordering::Relaxed);
            return false;
        }
        if crate::args::get().async_preempt_off || (*m).locks.load(Ordering::Relaxed) != 0 {
            return false;
        }
        let stack = (*gp).stack;
        if !(stack.lo as u64..stack.hi as u64).contains(&regs.rsp) {
            return false;
        }
        cpu.preempt_seen
            .store(core::ptr::null_mut(), Ordering::Relaxed);
        cpu.async_preempts.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// Which M each online CPU ran last: `cpu0=M0 cpu1=M2 ...` (`-` for a CPU that ran none).
pub fn cpu_to_m() -> alloc::string::String {
    use core::fmt::Write;
    let mut out = alloc::string::String::new();
    for i in 0..percpu::MAX_CPUS {
        let Some(cpu) = percpu::get(i) else { break };
        let id = cpu.last_m_id.load(Ordering::Relaxed);
        let _ = if id < 0 {
            write!(out, "cpu{i}=- ")
        } else {
            write!(out, "cpu{i}=M{id} ")
        };
    }
    out.trim_end().into()
}

/// Runs `main` as the main goroutine with `gomaxprocs` Ps (0: one per online CPU), the
/// bootstrap processor as M0 and the APs as further Ms, until `main` returns. Returns the
/// runtime's statistics per P (Gs run, Gs stolen); a deadlock is a fatal error.
pub fn run(gomaxprocs: usize, main: impl FnOnce() + Send + 'static) -> alloc::vec::Vec<(u64, u64)> {
    rt_core::platform::set(&PLATFORM).expect("another rt-core platform is installed");
    let procs = if gomaxprocs == 0 {
        PLATFORM.ncpu()
    } else {
        gomaxprocs
    };
    let args = crate::args::get();
    crate::mm::stack::set_slot_size(args.maxstack_bytes());
    let sched = Sched::new(procs, crate::mm::stack::max_stack());
    sched
        .stack_cache
        .store(!args.stack_cache_off, Ordering::Relaxed);
    sched
        .timeslice_ns
        .store(args.timeslice_ms() * 1_000_000, Ordering::Relaxed);
    sched
        .preempt_enabled
        .store(!args.preempt_off, Ordering::Relaxed);
    CURRENT.store(&*sched as *const Sched as *mut Sched, Ordering::Release);
    // Goroutines run with interrupts on: the tick reaches every M (APs enable them as they
    // take an M: smp::ap_idle).
    let were_enabled = x86_64::instructions::interrupts::are_enabled();
    x86_64::instructions::interrupts::enable();
    // SAFETY: the BSP is not an M yet, and the platform is installed.
    unsafe { sched.run_main(Box::new(main)) };
    // The APs leave their M loops at their next look for work; give them a moment. Interrupts
    // stay on while we wait: a goroutine still running on an AP may unmap stacks as it exits
    // (a TLB shootdown), and this CPU must answer its IPI (x86/tlb.rs).
    let deadline = tsc::nanos() + 1_000_000_000;
    while sched.mcount.load(Ordering::Acquire) != 0 && tsc::nanos() < deadline {
        core::hint::spin_loop();
    }
    let stats = sched.per_p_stats();
    *LAST_RUN.lock() = preemptions_of(&sched);
    CURRENT.store(core::ptr::null_mut(), Ordering::SeqCst);
    while CURRENT_USERS.load(Ordering::SeqCst) != 0 {
        core::hint::spin_loop();
    }
    if !were_enabled {
        x86_64::instructions::interrupts::disable();
    }
    if let Some(f) = sched.take_failure() {
        match f {
            Failure::Deadlock => {
                let mut list = alloc::string::String::new();
                let _ = rt_core::trace::goroutines(&sched, &mut list);
                rt_core::fatal(format_args!(
                    "all goroutines are asleep - deadlock!\n\n{}",
                    list.trim_end()
                ))
            }
            other => rt_core::fatal(format_args!("{other}")),
        }
    }
    // SAFETY: every M has left its loop (or destroy leaks instead of freeing).
    unsafe { sched.destroy() };
    stats
}

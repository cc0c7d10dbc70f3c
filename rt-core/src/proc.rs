//! Goroutine life cycle: spawning (Go's `newproc`), starting (`goentry`), exiting (`goexit`
//! → `goexit0`), the free lists that recycle dead Gs (`gfput`/`gfget`), yielding
//! (`Gosched`), running on g0 (`systemstack`) and blocking calls (`entersyscall`/
//! `exitsyscall`). Go's counterparts are in proc.go.

use alloc::boxed::Box;
use core::panic::Location;
use core::ptr::null_mut;
use core::sync::atomic::Ordering;

use crate::g::Entry;
use crate::g::G;
use crate::idle;
use crate::m::getm;
use crate::m::M;
use crate::mcall::{mcall, mcall_on, Req};
use crate::p::{PStatus, P};
use crate::platform;
use crate::preempt::preempt_point;
use crate::sched;
use crate::sched::Sched;
use crate::status::GStatus;
use crate::tracer;
use rt_trace::format::Kind;

/// Free Gs kept per P before half of them spill to the global list (Go: 64, then down to 32).
const GFREE_LOCAL_MAX: usize = 64;

const GFREE_LOCAL_KEEP: usize = 32;

/// Spawns a goroutine running `f` (Go's `go f()`). It goes to the current P's `runnext`, so a
/// spawner that then blocks hands its P straight to its child. Must be called from a goroutine.
#[track_caller]
#[inline(always)] // so that newproc's return address is in the spawning function
pub fn spawn<F: FnOnce() + Send + 'static>(f: F) -> u64 {
    newproc(Box::new(f), Location::caller())
}

/// Go's `newproc`: returns the new goroutine's id. Not inlined: its return address, recorded
/// as the G's `gopc_pc`, is the `created by` function of tracebacks. Also callable on g0
/// (time.rs fires `after_func` timers there), even of an M without a P: the G then goes to
/// the global queue.
#[inline(never)]
pub fn newproc(entry: Entry, gopc: &'static Location<'static>) -> u64 {
    let gopc_pc = crate::arch::return_address();
    // A runtime entry is a safe point (in Go every call is: the prologue checks stackguard0).
    preempt_point();
    // Read the M once, after the safe point (which may move us to another thread), with
    // preemption off: nothing below can switch, so it stays the current M until release_m.
    let m = crate::m::acquire_current_m();
    if m.is_null() {
        panic!("rt_core::spawn called outside a runtime (from a thread that is not an M)");
    }
    // SAFETY: m is the current M; its runtime outlives it.
    let sched = unsafe { &*(*m).runtime };
    // The spawning goroutine (Go's `parentGoid`): the M's current G, none on g0 (run_main).
    // SAFETY: m is the current M; curg is an atomic and names a live G or null.
    let parentgoid = unsafe { (*m).curg.load(Ordering::Relaxed).as_ref() }.map_or(0, |g| g.goid());
    // SAFETY: m is the current M; its `p` is its own; curg is an atomic.
    let (pp, on_g0) = unsafe { ((*m).p, (*m).curg.load(Ordering::Relaxed).is_null()) };
    if pp.is_null() && !on_g0 {
        platform::fatal(format_args!("spawn during a syscall (the M holds no P)"));
    }
    // Gs on the free lists have no stack: it is taken from the P's stack cache, and the
    // G's gobuf prepared, when the G first runs (sched::execute).
    let newg = if pp.is_null() {
        // g0 of an M without a P: the poller firing an `after_func` timer (time.rs).
        gfget_nop(sched, gopc)
    } else {
        // SAFETY: pp is the current M's P (held while it runs a G, or on g0).
        unsafe { gfget(sched, pp).unwrap_or_else(|| malg(sched, pp, gopc)) }
    };
    let goid = sched.goidgen.fetch_add(1, Ordering::Relaxed) + 1;
    // SAFETY: newg is dead and on no list (it came off a free list or a fresh slab): ours.
    unsafe {
        (*newg).entry = Some(entry);
        (*newg).gopc = gopc;
        (*newg).gopc_pc = gopc_pc;
        (*newg).parentgoid = parentgoid;
        (*newg).goid.store(goid, Ordering::Relaxed);
        (*newg).casgstatus(GStatus::Dead, GStatus::Runnable);
    }
    tracer::ev!(m, Kind::GoCreate, 0, goid, gopc_pc as u64, parentgoid);
    if pp.is_null() {
        let mut l = sched.lock.lock_with(m);
        sched::globrunqput(sched, &mut l, newg);
    } else {
        // SAFETY: pp is the current M's P; newg is runnable and on no list.
        unsafe { sched::runqput(sched, pp, newg, true) };
    }
    if sched.main_started.load(Ordering::Relaxed) {
        idle::wakep(sched);
    }
    crate::m::release_m(m);
    goid
}

/// Gs allocated together: one allocation and one `allgs` registration per slab.
const G_SLAB: usize = 64;

/// Go's `malg`: a never-used G (its stack comes when it first runs), from the P's current
/// slab; a new slab when that is used up.
///
/// # Safety
/// `pp` is the current M's P.
unsafe fn malg(sched: &Sched, pp: *mut P, gopc: &'static Location<'static>) -> *mut G {
    // SAFETY: only the M holding a P touches its slab of unused Gs, and we hold pp.
    let gslab = unsafe { &mut (*pp).gslab };
    if let Some(g) = gslab.pop() {
        // SAFETY: an unused G from this P's slab: live, and no one else's.
        unsafe { (*g).gopc = gopc };
        return g;
    }
    let slab: Box<[G]> = (0..G_SLAB)
        .map(|_| {
            let g = G::new(0, gopc);
            g.set_status(GStatus::Dead);
            g
        })
        .collect();
    let slab = Box::into_raw(slab);
    sched.allgs.lock().push(slab);
    let base = slab as *mut G;
    // SAFETY: 1..G_SLAB are in bounds of the slab just allocated.
    gslab.extend((1..G_SLAB).rev().map(|i| unsafe { base.add(i) }));
    base
}

/// `gfget` and `malg` for g0 of an M without a P (no P's free list or slab to use): a dead
/// G from the global free list, or a new one (a slab of one).
fn gfget_nop(sched: &Sched, gopc: &'static Location<'static>) -> *mut G {
    if sched.ngfree.load(Ordering::Relaxed) > 0 {
        let mut l = sched.lock.lock();
        let g = l.gfree.pop_front();
        sched.ngfree.store(l.gfree.len() as i32, Ordering::Relaxed);
        if let Some(g) = g {
            return g;
        }
    }
    let g = G::new(0, gopc);
    g.set_status(GStatus::Dead);
    let slab: Box<[G]> = Box::new([g]);
    let slab = Box::into_raw(slab);
    sched.allgs.lock().push(slab);
    slab as *mut G
}

/// Go's `gfput`: a dead G goes on the P's free list; when that is long, half spills to the
/// global list.
///
/// # Safety
/// `pp` is the current M's P; `gp` is dead and on no list.
unsafe fn gfput(sched: &Sched, pp: *mut P, gp: *mut G) {
    // SAFETY: only the M holding a P touches its G free list, and we hold pp.
    let gfree = unsafe { &mut (*pp).gfree };
    // SAFETY: the caller's promise: gp is on no list.
    unsafe { gfree.push_front(gp) };
    if gfree.len() >= GFREE_LOCAL_MAX {
        let mut l = sched.lock.lock();
        while gfree.len() > GFREE_LOCAL_KEEP {
            let g = gfree.pop_front().unwrap();
            // SAFETY: g just left this P's list and is on no other.
            unsafe { l.gfree.push_back(g) };
        }
        sched.ngfree.store(l.gfree.len() as i32, Ordering::Relaxed);
    }
}

/// Go's `gfget`: a dead G from the P's free list, refilled from the global one.
///
/// # Safety
/// `pp` is the current M's P.
unsafe fn gfget(sched: &Sched, pp: *mut P) -> Option<*mut G> {
    // SAFETY: only the M holding a P touches its G free list, and we hold pp.
    let gfree = unsafe { &mut (*pp).gfree };
    if gfree.is_empty() && sched.ngfree.load(Ordering::Relaxed) > 0 {
        let mut l = sched.lock.lock();
        while gfree.len() < GFREE_LOCAL_KEEP {
            match l.gfree.pop_front() {
                // SAFETY: g just left the global list and is on no other.
                Some(g) => unsafe { gfree.push_back(g) },
                None => break,
            }
        }
        sched.ngfree.store(l.gfree.len() as i32, Ordering::Relaxed);
    }
    gfree.pop_front()
}

/// The first function every goroutine runs (entered from `arch::gostart`): runs the G's
/// closure, then exits. Go's `goexit` is the return address planted under the entry function;
/// here it is the tail of this function.
pub(crate) extern "C" fn goentry() -> ! {
    let gp = crate::m::getg();
    // SAFETY: we are the current M's running G, just started by `execute`.
    let (f, goid) = unsafe {
        (
            (*gp).entry.take().expect("a new goroutine has an entry"),
            (*gp).goid(),
        )
    };
    // The closure's heap block, where its captured handles live while it runs, for the leak
    // finder (leak.rs `owned_by`): in the 16 bytes of padding at the top of the stack that
    // `arch::prepare_new` leaves unused, so the G itself does not grow.
    let lo = &*f as *const (dyn FnOnce() + Send) as *const u8 as usize;
    // SAFETY: gp is the running G (us) and its stack is ours; [hi - 16, hi) is the padding
    // above our first frame, which nothing else uses.
    unsafe {
        let top = (*gp).stack.hi as *mut usize;
        top.sub(2).write(lo);
        top.sub(1).write(lo + core::mem::size_of_val(&*f));
    }
    run_entry(f, goid);
    mcall(Req::Exit);
    // SAFETY: a dead G is never resumed.
    unsafe { core::hint::unreachable_unchecked() }
}

#[cfg(feature = "std")]
fn run_entry(f: Entry, goid: u64) {
    // A panic must not unwind into `gostart` (there is nothing to unwind to): catch it, record
    // it as the runtime's failure (Go: an unrecovered panic ends the program) and stop.
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        if payload.is::<Goexit>() {
            // `goexit`: the frames are unwound; the goroutine ends normally.
            note_main_goexit();
            return;
        }
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).into()
        } else if let Some(s) = payload.downcast_ref::<alloc::string::String>() {
            s.clone()
        } else {
            "(non-string panic payload)".into()
        };
        let m = getm();
        // SAFETY: the current M's runtime outlives its goroutines.
        unsafe {
            (*(*m).runtime).fail(crate::run::Failure::Panic {
                goid,
                payload,
                message,
            })
        };
    }
}

#[cfg(not(feature = "std"))]
fn run_entry(f: Entry, _goid: u64) {
    // Without std, panics abort (the kernel's panic handler reports them).
    f()
}

/// Go's `goexit0`, on g0: the G is dead. Its stack goes to the P's stack cache (the next G
/// to start on this P takes it, still warm), the G itself to the P's free list. Go keeps a
/// dead G's stack on the G because Go gives a G its stack at spawn; we give it at first run,
/// so keeping it on the G would strand stacks on dead Gs during a spawn storm.
pub(crate) unsafe fn goexit0(m: *mut M, gp: *mut G) {
    // SAFETY: gp is switched out on m's g0; its goid is an atomic.
    tracer::ev!(m, Kind::GoDestroy, 0, unsafe { (*gp).goid() }, 0, 0);
    // SAFETY: on m's g0 with gp switched out.
    unsafe {
        (*gp).casgstatus(GStatus::Running, GStatus::Dead);
        sched::dropg(m, gp);
        (*gp).preempt.store(false, Ordering::Relaxed);
        (*gp).set_waitreason(crate::g::WaitReason::Zero);
        (*gp).param = 0;
        (*gp).entry = None;
        let stack = core::mem::replace(&mut (*gp).stack, crate::stack::Stack::EMPTY);
        crate::stack::stackfree((*m).runtime, (*m).p, stack);
        gfput(&*(*m).runtime, (*m).p, gp);
    }
}

/// Yields the processor: the goroutine goes to the global run queue and others run (Go's
/// `runtime.Gosched`). Outside a goroutine it yields the OS thread.
///
/// Inlined so that the switch lands in the caller's own code: returning from a function right
/// after a stack switch mispredicts (the CPU's return-address stack holds the other stack's
/// calls).
#[inline]
pub fn gosched() {
    match crate::m::acquire_current_g() {
        Some((m, _)) => mcall_on(m, Req::Gosched),
        None => platform::get().osyield(),
    }
}

/// GOMAXPROCS of the runtime the caller runs in (0 outside a runtime): set when the runtime
/// is created (`Runtime::new`, or the kernel's `gomaxprocs=` argument), changed by
/// [`set_gomaxprocs`].
pub fn gomaxprocs() -> usize {
    let m = getm();
    if m.is_null() {
        0
    } else {
        // SAFETY: the current M's runtime outlives it.
        unsafe { (*(*m).runtime).gomaxprocs.load(Ordering::Relaxed) }
    }
}

/// Why [`set_gomaxprocs`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetGomaxprocsError {
    /// Called outside a goroutine of a runtime.
    NoRuntime,
    /// Asked for 0 Ps, or more than the runtime was made with room for (`Config::max_procs`,
    /// `Runtime::max_procs`; by default the larger of GOMAXPROCS and the CPU count).
    OutOfRange { asked: usize, max: usize },
}

impl core::fmt::Display for SetGomaxprocsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SetGomaxprocsError::NoRuntime => f.write_str("set_gomaxprocs: not in a goroutine"),
            SetGomaxprocsError::OutOfRange { asked, max } => write!(
                f,
                "set_gomaxprocs({asked}): GOMAXPROCS must be between 1 and this runtime's max_procs ({max})"
            ),
        }
    }
}

/// Go's `runtime.GOMAXPROCS(n)` (`procresize`, proc.go): changes how many Ps run goroutines,
/// while the runtime runs, and returns the previous value.
///
/// Growing: Ps made dead at the start (up to `max_procs`) become idle and Ms are woken for
/// queued work. Shrinking: idle Ps beyond `n` become dead at once (their timers move to P 0);
/// a P beyond `n` that is running gives up at its M's next look for work (`retire_p`: its
/// queued goroutines go to the global queue, its timers to P 0, and the M stops), and the
/// goroutine running on it is asked to yield, as sysmon asks (and, with asynchronous
/// preemption, stopped if it has no safe point). Go stops the world for this; we let each P
/// retire itself, so no goroutine is lost and none is run twice. Concurrent calls are
/// serialised by the scheduler lock; the last one wins.
pub fn set_gomaxprocs(n: usize) -> Result<usize, SetGomaxprocsError> {
    let Some((m, _)) = crate::m::acquire_current_g() else {
        return Err(SetGomaxprocsError::NoRuntime);
    };
    // SAFETY: the current M's runtime outlives it.
    let sched = unsafe { &*(*m).runtime };
    let max = sched.allp.len();
    if n == 0 || n > max {
        crate::m::release_m(m);
        return Err(SetGomaxprocsError::OutOfRange { asked: n, max });
    }
    // The Ps this call kills, if it shrinks (made before the lock is taken: no allocation
    // under it).
    let mut dead = alloc::vec::Vec::with_capacity(max);
    let mut l = sched.lock.lock_with(m);
    let old = sched.gomaxprocs.swap(n, Ordering::AcqRel);
    if n < old {
        // Idle Ps beyond n leave the idle list now; running ones retire themselves.
        let mut keep = null_mut::<P>();
        loop {
            // SAFETY: under sched.lock (idle::pidleget's promise).
            let pp = unsafe { idle::pidleget(sched, &mut l) };
            if pp.is_null() {
                break;
            }
            // SAFETY: pp came off the idle list: we own it until we put it back.
            unsafe {
                if (*pp).id >= n {
                    (*pp).status.store(PStatus::Dead as u32, Ordering::Release);
                    dead.push(pp);
                } else {
                    (*pp).link = keep;
                    keep = pp;
                }
            }
        }
        while !keep.is_null() {
            // SAFETY: the Ps kept above, ours; under the lock.
            unsafe {
                let next = (*keep).link;
                idle::pidleput_exiting(sched, &mut l, keep);
                keep = next;
            }
        }
        drop(l);
        // Their timers move to P 0 outside the lock: moving one wakes the poller or an M
        // (`wake_poller`), and `wakep` takes the scheduler lock. (Until they move, the dead
        // Ps' heaps are still in `time::earliest` and `run_all_due`, which look at every P.)
        for pp in dead {
            // SAFETY: Ps live as long as the runtime and each heap is under its own lock (a
            // concurrent call may already have revived pp); P 0 is never among them (n >= 1).
            unsafe { crate::time::move_timers(sched, pp, sched.allp[0]) };
        }
        for &pp in &sched.allp[n..old] {
            // SAFETY: Ps live as long as the runtime; only atomics are read.
            if unsafe { (*pp).status() } == PStatus::Running {
                // SAFETY: as above.
                crate::preempt::preempt_p(sched, unsafe { &*pp });
            }
        }
    } else {
        for &pp in &sched.allp[old..n] {
            // SAFETY: a dead P (id >= old GOMAXPROCS) has no M and is on no list; under the
            // lock we make it idle.
            unsafe {
                if (*pp).status() == PStatus::Dead {
                    idle::pidleput(sched, &mut l, pp);
                }
            }
        }
        drop(l);
        for _ in old..n {
            if sched.runqsize.load(Ordering::Relaxed) == 0 {
                break;
            }
            idle::wakep(sched);
        }
    }
    crate::m::release_m(m);
    Ok(old)
}

/// Go's `runtime.NumGoroutine`: the goroutines that exist now (running, runnable, waiting or
/// in a syscall; not the dead ones waiting for reuse). Walks every G: for diagnostics and
/// tests, not hot paths. 0 outside a runtime.
pub fn num_goroutine() -> usize {
    let m = crate::m::acquire_current_m();
    if m.is_null() {
        return 0;
    }
    // SAFETY: the current M's runtime outlives it.
    let n = live_goroutines(unsafe { &*(*m).runtime });
    crate::m::release_m(m);
    n
}

/// The goroutines of `sched` that are not dead (num_goroutine's count).
pub(crate) fn live_goroutines(sched: &Sched) -> usize {
    sched
        .allgs
        .lock()
        .iter()
        // SAFETY: slabs live as long as the runtime; the status is an atomic.
        .flat_map(|&slab| unsafe { &*slab }.iter())
        .filter(|g| !g.is_g0 && !matches!(g.status(), GStatus::Dead | GStatus::Idle))
        .count()
}

/// Go's `runtime.Goexit`: ends the calling goroutine. On the host its frames are unwound
/// first, so every value it owns is dropped (Go runs its deferred calls), and a `catch_unwind`
/// in it sees the unwinding pass (do not swallow it: re-raise what you catch). In the kernel,
/// which has no unwinding (panics abort), the goroutine ends at once and what its frames own
/// is leaked. Called from the main goroutine, the program goes on until every other goroutine
/// has ended and then reports "no goroutines (main called runtime.Goexit) - deadlock!", as
/// Go does.
///
/// # Panics
/// Outside a goroutine.
pub fn goexit() -> ! {
    if crate::m::getg().is_null() {
        panic!("goexit called outside a goroutine");
    }
    #[cfg(feature = "std")]
    std::panic::resume_unwind(Box::new(Goexit));
    #[cfg(not(feature = "std"))]
    {
        note_main_goexit();
        mcall(Req::Exit);
        // SAFETY: a dead G is never resumed.
        unsafe { core::hint::unreachable_unchecked() }
    }
}

/// The payload `goexit` unwinds with (the host); `run_entry` recognises it.
#[cfg(feature = "std")]
struct Goexit;

/// If the calling goroutine is the main one, records that it called `goexit`.
fn note_main_goexit() {
    let Some((m, gp)) = crate::m::acquire_current_g() else {
        return;
    };
    // SAFETY: the current M's runtime outlives it; gp is the running G.
    unsafe {
        let sched = &*(*m).runtime;
        if (*gp).goid() == sched.main_goid.load(Ordering::Relaxed) {
            sched.main_goexit.store(true, Ordering::Release);
        }
    }
    crate::m::release_m(m);
}

/// The current goroutine's id (0 outside a goroutine).
pub fn goid() -> u64 {
    let gp = crate::m::getg();
    if gp.is_null() {
        0
    } else {
        // SAFETY: the running G is live.
        unsafe { (*gp).goid() }
    }
}

/// Runs `f` on the M's g0 stack and returns its result (Go's `systemstack`). On g0 already,
/// `f` runs directly.
pub fn systemstack<R>(f: impl FnOnce() -> R) -> R {
    if crate::m::getg().is_null() {
        return f();
    }
    let mut f = Some(f);
    let mut out = None;
    let mut call = || out = Some((f.take().expect("systemstack runs f once"))());
    let dynf: &mut dyn FnMut() = &mut call;
    // SAFETY: the pointer is used only by g0 while this G is suspended inside `mcall` below,
    // so the closure (on this G's stack) outlives every use; the lifetime is erased to store it.
    let ptr: *mut (dyn FnMut() + 'static) =
        unsafe { core::mem::transmute(dynf as *mut dyn FnMut()) };
    mcall(Req::SystemStack(ptr));
    out.expect("systemstack: g0 ran the function")
}

/// Go's `entersyscall`: the G is about to block in the platform (a host system call); its P
/// may be handed to another M meanwhile (sysmon's `retake`), so other goroutines keep running.
pub fn entersyscall() {
    let Some((m, gp)) = crate::m::acquire_current_g() else {
        return;
    };
    // SAFETY: gp is the running G; its goid is an atomic.
    tracer::ev!(m, Kind::GoSyscallBegin, 0, unsafe { (*gp).goid() }, 0, 0);
    tracer::ev!(m, Kind::ProcStop, 0, 0, 0, 0);
    // SAFETY: called from a running G on the current M, which holds a P; preemption is off.
    unsafe {
        let pp = (*m).p;
        (*pp).m.store(null_mut(), Ordering::Release);
        (*m).oldp = pp;
        (*m).p = null_mut();
        (*gp).casgstatus(GStatus::Running, GStatus::Syscall);
        (*pp)
            .status
            .store(PStatus::Syscall as u32, Ordering::Release);
        crate::m::release_m(m);
    }
}

/// Go's `exitsyscall`: takes the old P back if sysmon did not retake it, else an idle P, else
/// queues the G and lets the M sleep.
pub fn exitsyscall() {
    let Some((m, gp)) = crate::m::acquire_current_g() else {
        return;
    };
    // The G called entersyscall on this M (a G in a syscall is never preempted), and holds
    // preemption off: m stays the current M, and its fields are its own.
    // SAFETY: see above; an M's runtime outlives it.
    let sched = unsafe { &*(*m).runtime };
    // SAFETY: see above.
    let oldp = unsafe { core::mem::replace(&mut (*m).oldp, null_mut()) };
    // SAFETY: Ps live as long as the runtime; the status CAS decides the race with retake.
    if !oldp.is_null() && unsafe { (*oldp).take_from_syscall() } {
        // SAFETY: the CAS made oldp ours again; m holds no P. gp is ours, in Syscall.
        unsafe {
            idle::acquirep(m, oldp);
            (*oldp).syscalltick.fetch_add(1, Ordering::Relaxed);
            (*gp).casgstatus(GStatus::Syscall, GStatus::Running);
        }
        // SAFETY: gp is ours, running again; its goid is an atomic.
        tracer::ev!(m, Kind::GoSyscallEnd, 0, unsafe { (*gp).goid() }, 1, 0);
        crate::m::release_m(m);
        return;
    }
    let pp = {
        let mut l = sched.lock.lock();
        // SAFETY: under the scheduler lock.
        unsafe { idle::pidleget(sched, &mut l) }
    };
    if !pp.is_null() {
        // SAFETY: pp came off the idle list; m holds no P. gp is ours, in Syscall.
        unsafe {
            idle::acquirep(m, pp);
            (*gp).casgstatus(GStatus::Syscall, GStatus::Running);
        }
        // SAFETY: gp is ours, running again; its goid is an atomic.
        tracer::ev!(m, Kind::GoSyscallEnd, 0, unsafe { (*gp).goid() }, 0, 0);
        crate::m::release_m(m);
        return;
    }
    // g0 releases the hold (the G may resume on another M).
    mcall_on(m, Req::ExitSyscall);
}

/// Go's `exitsyscall0`, on g0: no P was free. Returns true if the G can run at once (a P
/// freed up meanwhile), false if it was queued and this M must look for work (or sleep).
///
/// # Safety
/// On `m`'s g0, with `gp` switched out after `exitsyscall` found no P.
pub(crate) unsafe fn exitsyscall0(m: *mut M, gp: *mut G) -> bool {
    // SAFETY: an M's runtime outlives it.
    let sched = unsafe { &*(*m).runtime };
    // SAFETY: on m's g0 with gp switched out: gp is ours to move.
    unsafe {
        (*gp).casgstatus(GStatus::Syscall, GStatus::Runnable);
        sched::dropg(m, gp);
    }
    tracer::ev!(
        m,
        Kind::GoSyscallEndBlocked,
        0,
        // SAFETY: as above; the goid is an atomic.
        unsafe { (*gp).goid() },
        0,
        0,
    );
    let mut l = sched.lock.lock();
    // SAFETY: under the scheduler lock.
    let pp = unsafe { idle::pidleget(sched, &mut l) };
    if pp.is_null() {
        sched::globrunqput(sched, &mut l, gp);
        return false;
    }
    drop(l);
    // SAFETY: pp came off the idle list; m (the current M) holds no P.
    unsafe { idle::acquirep(m, pp) };
    true
}

//! Goroutine life cycle: spawning (Go's `newproc`), starting, exiting (`goexit`), the free
//! lists that recycle dead Gs with their stacks (`gfput`/`gfget`), yielding (`Gosched`),
//! safe points (`morestack` → `newstack`), running on g0 (`systemstack`) and blocking calls
//! (`entersyscall`/`exitsyscall`). Go's counterparts are in proc.go and stack.go.

use alloc::boxed::Box;
use core::panic::Location;
use core::ptr::null_mut;
use core::sync::atomic::Ordering;

use crate::arch;
use crate::g::{Entry, G, STACK_PREEMPT};
use crate::m::{getm, Req, M};
use crate::p::{PStatus, P};
use crate::platform;
use crate::sched::{self, Sched};
use crate::status::GStatus;

/// Free Gs kept per P before half of them spill to the global list (Go: 64, then down to 32).
const GFREE_LOCAL_MAX: usize = 64;
const GFREE_LOCAL_KEEP: usize = 32;

/// Go's `mcall`: switches from the running G to its M's g0, which carries out `req`. Returns
/// when (and if) the G is resumed, possibly on another M.
#[inline(always)]
pub(crate) fn mcall(req: Req) {
    // Preemption stays off from here until g0 has taken the request (an interrupt that
    // preempted the G in between would overwrite `req`, or the G would resume on another M
    // and switch to this one's g0); g0 lowers `locks` again (sched::schedule).
    let m = crate::m::acquire_current_m();
    mcall_on(m, req);
}

/// `mcall` for a caller that holds preemption off on `m` (`acquire_current_m`), which g0
/// releases.
#[inline(always)]
fn mcall_on(m: *mut M, req: Req) {
    // SAFETY: called on a running G (checked by callers), whose M is `m`, the current M.
    unsafe {
        let gp = (*m).curg.load(Ordering::Relaxed);
        (*m).req = req;
        arch::swtch(&mut (*gp).sched, &(*(*m).g0).sched);
    }
}

/// Asynchronous preemption (Go's `asyncPreempt`, injected by a signal; here called by the
/// platform's timer interrupt handler): the running G yields to the global queue right where
/// the interrupt stopped it, and this call returns when the G next runs, possibly on another
/// M and CPU. The platform has already saved every register of the interrupted code on the
/// G's stack and restores them after this returns.
///
/// # Safety
/// Only from an interrupt handler running on the current G's own stack, with the interrupted
/// code at an async-safe point: the M holds no runtime lock (`m.locks == 0`, which also
/// excludes the middle of `mcall`), and the G is not g0. The handler must have acknowledged
/// the interrupt, and must not use per-CPU state after this returns.
pub unsafe fn async_preempt() {
    mcall(Req::AsyncPreempt);
}

/// Spawns a goroutine running `f` (Go's `go f()`). It goes to the current P's `runnext`, so a
/// spawner that then blocks hands its P straight to its child. Must be called from a goroutine.
#[track_caller]
pub fn spawn<F: FnOnce() + Send + 'static>(f: F) -> u64 {
    newproc(Box::new(f), Location::caller())
}

/// Go's `newproc`: returns the new goroutine's id.
pub fn newproc(entry: Entry, gopc: &'static Location<'static>) -> u64 {
    // A runtime entry is a safe point (in Go every call is: the prologue checks stackguard0).
    preempt_point();
    // Read the M once, after the safe point (which may move us to another thread), with
    // preemption off: nothing below can switch, so it stays the current M until release_m.
    let m = crate::m::acquire_current_m();
    if m.is_null() {
        panic!("rt_core::spawn called outside a runtime (from a thread that is not an M)");
    }
    // SAFETY: m is the current M, which holds a P while it runs a G (or on g0 in run_main).
    let goid = unsafe {
        let sched = &*(*m).sched;
        let pp = (*m).p;
        if pp.is_null() {
            platform::fatal(format_args!("spawn during a syscall (the M holds no P)"));
        }
        // Gs on the free lists have no stack: it is taken from the P's stack cache, and the
        // G's gobuf prepared, when the G first runs (sched::execute).
        let newg = gfget(sched, pp).unwrap_or_else(|| malg(sched, pp, gopc));
        (*newg).entry = Some(entry);
        (*newg).gopc = gopc;
        let goid = sched.goidgen.fetch_add(1, Ordering::Relaxed) + 1;
        (*newg).goid.store(goid, Ordering::Relaxed);
        (*newg).casgstatus(GStatus::Dead, GStatus::Runnable);
        sched::runqput(sched, pp, newg, true);
        if sched.main_started.load(Ordering::Relaxed) {
            sched::wakep(sched);
        }
        goid
    };
    crate::m::release_m(m);
    goid
}

/// Gs allocated together: one allocation and one `allgs` registration per slab.
const G_SLAB: usize = 64;

/// Go's `malg`: a never-used G (its stack comes when it first runs), from the P's current
/// slab; a new slab when that is used up.
unsafe fn malg(sched: &Sched, pp: *mut P, gopc: &'static Location<'static>) -> *mut G {
    // SAFETY: pp is the current M's P.
    unsafe {
        if let Some(g) = (*pp).gslab.pop() {
            (*g).gopc = gopc;
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
        (*pp).gslab.extend((1..G_SLAB).rev().map(|i| base.add(i)));
        base
    }
}

/// Go's `gfput`: a dead G goes on the P's free list; when that is long, half spills to the
/// global list.
unsafe fn gfput(sched: &Sched, pp: *mut P, gp: *mut G) {
    // SAFETY: pp is the current M's P; gp is dead and on no list.
    unsafe {
        (*pp).gfree.push_front(gp);
        if (*pp).gfree.len() >= GFREE_LOCAL_MAX {
            let mut l = sched.lock.lock();
            while (*pp).gfree.len() > GFREE_LOCAL_KEEP {
                let g = (*pp).gfree.pop_front().unwrap();
                l.gfree.push_back(g);
            }
            sched.ngfree.store(l.gfree.len() as i32, Ordering::Relaxed);
        }
    }
}

/// Go's `gfget`: a dead G from the P's free list, refilled from the global one.
unsafe fn gfget(sched: &Sched, pp: *mut P) -> Option<*mut G> {
    // SAFETY: pp is the current M's P.
    unsafe {
        if (*pp).gfree.is_empty() && sched.ngfree.load(Ordering::Relaxed) > 0 {
            let mut l = sched.lock.lock();
            while (*pp).gfree.len() < GFREE_LOCAL_KEEP {
                match l.gfree.pop_front() {
                    Some(g) => (*pp).gfree.push_back(g),
                    None => break,
                }
            }
            sched.ngfree.store(l.gfree.len() as i32, Ordering::Relaxed);
        }
        (*pp).gfree.pop_front()
    }
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
            (*(*m).sched).fail(sched::Failure::Panic {
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
    // SAFETY: on m's g0 with gp switched out.
    unsafe {
        (*gp).casgstatus(GStatus::Running, GStatus::Dead);
        sched::dropg(m, gp);
        (*gp).preempt.store(false, Ordering::Relaxed);
        (*gp).set_waitreason(crate::g::WaitReason::Zero);
        (*gp).param = 0;
        (*gp).entry = None;
        let stack = core::mem::replace(&mut (*gp).stack, crate::g::Stack::EMPTY);
        sched::stackfree((*m).sched, (*m).p, stack);
        gfput(&*(*m).sched, (*m).p, gp);
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

/// GOMAXPROCS of the runtime the caller runs in (0 outside a runtime). Fixed when the runtime
/// is created (`Runtime::new`, or the kernel's `gomaxprocs=` argument).
pub fn gomaxprocs() -> usize {
    let m = getm();
    if m.is_null() {
        0
    } else {
        // SAFETY: the current M's runtime outlives it.
        unsafe { (*(*m).sched).gomaxprocs }
    }
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

/// A safe point (Go's function prologue): one comparison of the stack pointer with
/// `stackguard0`, which catches both a preemption request ([`STACK_PREEMPT`] is above every
/// stack) and a stack about to overflow.
#[inline(always)]
pub fn preempt_point() {
    // Racy on purpose (one load more than Go's prologue would be too many): in the kernel an
    // interrupt may move us between reading the M and its G, and then we compare against
    // another G's guard. morestack checks again properly.
    let gp = crate::m::getg_racy();
    if gp.is_null() {
        return;
    }
    // SAFETY: the running G is live; stackguard0 is an atomic.
    if arch::sp() < unsafe { (*gp).stackguard0.load(Ordering::Relaxed) } {
        morestack();
    }
}

/// Go's `morestack` → `newstack`: a preemption request yields (unless the M holds a runtime
/// lock: then the request waits for `releasem`); a real low stack is a fatal overflow.
#[cold]
#[inline(never)]
fn morestack() {
    let m = crate::m::acquire_current_m();
    // SAFETY: called from a running G on the current M, which cannot change while `locks` is
    // raised.
    unsafe {
        let gp = (*m).curg.load(Ordering::Relaxed);
        let guard = (*gp).stackguard0.load(Ordering::Relaxed);
        if guard == STACK_PREEMPT {
            if (*m).locks.load(Ordering::Relaxed) > 1 {
                // Not now (a runtime lock is held; ours is the 1): keep running; releasem
                // re-arms the request.
                (*gp)
                    .stackguard0
                    .store((*gp).normal_stackguard(), Ordering::Relaxed);
                crate::m::locks_add(m, -1);
                return;
            }
            mcall_on(m, Req::Preempt);
            return;
        }
        if arch::sp() >= guard {
            // A false alarm from preempt_point's racy read (see there).
            crate::m::locks_add(m, -1);
            return;
        }
        stack_overflow(gp, arch::sp());
    }
}

/// Reports a goroutine that ran out of stack and ends the program, in Go's words (stack.go
/// `newstack`: "goroutine stack exceeds N-byte limit", then `throw("stack overflow")` and the
/// goroutine's header and creation site). Called by `morestack` when a safe point finds the
/// stack low, and by the kernel's page-fault handler when the guard page is hit.
///
/// # Safety
/// `gp` is the goroutine that overflowed, live (it is running).
#[cold]
pub unsafe fn stack_overflow(gp: *const G, sp: usize) -> ! {
    struct W;
    impl core::fmt::Write for W {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            platform::get().write_str(s);
            Ok(())
        }
    }
    // SAFETY: the caller's promise.
    let g = unsafe { &*gp };
    let _ = core::fmt::write(
        &mut W,
        format_args!(
            "runtime: goroutine stack exceeds {}-byte limit\nruntime: sp={:#x} stack=[{:#x}, {:#x})\n",
            g.stack.size(),
            sp,
            g.stack.lo,
            g.stack.hi
        ),
    );
    platform::fatal(format_args!(
        "stack overflow\n\ngoroutine {} [running]:\ncreated by {}",
        g.goid(),
        g.gopc
    ))
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
    // SAFETY: called from the G that called entersyscall, on the same M (a G in a syscall is
    // never preempted); preemption is off.
    unsafe {
        let sched = &*(*m).sched;
        let oldp = core::mem::replace(&mut (*m).oldp, null_mut());
        if !oldp.is_null() && (*oldp).take_from_syscall() {
            sched::acquirep(m, oldp);
            (*oldp).syscalltick.fetch_add(1, Ordering::Relaxed);
            (*gp).casgstatus(GStatus::Syscall, GStatus::Running);
            crate::m::release_m(m);
            return;
        }
        let pp = {
            let mut l = sched.lock.lock();
            sched::pidleget(sched, &mut l)
        };
        if !pp.is_null() {
            sched::acquirep(m, pp);
            (*gp).casgstatus(GStatus::Syscall, GStatus::Running);
            crate::m::release_m(m);
            return;
        }
        // g0 releases the hold (the G may resume on another M).
        mcall_on(m, Req::ExitSyscall);
    }
}

/// Go's `exitsyscall0`, on g0: no P was free. Returns true if the G can run at once (a P
/// freed up meanwhile), false if it was queued and this M must look for work (or sleep).
pub(crate) unsafe fn exitsyscall0(m: *mut M, gp: *mut G) -> bool {
    // SAFETY: on m's g0 with gp switched out.
    unsafe {
        let sched = &*(*m).sched;
        (*gp).casgstatus(GStatus::Syscall, GStatus::Runnable);
        sched::dropg(m, gp);
        let mut l = sched.lock.lock();
        let pp = sched::pidleget(sched, &mut l);
        if pp.is_null() {
            sched::globrunqput(sched, &mut l, gp);
            return false;
        }
        drop(l);
        sched::acquirep(m, pp);
        true
    }
}

//! The pieces on their own: the raw switch, systemstack, the `go!` macro, goroutine ids,
//! GOMAXPROCS, and WaitGroup's misuse check.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rt_core::arch::Gobuf;
use rt_core::arch::{prepare_new, sp, swtch};
use rt_core::{go, goid, gomaxprocs, spawn, systemstack, Runtime, WaitGroup};

struct Ctx(UnsafeCell<Gobuf>);
// SAFETY: the two contexts of the switch test never run at the same time.
unsafe impl Sync for Ctx {}
static A: Ctx = Ctx(UnsafeCell::new(Gobuf {
    sp: 0,
    pc: 0,
    bp: 0,
}));
static B: Ctx = Ctx(UnsafeCell::new(Gobuf {
    sp: 0,
    pc: 0,
    bp: 0,
}));
static STEPS: AtomicU64 = AtomicU64::new(0);
static B_SP: AtomicU64 = AtomicU64::new(0);

extern "C" fn side_b() -> ! {
    loop {
        B_SP.store(sp() as u64, Ordering::SeqCst);
        STEPS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: A holds the test thread's context, saved by its swtch.
        unsafe { swtch(B.0.get(), A.0.get()) };
    }
}

#[test]
fn raw_switch_runs_the_other_context_on_its_own_stack_and_comes_back() {
    let stack = vec![0u8; 64 * 1024].into_boxed_slice();
    let lo = stack.as_ptr() as usize;
    let hi = (lo + stack.len()) & !15;
    // SAFETY: the stack is ours for the test and outlives every switch into it.
    unsafe { prepare_new(&mut *B.0.get(), hi, side_b) };
    let local = 0x5eed_u64; // must survive the switches (callee-saved or spilled)
    for i in 1..=1000 {
        // SAFETY: B is a context on `stack`, prepared above or saved by side_b's swtch.
        unsafe { swtch(A.0.get(), B.0.get()) };
        assert_eq!(STEPS.load(Ordering::SeqCst), i);
    }
    let b_sp = B_SP.load(Ordering::SeqCst) as usize;
    assert!(
        (lo..hi).contains(&b_sp),
        "side B ran on its own stack: {b_sp:#x} not in [{lo:#x}, {hi:#x})"
    );
    assert!(!(lo..hi).contains(&sp()), "and we are back on ours");
    assert_eq!(std::hint::black_box(local), 0x5eed);
}

#[test]
fn systemstack_runs_on_g0_and_returns_its_value() {
    let (g_sp, g0_sp, v, same_goid) = Runtime::new(1).block_on(|| {
        let me = goid();
        let g_sp = sp();
        let (g0_sp, v, id_on_g0) = systemstack(|| (sp(), 6 * 7, goid()));
        (g_sp, g0_sp, v, me != 0 && id_on_g0 == 0 && goid() == me)
    });
    assert_eq!(v, 42);
    assert!(
        same_goid,
        "g0 is no goroutine; the caller is itself again afterwards"
    );
    // The goroutine's stack is an mmap'd region; g0's is the M's thread stack: far apart.
    assert!(
        g_sp.abs_diff(g0_sp) > 64 * 1024,
        "g sp {g_sp:#x}, g0 sp {g0_sp:#x}"
    );
}

#[test]
fn go_macro_and_goroutine_ids() {
    let ids = Runtime::new(2).block_on(|| {
        let wg = Arc::new(WaitGroup::new());
        let ids = Arc::new(std::sync::Mutex::new(vec![goid()]));
        for _ in 0..100 {
            wg.add(1);
            let (wg, ids) = (wg.clone(), ids.clone());
            go!({
                ids.lock().unwrap().push(goid());
                wg.done();
            });
        }
        wg.wait();
        let v = ids.lock().unwrap().clone();
        v
    });
    assert_eq!(ids.len(), 101);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 101, "ids are distinct");
    assert!(!ids.contains(&0));
    assert_eq!(goid(), 0, "outside a goroutine");
}

#[test]
fn gomaxprocs_is_the_runtimes() {
    assert_eq!(Runtime::new(3).block_on(gomaxprocs), 3);
    assert_eq!(Runtime::new(1).block_on(gomaxprocs), 1);
    assert_eq!(gomaxprocs(), 0, "outside a runtime");
}

#[test]
#[should_panic(expected = "sync: negative WaitGroup counter")]
fn negative_waitgroup_counter_panics() {
    Runtime::new(1).block_on(|| {
        let wg = WaitGroup::new();
        wg.add(1);
        wg.done();
        wg.done();
    });
}

#[test]
fn spawn_outside_a_runtime_is_a_clear_error() {
    let err = std::panic::catch_unwind(|| spawn(|| {})).unwrap_err();
    let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("outside a runtime"), "{msg}");
}

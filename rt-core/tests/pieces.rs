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
/// Switches side A has made into side B.
static SWITCHES: AtomicU64 = AtomicU64::new(0);
/// Side B's stack: [lo, hi).
static STACK: (AtomicU64, AtomicU64) = (AtomicU64::new(0), AtomicU64::new(0));

/// What side A's locals were set to before the switches, kept in memory (the test compares
/// its registers' and stack slots' values with these afterwards).
static A_LOCALS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

extern "C" fn side_b() -> ! {
    // Values of side B's own that live across its switch, so that B's code keeps them in the
    // registers that swtch must save (rbx, rbp): were a register not saved, A would see B's
    // values in it when it is continued.
    let mut salt = std::hint::black_box([0xbad0_0001_u64, 0xbad0_0002, 0xbad0_0003]);
    loop {
        B_SP.store(sp() as u64, Ordering::SeqCst);
        STEPS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: A holds the test thread's context, saved by its swtch.
        unsafe { swtch(B.0.get(), A.0.get()) };
        for s in &mut salt {
            *s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(&salt);
    }
}

#[test]
fn raw_switch_runs_the_other_context_on_its_own_stack_and_comes_back() {
    // Leaked, and its bounds kept in memory: nothing of it stays live in our registers across
    // the switches, which leaves those to the locals below.
    let stack: &'static mut [u8] = Box::leak(vec![0u8; 64 * 1024].into_boxed_slice());
    let lo = stack.as_ptr() as usize;
    let hi = (lo + stack.len()) & !15;
    STACK.0.store(lo as u64, Ordering::SeqCst);
    STACK.1.store(hi as u64, Ordering::SeqCst);
    // SAFETY: the stack is ours (leaked) and outlives every switch into it.
    unsafe { prepare_new(&mut *B.0.get(), hi, side_b) };
    // Locals that must survive the switches (in rbx, which swtch saves, or spilled to our
    // stack). Their values come from the run (the process id, the stack's address) through
    // black_box, so the compiler cannot re-create them after the switch as it could a constant.
    let seed = std::hint::black_box(u64::from(std::process::id()) << 32 | lo as u64 & 0xffff_ffff);
    let locals = [seed ^ 0x5eed, seed.rotate_left(17), !seed];
    for (a, v) in A_LOCALS.iter().zip(locals) {
        a.store(v, Ordering::SeqCst);
    }
    let [mut x, mut y, mut z] = locals;
    // Counted in memory, not in a loop counter, for the same reason as the stack's bounds.
    while SWITCHES.fetch_add(1, Ordering::SeqCst) < 1000 {
        // SAFETY: B is a context on `stack`, prepared above or saved by side_b's swtch.
        unsafe { swtch(A.0.get(), B.0.get()) };
        assert_eq!(
            STEPS.load(Ordering::SeqCst),
            SWITCHES.load(Ordering::SeqCst),
            "side B ran once per switch"
        );
        // Used (and changed reversibly) across every switch, so they stay live.
        (x, y, z) = (y, z, x);
    }
    // 1000 = 3 * 333 + 1 rotations: (x, y, z) now holds (locals[1], locals[2], locals[0]).
    let after = [z, x, y];
    let before: Vec<u64> = A_LOCALS.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    assert_eq!(
        after.as_slice(),
        before.as_slice(),
        "side A's locals changed across the switches (seen after vs set before)"
    );
    let (lo, hi) = (
        STACK.0.load(Ordering::SeqCst) as usize,
        STACK.1.load(Ordering::SeqCst) as usize,
    );
    let b_sp = B_SP.load(Ordering::SeqCst) as usize;
    assert!(
        (lo..hi).contains(&b_sp),
        "side B ran on its own stack: {b_sp:#x} not in [{lo:#x}, {hi:#x})"
    );
    assert!(!(lo..hi).contains(&sp()), "and we are back on ours");
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

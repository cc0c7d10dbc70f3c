//! The address space's protections, read back from the live page tables (kernel/src/mm/audit.rs,
//! Intel SDM Vol. 3A §4.6): the CPU enforces NX and write protection, no page is writable and
//! executable at once (W^X), kernel text is read-only, the heap and every stack are never
//! executable, and every stack has an unmapped guard page below it: goroutine stacks, each
//! CPU's scheduler stack (g0) and each IST stack.
//! @smp 1 2 4

#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::mm::audit::{self, Region};
use kernel::mm::kstack::{self, Kind};
use kernel::println;

kernel::test_kernel!(
    the_cpu_enforces_nx_and_write_protection,
    no_page_is_writable_and_executable,
    kernel_text_is_read_only_and_data_is_not_executable,
    the_heap_is_not_executable,
    the_boot_stack_has_a_guard_page,
    every_cpu_has_guarded_g0_and_ist_stacks,
    goroutine_stacks_are_not_executable_and_guarded,
    the_smp_trampoline_is_gone_after_boot,
);

const PAGE: u64 = 4096;

fn the_cpu_enforces_nx_and_write_protection() {
    assert_eq!(
        audit::enforced(),
        (true, true),
        "(EFER.NXE, CR0.WP): without them the tables' NX and read-only bits mean nothing"
    );
}

fn no_page_is_writable_and_executable() {
    let regions = audit::regions();
    let bad: Vec<&Region> = regions
        .iter()
        .filter(|r| r.writable && r.executable)
        .collect();
    let exec: u64 = regions
        .iter()
        .filter(|r| r.executable)
        .map(|r| r.end - r.start)
        .sum();
    println!(
        "address space: {} mapped ranges, {} KiB executable, {} writable+executable",
        regions.len(),
        exec / 1024,
        bad.len()
    );
    assert!(
        exec > 0,
        "nothing executable: the walk did not see the kernel's text"
    );
    assert!(bad.is_empty(), "writable and executable: {bad:#x?}");
    // The one-path lookup the other cases use says what the whole walk says, at both ends
    // of every range.
    for r in &regions {
        for a in [r.start, r.end - 1] {
            assert_eq!(
                audit::rights(a),
                Some((r.writable, r.executable)),
                "rights({a:#x}) disagree with the walk's range {r:#x?}"
            );
        }
    }
}

#[inline(never)]
fn some_function() -> u64 {
    core::hint::black_box(42)
}

static READ_ONLY: [u8; 16] = [7; 16];
static WRITABLE: AtomicUsize = AtomicUsize::new(0);

fn kernel_text_is_read_only_and_data_is_not_executable() {
    assert_eq!(some_function(), 42);
    let text = some_function as *const () as u64;
    assert_eq!(
        audit::rights(text),
        Some((false, true)),
        "kernel text at {text:#x}"
    );
    let ro = core::hint::black_box(&READ_ONLY).as_ptr() as u64;
    assert_eq!(
        audit::rights(ro),
        Some((false, false)),
        "read-only data at {ro:#x}"
    );
    WRITABLE.store(1, Ordering::Relaxed);
    let rw = &WRITABLE as *const AtomicUsize as u64;
    assert_eq!(
        audit::rights(rw),
        Some((true, false)),
        "writable data at {rw:#x}"
    );
}

fn the_heap_is_not_executable() {
    let b = Box::new([0u8; 64]);
    let at = b.as_ptr() as u64;
    assert_eq!(
        audit::rights(at),
        Some((true, false)),
        "a heap block at {at:#x}"
    );
}

/// The mapped run that holds `addr` (merged ranges with the same rights).
fn run_holding(addr: u64) -> Region {
    *audit::regions()
        .iter()
        .find(|r| (r.start..r.end).contains(&addr))
        .unwrap_or_else(|| panic!("{addr:#x} is not mapped"))
}

fn the_boot_stack_has_a_guard_page() {
    // Outside the runtime, on the BSP: this is the bootloader's stack, M0's g0.
    let local = 0u64;
    let sp = core::hint::black_box(&local) as *const u64 as u64;
    let run = run_holding(sp);
    assert_eq!(
        (run.writable, run.executable),
        (true, false),
        "boot stack {run:#x?}"
    );
    assert!(
        !audit::mapped(run.start - PAGE),
        "the page below the boot stack ({:#x}) is mapped",
        run.start - PAGE
    );
}

fn every_cpu_has_guarded_g0_and_ist_stacks() {
    let online = kernel::x86::percpu::ONLINE.load(Ordering::SeqCst) as usize;
    let stacks = kstack::all();
    for cpu in 0..online {
        let ist = stacks
            .iter()
            .filter(|s| s.cpu == cpu && matches!(s.kind, Kind::Ist(_)))
            .count();
        assert_eq!(
            ist,
            kernel::x86::gdt::IST_COUNT,
            "cpu {cpu}'s IST stacks: {stacks:#x?}"
        );
        let g0 = stacks
            .iter()
            .filter(|s| s.cpu == cpu && s.kind == Kind::G0)
            .count();
        // The BSP's g0 is the bootloader's stack (the test above).
        assert_eq!(
            g0,
            usize::from(cpu != 0),
            "cpu {cpu}'s g0 stacks: {stacks:#x?}"
        );
    }
    for s in &stacks {
        for page in (s.lo..s.hi).step_by(PAGE as usize) {
            assert_eq!(
                audit::rights(page),
                Some((true, false)),
                "{s:#x?} at {page:#x}"
            );
        }
        assert!(!audit::mapped(s.lo - PAGE), "no guard page below {s:#x?}");
    }
    println!(
        "address space: {} guarded kernel stacks on {online} CPU(s)",
        stacks.len()
    );
}

fn goroutine_stacks_are_not_executable_and_guarded() {
    static CHECKED: AtomicUsize = AtomicUsize::new(0);
    kernel::rt::run::run(0, || {
        let wg = alloc::sync::Arc::new(rt_core::WaitGroup::new());
        wg.add(32);
        for _ in 0..32 {
            let wg = wg.clone();
            rt_core::spawn(move || {
                let local = [1u8; 256];
                let sp = core::hint::black_box(&local).as_ptr() as u64;
                let cpu = kernel::x86::percpu::current().unwrap();
                let m = cpu.m.load(Ordering::Relaxed).cast();
                // SAFETY: `m` is this CPU's M, and we are its running goroutine.
                let g = unsafe { rt_core::platform::running_g(m) }.expect("a goroutine runs");
                let stack = g.stack();
                assert!((stack.lo..stack.hi).contains(&(sp as usize)));
                assert_eq!(
                    audit::rights(sp),
                    Some((true, false)),
                    "goroutine stack at {sp:#x}"
                );
                let guard = stack.lo as u64 - PAGE;
                assert!(!audit::mapped(guard), "guard page {guard:#x} is mapped");
                CHECKED.fetch_add(1, Ordering::SeqCst);
                wg.done();
            });
        }
        wg.wait();
    });
    assert_eq!(CHECKED.load(Ordering::SeqCst), 32);
}

fn the_smp_trampoline_is_gone_after_boot() {
    assert!(
        !audit::mapped(kernel::x86::smp::TRAMPOLINE),
        "the AP trampoline is still mapped (executable, in low memory)"
    );
}

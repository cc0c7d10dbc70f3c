//! Testing: the in-kernel test runner (this file) and the measurements that the test kernels
//! and the showcase share ([`measure`]).
//!
//! A small in-kernel test runner. A test kernel (`tests/src/bin/*.rs`) lists its cases with
//! [`test_kernel!`](crate::test_kernel); the runner runs each one and reports on the serial
//! console in the format xtask reads:
//!
//! ```text
//! [gort-test] machine: 2 CPU(s) online, apic: xAPIC (memory-mapped) mode, QEMU TCG (software emulation)
//! [gort-test] running 3 case(s)
//! test heap_box ... ok
//! test heap_vec ...
//! test heap_vec ... FAILED        <- printed by the panic handler, followed by the panic
//! [gort-test] result: 3 passed, 0 failed, 1 filtered out
//! ```
//!
//! A failing case panics (an `assert!` is a panic); the panic handler names the case and ends
//! the run with a failure exit, so the first failure ends the kernel. xtask treats a kernel as
//! passed only if it exits with the success code *and* printed a result line with at least one
//! case passed: a kernel that ran no case, or died before its result line, has failed.

use core::sync::atomic::{AtomicPtr, Ordering};

pub mod measure;

pub struct TestCase {
    pub name: &'static str,
    pub run: fn(),
}

/// The name of the case running now (null between cases): read by the panic handler.
static CURRENT: AtomicPtr<&'static str> = AtomicPtr::new(core::ptr::null_mut());

/// The test case running on this machine now, if any.
pub fn current() -> Option<&'static str> {
    let p = CURRENT.load(Ordering::SeqCst);
    // SAFETY: only pointers to the `name` field of a `&'static TestCase` are stored.
    (!p.is_null()).then(|| unsafe { *p })
}

/// Runs `cases` (those matching the `test=` kernel argument, if given) and exits QEMU.
pub fn run(cases: &'static [TestCase]) -> ! {
    let filter = crate::args::get().test_filter.as_deref();
    let selected = cases
        .iter()
        .filter(|c| filter.is_none_or(|f| c.name.contains(f)));
    let n = selected.clone().count();
    // The machine the cases run on, so that a log says it and xtask can check it got the CPU
    // it asked QEMU for (an x2APIC model must run in x2APIC mode).
    crate::println!(
        "[gort-test] machine: {} CPU(s) online, apic: {} mode, {}",
        crate::x86::percpu::ONLINE.load(core::sync::atomic::Ordering::SeqCst),
        crate::x86::apic::try_mode().map_or("not initialised", |m| m.describe()),
        crate::boot_facts().accel
    );
    crate::println!("[gort-test] running {n} case(s)");
    let mut passed = 0;
    for case in selected {
        crate::print!("test {} ... ", case.name);
        CURRENT.store(
            &case.name as *const &'static str as *mut _,
            Ordering::SeqCst,
        );
        (case.run)();
        CURRENT.store(core::ptr::null_mut(), Ordering::SeqCst);
        crate::println!("ok");
        passed += 1;
    }
    crate::println!(
        "[gort-test] result: {passed} passed, 0 failed, {} filtered out",
        cases.len() - n
    );
    crate::dev::qemu::exit(crate::dev::qemu::ExitCode::Success)
}

/// Declares a test kernel: its entry point, the boot, and its cases.
///
/// ```ignore
/// #![no_std]
/// #![no_main]
/// kernel::test_kernel!(heap_box, heap_vec);
/// fn heap_box() { assert_eq!(*alloc::boxed::Box::new(41) + 1, 42); }
/// ```
#[macro_export]
macro_rules! test_kernel {
    ($($case:ident),+ $(,)?) => {
        $crate::bootloader_api::entry_point!(__test_kernel_main, config = &$crate::BOOTLOADER_CONFIG);
        fn __test_kernel_main(boot_info: &'static mut $crate::bootloader_api::BootInfo) -> ! {
            $crate::init(boot_info);
            static CASES: &[$crate::testing::TestCase] = &[
                $($crate::testing::TestCase { name: stringify!($case), run: $case }),+
            ];
            $crate::testing::run(CASES)
        }
    };
}

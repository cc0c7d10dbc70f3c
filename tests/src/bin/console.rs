//! The console is safe from interrupt handlers: an interrupt that prints while its own CPU is
//! in the middle of a print does not deadlock (it would hang, and the harness would fail it).

#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use kernel::x86::interrupts::{set_self_test_hook, SELF_TEST_VECTOR};

kernel::test_kernel!(
    interrupt_prints_while_console_is_held,
    interrupt_prints_normally
);

static HOOK_RAN: AtomicU32 = AtomicU32::new(0);

fn printing_hook() {
    kernel::println!("[printed from vector {SELF_TEST_VECTOR:#x}]");
    HOOK_RAN.fetch_add(1, Ordering::SeqCst);
}

fn raise_self_test() {
    // SAFETY: vector 0x81 is the kernel's self-test vector, whose handler calls the hook and
    // returns (kernel/src/x86/interrupts.rs).
    unsafe { core::arch::asm!("int 0x81") };
}

fn interrupt_prints_while_console_is_held() {
    set_self_test_hook(printing_hook);
    let before = HOOK_RAN.load(Ordering::SeqCst);
    kernel::dev::console::with_console_held(raise_self_test);
    assert_eq!(
        HOOK_RAN.load(Ordering::SeqCst),
        before + 1,
        "the handler ran to completion"
    );
}

fn interrupt_prints_normally() {
    set_self_test_hook(printing_hook);
    let before = HOOK_RAN.load(Ordering::SeqCst);
    raise_self_test();
    kernel::println!("and the console still works");
    assert_eq!(HOOK_RAN.load(Ordering::SeqCst), before + 1);
}

//! Jumping into a goroutine's stack is a page fault on a no-execute page (NX, Intel SDM Vol. 3A
//! §4.6), reported with its cause, not code run from data.
//! @expect-fail EXCEPTION: page fault (#PF) (vector 14) on cpu 0
//! @expect-fail error code: 0x11
//! @expect-fail cause: an instruction fetch from a no-execute page (NX)

#![no_std]
#![no_main]

kernel::test_kernel!(jump_into_the_stack);

fn jump_into_the_stack() {
    kernel::rt::run::run(1, || {
        // `ret` (0xc3): harmless if it ran, so only NX stops it.
        let code = core::hint::black_box([0xc3u8; 16]);
        // SAFETY: deliberately not sound: calling data is what NX must refuse.
        let f: extern "C" fn() = unsafe { core::mem::transmute(code.as_ptr()) };
        f();
    });
    panic!("code on a goroutine stack ran");
}

//! Writing to the kernel's own code is a page fault on a read-only page (W^X; CR0.WP makes the
//! read-only bit bind the kernel too, Intel SDM Vol. 3A §4.6), reported with its cause.
//! @expect-fail EXCEPTION: page fault (#PF) (vector 14) on cpu 0
//! @expect-fail error code: 0x3
//! @expect-fail cause: a write to a read-only page

#![no_std]
#![no_main]

kernel::test_kernel!(patch_our_own_code);

#[inline(never)]
fn victim() -> u32 {
    core::hint::black_box(7)
}

fn patch_our_own_code() {
    assert_eq!(victim(), 7);
    let at = victim as *const () as *mut u8;
    // SAFETY: deliberately not sound: overwriting code is what the read-only mapping must
    // refuse.
    unsafe { core::ptr::write_volatile(at, 0xc3) };
    panic!("the kernel's text was writable");
}

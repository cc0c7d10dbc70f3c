//! An unknown kernel argument stops the boot with a named error (never ignored).
//! @args memmap=0 frobnicate=3
//! @expect-fail kernel argument error: unknown kernel argument `frobnicate`
//! @expect-fail known kernel arguments:

#![no_std]
#![no_main]

kernel::test_kernel!(never_reached);

fn never_reached() {
    panic!("the kernel booted past a bad argument");
}

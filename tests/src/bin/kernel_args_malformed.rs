//! A kernel argument without `=` or with a bad value stops the boot with a named error.
//! @args memmap=perhaps
//! @expect-fail kernel argument error: bad value `perhaps` for kernel argument `memmap`: expected 0 or 1

#![no_std]
#![no_main]

kernel::test_kernel!(never_reached);

fn never_reached() {
    panic!("the kernel booted past a bad argument");
}

//! A page fault is reported with its name, error code, RIP, RSP, CR2 and CPU, then a failure exit.
//! @expect-fail EXCEPTION: page fault (#PF) (vector 14) on cpu 0
//! @expect-fail error code: 0x2
//! @expect-fail cause: a write to an unmapped page
//! @expect-fail CR2 (faulting address): 0x00000deadbeef000
//! @expect-fail RIP: 0x

#![no_std]
#![no_main]

kernel::test_kernel!(write_to_unmapped_memory);

fn write_to_unmapped_memory() {
    // SAFETY: deliberately not sound: the address is unmapped, the point is the fault.
    unsafe { core::ptr::write_volatile(0x0dea_dbee_f000 as *mut u64, 1) };
}

//! 100k parked goroutines with 64 KiB stack slots: the page-table share drops to 128 bytes and
//! the whole cost per goroutine is within 4.5 KiB.
//! @mem 1G
//! @timeout 300
//! @args maxstack=64K

#![no_std]
#![no_main]

kernel::test_kernel!(parked_goroutines_cost_a_page_each);

fn parked_goroutines_cost_a_page_each() {
    tests::stacks::check_parked(100_000);
}

//! 100k goroutines parked on a WaitGroup: what each one costs in memory, at the default
//! 1 MiB stack slot. A parked goroutine holds its one stack page, its G, and its share of the
//! page tables: a 4 KiB table maps 2 MiB, two 1 MiB slots (see kernel/src/mm/stack.rs).
//! @mem 1G
//! @timeout 300

#![no_std]
#![no_main]

kernel::test_kernel!(parked_goroutines_cost_a_page_each);

fn parked_goroutines_cost_a_page_each() {
    tests::stacks::check_parked(100_000);
}

//! Memory: physical frames ([`frame`]), the page tables and what is mapped through them
//! ([`paging`]), the kernel heap ([`heap`]), and goroutine stacks, which grow in place by
//! demand paging ([`stack`]).

use bootloader_api::info::MemoryRegions;

pub mod audit;
pub mod frame;
pub mod heap;
pub mod kstack;
pub mod paging;
pub mod stack;

/// Takes memory over from the bootloader: the page tables, reached through its map of all
/// physical memory at `phys_offset`, and the `Usable` regions for the frame allocator. The
/// heap comes next ([`heap::init`]).
pub fn init(phys_offset: Option<u64>, regions: &MemoryRegions) -> frame::MemoryFacts {
    let phys_offset = phys_offset
        .expect("the bootloader did not map physical memory (BOOTLOADER_CONFIG asks it to)");
    paging::init(phys_offset);
    frame::init(regions, phys_offset)
}

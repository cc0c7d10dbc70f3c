//! Frames, paging and the heap.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use kernel::mm::frame;
use kernel::mm::paging::{self, PAGE_SIZE};
use x86_64::structures::paging::PageTableFlags;
use x86_64::VirtAddr;

kernel::test_kernel!(
    frames_are_distinct_aligned_and_reused,
    fresh_mappings_are_zeroed_and_translate,
    heap_serves_and_takes_back
);

fn frames_are_distinct_aligned_and_reused() {
    let (before, total) = frame::frame_stats();
    let mut frames: Vec<_> = (0..2000)
        .map(|_| frame::alloc_frame().expect("a frame"))
        .collect();
    assert_eq!(frame::frame_stats(), (before + 2000, total));
    let mut addrs: Vec<u64> = frames.iter().map(|f| f.start_address().as_u64()).collect();
    assert!(addrs.iter().all(|a| a % PAGE_SIZE == 0 && *a != 0));
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 2000, "no frame handed out twice");
    let last = frames.pop().unwrap();
    // SAFETY: the frame came from alloc_frame and nothing maps it.
    unsafe { frame::free_frame(last) };
    assert_eq!(
        frame::alloc_frame(),
        Some(last),
        "a freed frame is handed out again"
    );
    frames.push(last);
    for f in frames {
        // SAFETY: as above.
        unsafe { frame::free_frame(f) };
    }
    assert_eq!(frame::frame_stats(), (before, total));
}

fn fresh_mappings_are_zeroed_and_translate() {
    let base = VirtAddr::new(0x0000_5555_0000_0000);
    let len = 16 * PAGE_SIZE;
    assert_eq!(paging::translate(base), None);
    paging::map_fresh(
        base,
        len,
        PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
    )
    .expect("map");
    let bytes = base.as_mut_ptr::<u8>();
    for i in 0..len as usize {
        // SAFETY: the range was just mapped writable and nothing else uses it.
        unsafe {
            assert_eq!(*bytes.add(i), 0, "fresh frames are zeroed");
            *bytes.add(i) = i as u8;
        }
    }
    let phys = paging::translate(base + 5 * PAGE_SIZE + 7).expect("mapped");
    // SAFETY: reading back through the physical-memory mapping what was written above.
    let through_phys = unsafe { *paging::phys_to_virt(phys).as_ptr::<u8>() };
    assert_eq!(through_phys, (5 * PAGE_SIZE + 7) as u8);
    assert!(matches!(
        paging::map_fresh(base, PAGE_SIZE, PageTableFlags::PRESENT),
        Err(paging::MapError::AlreadyMapped(_))
    ));
}

fn heap_serves_and_takes_back() {
    let baseline = kernel::mm::heap::used();
    {
        let b = Box::new([7u64; 512]);
        assert_eq!(b.iter().sum::<u64>(), 7 * 512);
        let mut v = Vec::new();
        for i in 0..(1 << 18) {
            v.push(i as u32);
        }
        assert_eq!(v[123_456], 123_456);
        let mut m = BTreeMap::new();
        for i in 0..10_000u32 {
            m.insert(i.wrapping_mul(2_654_435_761), i);
        }
        assert_eq!(m.len(), 10_000);
        let big: Vec<u8> = alloc::vec![0xa5; 8 << 20];
        assert!(big.iter().all(|&b| b == 0xa5));
        assert!(kernel::mm::heap::used() > baseline + (8 << 20));
    }
    assert_eq!(kernel::mm::heap::used(), baseline, "everything freed");
}

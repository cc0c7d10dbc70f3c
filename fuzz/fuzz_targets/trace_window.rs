//! xtask's reading of a kernel's trace window file (qemu.rs `read_window`): a header the
//! kernel updates (magic, size, bytes reserved, end of data) and the data after it.
//! Input: the file's bytes (seeds: a window a test kernel wrote, cut to its data).
//!
//! Properties: never panics and never allocates more than the file holds; an `Ok` is the
//! header's `end` bytes found right after the 4 KiB header, within the window's size.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use rt_trace::format::WINDOW_HEADER;
use xtask::qemu::read_window;

fuzz_target!(|bytes: &[u8]| {
    if let Ok((data, h)) = read_window(Cursor::new(bytes)) {
        assert_eq!(data.len() as u64, h.end);
        assert!(
            WINDOW_HEADER + h.end <= h.size,
            "{h:?}: data past the window"
        );
        let start = WINDOW_HEADER as usize;
        assert_eq!(&data[..], &bytes[start..start + data.len()]);
    }
});

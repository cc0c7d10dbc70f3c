//! The raw traceback lines the kernel prints and xtask symbolizes (rt-core's
//! traceback/format.rs `parse_raw`, compiled into xtask as `traceback_format`): `\t@ret 0x…`,
//! `\t@pc 0x… fp=0x… sp=0x…`, `created by @ret 0x… in goroutine N`. Input: serial output
//! (seeds: real raw tracebacks).
//!
//! Properties: never panics; a line that parses is written back by the writers as a line that
//! parses to the same; only lines that start as a raw line do.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xtask::traceback_format::{parse_raw, write_raw_created_by, write_raw_frame, RawLine};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        let Some(raw) = parse_raw(line) else {
            continue;
        };
        assert!(line.starts_with("\t@") || line.starts_with("created by @ret "));
        let mut again = String::new();
        match raw {
            RawLine::Frame { ret, pc, fp_sp } => write_raw_frame(&mut again, ret, pc, fp_sp),
            RawLine::CreatedBy { pc, parent } => write_raw_created_by(&mut again, pc, parent),
        }
        .unwrap();
        let again = again.strip_suffix('\n').expect("a whole line");
        assert_eq!(parse_raw(again), Some(raw), "{line:?} written as {again:?}");
    }
});

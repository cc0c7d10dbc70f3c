//! xtask's rewriting of a kernel's serial output as it arrives (symbolize.rs `pipe`): raw
//! traceback lines are symbolized, everything else passes through at once. Input: the
//! first byte sets how the output is cut into reads (1 to 256 bytes each), the rest is serial
//! output (seeds: real serial output with raw tracebacks). The symbols are of an ELF that does
//! not exist, so no address has one.
//!
//! Properties: never panics; with no symbols, every byte comes out as it went in (a `created
//! by` line too, whatever follows it, and bytes that are not UTF-8); and the output does not
//! depend on how the input was cut into reads.
#![no_main]

use std::io::Read;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use xtask::symbolize::{pipe, Symbols};

/// A reader that hands out at most `step` bytes a read.
struct Cut<'a> {
    rest: &'a [u8],
    step: usize,
}

impl Read for Cut<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.rest.len().min(self.step).min(buf.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

fn run(input: &[u8], step: usize) -> Vec<u8> {
    let mut syms = Symbols::new(Path::new("/nonexistent/kernel.elf"), 0, Path::new("/w"));
    let mut out = Vec::new();
    pipe(Cut { rest: input, step }, &mut out, &mut syms);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let whole = run(input, usize::MAX);
    assert_eq!(
        whole,
        run(input, cut as usize + 1),
        "the output depends on the reads"
    );
    assert!(
        whole == input,
        "with no symbols the output is not the input"
    );
});

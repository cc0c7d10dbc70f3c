//! The xtask half of rt-core's tracebacks (rt-core/src/traceback): the kernel cannot read its
//! own symbols, so it prints raw frame lines (`\t@ret 0x…`, `created by @ret 0x… in goroutine
//! N`; traceback/format.rs), and this module rewrites them, as the serial output arrives, into
//! Go's form from the unstripped ELF (DWARF through `addr2line`), with rt-core's own writers so
//! that the kernel's and the host's tracebacks read the same.
//!
//! Invariants: every byte that is not part of a raw line passes through unchanged and at once
//! (the console is interactive: a prompt without a newline must show); a partial line is held
//! back only while it could still become a raw line. An address with no symbol keeps its raw
//! line. The ELF's debug info is loaded on the first raw line, once per run.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::traceback_format::{self as format, FrameStyle, RawLine, SymFrame};

/// Where the kernel image is loaded (kernel/src/lib.rs `KERNEL_BASE`; checked by a test): a
/// run-time address minus this is the ELF's address.
pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;

/// A logical frame as looked up: function, file, line.
type Found = (String, Option<String>, Option<u32>);

/// Symbols of one ELF, loaded on first use.
pub struct Symbols {
    elf: PathBuf,
    bias: u64,
    root: String,
    loader: Option<Option<addr2line::Loader>>,
}

impl Symbols {
    /// The symbols of `elf`, whose addresses at run time are the ELF's plus `bias`; file names
    /// are shown relative to `root`.
    pub fn new(elf: &Path, bias: u64, root: &Path) -> Symbols {
        Symbols {
            elf: elf.to_path_buf(),
            bias,
            root: root.display().to_string(),
            loader: None,
        }
    }

    fn loader(&mut self) -> Option<&addr2line::Loader> {
        let elf = &self.elf;
        self.loader
            .get_or_insert_with(|| addr2line::Loader::new(elf).ok())
            .as_ref()
    }

    /// The logical frames at run-time `pc` (innermost first) and its offset from the
    /// function's entry; None if the address has no symbol.
    fn lookup(&mut self, pc: usize, ret: bool) -> Option<(Vec<Found>, Option<usize>)> {
        let bias = self.bias;
        let addr = (pc as u64).checked_sub(bias)?;
        let probe = if ret { addr.checked_sub(1)? } else { addr };
        let loader = self.loader()?;
        let mut out = Vec::new();
        if let Ok(mut frames) = loader.find_frames(probe) {
            while let Ok(Some(f)) = frames.next() {
                let name = f
                    .function
                    .as_ref()
                    .and_then(|n| n.raw_name().ok())
                    .map(|n| demangle(&n));
                let (file, line) = f
                    .location
                    .as_ref()
                    .map_or((None, None), |l| (l.file.map(String::from), l.line));
                out.push((name.unwrap_or_default(), file, line));
            }
        }
        let sym = loader.find_symbol_info(probe);
        if out.iter().all(|(n, _, _)| n.is_empty()) {
            // No DWARF for it: the symbol table's name, if any.
            let name = demangle(sym.as_ref()?.name());
            out = vec![(name, None, None)];
        }
        let offset = sym.map(|s| (addr - s.address()) as usize);
        Some((out, offset))
    }

    /// The function a trace names a goroutine after, from its creation site (a return
    /// address): the innermost frame there that is not the runtime's own (`spawn` is inlined
    /// into its caller), else the innermost; None if the address has no symbol.
    pub fn function_at(&mut self, pc: usize, ret: bool) -> Option<String> {
        let (frames, _) = self.lookup(pc, ret)?;
        frames
            .iter()
            .map(|(n, _, _)| n)
            .find(|n| !n.is_empty() && !format::is_runtime_frame(n))
            .or_else(|| frames.first().map(|(n, _, _)| n))
            .cloned()
    }

    /// Rewrites one complete line (without its newline) into `out`. A raw `created by` line
    /// is held in `pending` (with its text, in case it cannot be symbolized) until the site
    /// line after it comes.
    fn rewrite(&mut self, line: &str, pending: &mut Option<PendingSite>, out: &mut String) {
        if let Some(site) = pending.take() {
            // The site line after a raw `created by`.
            if let Some((frames, offset)) = self.lookup(site.pc, true) {
                let fr = sym_frames(&frames);
                let _ = format::write_created_by(out, &fr, offset, site.parent, &self.root);
                return;
            }
            out.push_str(&site.line);
            out.push('\n');
            out.push_str(line);
            out.push('\n');
            return;
        }
        match format::parse_raw(line) {
            Some(RawLine::Frame { ret, pc, fp_sp }) => match self.lookup(pc, ret) {
                Some((frames, offset)) => {
                    let style = FrameStyle {
                        system: fp_sp.is_some(),
                        root: &self.root,
                    };
                    let _ =
                        format::write_frames(out, &sym_frames(&frames), pc, offset, fp_sp, &style);
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            },
            Some(RawLine::CreatedBy { pc, parent }) => {
                *pending = Some(PendingSite {
                    pc,
                    parent,
                    line: line.to_string(),
                })
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
}

/// A raw `created by` line waiting for its site line.
struct PendingSite {
    pc: usize,
    parent: u64,
    /// The line as it came, for when its address has no symbol.
    line: String,
}

fn sym_frames(frames: &[Found]) -> Vec<SymFrame<'_>> {
    frames
        .iter()
        .map(|(n, f, l)| SymFrame {
            function: n,
            file: f.as_deref(),
            line: *l,
        })
        .collect()
}

/// A Rust symbol's name without its hash (`{:#}`), or the name as it is.
fn demangle(raw: &str) -> String {
    match rustc_demangle::try_demangle(raw) {
        Ok(d) => format!("{d:#}"),
        Err(_) => raw.to_string(),
    }
}

/// Whether a partial line could still become a raw line.
fn may_be_raw(partial: &[u8]) -> bool {
    [b"\t@".as_slice(), b"created by @".as_slice()]
        .iter()
        .any(|p| p.starts_with(partial) || partial.starts_with(p))
}

/// Copies `input` to `output`, rewriting raw traceback lines; flushes after every chunk.
/// A line that is not rewritten comes out byte for byte as it came (its `\r`, bytes that are
/// not UTF-8), however the input was cut into reads (found by the fuzzer, symbolize_pipe: a
/// `\r` before the newline was dropped or kept depending on where a read ended).
pub fn pipe(mut input: impl Read, mut output: impl Write, syms: &mut Symbols) {
    let mut line: Vec<u8> = Vec::new();
    // Bytes of `line` already written out (a partial line that could not be raw).
    let mut passed = 0usize;
    let mut pending = None;
    let mut buf = [0u8; 4096];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut out: Vec<u8> = Vec::new();
        for &b in &buf[..n] {
            line.push(b);
            if b == b'\n' {
                if passed > 0 {
                    out.extend_from_slice(&line[passed..]);
                } else {
                    let body = &line[..line.len() - 1];
                    let mut s = String::new();
                    match std::str::from_utf8(body) {
                        Ok(text) => {
                            syms.rewrite(text, &mut pending, &mut s);
                            out.extend_from_slice(s.as_bytes());
                        }
                        // Not text, so not a raw line: as it came (after a held `created by`).
                        Err(_) => {
                            flush_pending(&mut pending, &mut s);
                            out.extend_from_slice(s.as_bytes());
                            out.extend_from_slice(&line);
                        }
                    }
                }
                line.clear();
                passed = 0;
            }
        }
        if !line.is_empty() && (passed > 0 || (!may_be_raw(&line) && pending.is_none())) {
            out.extend_from_slice(&line[passed..]);
            passed = line.len();
        }
        let _ = output.write_all(&out);
        let _ = output.flush();
    }
    // The end: a held `created by` line (it was lost when the output ended before its site
    // line), then what is left of the last line.
    let mut s = String::new();
    flush_pending(&mut pending, &mut s);
    let _ = output.write_all(s.as_bytes());
    if !line.is_empty() {
        let _ = output.write_all(&line[passed..]);
    }
    let _ = output.flush();
}

/// Writes a held `created by` line as it came.
fn flush_pending(pending: &mut Option<PendingSite>, out: &mut String) {
    if let Some(site) = pending.take() {
        out.push_str(&site.line);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn here() -> usize {
        here as *const () as usize
    }

    /// This test executable's symbols, with its load bias (a PIE, like the kernel).
    fn own_symbols() -> Symbols {
        let exe = std::env::current_exe().unwrap();
        let rt = here() as u64;
        // Linux loads PIEs page-aligned: the bias is the run-time address of the ELF's
        // address 0, read from /proc/self/maps (the first mapping of the executable).
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let path = exe.display().to_string();
        let first = maps.lines().find(|l| l.ends_with(&path)).unwrap();
        let (range, rest) = first.split_once(' ').unwrap();
        let start = u64::from_str_radix(range.split('-').next().unwrap(), 16).unwrap();
        let off = u64::from_str_radix(rest.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert!(rt > start);
        Symbols::new(
            &exe,
            start - off,
            Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap(),
        )
    }

    fn run(input: &str, syms: &mut Symbols) -> String {
        let mut out = Vec::new();
        pipe(input.as_bytes(), &mut out, syms);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn raw_frames_become_go_frames_and_unknown_ones_stay_raw() {
        let mut syms = own_symbols();
        let pc = here();
        let input = format!("goroutine 1 [running]:\n\t@pc {pc:#x}\n\t@ret 0x10\nafter\npartial");
        let out = run(&input, &mut syms);
        assert!(
            out.starts_with("goroutine 1 [running]:\nxtask::symbolize::tests::here(...)\n\txtask/src/symbolize.rs:"),
            "{out}"
        );
        assert!(out.contains(" +0x0\n"), "{out}");
        assert!(out.ends_with("\t@ret 0x10\nafter\npartial"), "{out}");
        let out = run(
            &format!(
                "created by @ret {:#x} in goroutine 3\n\tsrc/x.rs:1\n",
                pc + 1
            ),
            &mut syms,
        );
        assert!(out.starts_with("created by xtask::symbolize::tests::here in goroutine 3\n\txtask/src/symbolize.rs:"), "{out}");
    }

    /// A reader that hands out `step` bytes a read.
    struct Cut<'a>(&'a [u8], usize);

    impl Read for Cut<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn lines_without_symbols_come_out_as_they_came_however_they_are_read() {
        let input: &[u8] = b"login: \r\n\t@ret 0x0010\r\ncreated by @ret 0x20 in goroutine 3\n\tsrc/a.rs:1\n\xff\xfe\ncreated by @ret 0x30 in goroutine 4\n";
        for step in [1, 2, 3, 7, 4096] {
            let mut syms = Symbols::new(Path::new("/nonexistent/elf"), 0, Path::new("/"));
            let mut out = Vec::new();
            pipe(Cut(input, step), &mut out, &mut syms);
            // Found by the fuzzer (symbolize_pipe): the `\r` of `login: \r\n` went or stayed
            // with the reads; and the last `created by`, with no site line after it, was lost.
            assert_eq!(out, input, "read {step} bytes at a time");
        }
    }

    #[test]
    fn a_partial_line_passes_at_once_unless_it_may_be_raw() {
        assert!(may_be_raw(b"\t"));
        assert!(may_be_raw(b"created by @re"));
        assert!(!may_be_raw(b"login: "));
        assert!(!may_be_raw(b"\tsrc/x.rs"));
    }

    #[test]
    fn kernel_base_matches_the_kernel() {
        let src = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel/src/lib.rs"),
        )
        .unwrap();
        assert!(
            src.contains(&format!(
                "pub const KERNEL_BASE: u64 = {};",
                "0xffff_ffff_8000_0000"
            )),
            "kernel/src/lib.rs's KERNEL_BASE is not this module's"
        );
        assert_eq!(KERNEL_BASE, 0xffff_ffff_8000_0000);
    }
}

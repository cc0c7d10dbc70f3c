//! The text of a traceback, shared by every printer: rt-core on the host (which symbolizes in
//! process) and xtask (which symbolizes a kernel's serial output). Go's counterpart is the
//! printing half of traceback.go (`traceback2`, `printFuncName`, `printcreatedby1`).
//!
//! Two forms of the same lines:
//!
//! - **Raw**, printed by a platform that cannot symbolize (the kernel): one line per physical
//!   frame, `\t@ret 0x<pc>` for a return address (the call is at pc - 1) or `\t@pc 0x<pc>` for
//!   an exact instruction (an interrupted one), with ` fp=0x<fp> sp=0x<sp>` appended at
//!   `traceback=system`; and `created by @ret 0x<pc> in goroutine <n>` followed by the
//!   creation site, `\t<file>:<line>` (from `#[track_caller]`, so known without symbols).
//! - **Symbolized**, Go's form: for each frame, innermost inlined call first,
//!   `<function>(...)` then `\t<file>:<line>`, and the physical frame's line ends with
//!   ` +0x<offset from the function's entry>` (and ` fp= sp= pc=` at `system`), as Go prints
//!   inlined frames without an offset. Arguments are not known, so every frame shows `(...)`,
//!   Go's mark for "arguments not shown".
//!
//! Below `traceback=system`, runtime frames are left out ([`is_runtime_frame`]): rt-core's
//! own, the standard library's, the kernel's panic handler and closure shims, as Go leaves out
//! `runtime.*` at level 1. A physical frame with no symbol keeps its raw line.

use core::fmt::{self, Write};

/// One logical frame of a symbolized PC: a function, and where in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymFrame<'a> {
    /// The demangled name without its hash (`tests::deadlock::consumer`).
    pub function: &'a str,
    pub file: Option<&'a str>,
    pub line: Option<u32>,
}

/// What a raw traceback line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawLine {
    /// A physical frame: `ret` when `pc` is a return address, else the exact instruction;
    /// `fp_sp` at `traceback=system`.
    Frame {
        ret: bool,
        pc: usize,
        fp_sp: Option<(usize, usize)>,
    },
    /// `created by @ret 0x<pc> in goroutine <parent>` (the next line is the site).
    CreatedBy { pc: usize, parent: u64 },
}

/// Function-name prefixes of runtime frames, hidden below `traceback=system`.
const RUNTIME_PREFIXES: &[&str] = &[
    "rt_core::",
    "core::",
    "alloc::",
    "std::",
    "panic_unwind::",
    "backtrace::",
    "kernel::panic::",
    "__rust",
    "rust_begin_unwind",
    "rust_panic",
];

/// Whether `function` is a runtime frame (hidden below `traceback=system`). Trait-method
/// forms (`<rt_core::chan::Chan<T>>::recv`) count by their type's path; closure shims
/// (`<F as core::ops::function::FnOnce<()>>::call_once`) and frames without a name are
/// runtime frames.
pub fn is_runtime_frame(function: &str) -> bool {
    let f = function.trim_start_matches('<');
    f.is_empty()
        || RUNTIME_PREFIXES.iter().any(|p| f.starts_with(p))
        || function.contains(" as core::ops::function::Fn")
        || function.contains("{{vtable.shim}}")
        || function.contains("{vtable.shim}")
}

/// `file` relative to `root` (the workspace) when it lies inside it.
pub fn relative<'a>(file: &'a str, root: &str) -> &'a str {
    let root = root.trim_end_matches('/');
    if root.is_empty() {
        return file;
    }
    match file.strip_prefix(root) {
        Some(rest) if rest.starts_with('/') => &rest[1..],
        _ => file,
    }
}

/// Writes a physical frame's raw line.
pub fn write_raw_frame(
    w: &mut dyn Write,
    ret: bool,
    pc: usize,
    fp_sp: Option<(usize, usize)>,
) -> fmt::Result {
    write!(w, "\t@{} {:#x}", if ret { "ret" } else { "pc" }, pc)?;
    if let Some((fp, sp)) = fp_sp {
        write!(w, " fp={fp:#x} sp={sp:#x}")?;
    }
    w.write_char('\n')
}

/// Writes the raw `created by` line (the caller writes the site line after it).
pub fn write_raw_created_by(w: &mut dyn Write, pc: usize, parent: u64) -> fmt::Result {
    writeln!(w, "created by @ret {pc:#x} in goroutine {parent}")
}

fn hex(s: &str) -> Option<usize> {
    usize::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// Reads a raw line (without its newline); `None` for any other line.
pub fn parse_raw(line: &str) -> Option<RawLine> {
    let line = line.trim_end_matches('\r');
    if let Some(rest) = line.strip_prefix("created by @ret ") {
        let (pc, parent) = rest.split_once(" in goroutine ")?;
        return Some(RawLine::CreatedBy {
            pc: hex(pc)?,
            parent: parent.trim().parse().ok()?,
        });
    }
    let rest = line.strip_prefix("\t@")?;
    let (ret, rest) = if let Some(r) = rest.strip_prefix("ret ") {
        (true, r)
    } else {
        (false, rest.strip_prefix("pc ")?)
    };
    let mut words = rest.split(' ');
    let pc = hex(words.next()?)?;
    let fp_sp = match (words.next(), words.next()) {
        (None, _) => None,
        (Some(fp), Some(sp)) => {
            Some((hex(fp.strip_prefix("fp=")?)?, hex(sp.strip_prefix("sp=")?)?))
        }
        _ => return None,
    };
    if words.next().is_some() {
        return None;
    }
    Some(RawLine::Frame { ret, pc, fp_sp })
}

/// A frame's `\tfile:line` (without the newline): `?` where the debug info has no file.
fn write_site(w: &mut dyn Write, f: &SymFrame, root: &str) -> fmt::Result {
    w.write_char('\t')?;
    match (f.file, f.line) {
        (Some(file), Some(line)) => write!(w, "{}:{}", relative(file, root), line),
        (Some(file), None) => w.write_str(relative(file, root)),
        _ => w.write_str("?"),
    }
}

/// How a symbolized physical frame is printed.
#[derive(Debug, Clone, Copy)]
pub struct FrameStyle<'a> {
    /// `traceback=system`: show runtime frames and ` fp= sp= pc=`.
    pub system: bool,
    /// The workspace root that file names are shown relative to ("" for none).
    pub root: &'a str,
}

/// Writes one physical frame's logical frames (innermost first; the last is the function the
/// PC is in). `offset` is the PC's distance from that function's entry, if known; `fp`/`sp`
/// are printed at `system`. Returns how many logical frames were shown (0: all hidden).
pub fn write_frames(
    w: &mut dyn Write,
    frames: &[SymFrame],
    pc: usize,
    offset: Option<usize>,
    fp_sp: Option<(usize, usize)>,
    style: &FrameStyle,
) -> Result<usize, fmt::Error> {
    let mut shown = 0;
    for (i, f) in frames.iter().enumerate() {
        if !style.system && is_runtime_frame(f.function) {
            continue;
        }
        shown += 1;
        writeln!(w, "{}(...)", f.function)?;
        write_site(w, f, style.root)?;
        if i + 1 == frames.len() {
            if let Some(off) = offset {
                write!(w, " +{off:#x}")?;
            }
            if style.system {
                if let Some((fp, sp)) = fp_sp {
                    write!(w, " fp={fp:#x} sp={sp:#x}")?;
                }
                write!(w, " pc={pc:#x}")?;
            }
        }
        w.write_char('\n')?;
    }
    Ok(shown)
}

/// Writes Go's `created by` lines for a creation site: the first logical frame that is not a
/// runtime frame names the creator (the last one if all are), its file:line the site.
pub fn write_created_by(
    w: &mut dyn Write,
    frames: &[SymFrame],
    offset: Option<usize>,
    parent: u64,
    root: &str,
) -> fmt::Result {
    let Some(f) = frames
        .iter()
        .find(|f| !is_runtime_frame(f.function))
        .or(frames.last())
    else {
        return Ok(());
    };
    writeln!(w, "created by {} in goroutine {parent}", f.function)?;
    write_site(w, f, root)?;
    if let Some(off) = offset {
        write!(w, " +{off:#x}")?;
    }
    w.write_char('\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn raw_lines_round_trip() {
        let mut s = String::new();
        write_raw_frame(&mut s, true, 0xffff_ffff_8001_2345, None).unwrap();
        write_raw_frame(&mut s, false, 0x1234, Some((0x10, 0x8))).unwrap();
        write_raw_created_by(&mut s, 0xabc, 7).unwrap();
        let parsed: alloc::vec::Vec<_> = s.lines().map(parse_raw).collect();
        assert_eq!(
            parsed,
            [
                Some(RawLine::Frame {
                    ret: true,
                    pc: 0xffff_ffff_8001_2345,
                    fp_sp: None
                }),
                Some(RawLine::Frame {
                    ret: false,
                    pc: 0x1234,
                    fp_sp: Some((0x10, 0x8))
                }),
                Some(RawLine::CreatedBy {
                    pc: 0xabc,
                    parent: 7
                }),
            ]
        );
        for other in [
            "\t@ret 12",
            "@ret 0x12",
            "\t@ret 0x12 fp=0x1",
            "created by main",
            "\tsrc/a.rs:3",
        ] {
            assert_eq!(parse_raw(other), None, "{other:?}");
        }
    }

    #[test]
    fn runtime_frames_are_hidden_below_system_and_inlined_frames_have_no_offset() {
        let frames = [
            SymFrame {
                function: "rt_core::chan::Chan<T>::recv",
                file: Some("/w/rt-core/src/chan.rs"),
                line: Some(9),
            },
            SymFrame {
                function: "tests::deadlock::consumer",
                file: Some("/w/tests/src/bin/deadlock.rs"),
                line: Some(41),
            },
            SymFrame {
                function: "tests::deadlock::main::{{closure}}",
                file: Some("/w/tests/src/bin/deadlock.rs"),
                line: Some(60),
            },
        ];
        let mut s = String::new();
        let style = FrameStyle {
            system: false,
            root: "/w",
        };
        assert_eq!(
            write_frames(&mut s, &frames, 0x1000, Some(0x1d), None, &style),
            Ok(2)
        );
        assert_eq!(
            s,
            "tests::deadlock::consumer(...)\n\ttests/src/bin/deadlock.rs:41\n\
             tests::deadlock::main::{{closure}}(...)\n\ttests/src/bin/deadlock.rs:60 +0x1d\n"
        );
        let mut s = String::new();
        let style = FrameStyle {
            system: true,
            root: "/w",
        };
        assert_eq!(
            write_frames(
                &mut s,
                &frames[..1],
                0x1000,
                Some(4),
                Some((0x20, 0x18)),
                &style
            ),
            Ok(1)
        );
        assert_eq!(s, "rt_core::chan::Chan<T>::recv(...)\n\trt-core/src/chan.rs:9 +0x4 fp=0x20 sp=0x18 pc=0x1000\n");
        assert!(is_runtime_frame(
            "<F as core::ops::function::FnOnce<()>>::call_once"
        ));
        assert!(is_runtime_frame("<rt_core::chan::Chan<u64>>::recv"));
        assert!(!is_runtime_frame("kernel::rt::run::main"));
    }

    #[test]
    fn created_by_names_the_first_user_frame() {
        let frames = [
            SymFrame {
                function: "rt_core::proc::spawn",
                file: Some("/w/rt-core/src/proc.rs"),
                line: Some(33),
            },
            SymFrame {
                function: "tests::x::main",
                file: Some("/w/tests/src/bin/x.rs"),
                line: Some(60),
            },
        ];
        let mut s = String::new();
        write_created_by(&mut s, &frames, Some(0x55), 1, "/w/").unwrap();
        assert_eq!(
            s,
            "created by tests::x::main in goroutine 1\n\ttests/src/bin/x.rs:60 +0x55\n"
        );
        assert_eq!(relative("/elsewhere/a.rs", "/w"), "/elsewhere/a.rs");
        assert_eq!(relative("/wx/a.rs", "/w"), "/wx/a.rs");
    }
}

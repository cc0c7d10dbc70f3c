//! Tracebacks: the frames of a goroutine, in Go's format (traceback.go: `traceback`,
//! `tracebackothers`, `goroutineheader`, `printcreatedby`; `GOTRACEBACK` in runtime1.go).
//!
//! **How frames are found.** Everything is built with frame pointers kept
//! (`-C force-frame-pointers=yes`, .cargo/config.toml and xtask), so every function's frame
//! starts with the caller's RBP and, above it, the return address: a linked list from the
//! innermost frame to the goroutine's first (`gostart` pops a 0 into RBP before it calls the
//! entry, arch/x86_64.rs, which ends the chain). A walk starts from:
//! - a parked or runnable G's gobuf (`sched.pc`, `sched.bp`, `sched.sp`: `swtch` records them);
//! - for the running G, the registers where it stopped: an interrupt frame (the kernel's page
//!   fault, a host signal's context) or the current frame ([`Start::caller`]).
//!
//! **Invariants of a walk.** It never reads outside the G's own stack: every frame pointer
//! must lie in `[max(lo, sp), hi - 16]`, be 8-aligned and grow up the stack; the first that
//! does not ends the walk with a note (as Redox's kernel stops at an out-of-range RBP), so a
//! corrupt chain is reported, not followed. At most [`MAX_FRAMES`] frames are printed: the
//! innermost 50 and the outermost 50 around Go's `...N frames elided...`.
//!
//! **Symbols.** A platform that can symbolize (the host: [`crate::platform::Platform::symbolize`])
//! prints Go's form; one that cannot (the kernel) prints raw lines that xtask symbolizes from
//! the ELF as the serial output arrives ([`format`] has both forms).
//!
//! **Levels** (Go's `GOTRACEBACK`; the kernel argument `traceback=`, the host's
//! `GOTRACEBACK`): `none` prints no goroutines; `single` (the default) the failing goroutine
//! after a panic and every goroutine after a fatal error; `all` every goroutine always;
//! `system` adds runtime frames and `fp=`/`sp=`/`pc=`, as Go's level 2.

pub mod format;

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, Ordering};

use crate::g::G;
use crate::platform::{self, Console};
use crate::sched::Sched;
use crate::stack::Stack;
use crate::status::GStatus;
use format::FrameStyle;

/// How much a traceback shows (Go's `GOTRACEBACK` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum Level {
    None = 0,
    #[default]
    Single = 1,
    All = 2,
    System = 3,
}

impl Level {
    /// Go's names (`none`, `single`, `all`, `system`); also Go's `0`, `1`, `2`.
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "none" | "0" => Level::None,
            "single" | "" => Level::Single,
            "all" | "1" => Level::All,
            "system" | "2" => Level::System,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Single => "single",
            Level::All => "all",
            Level::System => "system",
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Single as u8);

/// Sets the traceback level for the whole program.
pub fn set_level(l: Level) {
    LEVEL.store(l as u8, Ordering::Relaxed);
}

/// The traceback level.
pub fn level() -> Level {
    match LEVEL.load(Ordering::Relaxed) {
        0 => Level::None,
        1 => Level::Single,
        2 => Level::All,
        _ => Level::System,
    }
}

/// At most this many frames are printed per goroutine (Go: `tracebackInnerFrames` +
/// `tracebackOuterFrames`, 50 each).
pub const MAX_FRAMES: usize = 100;
const INNER_FRAMES: usize = 50;

/// Where a walk begins: the innermost frame's PC, whether it is a return address (a call is
/// at `pc - 1`) or the exact instruction (an interrupted one), and RBP and RSP there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    pub pc: usize,
    pub ret: bool,
    pub bp: usize,
    pub sp: usize,
}

impl Start {
    /// The frame of the function that calls this one: its return address into that function,
    /// and that function's RBP. Needs frame pointers (this function has its own frame).
    #[inline(never)]
    pub fn caller() -> Start {
        let bp = crate::arch::frame_pointer();
        // SAFETY: with frame pointers, our own frame is [saved RBP, return address] at RBP:
        // two words of the current stack, which is live.
        let (caller_bp, ret) = unsafe { (*(bp as *const usize), *((bp + 8) as *const usize)) };
        Start {
            pc: ret,
            ret: true,
            bp: caller_bp,
            sp: bp + 16,
        }
    }

    /// Where a suspended G resumes (its gobuf).
    fn saved(g: &G) -> Start {
        Start {
            pc: g.sched.pc,
            ret: true,
            bp: g.sched.bp,
            sp: g.sched.sp,
        }
    }
}

/// Why a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// At the goroutine's first frame (RBP 0).
    Bottom,
    /// A frame pointer outside the stack, misaligned or not growing: the chain is broken.
    Broken { bp: usize, why: &'static str },
}

/// One physical frame of a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub pc: usize,
    pub ret: bool,
    /// The frame pointer the walk stood on here (0 for the last frame).
    pub fp: usize,
    pub sp: usize,
}

/// Walks the frame-pointer chain from `start`, within `stack`, calling `f` for each frame
/// (innermost first) until it returns false. Returns the frames visited and why it ended.
/// Reads only words inside `[max(stack.lo, start.sp), stack.hi)`.
pub fn walk(start: Start, stack: Stack, f: &mut dyn FnMut(usize, &Frame) -> bool) -> (usize, End) {
    let floor = stack.lo.max(start.sp);
    let mut fr = Frame {
        pc: start.pc,
        ret: start.ret,
        fp: start.bp,
        sp: start.sp,
    };
    // A chain can have no more frames than the stack has pairs of words.
    let limit = stack.size() / 16 + 2;
    let mut n = 0;
    loop {
        if !f(n, &fr) {
            return (n + 1, End::Bottom);
        }
        n += 1;
        let bp = fr.fp;
        if bp == 0 {
            return (n, End::Bottom);
        }
        let why = if !bp.is_multiple_of(8) {
            Some("frame pointer is not aligned")
        } else if bp < floor || bp.saturating_add(16) > stack.hi {
            Some("frame pointer outside the goroutine's stack")
        } else if n >= limit {
            Some("more frames than the stack can hold")
        } else {
            None
        };
        if let Some(why) = why {
            return (n, End::Broken { bp, why });
        }
        // SAFETY: bp and bp + 8 lie inside [floor, hi), the G's own stack above its saved or
        // current SP: memory its frames have used, so mapped (the platform never unmaps a
        // live G's stack).
        let (next_bp, ret) = unsafe { (*(bp as *const usize), *((bp + 8) as *const usize)) };
        if next_bp != 0 && next_bp <= bp {
            return (
                n,
                End::Broken {
                    bp: next_bp,
                    why: "frame pointer does not grow up the stack",
                },
            );
        }
        fr = Frame {
            pc: ret,
            ret: true,
            fp: next_bp,
            sp: bp + 16,
        };
    }
}

/// Writes the frames of a walk from `start` in the platform's form: symbolized where it can,
/// raw lines otherwise; at most [`MAX_FRAMES`].
pub fn write_frames(w: &mut dyn Write, start: Start, stack: Stack, lvl: Level) -> fmt::Result {
    let (total, _) = walk(start, stack, &mut |_, _| true);
    let plat = platform::get();
    let system = lvl >= Level::System;
    let style = FrameStyle {
        system,
        root: plat.source_root(),
    };
    let elide = total > MAX_FRAMES;
    let mut result = Ok(());
    let (_, end) = walk(start, stack, &mut |i, fr| {
        if elide && i >= INNER_FRAMES && i < total - (MAX_FRAMES - INNER_FRAMES) {
            if i == INNER_FRAMES {
                result = writeln!(w, "...{} frames elided...", total - MAX_FRAMES);
            }
            return result.is_ok();
        }
        let fp_sp = system.then_some((fr.fp, fr.sp));
        let mut done = false;
        plat.symbolize(fr.pc, fr.ret, &mut |frames, offset| {
            done = true;
            result = format::write_frames(w, frames, fr.pc, offset, fp_sp, &style).map(|_| ());
        });
        if !done {
            result = format::write_raw_frame(w, fr.ret, fr.pc, fp_sp);
        }
        result.is_ok()
    });
    result?;
    if let End::Broken { bp, why } = end {
        writeln!(
            w,
            "...stack walk stopped: {why} (bp={bp:#x}, stack=[{:#x}, {:#x}))",
            stack.lo, stack.hi
        )?;
    }
    Ok(())
}

/// Writes Go's `created by` lines for `g` (none for the main goroutine below `system`: Go's
/// main goroutine is created by the runtime, so its traceback ends at `main.main`).
fn write_created_by(w: &mut dyn Write, g: &G, lvl: Level) -> fmt::Result {
    if g.goid() == 1 && lvl < Level::System {
        return Ok(());
    }
    let plat = platform::get();
    let mut result = None;
    if g.gopc_pc != 0 {
        plat.symbolize(g.gopc_pc, true, &mut |frames, offset| {
            result = Some(format::write_created_by(
                w,
                frames,
                offset,
                g.parentgoid,
                plat.source_root(),
            ));
        });
    }
    match result {
        Some(r) => r,
        None => {
            format::write_raw_created_by(w, g.gopc_pc, g.parentgoid)?;
            writeln!(w, "\t{}:{}", g.gopc.file(), g.gopc.line())
        }
    }
}

/// A goroutine's status, and its state as Go's header shows it (None: exited or never ran).
fn state(g: &G) -> (Option<GStatus>, Option<&'static str>) {
    let status = GStatus::from_raw(g.atomicstatus.load(Ordering::Acquire));
    let shown = match status {
        Some(GStatus::Dead) | Some(GStatus::Idle) => None,
        Some(GStatus::Waiting) => Some(g.waitreason().as_str()),
        Some(s) => Some(s.go_name()),
        None => Some("unknown"),
    };
    (status, shown)
}

/// Writes one goroutine: Go's header, its frames from `start` (the running G's registers) or
/// from its gobuf, and where it was created. A G running elsewhere has no usable frames:
/// Go's `goroutine running on other thread; stack unavailable` (CPU in the kernel).
pub fn write_goroutine(w: &mut dyn Write, g: &G, start: Option<Start>, lvl: Level) -> fmt::Result {
    write_goroutine_marked(w, g, start, lvl, "")
}

/// [`write_goroutine`] with `mark` after the state in the header (the leak report's
/// ` (leaked)`, as Go 1.26's goroutineleak profile prints it).
pub(crate) fn write_goroutine_marked(
    w: &mut dyn Write,
    g: &G,
    start: Option<Start>,
    lvl: Level,
    mark: &str,
) -> fmt::Result {
    let (status, Some(st)) = state(g) else {
        return Ok(());
    };
    writeln!(w, "goroutine {} [{}{}]:", g.goid(), st, mark)?;
    match (start, status) {
        (Some(s), _) => write_frames(w, s, g.stack, lvl)?,
        (None, Some(GStatus::Running)) | (None, Some(GStatus::Syscall)) => writeln!(
            w,
            "\tgoroutine running on other {}; stack unavailable",
            platform::get().m_word()
        )?,
        (None, _) if g.stack.is_empty() => {} // never ran: no frames yet
        (None, _) => write_frames(w, Start::saved(g), g.stack, lvl)?,
    }
    write_created_by(w, g, lvl)
}

/// Writes every goroutine of `sched` that has not exited, the `current` one (with where it
/// stands) first, a blank line between them (Go's `tracebackothers`). Takes the G list with
/// `try_peek` when `try_lock` (a fatal error or an interrupt may hold it); returns false if
/// it was busy.
pub fn write_all(
    w: &mut dyn Write,
    sched: &Sched,
    current: Option<(&G, Start)>,
    lvl: Level,
    try_lock: bool,
) -> Result<bool, fmt::Error> {
    if lvl == Level::None {
        return Ok(true);
    }
    let cur_ptr = current.map(|(g, _)| g as *const G);
    if let Some((g, start)) = current {
        write_goroutine(w, g, Some(start), lvl)?;
    }
    let mut each = |slabs: &alloc::vec::Vec<*mut [G]>| -> fmt::Result {
        for &slab in slabs {
            // SAFETY: slabs live as long as the runtime; a G's fields read here are atomics,
            // fixed at spawn (gopc), or its gobuf and stack, which only change while it runs
            // (such a G is reported without frames).
            for g in unsafe { &*slab } {
                if g.goid() == 0 || Some(g as *const G) == cur_ptr || state(g).1.is_none() {
                    continue;
                }
                w.write_char('\n')?;
                write_goroutine(w, g, None, lvl)?;
            }
        }
        Ok(())
    };
    if try_lock {
        match sched.allgs.try_peek(1000, |s| each(s)) {
            Some(r) => r.map(|_| true),
            None => writeln!(w, "\n(goroutine list busy: skipped)").map(|_| false),
        }
    } else {
        let slabs = sched.allgs.lock();
        each(&slabs).map(|_| true)
    }
}

/// The running goroutine (not g0) on the current M, if any.
fn current_g() -> Option<&'static G> {
    let m = crate::m::getm();
    // SAFETY: the current M is live while its thread runs; running_g reads its curg.
    unsafe { platform::running_g(m) }
}

/// Prints, to the platform's console, the traceback Go prints after `panic: ...` or
/// `fatal error: ...`: the goroutine running here from `start` (by default the caller's
/// frame), and, when `all` (a fatal error) or the level says so, every other goroutine.
pub fn print_failure(start: Option<Start>, fatal: bool) {
    let lvl = level();
    if lvl == Level::None || !platform::installed() {
        return;
    }
    let start = start.unwrap_or_else(Start::caller);
    let m = crate::m::getm();
    let g = current_g();
    let all = fatal || lvl >= Level::All;
    let _ = Console.write_char('\n');
    if all && !m.is_null() {
        // SAFETY: an M's runtime outlives it.
        let sched = unsafe { &*(*m).runtime };
        let _ = write_all(&mut Console, sched, g.map(|g| (g, start)), lvl, true);
    } else if let Some(g) = g {
        let _ = write_goroutine(&mut Console, g, Some(start), lvl);
    }
}

/// Go's SIGQUIT dump, on demand: every goroutine of the current runtime (or of the runtime
/// that is running, `RT_CORE_SCHED`, when the caller is not an M, as from an interrupt or a
/// signal-watching thread), at least at level `all`. The caller's own goroutine, if any,
/// comes first with its frames. Returns false when there is no runtime or its G list was busy.
pub fn dump_goroutines(w: &mut dyn Write) -> bool {
    let m = crate::m::getm();
    let sched = if m.is_null() {
        crate::run::RT_CORE_SCHED.load(Ordering::Acquire) as *const Sched
    } else {
        // SAFETY: an M's runtime outlives it.
        unsafe { (*m).runtime }
    };
    if sched.is_null() {
        let _ = writeln!(w, "no runtime is running");
        return false;
    }
    // SAFETY: RT_CORE_SCHED is cleared before its runtime is destroyed; a dump racing with
    // the very end of a runtime is the caller's risk (as Go's SIGQUIT at exit).
    let sched = unsafe { &*sched };
    dump_goroutines_at(w, sched, Some(Start::caller()))
}

/// [`dump_goroutines`] of `sched`, with the goroutine running on this M (if any) walked from
/// `at` (an interrupt's registers; `None`: it is shown without frames).
pub fn dump_goroutines_at(w: &mut dyn Write, sched: &Sched, at: Option<Start>) -> bool {
    let lvl = level().max(Level::All);
    let current = match (current_g(), at) {
        (Some(g), Some(at)) => Some((g, at)),
        _ => None,
    };
    matches!(write_all(w, sched, current, lvl, true), Ok(true))
}

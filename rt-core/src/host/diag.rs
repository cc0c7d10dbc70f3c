//! What the host adds to tracebacks (rt-core/src/traceback): symbols read from the running
//! executable's own DWARF (the `backtrace` crate, the symbolizer std itself uses), file names
//! relative to the workspace, a stack big enough to print a fatal error's report on, and Go's
//! SIGQUIT: a dump of every goroutine, then exit status 2.
//!
//! Invariants: the fatal stack is used at most once (only the first fatal error reports:
//! `platform::fatal_at`), so it needs no lock. The SIGQUIT handler only writes a byte to a
//! pipe (async-signal-safe); the dump runs on an ordinary thread that waits on the pipe, where
//! allocating and symbolizing are safe.

use std::string::String;
use std::sync::{Once, OnceLock};
use std::vec::Vec;

use crate::traceback::format::SymFrame;

/// Symbolizes `pc` with the executable's debug info: the logical frames (innermost inlined
/// call first) and the offset from the function's entry.
pub(crate) fn symbolize(pc: usize, ret: bool, f: &mut dyn FnMut(&[SymFrame], Option<usize>)) {
    // A return address's call instruction is the byte before it.
    let probe = if ret { pc.wrapping_sub(1) } else { pc };
    let mut names: Vec<(String, Option<String>, Option<u32>)> = Vec::new();
    let mut entry = None;
    backtrace::resolve(probe as *mut core::ffi::c_void, |sym| {
        let Some(name) = sym.name() else { return };
        names.push((
            std::format!("{name:#}"),
            sym.filename().map(|p| p.display().to_string()),
            sym.lineno(),
        ));
        if let Some(a) = sym.addr() {
            entry = Some(a as usize);
        }
    });
    if names.is_empty() {
        return;
    }
    let frames: Vec<SymFrame> = names
        .iter()
        .map(|(n, file, line)| SymFrame {
            function: n,
            file: file.as_deref(),
            line: *line,
        })
        .collect();
    // The symbol's address comes either relocated (from the symbol table) or as the ELF has
    // it (DWARF's low_pc): take whichever puts the PC inside a function (< 16 MiB from it).
    let offset = entry.and_then(|e| {
        [e, e.wrapping_add(load_bias())]
            .into_iter()
            .filter(|&e| e <= pc)
            .map(|e| pc - e)
            .find(|&off| off < 16 << 20)
    });
    f(&frames, offset);
}

/// Where the executable was loaded relative to its ELF addresses (a PIE's base): this
/// function's run-time address minus the address its symbol has in the ELF.
fn load_bias() -> usize {
    static BIAS: OnceLock<usize> = OnceLock::new();
    *BIAS.get_or_init(|| {
        let here = load_bias as *const () as usize;
        let mut elf = None;
        backtrace::resolve(here as *mut core::ffi::c_void, |sym| {
            elf = elf.or(sym.addr().map(|a| a as usize));
        });
        elf.map_or(0, |a| here.wrapping_sub(a))
    })
}

/// The workspace that built this executable: the part of its path before `/target/` (cargo's
/// layout), else the current directory.
pub(crate) fn source_root() -> &'static str {
    static ROOT: OnceLock<String> = OnceLock::new();
    ROOT.get_or_init(|| {
        let exe = std::env::current_exe().map(|p| p.display().to_string());
        match exe {
            Ok(e) if e.contains("/target/") => e[..e.find("/target/").unwrap()].into(),
            _ => std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
        }
    })
}

/// Bytes of the stack a fatal error's report runs on.
const FATAL_STACK: usize = 4 << 20;

static FATAL_STACK_TOP: OnceLock<usize> = OnceLock::new();

/// Maps the fatal-report stack, once (before any goroutine runs: `block_on`).
pub(crate) fn reserve_fatal_stack() {
    FATAL_STACK_TOP.get_or_init(|| {
        // SAFETY: a fresh anonymous private mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                FATAL_STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            0
        } else {
            p as usize + FATAL_STACK
        }
    });
}

/// Runs `f` on the fatal-report stack (if it was reserved), then comes back.
pub(crate) fn on_fatal_stack(f: &mut dyn FnMut()) {
    let top = FATAL_STACK_TOP.get().copied().unwrap_or(0);
    if top == 0 {
        return f();
    }
    extern "C" fn trampoline(f: *mut &mut dyn FnMut()) {
        // SAFETY: `f` points at the caller's `&mut dyn FnMut`, live until we return.
        unsafe { (*f)() }
    }
    let mut f = f;
    let fp: *mut &mut dyn FnMut() = &mut f;
    // SAFETY: `top` is the 16-byte-aligned end of a mapping used by nobody else (the first
    // fatal error is the only user); r12 is callee-saved, so it holds our RSP across the
    // call, and the trampoline returns normally (a panic cannot unwind out of an extern "C"
    // function: it aborts).
    unsafe {
        core::arch::asm!(
            "mov r12, rsp",
            "mov rsp, {top}",
            "call {t}",
            "mov rsp, r12",
            top = in(reg) top,
            t = sym trampoline,
            in("rdi") fp,
            out("r12") _,
            clobber_abi("C"),
        )
    };
}

/// The write end of the SIGQUIT pipe (-1: not set up).
static QUIT_PIPE: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_sigquit(_sig: libc::c_int) {
    let fd = QUIT_PIPE.load(core::sync::atomic::Ordering::Relaxed);
    if fd >= 0 {
        let b = 1u8;
        // SAFETY: write(2) on our pipe is async-signal-safe; the byte outlives the call.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
}

/// Go's SIGQUIT: installs, once, a handler and a thread that, when the signal comes, prints
/// `SIGQUIT: quit` and every goroutine of the running runtime to stderr, then exits with
/// status 2. A program that installed its own SIGQUIT handler first keeps it.
pub(crate) fn install_sigquit() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let mut old: libc::sigaction = {
            // SAFETY: a zeroed sigaction is a valid value for sigaction to fill in.
            unsafe { core::mem::zeroed() }
        };
        // SAFETY: reads the current action into `old`.
        unsafe { libc::sigaction(libc::SIGQUIT, core::ptr::null(), &mut old) };
        if old.sa_sigaction != libc::SIG_DFL {
            return;
        }
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 writes two descriptors into the array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return;
        }
        QUIT_PIPE.store(fds[1], core::sync::atomic::Ordering::Relaxed);
        let read_fd = fds[0];
        let started = std::thread::Builder::new()
            .name("rt-sigquit".into())
            .spawn(move || {
                let mut b = 0u8;
                // SAFETY: reads one byte from our pipe into `b`.
                while unsafe { libc::read(read_fd, (&mut b as *mut u8).cast(), 1) } != 1 {}
                let mut out = String::from("SIGQUIT: quit\n\n");
                crate::traceback::dump_goroutines(&mut out);
                std::eprint!("{out}");
                std::process::exit(2);
            });
        if started.is_err() {
            return;
        }
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value to fill in.
        let mut sa: libc::sigaction = unsafe { core::mem::zeroed() };
        let h: extern "C" fn(libc::c_int) = on_sigquit;
        sa.sa_sigaction = h as usize;
        sa.sa_flags = libc::SA_RESTART;
        // SAFETY: installs a handler that only writes to a pipe.
        unsafe { libc::sigaction(libc::SIGQUIT, &sa, core::ptr::null_mut()) };
    });
}

/// Adds, once, Go's traceback of the panicking goroutine to the panic message: after the
/// previous hook (std's `thread '…' panicked at …`), `goroutine N [running]:` and its frames.
/// Panics outside goroutines print as before.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            prev(info);
            let lvl = crate::traceback::level();
            if lvl == crate::traceback::Level::None {
                return;
            }
            let m = crate::m::getm();
            // SAFETY: this thread's M (or null); its running G is live while it panics.
            if let Some(g) = unsafe { crate::platform::running_g(m) } {
                let mut out = String::from("\n");
                let _ = crate::traceback::write_goroutine(
                    &mut out,
                    g,
                    Some(crate::traceback::Start::caller()),
                    lvl,
                );
                std::eprint!("{out}");
            }
        }));
    });
}

use std::boxed::Box;
use std::string::ToString;

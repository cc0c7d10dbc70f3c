//! The goroutine dump on demand: Ctrl-\ (byte 0x1c, the terminal's SIGQUIT key) typed on the
//! serial console prints every goroutine's traceback and Go's `scheddetail` lines, and the
//! kernel carries on. Go's SIGQUIT prints the same and then exits; a kernel has nothing to
//! exit to, and a dump that keeps it running is what a student watching it wants.
//!
//! Where it runs: the serial interrupt, on the CPU the I/O APIC routes COM1 to (CPU 0), with
//! interrupts off. So it takes no lock it would wait for: the G and M lists are tried
//! (`try_peek`), the console is re-entrant on its own CPU. The goroutine the interrupt
//! stopped is walked from the interrupted registers; one running on another CPU is reported
//! as Go does (`goroutine running on other CPU; stack unavailable`); parked and runnable ones
//! from their gobufs. A parked goroutine that another CPU resumes during the dump may show
//! stale frames (Go's dump is as racy for a running program); the walk still reads only that
//! goroutine's own stack.

use rt_core::traceback::Start;

/// The byte Ctrl-\ sends.
pub const CTRL_BACKSLASH: u8 = 0x1c;

/// Prints the dump. `at`: where the interrupt stopped the code running on this CPU.
pub fn on_demand(at: Option<Start>) {
    crate::dev::console::with_writer(|w| {
        let _ = writeln!(
            w,
            "\nSIGQUIT: goroutine dump (Ctrl-\\; the kernel carries on)\n"
        );
        let ran = super::run::with_current(|sched| {
            rt_core::traceback::dump_goroutines_at(w, sched, at);
            let _ = w.write_char('\n');
            super::tick::write_schedtrace(sched, w, true);
        });
        if ran.is_none() {
            let _ = writeln!(w, "no runtime is running");
        }
        let _ = writeln!(w, "end of goroutine dump");
    });
}

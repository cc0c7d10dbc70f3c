//! Interrupt-driven serial input that parks the goroutine, not the M: the kernel's
//! counterpart of Go's netpoller (netpoll.go, with epoll replaced by one UART interrupt).
//!
//! COM1's "received data available" interrupt (16550 IER bit 0; the line is ISA IRQ 4, routed
//! through the I/O APIC to the bootstrap processor) runs [`irq`]: it moves every received byte
//! into a ring and, once a line is complete, hands the goroutine waiting in [`read_line`] to
//! the scheduler: it moves it to `READY` and breaks the poller's sleep
//! (`Sched::netpoll_break`). The scheduler picks it up through `Platform::netpoll`
//! (rt/platform.rs), as Go's `findRunnable` picks up `netpoll`'s list. Meanwhile the waiting
//! goroutine holds no M: other goroutines run, and a CPU with nothing to do halts
//! (`Platform::poll_sleep`).
//!
//! No locks in the interrupt handler (it may interrupt a goroutine that is inside
//! `read_line`): the ring is single-producer (the handler, on one CPU) / single-consumer
//! (readers take turns on a parking `Mutex`), and the hand-off of the waiter is a Dekker pair:
//! the reader publishes `WAITER` then re-reads `LINES`; the handler bumps `LINES` then takes
//! `WAITER`. With sequentially consistent accesses one of them sees the other, so a line is
//! never missed and the goroutine is readied exactly once (whoever takes `WAITER`).
//!
//! Hardware facts: 16550 registers (National Semiconductor PC16550D datasheet, Table 2): RBR
//! at base+0 (read), IER base+1 (bit 0: received data interrupt), MCR base+4 (bit 3: OUT2,
//! which gates the interrupt line on PCs), LSR base+5 (bit 0: data ready). IRQ 4 is COM1's
//! ISA line; the MADT's interrupt source overrides map it to a GSI (QEMU: identity).

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use rt_core::platform::{WaitReason, G};
use x86_64::instructions::port::Port;

/// COM1's base port (console.rs).
const COM1: u16 = 0x3f8;
const RBR: u16 = COM1;
const IER: u16 = COM1 + 1;
const MCR: u16 = COM1 + 4;
const LSR: u16 = COM1 + 5;
const IER_RX_AVAILABLE: u8 = 1 << 0;
const MCR_OUT2: u8 = 1 << 3;
const LSR_DATA_READY: u8 = 1 << 0;

/// The ISA IRQ of COM1 (PC/AT).
pub const COM1_IRQ: u8 = 4;
/// The IDT vector serial input arrives on.
pub const SERIAL_VECTOR: u8 = 0x24;

/// What a test kernel prints when it waits for input: the test harness (xtask) sends its
/// `@input` text once it sees this.
pub const WAITING_MARKER: &str = "[serial: waiting for input]";

const RING: usize = 4096;

struct Ring {
    buf: UnsafeCell<[u8; RING]>,
    /// Bytes written (by the handler only).
    tail: AtomicUsize,
    /// Bytes consumed (by the reader holding `READER` only).
    head: AtomicUsize,
}

// SAFETY: one producer writes `buf[tail % RING]` before publishing `tail` (release); one
// consumer reads `buf[head % RING]` for head < tail (acquire) before publishing `head`; the
// producer never writes a slot the consumer has not released (tail - head < RING).
unsafe impl Sync for Ring {}

static RX: Ring = Ring {
    buf: UnsafeCell::new([0; RING]),
    tail: AtomicUsize::new(0),
    head: AtomicUsize::new(0),
};
/// Complete lines received (newlines seen), ever.
static LINES: AtomicU64 = AtomicU64::new(0);
/// Lines consumed by readers, ever.
static LINES_TAKEN: AtomicU64 = AtomicU64::new(0);
/// The goroutine parked in `read_line`, waiting for a line.
static WAITER: AtomicPtr<G> = AtomicPtr::new(core::ptr::null_mut());
/// A goroutine the interrupt readied, for the scheduler's `netpoll`.
static READY: AtomicPtr<G> = AtomicPtr::new(core::ptr::null_mut());
/// Bytes dropped because the ring was full.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Where a line longer than the ring was cut (a `tail` position), or `NO_CUT`: the handler
/// cuts a line that fills the whole ring, so that its reader wakes (with
/// [`ReadError::TooLong`]) instead of waiting for a line end that can never fit.
static CUT: AtomicUsize = AtomicUsize::new(NO_CUT);
const NO_CUT: usize = usize::MAX;
/// The handler is dropping the rest of a cut line, up to its end (handler only).
static DISCARDING: AtomicBool = AtomicBool::new(false);
/// Interrupts taken (a statistic for tests).
pub static IRQS: AtomicU64 = AtomicU64::new(0);
static ENABLED: AtomicBool = AtomicBool::new(false);
/// Readers take turns.
static READER: rt_core::sync::Mutex<()> = rt_core::sync::Mutex::new(());

/// Turns on COM1's receive interrupt and routes it to `dest_apic` through the I/O APIC entry
/// for `gsi`. The IDT entry for [`SERIAL_VECTOR`] is installed by x86/interrupts.rs.
pub fn init(gsi: u32, dest_apic: u32) {
    crate::dev::ioapic::route(gsi, SERIAL_VECTOR, dest_apic);
    // SAFETY: COM1 is the kernel's own UART; setting IER bit 0 and MCR's OUT2 only enables its
    // receive interrupt (the console's transmit path polls LSR and is unaffected).
    unsafe {
        let mut mcr = Port::<u8>::new(MCR);
        let v = mcr.read();
        mcr.write(v | MCR_OUT2);
        Port::<u8>::new(IER).write(IER_RX_AVAILABLE);
    }
    ENABLED.store(true, Ordering::SeqCst);
    // Bytes that arrived before the interrupt was on.
    irq_drain(None);
}

/// Whether serial input is interrupt-driven (the I/O APIC was found and routed).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::SeqCst)
}

fn irq_drain(at: Option<rt_core::traceback::Start>) {
    // SAFETY: reading LSR and RBR consumes received bytes; only this handler (on the one CPU
    // the I/O APIC delivers to, with interrupts off) reads them.
    unsafe {
        let mut lsr = Port::<u8>::new(LSR);
        let mut rbr = Port::<u8>::new(RBR);
        let mut newlines = 0;
        while lsr.read() & LSR_DATA_READY != 0 {
            let b = rbr.read();
            if b == crate::rt::dump::CTRL_BACKSLASH {
                // Not input: a request for the goroutine dump (rt/dump.rs), made right away,
                // before the bytes after it can ready a reader and change what it shows.
                crate::rt::dump::on_demand(at);
                continue;
            }
            let is_end = b == b'\n' || b == b'\r';
            if DISCARDING.load(Ordering::Relaxed) {
                // The rest of a line that was cut: dropped, its end included.
                DROPPED.fetch_add(1, Ordering::Relaxed);
                if is_end {
                    DISCARDING.store(false, Ordering::Relaxed);
                }
                continue;
            }
            let tail = RX.tail.load(Ordering::Relaxed);
            if tail - RX.head.load(Ordering::Acquire) >= RING {
                DROPPED.fetch_add(1, Ordering::Relaxed);
                if LINES.load(Ordering::SeqCst) == LINES_TAKEN.load(Ordering::SeqCst)
                    && CUT.load(Ordering::SeqCst) == NO_CUT
                {
                    // The whole ring is one unfinished line: cut it here, count it as a line
                    // (its reader wakes), and drop the rest of it.
                    CUT.store(tail, Ordering::SeqCst);
                    DISCARDING.store(!is_end, Ordering::Relaxed);
                    newlines += 1;
                }
                continue;
            }
            (*RX.buf.get())[tail % RING] = b;
            RX.tail.store(tail + 1, Ordering::Release);
            if b == b'\n' || b == b'\r' {
                newlines += 1;
            }
        }
        if newlines > 0 {
            LINES.fetch_add(newlines, Ordering::SeqCst);
            let gp = WAITER.swap(core::ptr::null_mut(), Ordering::SeqCst);
            if !gp.is_null() {
                READY.store(gp, Ordering::SeqCst);
                crate::rt::run::netpoll_break();
            }
        }
    }
}

/// The interrupt handler's body (x86/interrupts.rs): drain the UART, hand over a waiter.
/// `at`: where the interrupt stopped this CPU (for a Ctrl-\ dump).
pub fn irq(at: rt_core::traceback::Start) {
    IRQS.fetch_add(1, Ordering::Relaxed);
    irq_drain(Some(at));
}

/// For `Platform::netpoll`: the goroutine the interrupt readied, once.
pub fn netpoll(ready: &mut dyn FnMut(*mut G)) {
    let gp = READY.swap(core::ptr::null_mut(), Ordering::SeqCst);
    if !gp.is_null() {
        ready(gp);
    }
}

/// For `Platform::netpoll_ready`.
pub fn ready() -> bool {
    !READY.load(Ordering::SeqCst).is_null()
}

/// For `Platform::io_waiting`: a goroutine is parked for input (or about to be readied).
pub fn waiting() -> bool {
    !WAITER.load(Ordering::SeqCst).is_null() || ready()
}

fn line_available() -> bool {
    LINES.load(Ordering::SeqCst) > LINES_TAKEN.load(Ordering::SeqCst)
}

/// g0's side of parking in `read_line` (Go's `netpollblockcommit`): publish the waiter, then
/// look again; if a line came in meanwhile and the handler did not take the waiter, take it
/// back and do not park.
fn park_commit(gp: *mut G, _: usize) -> bool {
    WAITER.store(gp, Ordering::SeqCst);
    if line_available()
        && WAITER
            .compare_exchange(
                gp,
                core::ptr::null_mut(),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    {
        return false;
    }
    true
}

/// Takes one line (without its end) from the ring. The caller holds `READER` and has seen
/// `line_available()`. A line the handler cut (longer than the ring) is taken whole and
/// reported as [`ReadError::TooLong`].
fn take_line() -> Result<String, ReadError> {
    let mut out = Vec::new();
    loop {
        let head = RX.head.load(Ordering::Relaxed);
        if head == CUT.load(Ordering::SeqCst) {
            CUT.store(NO_CUT, Ordering::SeqCst);
            LINES_TAKEN.fetch_add(1, Ordering::SeqCst);
            return Err(ReadError::TooLong { kept: out.len() });
        }
        if head == RX.tail.load(Ordering::Acquire) {
            break;
        }
        // SAFETY: head < tail: the producer wrote this slot and will not again until we
        // publish head + 1 (Ring's contract).
        let b = unsafe { (*RX.buf.get())[head % RING] };
        RX.head.store(head + 1, Ordering::Release);
        if b == b'\n' || b == b'\r' {
            LINES_TAKEN.fetch_add(1, Ordering::SeqCst);
            // "\r\n" is one line end: skip the '\n' of a pair (it counted as a line, too).
            if b == b'\r' {
                let h = RX.head.load(Ordering::Relaxed);
                if h != RX.tail.load(Ordering::Acquire)
                    // SAFETY: as above.
                    && unsafe { (*RX.buf.get())[h % RING] } == b'\n'
                {
                    RX.head.store(h + 1, Ordering::Release);
                    LINES_TAKEN.fetch_add(1, Ordering::SeqCst);
                }
            }
            break;
        }
        out.push(b);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Why `read_line` returned no line.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// No I/O APIC (or no ACPI tables): serial input is not interrupt-driven here.
    NoInterrupt,
    /// Called outside a goroutine (nothing to park).
    NotAGoroutine,
    /// The line was longer than the input ring: its first `kept` bytes were read and dropped
    /// with the rest, up to its end (Go's `bufio.ErrTooLong`, "token too long").
    TooLong { kept: usize },
}

impl core::fmt::Display for ReadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReadError::NoInterrupt => write!(f, "serial input: no interrupt (no I/O APIC)"),
            ReadError::NotAGoroutine => write!(f, "serial input: read_line outside a goroutine"),
            ReadError::TooLong { kept } => write!(
                f,
                "serial input: line too long (more than the {RING}-byte input buffer; {kept} bytes read, the line dropped)"
            ),
        }
    }
}

/// Reads one line from COM1 (Go: `bufio.Reader.ReadString('\n')` on a pollable file). While no
/// line is complete, the calling goroutine parks (`IO wait`): its M runs other goroutines, or
/// halts. Lines end at `\n`, `\r` or `\r\n`.
pub fn read_line() -> Result<String, ReadError> {
    if !enabled() {
        return Err(ReadError::NoInterrupt);
    }
    if rt_core::platform::getg().is_null() {
        return Err(ReadError::NotAGoroutine);
    }
    let _turn = READER.lock();
    // A line may need several interrupts (an "\r\n" split across two): loop.
    while !line_available() {
        rt_core::platform::gopark(Some(park_commit), 0, WaitReason::IoWait);
    }
    take_line()
}

/// For tests: yields until a goroutine is parked in [`read_line`] (10 s of TSC time at most,
/// then a panic that says so), so that input typed afterwards finds it waiting.
pub fn until_reader_parked() {
    let t0 = crate::x86::tsc::nanos();
    while !waiting() {
        rt_core::gosched();
        assert!(
            crate::x86::tsc::nanos() - t0 < 10_000_000_000,
            "the reader never parked"
        );
    }
}

/// Bytes dropped because the ring was full.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

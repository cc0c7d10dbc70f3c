//! The local APIC. Intel SDM Vol. 3A chapter 11 ("Advanced Programmable Interrupt
//! Controller"); register offsets from Table 11-1.
//!
//! Two modes, chosen once on the bootstrap processor and then used by every CPU:
//! - **x2APIC** when CPUID says the CPU has it (SDM §11.12.1: CPUID.01H:ECX[21]): registers are
//!   MSRs (`0x800 + offset / 16`, Table 11-6), APIC IDs are 32 bits, and an IPI is one 64-bit
//!   write of the ICR with no delivery-status wait. Each CPU switches itself over in [`enable`]
//!   (IA32_APIC_BASE is per CPU). KVM offers it (`cargo xtask qemu --accel kvm`).
//! - **xAPIC** otherwise (QEMU 7.2's TCG does not emulate x2APIC): memory-mapped registers;
//!   every CPU's LAPIC answers at the same physical address (0xFEE00000 by default, from the
//!   MADT), each CPU seeing its own. The page is mapped uncached at [`LAPIC_VIRT`].
//!
//! The kernel argument `x2apic=0` forces xAPIC mode on a CPU that has both.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use x86_64::registers::model_specific::Msr;
use x86_64::{PhysAddr, VirtAddr};

/// Where the LAPIC's register page is mapped (a lower-half address nothing else uses).
pub const LAPIC_VIRT: u64 = 0x0000_4000_0000_0000;

// Register offsets (Intel SDM Vol. 3A, Table 11-1 "Local APIC Register Address Map").
const REG_ID: u32 = 0x020;
const REG_EOI: u32 = 0x0b0;
const REG_SVR: u32 = 0x0f0;
const REG_ESR: u32 = 0x280;
const REG_ICR_LOW: u32 = 0x300;
const REG_ICR_HIGH: u32 = 0x310;
const REG_LVT_TIMER: u32 = 0x320;
const REG_TIMER_INITIAL: u32 = 0x380;
const REG_TIMER_CURRENT: u32 = 0x390;
const REG_TIMER_DIVIDE: u32 = 0x3e0;

/// LVT timer mode bits 18:17 = 01: periodic (SDM §11.5.4, Figure 11-8).
const TIMER_PERIODIC: u32 = 1 << 17;
/// LVT mask bit (SDM §11.5.1).
const LVT_MASKED: u32 = 1 << 16;
/// Divide configuration 0b0011: divide by 16 (SDM §11.5.4, Figure 11-10).
const TIMER_DIVIDE_BY_16: u32 = 0b0011;

/// LAPIC timer ticks (after the divider) per millisecond, measured on the BSP.
static TIMER_TICKS_PER_MS: AtomicU64 = AtomicU64::new(0);

/// SVR bit 8: APIC software enable (SDM §11.9).
const SVR_ENABLE: u32 = 1 << 8;
/// The spurious-interrupt vector (its low 4 bits must be 1s on old CPUs: 0xff is customary).
pub const SPURIOUS_VECTOR: u8 = 0xff;

// ICR fields (SDM §11.6.1, Figure 11-12).
const ICR_DELIVERY_INIT: u32 = 0b101 << 8;
const ICR_DELIVERY_STARTUP: u32 = 0b110 << 8;
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
const ICR_SEND_PENDING: u32 = 1 << 12;

static BASE: AtomicU64 = AtomicU64::new(0);

/// Which mode [`init`] chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    XApic = 1,
    X2Apic = 2,
}

impl Mode {
    /// How the boot banner and the test runner name it (`apic: x2APIC (MSRs, 32-bit IDs) mode`;
    /// xtask's harness looks for `apic: x2APIC` when a test's CPU model asks for x2APIC).
    pub fn describe(self) -> &'static str {
        match self {
            Mode::X2Apic => "x2APIC (MSRs, 32-bit IDs)",
            Mode::XApic => "xAPIC (memory-mapped)",
        }
    }
}

static MODE: AtomicU8 = AtomicU8::new(0);

/// The mode in use, once [`init`] has run.
pub fn try_mode() -> Option<Mode> {
    match MODE.load(Ordering::Relaxed) {
        1 => Some(Mode::XApic),
        2 => Some(Mode::X2Apic),
        _ => None,
    }
}

/// The mode in use (panics before [`init`]).
pub fn mode() -> Mode {
    try_mode().expect("apic::init has not run")
}

/// IA32_APIC_BASE (SDM Vol. 4, Table 2-2; §11.4.4): bit 11 enables the APIC, bit 10 (EXTD)
/// selects x2APIC mode.
const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_EXTD: u64 = 1 << 10;
/// The first x2APIC register MSR (SDM §11.12.1.2, Table 11-6: MSR = 0x800 + MMIO offset >> 4).
const X2APIC_MSR_BASE: u32 = 0x800;

/// Whether the CPU has x2APIC mode (SDM §11.12.1: CPUID.01H:ECX[21]).
pub fn cpu_has_x2apic() -> bool {
    core::arch::x86_64::__cpuid(1).ecx & (1 << 21) != 0
}

fn reg(offset: u32) -> *mut u32 {
    let base = BASE.load(Ordering::Relaxed);
    assert!(base != 0, "apic::init has not run");
    (base + offset as u64) as *mut u32
}

fn read(offset: u32) -> u32 {
    if mode() == Mode::X2Apic {
        // SAFETY: in x2APIC mode every register in Table 11-6 is a readable MSR at this index.
        return unsafe { Msr::new(X2APIC_MSR_BASE + (offset >> 4)).read() } as u32;
    }
    // SAFETY: the register page is mapped (init) and `offset` is a defined register.
    unsafe { core::ptr::read_volatile(reg(offset)) }
}

fn write(offset: u32, value: u32) {
    if mode() == Mode::X2Apic {
        // SAFETY: as in `read`, for the writable registers this module writes.
        unsafe { Msr::new(X2APIC_MSR_BASE + (offset >> 4)).write(value as u64) };
        return;
    }
    // SAFETY: as in `read`; registers are written with 32-bit stores as the SDM requires.
    unsafe { core::ptr::write_volatile(reg(offset), value) }
}

/// Masks every line of the two legacy 8259 PICs (data ports 0x21 and 0xa1): interrupts come
/// through the APICs only (ACPI's MADT `PCAT_COMPAT` flag says the PICs exist and must be
/// masked).
pub fn mask_legacy_pic() {
    // SAFETY: 0x21 and 0xa1 are the PICs' interrupt-mask registers; writing all ones masks.
    unsafe {
        x86_64::instructions::port::Port::<u8>::new(0x21).write(0xff);
        x86_64::instructions::port::Port::<u8>::new(0xa1).write(0xff);
    }
}

/// Chooses the mode, maps the register page for xAPIC mode (once, on the bootstrap processor)
/// and enables this CPU's LAPIC. `allow_x2apic` false forces xAPIC mode.
pub fn init(phys: u64, allow_x2apic: bool) -> Mode {
    let mode = if allow_x2apic && cpu_has_x2apic() {
        Mode::X2Apic
    } else {
        crate::mm::paging::map_mmio(VirtAddr::new(LAPIC_VIRT), PhysAddr::new(phys))
            .expect("cannot map the local APIC");
        BASE.store(LAPIC_VIRT, Ordering::Relaxed);
        Mode::XApic
    };
    MODE.store(mode as u8, Ordering::Relaxed);
    enable();
    mode
}

/// Enables the executing CPU's LAPIC in the chosen mode (software enable + spurious vector).
pub fn enable() {
    if mode() == Mode::X2Apic {
        // SDM §11.12.5: from xAPIC to x2APIC by setting EXTD with EN already set (firmware
        // leaves EN set; setting both at once from the disabled state is also allowed).
        let mut base = Msr::new(IA32_APIC_BASE);
        // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC; only the mode bits change,
        // and the CPU has x2APIC (checked in init on the BSP; all CPUs are alike).
        unsafe {
            let v = base.read();
            if v & APIC_BASE_EXTD == 0 {
                base.write(v | APIC_BASE_ENABLE);
                base.write(v | APIC_BASE_ENABLE | APIC_BASE_EXTD);
            }
        }
    }
    write(REG_SVR, SVR_ENABLE | SPURIOUS_VECTOR as u32);
}

/// The executing CPU's local APIC ID (SDM §11.4.6: bits 31..24 in xAPIC mode; the whole
/// 32-bit register in x2APIC mode, §11.12.5.1).
pub fn id() -> u32 {
    match mode() {
        Mode::XApic => read(REG_ID) >> 24,
        Mode::X2Apic => read(REG_ID),
    }
}

/// Measures the LAPIC timer's rate against the PIT (10 ms), on the BSP. All CPUs' LAPIC timers
/// run from the same bus clock, so the APs use the same figure.
pub fn calibrate_timer() -> u64 {
    write(REG_TIMER_DIVIDE, TIMER_DIVIDE_BY_16);
    write(REG_LVT_TIMER, LVT_MASKED);
    write(REG_TIMER_INITIAL, u32::MAX);
    crate::dev::pit::delay_us(10_000);
    let elapsed = u32::MAX - read(REG_TIMER_CURRENT);
    write(REG_TIMER_INITIAL, 0);
    let per_ms = (elapsed as u64 / 10).max(1);
    TIMER_TICKS_PER_MS.store(per_ms, Ordering::Relaxed);
    per_ms
}

/// Starts the executing CPU's LAPIC timer: `vector` every `period_ms` milliseconds.
pub fn start_timer(vector: u8, period_ms: u64) {
    let per_ms = TIMER_TICKS_PER_MS.load(Ordering::Relaxed);
    assert!(per_ms > 0, "apic::calibrate_timer has not run");
    // The count is stopped first (a write of 0 stops the timer in either mode, SDM §11.5.4):
    // after a one-shot (`one_shot_in`) the initial count may be as small as 1, and switching
    // the LVT to periodic before replacing it made a timer that fired every 16 bus cycles.
    // Under QEMU that storm kept the main loop running APIC timer callbacks with the big
    // QEMU lock held, so no vCPU could make its next MMIO access, this one's write of the
    // new count included: the soak at -smp 4 hung with one host thread busy and every
    // guest CPU stopped (found with gdb on QEMU itself).
    write(REG_TIMER_INITIAL, 0);
    write(REG_TIMER_DIVIDE, TIMER_DIVIDE_BY_16);
    write(REG_LVT_TIMER, TIMER_PERIODIC | vector as u32);
    write(
        REG_TIMER_INITIAL,
        (per_ms * period_ms).min(u32::MAX as u64) as u32,
    );
}

/// Makes the executing CPU's next timer interrupt come in `ns` nanoseconds (at most one tick
/// period away: the tick is also sysmon's), one-shot (LVT timer mode 00, SDM §11.5.4): for
/// an idle CPU that sleeps until a goroutine timer. [`start_timer`] restores the periodic tick.
/// Returns false if the timer is not calibrated (nothing changed).
pub fn one_shot_in(vector: u8, ns: u64, period_ms: u64) -> bool {
    let per_ms = TIMER_TICKS_PER_MS.load(Ordering::Relaxed);
    if per_ms == 0 {
        return false;
    }
    let ticks = (ns.min(period_ms * 1_000_000) * per_ms / 1_000_000).clamp(1, u32::MAX as u64);
    // Stopped while the mode changes, as in `start_timer`.
    write(REG_TIMER_INITIAL, 0);
    write(REG_LVT_TIMER, vector as u32);
    write(REG_TIMER_INITIAL, ticks as u32);
    true
}

/// Signals end of interrupt.
pub fn eoi() {
    write(REG_EOI, 0);
}

fn send_ipi(apic_id: u32, low: u32) {
    if mode() == Mode::X2Apic {
        // One 64-bit write: destination in bits 63:32; no delivery-status bit to wait on
        // (SDM §11.12.9, "ICR Operation in x2APIC Mode").
        // SAFETY: MSR 0x830 is the x2APIC ICR; `low` is a well-formed command.
        unsafe {
            Msr::new(X2APIC_MSR_BASE + (REG_ICR_LOW >> 4))
                .write((apic_id as u64) << 32 | low as u64)
        };
        return;
    }
    // xAPIC mode takes two writes, destination first (SDM §11.6.1: writing the low half sends).
    // An interrupt handler on this CPU that sends an IPI between them (a wake-up from the timer
    // or serial interrupt) would overwrite the destination, and our IPI would go to its CPU:
    // the writes happen with interrupts off, as Linux's `default_send_IPI_single_phys` does.
    x86_64::instructions::interrupts::without_interrupts(|| {
        write(REG_ESR, 0);
        write(REG_ICR_HIGH, apic_id << 24);
        write(REG_ICR_LOW, low);
        while read(REG_ICR_LOW) & ICR_SEND_PENDING != 0 {
            core::hint::spin_loop();
        }
    })
}

/// Sends an INIT IPI (assert) to `apic_id` (SDM §9.4.4.1, "Typical BSP Initialization Sequence").
pub fn send_init(apic_id: u32) {
    send_ipi(apic_id, ICR_DELIVERY_INIT | ICR_LEVEL_ASSERT);
}

/// Sends a STARTUP IPI: the AP starts in real mode at `page << 12`.
pub fn send_startup(apic_id: u32, page: u8) {
    send_ipi(
        apic_id,
        ICR_DELIVERY_STARTUP | ICR_LEVEL_ASSERT | page as u32,
    );
}

/// Sends a fixed interrupt with `vector` to `apic_id`.
pub fn send_fixed(apic_id: u32, vector: u8) {
    send_ipi(apic_id, ICR_LEVEL_ASSERT | vector as u32);
}

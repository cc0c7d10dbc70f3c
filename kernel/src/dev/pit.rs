//! Busy-wait delays from the 8254 Programmable Interval Timer (PIT), channel 2, polled.
//!
//! The PIT counts down at 1 193 182 Hz on every PC, emulated or not, so it is the known clock
//! for the SDM's INIT-SIPI-SIPI delays and for calibrating the LAPIC timer and the TSC. Channel
//! 2's gate and output are wired to port 0x61 (bit 0 gate, bit 5 output): in mode 0 ("interrupt
//! on terminal count") the output goes high when the count reaches zero. Ports and modes:
//! Intel 8254 data sheet; the PC/AT wiring of port 0x61.

use x86_64::instructions::port::Port;

use crate::sync::IrqLock;

pub const PIT_HZ: u64 = 1_193_182;
const CHANNEL2_DATA: u16 = 0x42;
const COMMAND: u16 = 0x43;
const GATE_PORT: u16 = 0x61;

/// One user of the PIT at a time.
static PIT: IrqLock<()> = IrqLock::new(());

/// Waits at least `us` microseconds (at most ~54 ms per call; longer waits loop).
pub fn delay_us(mut us: u64) {
    while us > 0 {
        let chunk = us.min(50_000);
        one_shot(PIT_HZ * chunk / 1_000_000);
        us -= chunk;
    }
}

/// Lets the PIT count down `ticks` (≤ 65535) and waits until it reaches zero.
fn one_shot(ticks: u64) {
    let ticks = ticks.clamp(1, 0xffff) as u16;
    let _g = PIT.lock();
    // SAFETY: ports 0x42, 0x43 and 0x61 are the PIT and the PC's system control port; only
    // this module drives them, under the lock.
    unsafe {
        let mut gate = Port::<u8>::new(GATE_PORT);
        let g = gate.read();
        // Gate off, speaker off, while programming.
        gate.write(g & !0b11);
        // Channel 2, access lobyte/hibyte, mode 0, binary.
        Port::<u8>::new(COMMAND).write(0b1011_0000);
        let mut data = Port::<u8>::new(CHANNEL2_DATA);
        data.write(ticks as u8);
        data.write((ticks >> 8) as u8);
        // Gate on: counting starts.
        gate.write((g & !0b10) | 0b1);
        while gate.read() & 0b10_0000 == 0 {
            core::hint::spin_loop();
        }
    }
}

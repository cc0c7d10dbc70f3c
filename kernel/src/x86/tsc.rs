//! The time-stamp counter as the monotonic clock (rt-core's `nanotime`), calibrated at boot
//! against the PIT. Intel SDM Vol. 3B §18.17 ("Time-Stamp Counter"). Under TCG the TSC runs at
//! an emulated rate, so times are emulated too (docs/platform.md): compare them only with each
//! other.

use core::sync::atomic::{AtomicU64, Ordering};

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);

#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is available on every x86_64 CPU and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Measures the TSC's rate over 20 ms of PIT time.
pub fn calibrate() -> u64 {
    let t0 = rdtsc();
    crate::dev::pit::delay_us(20_000);
    let hz = (rdtsc() - t0) * 50;
    TSC_HZ.store(hz.max(1), Ordering::Relaxed);
    TSC_AT_BOOT.store(t0, Ordering::Relaxed);
    hz
}

pub fn hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// TSC ticks as nanoseconds (0 before calibration).
pub fn ticks_to_nanos(ticks: u64) -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed);
    if hz == 0 {
        return 0;
    }
    ((ticks as u128 * 1_000_000_000) / hz as u128) as u64
}

/// Nanoseconds since calibration.
pub fn nanos() -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed).max(1);
    let ticks = rdtsc().saturating_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    ((ticks as u128 * 1_000_000_000) / hz as u128) as u64
}

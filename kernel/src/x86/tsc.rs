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

/// A wait's time limit that counts only the time the waiting CPU itself ran.
///
/// Under TCG the TSC follows the host's clock, so when the host stops our QEMU for a while (a
/// shared machine under load; a paused VM) a waiter sees a second pass in one step without
/// the CPU it waits for having had a chance to run. A gap between two looks longer than
/// [`Patience::GAP_NS`] is taken for such a stop and not counted; everything else is. A CPU
/// that truly never answers still exhausts the patience, only not during a stop of the host.
pub struct Patience {
    left_ns: u64,
    last: u64,
}

impl Patience {
    /// Gaps longer than this between two calls of [`Patience::exhausted`] are not counted:
    /// a waiting loop looks far more often than every 10 ms.
    pub const GAP_NS: u64 = 10_000_000;

    pub fn new(ns: u64) -> Patience {
        Patience {
            left_ns: ns,
            last: nanos(),
        }
    }

    /// Whether the limit has passed (call it on every turn of the waiting loop).
    pub fn exhausted(&mut self) -> bool {
        let now = nanos();
        let gap = now.saturating_sub(self.last);
        self.last = now;
        if gap <= Self::GAP_NS {
            self.left_ns = self.left_ns.saturating_sub(gap);
        }
        self.left_ns == 0
    }
}

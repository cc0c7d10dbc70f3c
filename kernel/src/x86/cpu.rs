//! Small facts about the CPU we run on: which one it is, and what is emulating it.

use core::fmt;

/// The initial local APIC ID of the executing CPU (CPUID leaf 1, EBX bits 31..24; Intel SDM
/// Vol. 2A, CPUID, "Initial APIC ID"). It needs no per-CPU data, so it works from the first
/// instruction on: the console records its lock's owner with it, and [`index`] falls back to
/// it on a CPU whose per-CPU data is not set up yet.
pub fn id() -> u32 {
    let r = core::arch::x86_64::__cpuid(1);
    r.ebx >> 24
}

/// The executing CPU's index (0 = bootstrap processor), from its per-CPU data; before that
/// exists, its initial APIC ID.
pub fn index() -> u32 {
    match crate::x86::percpu::current() {
        Some(p) => p.index as u32,
        None => id(),
    }
}

/// How the machine is being run, as far as the guest can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accelerator {
    Tcg,
    Kvm,
    /// Some other hypervisor signature (the 12 ASCII bytes of CPUID 0x4000_0000).
    Other([u8; 12]),
    /// No hypervisor bit: bare metal, or a hypervisor that hides itself.
    None,
}

impl fmt::Display for Accelerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Accelerator::Tcg => write!(f, "QEMU TCG (software emulation)"),
            Accelerator::Kvm => write!(f, "KVM"),
            Accelerator::Other(sig) => {
                write!(
                    f,
                    "hypervisor \"{}\"",
                    core::str::from_utf8(sig)
                        .unwrap_or("?")
                        .trim_end_matches('\0')
                )
            }
            Accelerator::None => write!(f, "none detected (no CPUID hypervisor bit)"),
        }
    }
}

/// Reads the hypervisor bit (CPUID.1:ECX bit 31, reserved for hypervisors by Intel SDM Vol. 2A)
/// and the vendor signature in CPUID leaf 0x4000_0000 (EBX, ECX, EDX): QEMU's TCG reports
/// "TCGTCGTCGTCG", KVM "KVMKVMKVM\0\0\0" (QEMU target/i386/cpu.c, Linux Documentation/virt/kvm/x86/cpuid.rst).
pub fn accelerator() -> Accelerator {
    // Leaf 0x4000_0000 is only read when the hypervisor bit says that leaf range exists.
    if core::arch::x86_64::__cpuid(1).ecx & (1 << 31) == 0 {
        return Accelerator::None;
    }
    let r = core::arch::x86_64::__cpuid(0x4000_0000);
    let mut sig = [0u8; 12];
    sig[0..4].copy_from_slice(&r.ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
    sig[8..12].copy_from_slice(&r.edx.to_le_bytes());
    match &sig {
        b"TCGTCGTCGTCG" => Accelerator::Tcg,
        b"KVMKVMKVM\0\0\0" => Accelerator::Kvm,
        _ => Accelerator::Other(sig),
    }
}

/// Stops this CPU for good: interrupts off, `hlt` forever.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

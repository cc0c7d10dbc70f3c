//! The CPU architecture: what every x86_64 core needs of its own and how the cores reach each
//! other. Descriptor tables ([`gdt`], [`interrupts`]), per-CPU data ([`percpu`], [`cpu`]),
//! the local APIC and its timer and IPIs ([`apic`]), the TSC clock ([`tsc`]), starting the
//! application processors ([`smp`]) and TLB shootdown ([`tlb`]).

pub mod apic;
pub mod cpu;
pub mod gdt;
pub mod interrupts;
pub mod percpu;
pub mod smp;
pub mod tlb;
pub mod tsc;

//! Machine-specific code: the register switch (Go's asm_amd64.s).

#[cfg(target_arch = "x86_64")]
pub mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use self::x86_64::*;

/// Where a suspended context resumes (Go's `gobuf`): what [`swtch`] saves and loads.
pub use crate::g::Gobuf;

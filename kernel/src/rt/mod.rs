//! The kernel as rt-core's platform: the [`platform::KernelPlatform`] the scheduler runs on
//! ([`platform`]), running a runtime with every CPU as an M ([`run`]), what the timer tick
//! does for it ([`tick`]), and the figures it reports to tests and the showcase ([`stats`]).

pub mod dump;
pub mod platform;
pub mod run;
pub mod stats;
pub mod tick;

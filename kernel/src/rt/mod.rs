//! (transitional: rt.rs moved here whole; the next commit splits it)

mod platform;
pub use platform::*;

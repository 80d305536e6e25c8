//! The injected clock (defined in `hifi_core::clock`, shared with the
//! application layer).

pub use hifi_core::clock::{Clock, ManualClock, SystemClock, wall_ms};

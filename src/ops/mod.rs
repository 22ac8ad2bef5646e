//! What operators read.

pub mod history;
pub mod telemetry;

//! The Flux side.

pub mod broker;
pub mod catalogue;
pub mod rlist;
pub mod snapshot;

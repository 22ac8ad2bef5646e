//! flux-metrics-api: the Kubernetes Custom and External Metrics APIs, served from inside a Flux
//! instance so that a HorizontalPodAutoscaler can scale a MiniCluster on Flux's own numbers.
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod custom;
pub mod ops;
pub mod server;
pub mod source;
pub mod util;

pub use server::run;

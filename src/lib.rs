//! flux-metrics-api: the Kubernetes Custom and External Metrics APIs, served from inside a Flux
//! instance so that a HorizontalPodAutoscaler can scale a MiniCluster on Flux's own numbers.
//!
//! # Layout
//! - [`cli`]: command-line flags and their validation into a [`cli::ServeConfig`].
//! - [`server`]: the accept loop (TLS, limits, graceful shutdown) around [`routes::router`].
//! - [`tls`]: certificates: files given, or generated at start.
//! - [`routes`]: HTTP handlers; [`path`] parses request paths and queries.
//! - [`broker`]: the one thread that owns the Flux handle and hands out [`snapshot::Snapshot`]s.
//! - [`snapshot`], [`rlist`]: pure parsing of broker answers into counts.
//! - [`metrics`]: the catalogue of metrics; [`k8s`], [`quantity`], [`selector`]: Kubernetes
//!   wire types and syntaxes; [`error`]: failures as Kubernetes `Status` answers.
//! - [`get`]: the `get` command, printing current values for a person in the pod.
//! - [`deploy`]: the `certs` and `manifests` commands, for registering the server with Kubernetes.
//! - [`telemetry`]: request counters and the Prometheus rendering of `/metrics`.
//! - [`openapi`]: the OpenAPI documents of our own paths.
#![forbid(unsafe_code)]

pub mod auth;
pub mod broker;
pub mod cli;
pub mod cluster;
pub mod custom;
pub mod deploy;
pub mod error;
pub mod get;
pub mod history;
pub mod k8s;
pub mod metrics;
pub mod openapi;
pub mod path;
pub mod quantity;
pub mod rlist;
pub mod routes;
pub mod selector;
pub mod server;
pub mod snapshot;
pub mod telemetry;
pub mod tls;

pub use server::run;

//! flux-metrics-api: the Kubernetes Custom and External Metrics APIs, served from inside a Flux
//! instance so that a HorizontalPodAutoscaler can scale a MiniCluster on Flux's own numbers.
//!
//! # Layout
//! Each folder is a layer and uses only the layers listed after it:
//! - [`cli`]: the command line — clap's flags ([`cli`]), their validation into each layer's
//!   settings ([`cli::config`]), and the commands besides `start`: [`cli::get`],
//!   [`cli::record`], [`cli::check`], [`cli::certs`], [`cli::manifests`] (YAML from template
//!   files, [`cli::manifests::template`]) and `completions`.
//! - [`server`]: the HTTPS front — [`run`] wires everything ([`server::config`] is what it is
//!   given), the accept loop with its limits and timeouts ([`server`]'s `listener`), TLS and its
//!   reload ([`server::tls`]), client-certificate trust ([`server::trust`]), the
//!   `extension-apiserver-authentication` ConfigMap ([`server::cluster`]) and the kubeconfig
//!   files it is read with from outside a pod ([`server::kubeconfig`]), and the one PKI module
//!   ([`server::pki`]).
//! - [`api`]: the Kubernetes surface — the routes ([`api::routes`]: discovery, health, metric
//!   values, telemetry, the dashboard, the rehearsal writes) and their state ([`api::state`]), request paths
//!   ([`api::path`]), label selectors ([`api::selector`]), Quantity text ([`api::quantity`]),
//!   wire types ([`api::types`]), described objects ([`api::objects`]), OpenAPI
//!   ([`api::openapi`]), who a request is for ([`api::auth`]) and `Status` errors
//!   ([`api::error`]).
//! - [`ops`]: what operators read — the value table of every series ([`ops::values`]), the
//!   Prometheus text ([`ops::prometheus`]), request counters ([`ops::telemetry`]), the
//!   in-memory history ([`ops::history`]) and the rehearsal overrides ([`ops::rehearsal`]).
//! - [`custom`]: `--custom-metric` scripts — loading ([`custom`]'s `load`), watching (`watch`),
//!   the sandbox (`sandbox`), the script API (`handle`), a run (`eval`), failures
//!   ([`custom::CustomError`]), and what `flux.rpc` reaches ([`custom::Host`]).
//! - [`source`]: the Flux side — the broker thread ([`source::broker`]: the handle and cache,
//!   its loop, live and replayed connections, simulated faults), parsed answers
//!   ([`source::snapshot`]), idsets, hostlists and Rv1 sets ([`source::rlist`]), the metric
//!   catalogue ([`source::catalogue`]), the state of each rank ([`source::ranks`]), and the
//!   drain-before-shrink decision ([`source::shrink`]).
//! - [`util`]: durations, byte sizes, excerpts, Kubernetes name rules, file stamps and this
//!   build's version ([`util::version`]), shared by all.
//!
//! The global allocator is the system's, counting per thread (`crates/alloc-count`), so that a
//! custom metric evaluation can be held to `--custom-metric-max-memory`.
#![forbid(unsafe_code)]

#[global_allocator]
static ALLOCATOR: alloc_count::Counting = alloc_count::Counting;

pub mod api;
pub mod cli;
pub mod custom;
pub mod ops;
pub mod server;
pub mod source;
pub mod util;

pub use server::run;

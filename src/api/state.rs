//! What every handler can reach: the broker, the custom metrics, the history, the counters and
//! the caches, behind one cheap clone.

use std::sync::Arc;

use crate::api::routes::discovery;
use crate::custom::{Custom, Host};
use crate::ops::history::History;
use crate::ops::rehearsal::Overrides;
use crate::ops::telemetry::Telemetry;
use crate::ops::values::Table;
use crate::source::broker::Broker;
use crate::source::snapshot::Snapshot;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`].
pub struct Inner {
    /// The broker thread's handle.
    pub broker: Broker,
    /// `--api-path`, when it differs from the standard v1beta2 root.
    pub api_alias: Option<String>,
    /// Request counters, for `/metrics`.
    pub telemetry: Telemetry,
    /// The `--custom-metric` scripts, if any.
    pub custom: Option<Arc<Custom>>,
    /// Recent values of every metric.
    pub history: Arc<History>,
    /// The bearer token `/metrics`, `/api/v1/*` and `/ui` require, if any.
    pub api_token: Option<String>,
    /// Serialized discovery documents.
    pub discovery: discovery::DiscoveryCache,
    /// What the drain-before-shrink loop is doing, when it runs.
    pub shrink: Option<crate::source::shrink::driver::Status>,
    /// The rehearsal overrides, when `--allow-writes` allows them.
    pub overrides: Option<Arc<Overrides>>,
    /// Serialized metric answers of the current snapshot.
    pub answers: crate::api::answers::AnswerCache,
}

impl AppState {
    /// State for a router.
    pub fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }

    /// What custom metric scripts call for `flux.rpc`: the broker thread.
    pub fn host(&self) -> Arc<dyn Host> {
        Arc::new(self.broker.clone())
    }

    /// The custom metrics' names, sorted.
    pub fn custom_names(&self) -> Vec<String> {
        self.custom.as_ref().map(|c| c.names()).unwrap_or_default()
    }

    /// Whether `name` is a metric, built-in or custom.
    pub fn has_metric(&self, name: &str) -> bool {
        crate::source::catalogue::find(name).is_some()
            || self.custom.as_ref().is_some_and(|c| c.contains(name))
    }

    /// The value table of `snapshot`, custom metrics evaluated, rehearsal overrides applied.
    pub async fn table(&self, snapshot: &Arc<Snapshot>) -> Table {
        let description = self.broker.description();
        let mut table =
            Table::collect(description, snapshot, self.custom.as_deref(), &self.host()).await;
        if let Some(o) = &self.overrides {
            o.apply(&mut table);
        }
        table
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

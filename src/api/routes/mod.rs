//! The HTTP surface: `router(state)` merges every route, so the served paths read in one place.
//!
//! Health, version and OpenAPI have fixed paths; everything under `/apis` (and the `--api-path`
//! alias) goes through one handler, which parses the path with [`crate::api::path`] rather than axum's
//! matcher, so that percent-encoding, wildcards and errors follow Kubernetes' rules.

pub mod discovery;
pub mod health;
pub mod metrics;
pub mod telemetry;
pub mod ui;

use std::sync::Arc;

use axum::Router;
use axum::body::HttpBody;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::api::error::ApiError;
use crate::api::path::{self, ApiPath};
use crate::custom::{Custom, Host};
use crate::ops::history::History;
use crate::ops::telemetry::Telemetry;
use crate::server::auth::{self, Peer};
use crate::source::broker::Broker;

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

    /// The custom metrics' names and help texts, sorted by name.
    pub fn custom_metrics(&self) -> Vec<(String, String)> {
        let Some(c) = &self.custom else {
            return Vec::new();
        };
        c.names()
            .into_iter()
            .map(|n| {
                let help = c.help(&n).unwrap_or_default();
                (n, help)
            })
            .collect()
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The whole router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(discovery::router())
        .merge(telemetry::router(state.clone()))
        .fallback(apis)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(refuse_bodies))
        .layer(middleware::from_fn(authorize))
        .with_state(state)
}

/// Paths open to any client, as kube-apiserver's `AlwaysAllowPaths`: kubelet and aggregator
/// probes carry no client certificate.
const OPEN_PATHS: [&str; 3] = ["/healthz", "/livez", "/readyz"];

/// Lets a request through if its connection's client certificate (see [`crate::server::auth`]) allows
/// it; records who it is for the access log. `X-Remote-*` headers from anyone but the front
/// proxy are dropped.
async fn authorize(mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<Peer>()
        .cloned()
        .unwrap_or(Peer::Open);
    if !matches!(peer, Peer::FrontProxy { .. }) {
        auth::strip_remote_headers(req.headers_mut());
    }
    let identity = match auth::authenticate(&peer, req.headers()) {
        Ok(id) => Some(id),
        Err(_) if OPEN_PATHS.contains(&req.uri().path()) => None,
        Err(e) => return e.into_response(),
    };
    let mut response = next.run(req).await;
    if let Some(id) = identity {
        response.extensions_mut().insert(id);
    }
    response
}

/// Every route is read-only: a request carrying a body is refused before it is read.
async fn refuse_bodies(req: Request, next: Next) -> Response {
    let h = req.headers();
    // HTTP/2 may send data frames without announcing them in a header.
    let has_body = h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
        || !req.body().is_end_stream();
    if has_body {
        return ApiError::BodyNotAllowed.into_response();
    }
    next.run(req).await
}

/// Write methods on fixed routes get the same `Status` as on `/apis` paths.
async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

/// Everything under `/apis` and the `--api-path` alias: discovery documents and metric values.
async fn apis(
    State(s): State<AppState>,
    method: Method,
    req: Request,
) -> Result<Response, ApiError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::MethodNotAllowed(method.to_string()));
    }
    let uri = req.uri();
    let query = path::parse_query(uri.query());
    match path::parse(uri.path(), s.api_alias.as_deref())? {
        ApiPath::GroupList => Ok(discovery::group_list()),
        ApiPath::Group(g) => Ok(discovery::group(g)),
        ApiPath::CustomResources(v) => Ok(discovery::custom_resources(
            v,
            &s.custom_names(),
            &s.discovery,
        )),
        ApiPath::ExternalResources => Ok(discovery::external_resources(
            &s.custom_names(),
            &s.discovery,
        )),
        ApiPath::Custom {
            version,
            object,
            metric,
        } => metrics::custom(&s, version, &object, &metric, &query).await,
        ApiPath::External { namespace, metric } => {
            metrics::external(&s, &namespace, &metric, &query).await
        }
    }
}

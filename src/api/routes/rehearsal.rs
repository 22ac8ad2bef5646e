//! `POST /write-metrics/<path of a read>`: rehearsal writes, as the Kubernetes test adapter's
//! (custom-metrics-apiserver's `test-adapter`) offers them. The body is a Quantity (`"300m"`,
//! JSON-quoted or bare) that the series the read path names (its metric, and the queue of its
//! `queue=` selector) answers from then on, everywhere, until the server stops
//! ([`crate::ops::rehearsal`]). Only with `--replay` and `--allow-writes`; refused otherwise.
//!
//! This is the one route that takes a body: the router's refusal of bodies covers the reads.

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::AppState;
use crate::api::error::ApiError;
use crate::api::path::{self, ApiPath};
use crate::api::quantity;
use crate::api::selector::{Operator, Selector};
use crate::ops::rehearsal::label;
use crate::ops::values::SeriesKey;
use crate::source::catalogue::{self, QUEUE_LABEL};

/// The prefix of a write's path.
pub const PREFIX: &str = "/write-metrics";

/// Largest body a write may have: a Quantity is a few bytes.
const MAX_BODY: usize = 256;

/// The write route, behind the API token when one is configured.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/write-metrics/{*path}", post(write))
        .route_layer(middleware::from_fn_with_state(
            state,
            super::telemetry::require_token,
        ))
}

/// The series a read path names: its metric, and the one queue of its selector.
fn series(s: &AppState, read: &str, query: Option<&str>) -> Result<SeriesKey, ApiError> {
    let q = path::parse_query(query);
    let (metric, selector) = match path::parse(read, s.api_alias.as_deref())? {
        ApiPath::Custom { metric, .. } => (metric, q.metric_label_selector),
        ApiPath::External { metric, .. } => (metric, q.label_selector),
        _ => {
            return Err(ApiError::BadRequest(format!(
                "{PREFIX}{read} names no metric: write to {PREFIX} followed by the path of a metric read, e.g. {PREFIX}/apis/external.metrics.k8s.io/v1beta1/namespaces/default/node_up_count"
            )));
        }
    };
    if !s.has_metric(&metric) {
        return Err(ApiError::NotFound(format!("no metric {metric:?}")));
    }
    let selector = Selector::parse(selector.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(format!("selector: {e}")))?;
    let queue = match selector.requirements.as_slice() {
        [] => None,
        [r] if r.key == QUEUE_LABEL && r.operator == Operator::Equals => {
            let has_queues = catalogue::find(&metric).is_some_and(|m| m.has_queue_label());
            if !has_queues {
                return Err(ApiError::BadRequest(format!(
                    "metric {metric} has no queue label"
                )));
            }
            if let Some(snapshot) = s.broker.latest() {
                snapshot
                    .job_counts(Some(&r.values[0]))
                    .map_err(|e| ApiError::NotFound(e.to_string()))?;
            }
            Some(r.values[0].clone())
        }
        _ => {
            return Err(ApiError::BadRequest(format!(
                "a write overrides one series: the whole instance (no selector) or one queue (queue=NAME); got {selector}"
            )));
        }
    };
    Ok(SeriesKey { metric, queue })
}

/// `POST /write-metrics/<read path>` with a Quantity body: overrides that series.
async fn write(State(s): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let Some(overrides) = &s.overrides else {
        return Err(ApiError::Forbidden(if s.broker.is_replay() {
            "writes are refused: start the server with --allow-writes to rehearse an HPA against chosen values".into()
        } else {
            "writes are refused: rehearsal values need --replay DIR and --allow-writes, never a live broker".into()
        }));
    };
    let read = req
        .uri()
        .path()
        .strip_prefix(PREFIX)
        .unwrap_or_default()
        .to_owned();
    let key = series(&s, &read, req.uri().query())?;
    let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "the body must be one Quantity such as \"300m\" (at most {MAX_BODY} bytes)"
            ))
        })?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8 text".into()))?
        .trim();
    let text = match serde_json::from_str::<String>(text) {
        Ok(unquoted) => unquoted,
        Err(_) => text.to_owned(),
    };
    let value = quantity::parse(&text).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    overrides.set(key.clone(), value);
    let canonical = quantity::format_f64(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::warn!(
        series = label(&key),
        value = canonical,
        "REHEARSAL: value overridden until the server stops"
    );
    Ok(Json(serde_json::json!({
        "metric": key.metric,
        "queue": key.queue,
        "value": canonical,
        "overridden": overrides.list().iter().map(|(k, _)| label(k)).collect::<Vec<_>>(),
    }))
    .into_response())
}

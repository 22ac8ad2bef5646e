//! `/metrics` (Prometheus text) and `/api/v1/metrics` (flat JSON, for KEDA's metrics-api scaler
//! and scripts): the same values as the metrics APIs, plus the server's own health.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use crate::error::ApiError;

/// Telemetry routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(prometheus))
        .route("/api/v1/metrics", get(values))
}

/// `GET /metrics`: always 200 while the server runs; Flux gauges are absent (and
/// `flux_metrics_api_broker_up` is 0) when the broker cannot be reached.
async fn prometheus(State(s): State<AppState>) -> Response {
    let snapshot = s.broker.snapshot().await.ok();
    let mut body = s.telemetry.render(&s.broker, snapshot.as_deref());
    if let (Some(custom), Some(snap)) = (&s.custom, &snapshot) {
        for (name, help) in s.custom_metrics() {
            // A failing script leaves its gauge without a sample (its error is in the log).
            let value = custom.value(&name, Arc::clone(snap), s.host()).await;
            body.push_str(&format!(
                "# HELP flux_{name} {help}\n# TYPE flux_{name} gauge\n"
            ));
            if let Ok(v) = value {
                body.push_str(&format!("flux_{name} {v}\n"));
            }
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// `GET /api/v1/metrics`: every current value; 503/500 Status when the broker fails.
async fn values(State(s): State<AppState>) -> Result<Response, ApiError> {
    let snapshot = s.broker.snapshot().await?;
    Ok(Json(crate::get::values_json(s.broker.description(), &snapshot)).into_response())
}

//! `/healthz`, `/livez` and `/readyz`, in kube-apiserver's plain-text style.
//!
//! Liveness says the process serves HTTP; readiness says a fresh-enough broker answer can be had,
//! and names where answers come from (loudly when they are recorded).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::AppState;

/// Health routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(live))
        .route("/livez", get(live))
        .route("/readyz", get(ready))
}

/// Always `ok` while the server runs.
async fn live() -> &'static str {
    "ok"
}

/// `ok` when the broker answers (sharing the cached answer), 503 with the reason otherwise.
async fn ready(State(s): State<AppState>) -> (StatusCode, String) {
    let source = s.broker.description();
    match s.broker.snapshot().await {
        Ok(_) => (
            StatusCode::OK,
            format!("[+]flux-broker ok: {source}\nreadyz check passed\n"),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("[-]flux-broker failed: {e}\n    source: {source}\nreadyz check failed\n"),
        ),
    }
}

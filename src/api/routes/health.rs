//! `/healthz`, `/livez` and `/readyz`, in kube-apiserver's plain-text style.
//!
//! Liveness says the process serves HTTP; readiness says a fresh-enough broker answer can be had,
//! and names where answers come from (loudly when they are recorded).

use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::AppState;
use crate::source::rlist::IdSet;
use crate::source::snapshot::Snapshot;

/// The health paths: open to any client, as kube-apiserver's `AlwaysAllowPaths`.
pub const PATHS: [&str; 3] = ["/healthz", "/livez", "/readyz"];

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
    let answer = s.broker.snapshot().await;
    let st = s.broker.stats();
    let counters = format!(
        "rounds: {}, failed rounds: {}, last round took {}us",
        st.rounds.load(Ordering::Relaxed),
        st.failures.load(Ordering::Relaxed),
        st.last_round_micros.load(Ordering::Relaxed)
    );
    // Rehearsal values are said loudly: they are not what the recorded answers say.
    let rehearsal = match &s.overrides {
        None => String::new(),
        Some(o) => {
            let list = o.list();
            let values: Vec<String> = list
                .iter()
                .map(|(k, v)| {
                    let q = crate::api::quantity::format_f64(*v).unwrap_or_else(|_| v.to_string());
                    format!("{}={q}", crate::ops::rehearsal::label(k))
                })
                .collect();
            format!(
                "[!]rehearsal (--allow-writes): {} value(s) overridden{}{}\n",
                values.len(),
                if values.is_empty() { "" } else { ": " },
                values.join(", ")
            )
        }
    };
    match answer {
        Ok(snapshot) => (
            StatusCode::OK,
            format!(
                "[+]flux-broker ok: {source}\n    {counters}\n{}{rehearsal}readyz check passed\n",
                shrink_line(&s, &snapshot)
            ),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "[-]flux-broker failed: {e}\n    source: {source}\n    {counters}\nreadyz check failed\n"
            ),
        ),
    }
}

/// The drain-before-shrink line: what the loop does (an `OFF` when this server is not the
/// instance owner, which leaves the server ready: it still serves every metric), or, without
/// the loop, drains an earlier run left behind.
fn shrink_line(s: &AppState, snapshot: &Snapshot) -> String {
    match &s.shrink {
        Some(status) => format!("[+]drain-before-shrink {}\n", status.line()),
        None if !snapshot.shrink_drains.is_empty() => {
            let ranks = IdSet::union_all(snapshot.shrink_drains.iter().map(|(r, _)| r));
            format!(
                "[+]drain-before-shrink off: ranks {ranks} are still drained by an earlier run with \
                 --drain-before-shrink (`flux resource undrain {ranks}` returns them)\n"
            )
        }
        None => String::new(),
    }
}

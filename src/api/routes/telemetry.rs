//! `/metrics` (Prometheus text), `/api/v1/metrics` (flat JSON, for KEDA's metrics-api scaler and
//! scripts), `/api/v1/history/{metric}`, `/api/v1/ranks` (each rank's state) and `/api/v1/status`: the same values as the metrics
//! APIs, their recent history and the server's own health. `--api-token-file` guards them (the
//! `/ui` page that reads them is open, and asks for the token).

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};

use super::AppState;
use crate::api::error::ApiError;
use crate::ops::history::{self, Aggregate};
use crate::ops::prometheus::{self, Exposition};
use crate::ops::values::SeriesKey;

/// Telemetry routes (and the dashboard's), behind the bearer token when one is configured.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/metrics", get(prometheus))
        .route("/api/v1/metrics", get(values))
        .route("/api/v1/status", get(status))
        .route("/api/v1/ranks", get(ranks))
        .route("/api/v1/history/{metric}", get(history))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive (RFC
/// 7235; Kubernetes accepts `bearer`), and spaces around the token are not part of it.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches(' '))
}

/// With `--api-token-file`, requests need `Authorization: Bearer <token>`.
pub(super) async fn require_token(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &s.api_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            let mut r = ApiError::Unauthorized(
                "this endpoint needs the bearer token of --api-token-file (Authorization: Bearer <token>)".into(),
            )
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    next.run(req).await
}

/// `GET /metrics`: always 200 while the server runs; Flux gauges are absent (and
/// `flux_metrics_api_broker_up` is 0) when the broker cannot be reached.
async fn prometheus(State(s): State<AppState>) -> Response {
    let table = match s.broker.snapshot().await {
        Ok(snapshot) => Some(s.table(&snapshot).await),
        Err(_) => None,
    };
    let mut out = Exposition::new();
    if let Some(t) = &table {
        out.gauges(t, |r| !r.custom);
    }
    s.telemetry.write(&mut out, &s.broker);
    if let Some(t) = &table {
        out.gauges(t, |r| r.custom);
    }
    (
        [(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)],
        out.finish(),
    )
        .into_response()
}

/// `GET /api/v1/metrics`: every current value (custom metrics included, under `metrics`), with
/// help texts; 503/500 Status when the broker fails.
async fn values(State(s): State<AppState>) -> Result<Response, ApiError> {
    let snapshot = s.broker.snapshot().await?;
    Ok(Json(s.table(&snapshot).await.json(true)).into_response())
}

/// `GET /api/v1/ranks`: every rank of the resource set with its hostname, state (`free`,
/// `partial`, `full`, `drained`, `down`, `absent`), cores, GPUs and drain, for the dashboard's
/// rank map; 503/500 Status when the broker fails.
async fn ranks(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let snapshot = s.broker.snapshot().await?;
    let ranks = crate::source::ranks::ranks(&snapshot);
    Ok(Json(serde_json::json!({
        "source": s.broker.description(),
        "timestamp": rfc3339(snapshot.taken_at),
        "size": ranks.len(),
        "current_size": snapshot.nodes.current_size,
        "shrink_drained": ranks.iter().filter(|r| r.shrink).count(),
        "hostnames_error": snapshot.hostnames.as_ref().err().map(ToString::to_string),
        "ranks": ranks,
    })))
}

/// `GET /api/v1/status`: where answers come from and whether the broker answers, without asking
/// it (for the dashboard, which must render when the broker is down).
async fn status(State(s): State<AppState>) -> Json<serde_json::Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let b = &s.broker;
    let latest = b.latest();
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "source": b.description(),
        "replay": b.is_replay(),
        "connected": latest.is_some() && b.last_error().is_none(),
        "last_error": b.last_error().map(|e| e.to_string()),
        "last_answer": latest.as_ref().map(|l| rfc3339(l.taken_at)),
        "answer_age_seconds": latest.map(|l| (Utc::now() - l.taken_at).num_milliseconds() as f64 / 1e3),
        "broker_rounds": b.stats().rounds.load(Relaxed),
        "broker_errors": b.stats().failures.load(Relaxed),
        "history": {
            "interval_seconds": s.history.interval().as_secs(),
            "retention_seconds": s.history.retention().as_secs(),
            "bytes": s.history.memory_bytes(),
        },
        "rehearsal": s.overrides.as_ref().map(|o| {
            let values: serde_json::Map<String, serde_json::Value> = o
                .list()
                .iter()
                .map(|(k, v)| (crate::ops::rehearsal::label(k), (*v).into()))
                .collect();
            serde_json::json!({"overridden": values})
        }),
    }))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Query of the history API.
#[derive(Debug, Default)]
struct HistoryQuery {
    since: Option<String>,
    until: Option<String>,
    step: Option<String>,
    agg: Option<String>,
    queue: Option<String>,
}

impl HistoryQuery {
    fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut q = HistoryQuery::default();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let slot = match k.as_ref() {
                "since" => &mut q.since,
                "until" => &mut q.until,
                "step" => &mut q.step,
                "agg" => &mut q.agg,
                "queue" => &mut q.queue,
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "unknown parameter {other:?}: the history API takes since, until, step, agg and queue"
                    )));
                }
            };
            *slot = Some(v.into_owned());
        }
        Ok(q)
    }
}

/// A point in time: RFC 3339, or a duration before now (`15m`).
fn instant(param: &str, text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let ago = crate::util::duration::parse(text).map_err(|_| {
        ApiError::BadRequest(format!(
            "{param}={text:?}: expected an RFC 3339 time (2026-01-02T15:04:05Z) or a duration before now (15m)"
        ))
    })?;
    let ago = chrono::Duration::from_std(ago)
        .map_err(|_| ApiError::BadRequest(format!("{param}: too long")))?;
    now.checked_sub_signed(ago)
        .ok_or_else(|| ApiError::BadRequest(format!("{param}: too long ago")))
}

/// `GET /api/v1/history/{metric}?since=&until=&step=&agg=avg|min|max|last&queue=`: the
/// metric's recorded series, one point per step.
async fn history(
    State(s): State<AppState>,
    Path(metric): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let q = HistoryQuery::parse(raw.as_deref())?;
    if !s.has_metric(&metric) {
        return Err(ApiError::NotFound(format!("no metric {metric:?}")));
    }
    let now = Utc::now();
    let retention =
        chrono::Duration::from_std(s.history.retention()).unwrap_or(chrono::Duration::zero());
    let since = match &q.since {
        Some(t) => instant("since", t, now)?,
        None => now - retention,
    };
    let until = match &q.until {
        Some(t) => instant("until", t, now)?,
        None => now,
    };
    if until < since {
        return Err(ApiError::BadRequest("until is before since".into()));
    }
    let step = match &q.step {
        Some(t) => crate::util::duration::parse(t)
            .map_err(|e| ApiError::BadRequest(format!("step: {e}")))?,
        None => s.history.interval(),
    };
    if step < Duration::from_secs(1) {
        return Err(ApiError::BadRequest("step must be at least 1s".into()));
    }
    let agg_text = q.agg.as_deref().unwrap_or("avg");
    let agg = Aggregate::parse(agg_text).ok_or_else(|| {
        ApiError::BadRequest(format!("agg={agg_text:?}: use avg, min, max or last"))
    })?;
    if let Some(queue) = &q.queue {
        let known = crate::source::catalogue::find(&metric).is_some_and(|m| m.has_queue_label());
        if !known {
            return Err(ApiError::BadRequest(format!(
                "metric {metric} has no queue label"
            )));
        }
        if let Some(snap) = s.broker.latest() {
            snap.job_counts(Some(queue))
                .map_err(|e| ApiError::NotFound(e.to_string()))?;
        }
    }
    let key = SeriesKey {
        metric: metric.clone(),
        queue: q.queue.clone(),
    };
    let points = history::aggregate(&s.history.points(&key), since, until, step, agg);
    let points: Vec<_> = points
        .into_iter()
        .map(|(t, v)| serde_json::json!({"t": rfc3339(t), "v": v}))
        .collect();
    Ok(Json(serde_json::json!({
        "metric": metric,
        "queue": q.queue,
        "agg": agg_text,
        "since": rfc3339(since),
        "until": rfc3339(until),
        "step_seconds": step.as_secs(),
        "interval_seconds": s.history.interval().as_secs(),
        "points": points,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secre"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for v in ["Bearer tok", "bearer tok", "BEARER  tok ", "BeArEr tok"] {
            assert_eq!(bearer_token(v), Some("tok"), "{v:?}");
        }
        for v in ["Basic tok", "Bearertok", "Bearer", "tok"] {
            assert_eq!(bearer_token(v), None, "{v:?}");
        }
    }

    #[test]
    fn instants_are_rfc3339_or_durations_ago() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T01:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            instant("since", "15m", now).unwrap(),
            now - chrono::Duration::minutes(15)
        );
        assert_eq!(
            instant("since", "2026-01-01T00:00:00Z", now).unwrap(),
            now - chrono::Duration::hours(1)
        );
        assert!(instant("since", "yesterday", now).is_err());
    }
}

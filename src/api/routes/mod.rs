//! The HTTP surface: `router(state)` merges every route, so the served paths read in one place.
//!
//! Health, version and OpenAPI have fixed paths; everything under `/apis` (and the `--api-path`
//! alias) goes through one handler, which parses the path with [`crate::api::path`] rather than axum's
//! matcher, so that percent-encoding, wildcards and errors follow Kubernetes' rules.

pub mod discovery;
pub mod health;
pub mod metrics;
pub mod rehearsal;
pub mod telemetry;
pub mod ui;

use std::time::Instant;

use axum::Router;
use axum::body::HttpBody;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

pub use crate::api::state::{AppState, Inner};

use crate::api::auth::{self, Identity, Peer};
use crate::api::error::ApiError;
use crate::api::path::{self, ApiPath};
use crate::ops::telemetry::Route;

/// The whole router, with the middleware every request goes through: the access log and the
/// request counters (outermost, so that refusals are counted too), client authentication, and
/// the refusal of request bodies on every read (all routes but the rehearsal writes).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(counted_as(health::router(), Route::Health))
        .merge(counted_as(discovery::router(), Route::Discovery))
        .merge(counted_as(
            telemetry::router(state.clone()),
            Route::Telemetry,
        ))
        .merge(counted_as(ui::router(), Route::Telemetry))
        .fallback(apis)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(refuse_bodies))
        // Merged after the refusal of bodies: a write carries its value in one.
        .merge(counted_as(
            rehearsal::router(state.clone()),
            Route::Telemetry,
        ))
        .layer(middleware::from_fn(authorize))
        .layer(middleware::from_fn_with_state(state.clone(), access_log))
        .with_state(state)
}

/// Marks every answer of `router` with the route it is counted under in `/metrics`: the
/// routing itself classifies a request, so no second set of path rules can disagree with it.
fn counted_as(router: Router<AppState>, route: Route) -> Router<AppState> {
    router.layer(middleware::map_response(
        move |mut r: Response| async move {
            r.extensions_mut().insert(route);
            r
        },
    ))
}

/// Lets a request through if its connection's client certificate (a [`Peer`]) allows it;
/// records who it is for the access log. `X-Remote-*` headers from anyone but the front proxy
/// are dropped. The health paths stay open to anyone, as kube-apiserver's `AlwaysAllowPaths`
/// (kubelet and aggregator probes carry no client certificate), and so does the dashboard's
/// page, whose data requests need the credentials.
async fn authorize(mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<Peer>()
        .cloned()
        .unwrap_or(Peer::Open);
    if !matches!(peer, Peer::FrontProxy { .. }) {
        auth::strip_remote_headers(req.headers_mut());
    }
    if peer == Peer::Open {
        return next.run(req).await; // no one to name: the access log writes "-"
    }
    let identity = match auth::authenticate(&peer, req.headers()) {
        Ok(id) => Some(id),
        Err(_) if open_path(req.uri().path()) => None,
        Err(e) => return e.into_response(),
    };
    let mut response = next.run(req).await;
    if let Some(id) = identity {
        response.extensions_mut().insert(id);
    }
    response
}

/// The paths anyone may reach: health (kube-apiserver's `AlwaysAllowPaths`) and the dashboard's
/// page, which holds no data.
fn open_path(path: &str) -> bool {
    health::PATHS.contains(&path) || ui::PATHS.contains(&path)
}

/// One log line per request (method, path, user, status, latency), and the request counters.
async fn access_log(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // What the line needs is copied only when it will be written (not with --quiet).
    let line = tracing::enabled!(tracing::Level::INFO).then(|| {
        let path = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
        (req.method().clone(), path, req.version())
    });
    let response = next.run(req).await;
    let took = started.elapsed();
    let route = response
        .extensions()
        .get::<Route>()
        .copied()
        .unwrap_or(Route::Other);
    state
        .telemetry
        .record(route, response.status().as_u16(), took);
    let Some((method, path, version)) = line else {
        return response;
    };
    let (user, groups) = match response.extensions().get::<Identity>() {
        Some(id) => (id.user.as_str(), id.groups.join(",")),
        None => ("-", String::new()),
    };
    tracing::info!(
        user,
        groups,
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        latency_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
        version = ?version,
        "request"
    );
    response
}

/// Longest wait for the end of a request body that was not announced as empty (an HTTP/2
/// request whose HEADERS frame does not end the stream, a chunked HTTP/1.1 request): a client
/// that sends an empty DATA frame right after its headers is served; one that never ends its
/// body does not hold a request slot for longer than this.
const BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads take no body (every route but the rehearsal writes): a request carrying one is
/// refused. A body of zero length is no body (`Content-Length: 0` or `00`, a chunked body of no
/// chunk, an HTTP/2 stream ended by an empty DATA frame); a body that announces a length is
/// refused before it is read.
async fn refuse_bodies(req: Request, next: Next) -> Response {
    use http_body_util::BodyExt as _;
    let announced = req.headers().get(header::CONTENT_LENGTH).map(|v| {
        std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
    });
    match announced {
        Some(Some(0)) => {}
        // hyper has already refused a malformed Content-Length on HTTP/1.1.
        Some(_) => return ApiError::BodyNotAllowed.into_response(),
        None if req.body().is_end_stream() => {}
        None => {
            let (parts, mut body) = req.into_parts();
            let deadline = tokio::time::Instant::now() + BODY_WAIT;
            loop {
                match tokio::time::timeout_at(deadline, body.frame()).await {
                    Ok(None) => break,
                    Ok(Some(Ok(frame))) if frame.data_ref().is_none_or(|d| d.is_empty()) => {}
                    _ => return ApiError::BodyNotAllowed.into_response(),
                }
            }
            return next
                .run(Request::from_parts(parts, axum::body::Body::empty()))
                .await;
        }
    }
    next.run(req).await
}

/// Write methods on fixed routes get the same `Status` as on `/apis` paths.
async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

/// Everything under `/apis` and the `--api-path` alias: discovery documents and metric values,
/// each answer marked with its route for the counters.
async fn apis(State(s): State<AppState>, method: Method, req: Request) -> Response {
    if method != Method::GET && method != Method::HEAD {
        // The same `Allow` as axum puts on the 405 of the fixed routes.
        let mut r = ApiError::MethodNotAllowed(method.to_string()).into_response();
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET,HEAD"));
        return r;
    }
    let uri = req.uri();
    let parsed = path::parse(uri.path(), s.api_alias.as_deref());
    let kept = kept_answer(&s, &parsed, uri).await;
    if let Some(Kept {
        route,
        body: Some(body),
        ..
    }) = kept
    {
        let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        response.extensions_mut().insert(route);
        return response;
    }
    let query = path::parse_query(uri.query());
    let (route, answer) = match parsed {
        Err(e) => (Route::Other, Err(e)),
        Ok(ApiPath::GroupList) => (Route::Discovery, Ok(discovery::group_list())),
        Ok(ApiPath::Group(g)) => (Route::Discovery, Ok(discovery::group(g))),
        Ok(ApiPath::CustomResources(v)) => (
            Route::Discovery,
            Ok(discovery::custom_resources(
                v,
                &s.custom_names(),
                &s.discovery,
            )),
        ),
        Ok(ApiPath::ExternalResources) => (
            Route::Discovery,
            Ok(discovery::external_resources(
                &s.custom_names(),
                &s.discovery,
            )),
        ),
        Ok(ApiPath::Custom {
            version,
            object,
            metric,
        }) => (
            Route::Custom,
            metrics::custom(&s, version, &object, &metric, &query).await,
        ),
        Ok(ApiPath::External { namespace, metric }) => (
            Route::External,
            metrics::external(&s, &namespace, &metric, &query).await,
        ),
    };
    let mut response = answer.unwrap_or_else(IntoResponse::into_response);
    if let Some(Kept { snapshot, key, .. }) = kept {
        if response.status() == axum::http::StatusCode::OK {
            response = keep(&s, &snapshot, &key, response).await;
        }
    }
    response.extensions_mut().insert(route);
    response
}

/// A metric answer that can be kept for its snapshot ([`crate::api::answers`]), and the kept
/// bytes if there are some.
struct Kept {
    route: Route,
    snapshot: std::sync::Arc<crate::source::snapshot::Snapshot>,
    key: String,
    body: Option<axum::body::Bytes>,
}

/// For a built-in metric asked without a `window`: the snapshot it is answered from and its
/// kept answer, if any.
async fn kept_answer(
    s: &AppState,
    parsed: &Result<ApiPath, ApiError>,
    uri: &axum::http::Uri,
) -> Option<Kept> {
    let (route, metric) = match parsed {
        Ok(ApiPath::Custom { metric, .. }) => (Route::Custom, metric),
        Ok(ApiPath::External { metric, .. }) => (Route::External, metric),
        _ => return None,
    };
    let windowed = uri.query().is_some_and(|q| q.contains("window"));
    // Rehearsal overrides (--allow-writes) change answers without a new snapshot.
    if windowed || s.overrides.is_some() || crate::source::catalogue::find(metric).is_none() {
        return None;
    }
    let snapshot = s.broker.snapshot().await.ok()?;
    let key = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let body = s.answers.get(&snapshot, key);
    Some(Kept {
        route,
        snapshot,
        key: if body.is_none() {
            key.to_owned()
        } else {
            String::new()
        },
        body,
    })
}

/// Keeps the bytes of a 200 answer for its snapshot, and answers with them.
async fn keep(
    s: &AppState,
    snapshot: &std::sync::Arc<crate::source::snapshot::Snapshot>,
    key: &str,
    response: Response,
) -> Response {
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => {
            s.answers.put(snapshot, key, bytes.clone());
            Response::from_parts(parts, axum::body::Body::from(bytes))
        }
        Err(_) => ApiError::Internal("an answer could not be read back".into()).into_response(),
    }
}

//! The accept loop: TLS handshakes off the accept path, connection limits, timeouts, access
//! logs and graceful shutdown, around the axum router.
//!
//! We run hyper's connection builder ourselves instead of `axum::serve` because it exposes the
//! knobs a server facing slow or hostile clients needs: a header-read timeout, a cap on header
//! size, a cap on concurrent connections, and a bounded grace period at shutdown.

pub mod auth;
pub mod cluster;
pub mod config;
pub mod pki;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::server::auth::{Identity, Peer};
use crate::server::tls::{Loaded, TlsState};
use anyhow::Context;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::api::routes::{self, AppState, Inner};
use crate::custom::Custom;
use crate::ops::history::History;
use crate::ops::telemetry::Route;
use crate::ops::telemetry::Telemetry;
use crate::server::config::{Config, Limits};
use crate::source::broker::Broker;
use crate::source::catalogue::CATALOGUE;

/// Largest request head (request line and headers) accepted; larger ones get 431.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Runs the server on `listener` until `shutdown` completes, then lets requests in flight finish
/// (within `--shutdown-grace`) and stops the broker thread.
///
/// # Errors
/// Startup failures: bad certificates, or a broker thread that cannot start.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = TlsState::load(config.tls.clone(), config.auth.clone()).await?;
    let reloader = tls.as_ref().map(TlsState::spawn_reloader);
    let custom = load_custom(&config)?;
    let api_token = read_token(config.api_token_file.as_deref())?;
    let broker = Broker::start(config.broker.clone()).context("starting the broker thread")?;
    if broker.is_replay() {
        tracing::warn!(
            source = broker.description(),
            "REPLAY MODE: serving recorded answers, not live Flux state"
        );
    }
    let addr = listener
        .local_addr()
        .context("reading the listening address")?;
    tracing::info!(
        %addr,
        scheme = if tls.is_some() { "https" } else { "http" },
        source = broker.description(),
        max_age = ?config.broker.max_age,
        "serving the custom and external metrics APIs"
    );
    if tls.is_none() {
        tracing::warn!(
            "--insecure-http: serving plain HTTP; kube-aggregator and the HPA need HTTPS"
        );
    }
    let history = Arc::new(History::new(
        config.history_interval,
        config.history_retention,
    ));
    let state = AppState::new(Inner {
        broker: broker.clone(),
        api_alias: config.api_alias.clone(),
        telemetry: Telemetry::default(),
        custom,
        history,
        api_token,
        discovery: Default::default(),
    });
    let sampler = tokio::spawn(sample_history(state.clone()));
    let app =
        routes::router(state.clone()).layer(middleware::from_fn_with_state(state, access_log));
    let grace_ends = serve(listener, tls, app, config.limits, shutdown).await;
    sampler.abort();
    if let Some(r) = reloader {
        r.abort();
    }
    stop_broker(broker, grace_ends).await;
    tracing::info!("stopped");
    Ok(())
}

/// Stops the broker thread, waiting for it no later than the end of the grace period (and at
/// least a moment): a round stuck on a hanging broker must not hold the exit for a whole
/// `--flux-timeout`. A thread of its own rather than `spawn_blocking`, because dropping the
/// runtime waits for blocking tasks.
async fn stop_broker(broker: Broker, grace_ends: Instant) {
    let (done, stopped) = tokio::sync::oneshot::channel::<()>();
    let stopper = std::thread::Builder::new()
        .name("flux-broker-stop".into())
        .spawn(move || {
            broker.stop();
            let _ = done.send(());
        });
    if stopper.is_err() {
        return tracing::warn!(
            "cannot start a thread to stop the broker thread; not waiting for it"
        );
    }
    let wait = grace_ends
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100));
    if tokio::time::timeout(wait, stopped).await.is_err() {
        tracing::warn!("the broker thread is still in a round of RPCs; not waiting for it");
    }
}

/// Reads the `--api-token-file` token.
fn read_token(path: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    let Some(path) = path else { return Ok(None) };
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("reading --api-token-file {}", path.display()))?;
    let token = token.trim();
    if token.is_empty() {
        anyhow::bail!("--api-token-file {} is empty", path.display());
    }
    Ok(Some(token.to_owned()))
}

/// Samples every metric into the history each `--history-interval`, sharing the cached broker
/// answer (so it adds at most one round per interval).
async fn sample_history(state: AppState) {
    let mut tick = tokio::time::interval(state.history.interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(snapshot) = state.broker.snapshot().await else {
            continue;
        };
        let mut custom = Vec::new();
        if let Some(c) = &state.custom {
            for name in c.names() {
                if let Ok(v) = c.value(&name, Arc::clone(&snapshot), state.host()).await {
                    custom.push((name, v));
                }
            }
        }
        state.history.record(&snapshot, &custom);
    }
}

/// Loads the `--custom-metric` files and watches them for edits.
fn load_custom(config: &Config) -> anyhow::Result<Option<Arc<Custom>>> {
    if config.custom_metrics.is_empty() {
        return Ok(None);
    }
    let builtins: Vec<&str> = CATALOGUE.iter().map(|m| m.name).collect();
    let settings = crate::custom::Settings {
        timeout: config.custom_timeout,
        max_age: config.broker.max_age,
        ..Default::default()
    };
    let custom = Arc::new(Custom::load(&config.custom_metrics, &builtins, settings)?);
    tracing::info!(metrics = ?custom.names(), "loaded custom metrics");
    custom.watch();
    Ok(Some(custom))
}

async fn serve(
    listener: TcpListener,
    tls: Option<Arc<TlsState>>,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Instant {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(MAX_HEAD_BYTES).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(limits.header_timeout))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refused = AtomicU64::new(0);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connection tasks as they end.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            let n = refused.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() || n == 0 {
                tracing::warn!(
                    %peer,
                    max = limits.max_connections,
                    refused_so_far = n + 1,
                    "connection limit reached (--max-connections): closing new connection"
                );
            }
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (app, tls, builder) = (app.clone(), tls.clone(), Arc::clone(&builder));
        let watcher = graceful.watcher();
        connections.spawn(async move {
            let _permit = permit;
            match tls {
                None => {
                    let service = with_peer(app, Peer::Open);
                    serve_connection(&builder, tcp, service, watcher, limits.header_timeout).await;
                }
                Some(tls) => {
                    let Loaded { acceptor, trust } = &*tls.current();
                    // The handshake runs in this connection's own task, with a deadline, so a
                    // stalled client never blocks the accept loop or other clients.
                    let stream =
                        match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                return tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            }
                            Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                        };
                    let peer = match trust {
                        Some(t) => t.classify(stream.get_ref().1.peer_certificates()),
                        None => Peer::Open,
                    };
                    let service = with_peer(app, peer);
                    serve_connection(&builder, stream, service, watcher, limits.header_timeout)
                        .await;
                }
            }
        });
    }

    drop(listener);
    // Capped (at a year) so that no --shutdown-grace overflows an Instant.
    let grace_ends = Instant::now() + limits.shutdown_grace.min(Duration::from_secs(365 * 86_400));
    tracing::info!(grace = ?limits.shutdown_grace, "shutting down: finishing requests in flight");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep_until(grace_ends.into()) => {
            tracing::warn!(
                open = connections.len(),
                "--shutdown-grace elapsed: closing connections with requests still in flight"
            );
        }
    }
    connections.abort_all();
    grace_ends
}

/// The router, with the connection's client certificate verdict attached to every request.
fn with_peer(app: Router, peer: Peer) -> Connection {
    let asked = Arc::new(AtomicBool::new(false));
    let service = PeerService {
        app,
        peer,
        asked: Arc::clone(&asked),
    };
    Connection {
        service: TowerToHyperService::new(service),
        asked,
    }
}

/// The service of one connection and whether it has asked anything yet.
struct Connection {
    service: TowerToHyperService<PeerService>,
    asked: Arc<AtomicBool>,
}

/// Inserts a connection's [`Peer`] into each of its requests.
#[derive(Clone)]
struct PeerService {
    app: Router,
    peer: Peer,
    /// Set by the first request, so that a connection that never asks can be closed.
    asked: Arc<AtomicBool>,
}

impl<B> tower::Service<hyper::Request<B>> for PeerService
where
    Router: tower::Service<hyper::Request<B>>,
{
    type Response = <Router as tower::Service<hyper::Request<B>>>::Response;
    type Error = <Router as tower::Service<hyper::Request<B>>>::Error;
    type Future = <Router as tower::Service<hyper::Request<B>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::<hyper::Request<B>>::poll_ready(&mut self.app, cx)
    }

    fn call(&mut self, mut req: hyper::Request<B>) -> Self::Future {
        self.asked.store(true, Ordering::Relaxed);
        req.extensions_mut().insert(self.peer.clone());
        self.app.call(req)
    }
}

/// Serves one connection. A connection that sends no complete request within the header
/// timeout is closed: hyper's own header timeout starts only once it has told HTTP/1 from
/// HTTP/2, so a client silent after the TLS handshake would otherwise hold its slot forever.
async fn serve_connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    Connection { service, asked }: Connection,
    watcher: hyper_util::server::graceful::Watcher,
    first_request: Duration,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let conn = watcher.watch(conn.into_owned());
    tokio::pin!(conn);
    let result = match tokio::time::timeout(first_request, &mut conn).await {
        Ok(r) => r,
        Err(_) if !asked.load(Ordering::Relaxed) => {
            return tracing::debug!("no request within --header-timeout: closing the connection");
        }
        Err(_) => conn.await,
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// One log line per request (method, path, status, latency), and the request counters.
async fn access_log(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let version = req.version();
    let response = next.run(req).await;
    let took = started.elapsed();
    state
        .telemetry
        .record(Route::of(req_path(&path)), response.status().as_u16(), took);
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

/// The path part of a logged `path?query`.
fn req_path(path_and_query: &str) -> &str {
    path_and_query.split('?').next().unwrap_or_default()
}

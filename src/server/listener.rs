//! The accept loop: TLS handshakes off the accept path, connection limits, timeouts and graceful
//! shutdown, around the router.
//!
//! We run hyper's connection builder ourselves instead of `axum::serve` because it exposes the
//! knobs a server facing slow or hostile clients needs: a header-read timeout, a cap on header
//! size, a cap on concurrent connections, and a bounded grace period at shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::api::auth::Peer;
use crate::server::config::Limits;
use crate::server::tls::{Loaded, TlsState};

/// Largest request head (request line and headers) accepted; larger ones get 431.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight finish
/// within `--shutdown-grace`; returns when that grace ends.
pub(super) async fn serve(
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

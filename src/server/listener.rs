//! The accept loop: connection slots (`slots.rs`), TLS handshakes off the accept path,
//! timeouts (handshake, request head, idle, write) and graceful shutdown, around the router.
//!
//! We run hyper's connection builder ourselves instead of `axum::serve` because it exposes the
//! knobs a server facing slow or hostile clients needs: a header-read timeout, a cap on header
//! size, per-connection shutdown (for idle and evicted connections), and a bounded grace period.
//!
//! hyper answers a request head it cannot parse by itself (431 for an oversized head, 400 for a
//! malformed line, 414 for a long URI: `proto::h1::role::Server::on_error` in hyper 1.x writes a
//! status line with no body) and offers no hook to write that answer, so those few answers are
//! not `Status` JSON; everything the router sees is.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::slots::{InFlight, Refused, Slot, Slots, Ticket};
use crate::api::auth::Peer;
use crate::server::config::Limits;
use crate::server::tls::{Loaded, TlsState};

/// Largest request head (request line and headers) accepted; larger ones get 431.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// What a Go server answers plain HTTP sent to its HTTPS port (`net/http`, `server.go`).
const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

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
    let (stop, stopping) = watch::channel(false);
    let slots = Slots::new(limits.max_connections, limits.max_connections_per_address);
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
        let ticket = match slots.admit(peer.ip()) {
            Ok(t) => t,
            Err(why) => {
                let n = refused.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() || n == 0 {
                    let (flag, max) = match why {
                        Refused::PerAddress => (
                            "--max-connections-per-address",
                            limits.max_connections_per_address,
                        ),
                        Refused::Full => ("--max-connections", limits.max_connections),
                    };
                    tracing::warn!(
                        %peer,
                        max,
                        refused_so_far = n + 1,
                        "connection limit reached ({flag}): closing new connection"
                    );
                }
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (app, tls, builder) = (app.clone(), tls.clone(), Arc::clone(&builder));
        let stopping = stopping.clone();
        connections.spawn(async move {
            connection(tcp, peer, &ticket, app, tls, &builder, stopping, limits).await;
        });
    }

    drop(listener);
    // Capped (at a year) so that no --shutdown-grace overflows an Instant.
    let grace_ends = Instant::now() + limits.shutdown_grace.min(Duration::from_secs(365 * 86_400));
    tracing::info!(grace = ?limits.shutdown_grace, "shutting down: finishing requests in flight");
    let _ = stop.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout_at(grace_ends.into(), drained)
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "--shutdown-grace elapsed: closing connections with requests still in flight"
        );
    }
    connections.abort_all();
    grace_ends
}

/// One connection from accept to close.
#[allow(
    clippy::too_many_arguments,
    reason = "the parts of one connection, passed once"
)]
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    ticket: &Ticket,
    app: Router,
    tls: Option<Arc<TlsState>>,
    builder: &auto::Builder<TokioExecutor>,
    stopping: watch::Receiver<bool>,
    limits: Limits,
) {
    let slot = Arc::clone(ticket.slot());
    let Some(tls) = tls else {
        if ticket.judged(false).is_err() {
            return tracing::debug!(%peer, "closing a connection: its address holds --max-connections-per-address");
        }
        let service = with_peer(app, Peer::Open, &slot);
        let io = WriteDeadline::new(tcp, limits.write_timeout);
        return serve_connection(builder, io, service, &slot, stopping, limits).await;
    };
    let mut tcp = tcp;
    let handshake = async {
        if !is_tls(&mut tcp, peer).await {
            return None;
        }
        let Loaded { acceptor, trust } = &*tls.current();
        let io = WriteDeadline::new(tcp, limits.write_timeout);
        match acceptor.accept(io).await {
            Ok(stream) => Some((stream, trust.clone())),
            Err(e) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                None
            }
        }
    };
    // The handshake runs in this connection's own task, with a deadline, so a stalled client
    // never blocks the accept loop or other clients; an eviction ends it too.
    let (stream, trust) = tokio::select! {
        r = tokio::time::timeout(limits.handshake_timeout, handshake) => match r {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
        },
        () = slot.evicted() => {
            return tracing::debug!(%peer, "evicted during its handshake (--max-connections)");
        }
    };
    let peer_kind = match trust {
        Some(t) => t.classify(stream.get_ref().1.peer_certificates()),
        None => Peer::Open,
    };
    let trusted = matches!(peer_kind, Peer::FrontProxy { .. } | Peer::Client { .. });
    if ticket.judged(trusted).is_err() {
        return tracing::debug!(
            %peer,
            "closing an untrusted connection: its address holds --max-connections-per-address"
        );
    }
    let service = with_peer(app, peer_kind, &slot);
    serve_connection(builder, stream, service, &slot, stopping, limits).await;
}

/// Whether the client starts a TLS handshake. Plain HTTP gets the answer a Go server gives
/// (`400 Client sent an HTTP request to an HTTPS server.`); anything else is closed.
async fn is_tls(tcp: &mut TcpStream, peer: SocketAddr) -> bool {
    let mut first = [0u8; 1];
    match tcp.peek(&mut first).await {
        Ok(1) if first[0] == 0x16 => true, // a TLS handshake record
        Ok(1) if first[0].is_ascii_uppercase() => {
            tracing::debug!(%peer, "plain HTTP on the HTTPS port: answering 400");
            answer_plain_http(tcp).await;
            false
        }
        _ => false,
    }
}

/// Writes [`PLAIN_HTTP_ANSWER`], then reads (a little of) what the client sent, so that closing
/// does not reset the connection before the client has read the answer.
async fn answer_plain_http(tcp: &mut TcpStream) {
    use tokio::io::AsyncReadExt as _;
    if tcp.write_all(PLAIN_HTTP_ANSWER).await.is_err() {
        return;
    }
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 4096];
    let mut left = 64 * 1024_usize;
    while left > 0 {
        match tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}

/// The router, with the connection's client certificate verdict attached to every request and
/// each request counted in flight on its connection.
fn with_peer(app: Router, peer: Peer, slot: &Arc<Slot>) -> TowerToHyperService<PeerService> {
    TowerToHyperService::new(PeerService {
        app,
        peer,
        slot: Arc::clone(slot),
    })
}

/// Inserts a connection's [`Peer`] into each of its requests.
#[derive(Clone)]
struct PeerService {
    app: Router,
    peer: Peer,
    slot: Arc<Slot>,
}

impl<B> tower::Service<hyper::Request<B>> for PeerService
where
    Router: tower::Service<hyper::Request<B>>,
    <Router as tower::Service<hyper::Request<B>>>::Future: Unpin,
{
    type Response = <Router as tower::Service<hyper::Request<B>>>::Response;
    type Error = <Router as tower::Service<hyper::Request<B>>>::Error;
    type Future = Tracked<<Router as tower::Service<hyper::Request<B>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::<hyper::Request<B>>::poll_ready(&mut self.app, cx)
    }

    fn call(&mut self, mut req: hyper::Request<B>) -> Self::Future {
        let in_flight = self.slot.request();
        req.extensions_mut().insert(self.peer.clone());
        Tracked {
            inner: self.app.call(req),
            _in_flight: in_flight,
        }
    }
}

/// A handler's future, counted in flight on its connection until it answers (or is dropped).
struct Tracked<F> {
    inner: F,
    _in_flight: InFlight,
}

impl<F: Future + Unpin> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// Serves one connection until it ends, the server stops, the connection is evicted or it idles.
///
/// A connection that sends no complete request within the header timeout is closed: hyper's own
/// header timeout starts only once it has told HTTP/1 from HTTP/2, so a client silent after the
/// TLS handshake would otherwise hold its slot forever. A connection with no request in flight
/// for `--idle-timeout` is shut down gracefully (HTTP/2: GOAWAY; hyper's keep-alive pings would
/// keep it open forever otherwise), and so is one evicted to make room for a new connection.
async fn serve_connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: TowerToHyperService<PeerService>,
    slot: &Arc<Slot>,
    mut stopping: watch::Receiver<bool>,
    limits: Limits,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let started = tokio::time::Instant::now();
    let mut closing = false;
    let mut check_at = started + limits.header_timeout.min(limits.idle_timeout);
    let result = loop {
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = stopping.wait_for(|s| *s), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = slot.evicted(), if !closing => {
                tracing::debug!("evicted to make room for a new connection (--max-connections)");
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(check_at), if !closing => {
                let now = tokio::time::Instant::now();
                if !slot.asked() {
                    if now >= started + limits.header_timeout {
                        return tracing::debug!(
                            "no request within --header-timeout: closing the connection"
                        );
                    }
                    check_at = (started + limits.header_timeout).min(now + limits.idle_timeout);
                    continue;
                }
                match slot.idle_for() {
                    Some(idle) if idle >= limits.idle_timeout => {
                        tracing::debug!(?idle, "idle for --idle-timeout: closing the connection");
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    Some(idle) => check_at = now + (limits.idle_timeout - idle),
                    None => check_at = now + limits.idle_timeout,
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// A socket whose writes fail once they have made no progress for `--write-timeout`: a client
/// that stops reading (an HTTP/1.1 pipeline never read, a full receive window) cannot hold its
/// connection and the answers queued for it forever.
struct WriteDeadline<S> {
    io: S,
    timeout: Duration,
    /// Armed while a write is blocked.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    blocked: bool,
}

impl<S> WriteDeadline<S> {
    fn new(io: S, timeout: Duration) -> Self {
        WriteDeadline {
            io,
            timeout,
            stalled: None,
            blocked: false,
        }
    }

    /// After a write returned `Pending`: an error once the deadline has passed.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        if !self.blocked {
            self.blocked = true;
            match &mut self.stalled {
                Some(s) => s.as_mut().reset(deadline),
                None => self.stalled = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        match &mut self.stalled {
            Some(s) => {
                ready!(s.as_mut().poll(cx));
                Poll::Ready(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client read nothing for --write-timeout",
                ))
            }
            None => Poll::Pending,
        }
    }

    fn progress<T>(
        &mut self,
        r: Poll<std::io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<T>> {
        match r {
            Poll::Pending => match self.check(cx) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
            done => {
                self.blocked = false;
                done
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.progress(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.progress(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.progress(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.progress(r, cx)
    }
}

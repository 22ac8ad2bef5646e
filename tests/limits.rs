//! Slow and hostile clients, and shutdown: what keeps one client from exhausting the server, and
//! what a SIGTERM does to requests in flight (issue 5, "Faults").
//!
//! Each test sets short limits through the harness's `tweak` closure, so that none runs longer
//! than a few seconds. Covered elsewhere, not repeated here: a single oversized header line gets
//! 431 and a GET with a body gets 413 (`tests/api.rs`: `returns_431_for_oversized_headers`,
//! `returns_413_status_for_a_get_with_a_body`), write methods get 405.
//!
//! The "connection limit reached (--max-connections)" warning of `src/server/listener.rs` is not checked:
//! these tests cannot capture the server's tracing output; they check what a client sees.

mod common;

use std::time::Duration;

use common::bin::{Started, http_get};
use common::{Proto, Reply, Server, TempDir};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A metric whose answer needs the broker (unlike discovery and health).
const METRIC: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/metrics/node_up_count";

/// Reads from `io` until the server closes the connection (end of stream, or a reset, or a TLS
/// stream cut without close_notify); returns what it sent before. Panics if the connection is
/// still open after `IO_TIMEOUT`: the tests set the server's timeouts well below it, so only a
/// timeout that never fires gets there. How soon a timeout fires is not checked (no test times
/// the server).
async fn wait_closed<S: AsyncRead + Unpin>(io: &mut S) -> Vec<u8> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed = async {
        loop {
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&chunk[..n]),
            }
        }
    };
    if tokio::time::timeout(common::IO_TIMEOUT, closed)
        .await
        .is_err()
    {
        panic!(
            "the connection was still open after {:?}; the server sent {:?}",
            common::IO_TIMEOUT,
            String::from_utf8_lossy(&data)
        );
    }
    data
}

/// Whether the server has closed `tcp` (end of stream or reset) within `within`; `false` if it
/// is still open then.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(within, tcp.read(&mut byte)).await {
        Err(_) => false,
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(_)) => panic!("the server sent bytes on a connection that sent nothing"),
    }
}

/// Reads one HTTP/1.1 answer with a Content-Length from `io`, leaving the connection open; the
/// answer's head and body as text.
async fn read_one_answer<S: AsyncRead + Unpin>(io: &mut S) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .unwrap_or_else(|| panic!("an answer without Content-Length: {head}"))
                .trim()
                .parse()
                .expect("a numeric Content-Length");
            if buf.len() >= end + 4 + length {
                assert_eq!(buf.len(), end + 4 + length, "bytes after the answer");
                return String::from_utf8_lossy(&buf).into_owned();
            }
        }
        let n = tokio::time::timeout(common::IO_TIMEOUT, io.read(&mut chunk))
            .await
            .expect("no complete answer in time")
            .expect("reading the answer");
        assert!(
            n > 0,
            "closed in the middle of an answer: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The status code of a raw HTTP/1.1 answer.
fn status_of(raw: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(raw);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 answer: {text:?}"))
}

/// Asserts a 200 metric answer holding one item.
fn assert_metric_answer(r: &Reply) {
    let v = r.expect_json(200);
    assert_eq!(v["kind"], "MetricValueList", "{v}");
    assert_eq!(v["items"][0]["value"], "4", "{v}");
}

/// A copy of the `busy` scenario whose simulated broker has `fault`.
fn replay_with_fault(fault: &str) -> TempDir {
    let dir = TempDir::with_scenario("busy");
    std::fs::write(
        dir.path().join(flux_metrics::source::broker::FAULT_FILE),
        fault,
    )
    .expect("writing the fault file");
    dir
}

// ---------------------------------------------------------------------------------------------
// Timeouts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_handshakes_are_dropped_after_the_handshake_timeout_and_block_no_one() {
    let handshake = Duration::from_secs(2);
    let server = Server::start("busy", |c| c.limits.handshake_timeout = handshake).await;
    // Twenty clients connect and never send a ClientHello.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        stalled.push(TcpStream::connect(server.addr).await.expect("connecting"));
    }
    // Another client is served while all twenty are still waiting for their deadline: the
    // handshakes do not hold up the accept loop.
    let r = server.get("/healthz").await;
    assert_eq!(r.status, 200, "{}", r.text());
    for tcp in &mut stalled {
        assert!(
            !closed_within(tcp, Duration::ZERO).await,
            "a stalled client was dropped before another client was served"
        );
    }
    // Each stalled client is then dropped by the server.
    for tcp in &mut stalled {
        assert!(
            closed_within(tcp, common::IO_TIMEOUT).await,
            "a stalled TLS handshake was never dropped (handshake timeout {handshake:?})"
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_request_head_is_disconnected_after_the_header_timeout() {
    let header = Duration::from_millis(500);
    let server = Server::start("busy", |c| c.limits.header_timeout = header).await;
    let mut tls = server.client_with(Proto::Http1).tls().await;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: a")
        .await
        .expect("writing half a request head");
    tls.flush().await.expect("flushing");
    let data = wait_closed(&mut tls).await;
    // hyper closes without an answer; a 408 would be acceptable too.
    assert!(
        data.is_empty() || status_of(&data) == 408,
        "{:?}",
        String::from_utf8_lossy(&data)
    );
    // The server is fine.
    assert_eq!(server.get("/healthz").await.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_http1_connection_is_closed_after_the_header_timeout() {
    let header = Duration::from_millis(500);
    let server = Server::start("busy", |c| c.limits.header_timeout = header).await;
    let mut tls = server.client_with(Proto::Http1).tls().await;
    for _ in 0..2 {
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("writing a request");
        let answer = read_one_answer(&mut tls).await;
        assert_eq!(status_of(answer.as_bytes()), 200, "{answer}");
    }
    // Kept alive after two requests, then idle: closed once the header timeout has passed.
    let data = wait_closed(&mut tls).await;
    assert!(data.is_empty(), "{data:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_silent_after_the_handshake_is_disconnected_after_the_header_timeout() {
    let header = Duration::from_millis(500);
    let server = Server::start("busy", |c| c.limits.header_timeout = header).await;
    let cases: [(Proto, &[u8]); 3] = [
        (Proto::Http1, b""),
        (Proto::Http2, b""),
        (Proto::Http2, b"PRI * HTTP/2.0\r\n"), // the start of the HTTP/2 preface
    ];
    for (proto, sent) in cases {
        let mut tls = server.client_with(proto).tls().await;
        tls.write_all(sent).await.expect("writing");
        tls.flush().await.expect("flushing");
        wait_closed(&mut tls).await;
    }
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Connection slots: idle connections, clients that do not read, one address, a full server

/// An HTTP/2 connection on which one `GET /healthz` was answered, and the task driving it, which
/// ends when the server closes the connection.
async fn h2_after_one_request(
    client: &common::Client,
    port: u16,
) -> (
    hyper::client::conn::http2::SendRequest<common::Body>,
    tokio::task::JoinHandle<()>,
) {
    let tls = client.tls().await;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("HTTP/2 handshake");
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::get(format!("https://localhost:{port}/healthz"))
        .body(common::empty())
        .expect("a request");
    let resp = tokio::time::timeout(common::IO_TIMEOUT, sender.send_request(req))
        .await
        .expect("an answer in time")
        .expect("an answer");
    assert_eq!(resp.status(), 200);
    (sender, driver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout_though_it_answers_pings() {
    let idle = Duration::from_millis(600);
    let server = Server::start("busy", |c| {
        c.limits.idle_timeout = idle;
        c.limits.header_timeout = Duration::from_secs(20);
    })
    .await;
    let client = server.client_with(Proto::Http2);
    let (_sender, driver) = h2_after_one_request(&client, server.addr.port()).await;
    // The client keeps its side open (hyper answers the server's pings); the server ends it.
    tokio::time::timeout(common::IO_TIMEOUT, driver)
        .await
        .expect("the idle HTTP/2 connection was still open after --idle-timeout")
        .expect("the connection task");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_pipelines_without_reading_is_disconnected_by_the_write_timeout() {
    let server = Server::start("busy", |c| {
        c.limits.write_timeout = Duration::from_millis(500);
        c.limits.header_timeout = Duration::from_secs(20);
    })
    .await;
    let mut tls = server.client_with(Proto::Http1).tls().await;
    // Far more answer bytes than the socket buffers hold: the server's writes block.
    const REQUESTS: usize = 3000;
    let one = b"GET /openapi/v2 HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let answer_bytes = server.get("/openapi/v2").await.body.len();
    assert!(
        answer_bytes > 10_000,
        "/openapi/v2 is too small for this test"
    );
    tls.write_all(&one.repeat(REQUESTS))
        .await
        .expect("writing the pipeline");
    tls.flush().await.expect("flushing");
    // Not a measurement: time for the server's writes to block and their timeout to pass.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Now read: what the server wrote before it gave up, then the end of the connection.
    let mut got = 0_usize;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(common::IO_TIMEOUT, tls.read(&mut chunk)).await {
            Err(_) => panic!("the connection stayed open after {got} bytes"),
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => got += n,
        }
    }
    assert!(
        got < REQUESTS * answer_bytes,
        "every answer was written ({got} bytes): the client that did not read was not cut off"
    );
    assert_eq!(server.get("/healthz").await.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share_but_the_front_proxy_is_not_counted() {
    use flux_metrics::server::config::AuthSource;
    use flux_metrics::server::pki::{Ca, Validity};
    let validity = Validity::days_from(std::time::SystemTime::now(), 1).expect("validity");
    let front_ca = Ca::new("front-proxy-ca", validity).expect("a CA");
    let dir = TempDir::new("per-address");
    let rh = dir.path().join("rh.crt");
    std::fs::write(&rh, &front_ca.issued().cert_pem).expect("writing the CA");
    let server = Server::start("busy", |c| {
        c.limits.max_connections_per_address = 2;
        c.limits.header_timeout = Duration::from_secs(20);
        c.auth = AuthSource::Files {
            client_ca: None,
            requestheader_ca: Some(rh.clone()),
            allowed_names: vec!["front-proxy-client".into()],
        };
    })
    .await;
    let front = front_ca
        .issue_client("front-proxy-client", &[], validity)
        .expect("a front-proxy certificate");
    let proxy = server.client_with_certificate(&front.cert_pem, &front.key_pem);
    let headers = [("x-remote-user", "system:kube-aggregator")];
    // Three front-proxy connections from 127.0.0.1: more than the cap, none refused.
    let mut proxied = Vec::new();
    for _ in 0..3 {
        let mut conn = proxy.connect().await;
        conn.send("GET", METRIC, &headers, common::empty())
            .await
            .expect_json(200);
        proxied.push(conn);
    }
    // Two anonymous connections from the same address fill its share; a third is closed.
    let anonymous = server.client();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = anonymous.connect().await;
        assert_eq!(conn.get("/healthz").await.status, 200);
        held.push(conn);
    }
    // The third gets through its handshake (it could have been the front proxy), then is closed.
    let mut third = anonymous.tls().await;
    let closed = wait_closed(&mut third).await;
    assert!(
        closed.is_empty(),
        "a third untrusted connection from one address was served with a cap of 2"
    );
    // Another address, and the front proxy, are still served.
    let other = anonymous.from(std::net::Ipv4Addr::new(127, 0, 0, 2));
    assert_eq!(other.get("/healthz").await.status, 200);
    for conn in &mut proxied {
        conn.send("GET", METRIC, &headers, common::empty())
            .await
            .expect_json(200);
    }
    let mut fourth = proxy.connect().await;
    fourth
        .send("GET", METRIC, &headers, common::empty())
        .await
        .expect_json(200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_evicts_the_longest_idle_connection_never_one_with_a_request_in_flight() {
    let replay = replay_with_fault("delay 2s");
    let server = Server::start(replay.path(), |c| {
        c.broker.max_age = Duration::ZERO;
        c.limits.max_connections = 3;
        c.limits.header_timeout = Duration::from_secs(20);
    })
    .await;
    let port = server.addr.port();
    let client = server.client_with(Proto::Http2);
    // A connection with a slow request in flight, then two idle ones (the oldest first).
    let mut busy = client.connect().await;
    let in_flight = tokio::spawn(async move { busy.get(METRIC).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_a, oldest) = h2_after_one_request(&client, port).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_b, newer) = h2_after_one_request(&client, port).await;
    // A fourth is served: the longest-idle connection made room for it, the busy one did not.
    let (_c, _fourth) = h2_after_one_request(&client, port).await;
    tokio::time::timeout(common::IO_TIMEOUT, oldest)
        .await
        .expect("the longest-idle connection was not closed to make room")
        .expect("the connection task");
    assert!(
        !newer.is_finished(),
        "the newer idle connection was evicted"
    );
    assert_metric_answer(&in_flight.await.expect("the request in flight"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_connection_has_a_request_in_flight_a_new_one_is_closed_at_once() {
    let replay = replay_with_fault("delay 3s");
    let server = Server::start(replay.path(), |c| {
        c.broker.max_age = Duration::ZERO;
        c.limits.max_connections = 2;
    })
    .await;
    let client = server.client_with(Proto::Http1);
    let mut requests = Vec::new();
    for _ in 0..2 {
        let mut conn = client.connect().await;
        requests.push(tokio::spawn(async move { conn.get(METRIC).await }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut third = TcpStream::connect(server.addr).await.expect("connecting");
    assert!(
        closed_within(&mut third, Duration::from_secs(1)).await,
        "a third connection was kept while both slots had a request in flight"
    );
    for r in requests {
        assert_metric_answer(&r.await.expect("a request task"));
    }
    // Both are idle now: a new connection is served.
    assert_eq!(client.get("/healthz").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn plain_http_on_the_https_port_gets_a_400_saying_so() {
    let server = Server::start("busy", |_| {}).await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connecting");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("writing");
    let closed = wait_closed(&mut tcp).await;
    let text = String::from_utf8_lossy(&closed);
    assert!(text.starts_with("HTTP/1.0 400 Bad Request\r\n"), "{text:?}");
    assert!(
        text.ends_with("\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"),
        "{text:?}"
    );
    assert_eq!(server.get("/healthz").await.status, 200);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Oversized request heads

#[tokio::test]
async fn a_url_longer_than_the_head_limit_gets_414_or_431_and_the_server_carries_on() {
    let server = Server::start("busy", |_| {}).await;
    let path = format!("/apis/{}", "a".repeat(20 * 1024));
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let raw = server.client().raw(request.as_bytes()).await;
    let code = status_of(&raw);
    assert!(
        code == 414 || code == 431,
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(server.get("/healthz").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn many_small_headers_adding_up_past_the_head_limit_get_431() {
    let server = Server::start("busy", |_| {}).await;
    // 40 headers of 512 bytes: none is large, together they pass 16 KiB.
    let mut request = String::from("GET /apis HTTP/1.1\r\nHost: localhost\r\n");
    for i in 0..40 {
        request.push_str(&format!("X-Filler-{i}: {}\r\n", "b".repeat(512)));
    }
    request.push_str("\r\n");
    let raw = server.client().raw(request.as_bytes()).await;
    assert_eq!(status_of(&raw), 431, "{}", String::from_utf8_lossy(&raw));
    assert_eq!(server.get("/healthz").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn too_many_headers_get_431() {
    let server = Server::start("busy", |_| {}).await;
    let mut request = String::from("GET /apis HTTP/1.1\r\nHost: localhost\r\n");
    for i in 0..150 {
        request.push_str(&format!("X-{i}: 1\r\n"));
    }
    request.push_str("\r\n");
    let raw = server.client().raw(request.as_bytes()).await;
    assert_eq!(status_of(&raw), 431, "{}", String::from_utf8_lossy(&raw));
    assert_eq!(server.get("/healthz").await.status, 200);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Shutdown

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_finishes_every_request_in_flight_over_http1_and_http2() {
    // Long enough that every request is surely still waiting when the shutdown is checked.
    let replay = replay_with_fault("delay 2s");
    let server = Server::start(replay.path(), |c| {
        c.broker.max_age = Duration::ZERO;
        c.limits.shutdown_grace = Duration::from_secs(8);
    })
    .await;
    // Connections first, so that only the requests are in flight at the signal.
    let h1 = server.client_with(Proto::Http1);
    let mut conns = Vec::new();
    for _ in 0..5 {
        conns.push(h1.connect().await);
    }
    let h2 = server.client_with(Proto::Http2).connect().await;
    for _ in 0..5 {
        conns.push(h2.h2_clone().expect("an HTTP/2 connection"));
    }
    let versions: Vec<_> = conns.iter().map(common::Conn::version).collect();
    let requests: Vec<_> = conns
        .into_iter()
        .map(|mut conn| tokio::spawn(async move { conn.get(METRIC).await }))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let addr = server.addr;
    let stopping = tokio::spawn(server.shutdown_within(Duration::from_secs(8)));
    // The listener closes: new connections are refused.
    let refused = async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(common::IO_TIMEOUT, refused)
        .await
        .expect("new connections were still accepted after the shutdown signal");
    // The requests are still waiting for the broker, and shutdown waits for them.
    assert!(
        requests.iter().all(|r| !r.is_finished()),
        "a request ended before the broker answered"
    );
    assert!(
        !stopping.is_finished(),
        "run() returned with requests in flight"
    );
    for (request, version) in requests.into_iter().zip(versions) {
        let r = request.await.expect("a request task panicked");
        assert_eq!(r.version, version);
        assert_metric_answer(&r);
    }
    stopping.await.expect("shutdown failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_grace_bounds_how_long_a_hanging_request_delays_the_end() {
    let replay = replay_with_fault("hang");
    let server = Server::start(replay.path(), |c| {
        c.broker.max_age = Duration::ZERO;
        c.broker.timeout = Duration::from_secs(600);
        c.limits.shutdown_grace = Duration::from_millis(500);
    })
    .await;
    let mut conn = server.client_with(Proto::Http1).connect().await;
    // The request hangs for the 10 min broker timeout; it is abandoned at the end of the test.
    let request = tokio::spawn(async move { conn.get(METRIC).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!request.is_finished(), "the hanging request already ended");
    // Only the grace period can end run() before the harness's deadline.
    server.shutdown().await;
    request.abort();
}

// ---------------------------------------------------------------------------------------------
// Signals to the real binary

/// `start --insecure-http` replaying `replay` with no cache and `extra` flags, once it serves.
fn start_binary(replay: &TempDir, extra: &[&str]) -> Started {
    let mut flags = vec!["--max-age", "0s"];
    flags.extend(extra);
    common::bin::start_replay(replay.path(), &flags)
}

/// Sends `signal` to the binary while a request waits on the (slow) broker; the request gets
/// its 200 and the binary exits 0.
fn signal_finishes_the_request_in_flight_then_exits_zero(signal: &str) {
    let replay = replay_with_fault("delay 2s");
    let server = start_binary(&replay, &[]);
    let port = server.port;
    let request = std::thread::spawn(move || http_get(port, METRIC));
    // Time for the request to reach the server; it then waits on the broker for 2 s.
    std::thread::sleep(Duration::from_millis(500));
    let out = server.stop(signal);
    let (code, body) = request
        .join()
        .expect("the request thread panicked")
        .unwrap_or_else(|e| panic!("the request in flight at SIG{signal} was dropped: {e}"));
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(v["items"][0]["value"], "4", "{v}");
    assert_eq!(out.status.code(), Some(0), "SIG{signal}: {out}");
}

#[test]
fn sigint_finishes_the_request_in_flight_then_exits_zero() {
    signal_finishes_the_request_in_flight_then_exits_zero("INT");
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_zero() {
    signal_finishes_the_request_in_flight_then_exits_zero("TERM");
}

/// The broker hangs for longer than the test waits for the exit: only the grace period can end
/// the request, and with it the process.
#[test]
fn sigterm_exits_zero_after_the_grace_period_even_with_a_hanging_request() {
    let replay = replay_with_fault("hang");
    let server = start_binary(
        &replay,
        &["--flux-timeout", "10m", "--shutdown-grace", "500ms"],
    );
    let port = server.port;
    let request = std::thread::spawn(move || http_get(port, METRIC));
    std::thread::sleep(Duration::from_millis(500));
    let out = server.stop("TERM");
    assert_eq!(out.status.code(), Some(0), "{out}");
    // The abandoned request gets no answer (its connection closes with the process).
    let answer = request.join().expect("the request thread panicked");
    assert!(
        !matches!(answer, Ok((200, _))),
        "a hanging request was answered: {answer:?}"
    );
}

/// A custom metric blocked in `flux.rpc` (on a broker that hangs for 10 minutes) does not hold
/// the exit past `--shutdown-grace`: before, the process waited for the evaluation's thread.
#[test]
fn sigterm_exits_within_the_grace_period_while_a_script_is_blocked_in_flux_rpc() {
    let replay = TempDir::with_scenario("busy");
    let script = replay.path().join("blocked.rhai");
    std::fs::write(&script, "/// One.\nfn blocked(flux) { 1 }\n").expect("writing the script");
    let script_arg = script.to_string_lossy().into_owned();
    let server = common::bin::start_replay(
        replay.path(),
        &[
            "--max-age",
            "1h",
            "--custom-metric",
            &script_arg,
            "--flux-timeout",
            "10m",
            "--shutdown-grace",
            "500ms",
        ],
    );
    let port = server.port;
    // A broker answer kept for an hour, then a broker that hangs, and a script that asks it.
    let (code, body) = http_get(port, METRIC).expect("a first answer");
    assert_eq!(code, 200, "{body}");
    std::fs::write(
        replay.path().join(flux_metrics::source::broker::FAULT_FILE),
        "hang",
    )
    .expect("writing the fault file");
    std::fs::write(
        &script,
        "/// Waits for the broker.\nfn blocked(flux) { flux.rpc(\"resource.status\"); 2 }\n",
    )
    .expect("editing the script");
    // Not a measurement: the files are checked every second for edits.
    std::thread::sleep(Duration::from_secs(3));
    let custom = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/metrics/blocked";
    let request = std::thread::spawn(move || http_get(port, custom));
    std::thread::sleep(Duration::from_millis(500));
    // `stop` waits 30 s at most: far less than the script's RPC would take.
    let out = server.stop("TERM");
    assert_eq!(out.status.code(), Some(0), "{out}");
    let answer = request.join().expect("the request thread panicked");
    assert!(
        !matches!(answer, Ok((200, _))),
        "the blocked script was answered: {answer:?}"
    );
}

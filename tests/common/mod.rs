//! The harness shared by the integration tests: a certificate authority and serving certificate
//! generated per run, a server running `flux_metrics::run` on a port bound before it starts, and
//! a small HTTPS client (HTTP/1.1 or HTTP/2, or raw bytes) that trusts only that authority.
//!
//! Everything is built from crates the server already uses (rcgen, rustls, tokio-rustls, hyper),
//! so the tests add no heavy dependency and exercise the same TLS stack a client-go peer meets.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

pub(crate) mod bin;
pub(crate) mod router;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flux_metrics::server::config::{AuthSource, Config, Limits, TlsSource};
use flux_metrics::server::pki::{self, Ca, Validity};
use flux_metrics::source::broker::{Settings, Source};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper::{HeaderMap, Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Longest any single exchange with the test server may take.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// `tests/fixtures`.
pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The recorded scenarios.
pub(crate) const SCENARIOS: [&str; 9] = [
    "idle",
    "busy",
    "drained",
    "gpus-queues",
    "many-jobs",
    "elastic",
    "gpu-exclusive",
    "queue-constrained",
    "room-on-busy",
];

/// Installs the ring crypto provider for rustls (once per process; later calls are no-ops).
pub(crate) fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A directory of its own under the system temp dir, removed on drop.
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh, empty directory whose name holds `tag`, the pid and a counter.
    pub(crate) fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "flux-metrics-test-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating a temp dir");
        TempDir { path }
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The text of the file `name` in the directory, or `""` if there is none (for failure
    /// messages).
    pub(crate) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path.join(name)).unwrap_or_default()
    }

    /// A copy of the recorded scenario `scenario` in a fresh temp dir.
    pub(crate) fn with_scenario(scenario: &str) -> TempDir {
        let dir = TempDir::new(scenario);
        for entry in std::fs::read_dir(fixtures().join(scenario)).expect("reading a scenario") {
            let entry = entry.expect("reading a scenario entry");
            std::fs::copy(entry.path(), dir.path().join(entry.file_name()))
                .expect("copying a recorded answer");
        }
        dir
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A CA and a serving certificate for `localhost` and `127.0.0.1` it signed, as PEM files.
///
/// The CA is separate from the leaf: rustls refuses a CA certificate used as an end entity.
pub(crate) struct Pki {
    dir: TempDir,
    /// PEM of the CA.
    pub(crate) ca_pem: String,
    /// The serving certificate chain (leaf, then CA).
    pub(crate) cert: PathBuf,
    /// The serving key.
    pub(crate) key: PathBuf,
}

impl Pki {
    /// Generates a CA and a leaf signed by it (the product's own PKI code), written to a fresh
    /// temp dir.
    pub(crate) fn generate() -> Pki {
        let validity = Validity::days_from(std::time::SystemTime::now(), 1).expect("validity");
        let ca = Ca::new("flux-metrics-api test CA", validity).expect("the CA");
        let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
        let leaf = ca
            .issue_server("localhost", &names, validity)
            .expect("the serving certificate");
        let dir = TempDir::new("pki");
        let cert = dir.path().join("tls.crt");
        let key_path = dir.path().join("tls.key");
        std::fs::write(&cert, format!("{}{}", leaf.cert_pem, ca.issued().cert_pem))
            .expect("writing the certificate");
        std::fs::write(&key_path, &leaf.key_pem).expect("writing the key");
        Pki {
            dir,
            ca_pem: ca.issued().cert_pem.clone(),
            cert,
            key: key_path,
        }
    }

    /// A root store holding only this CA.
    fn roots(&self) -> rustls::RootCertStore {
        pki::roots("the test CA", self.ca_pem.as_bytes()).expect("the test CA")
    }

    /// A rustls client configuration trusting only this CA and presenting a client certificate.
    pub(crate) fn client_config_with_certificate(
        &self,
        chain_pem: &str,
        key_pem: &str,
    ) -> Arc<rustls::ClientConfig> {
        install_crypto();
        let chain = pki::certificates(chain_pem.as_bytes()).expect("client chain PEM");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("client key PEM");
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(self.roots())
            .with_client_auth_cert(chain, key)
            .expect("client certificate");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A rustls client configuration trusting only this CA, offering `alpn`.
    pub(crate) fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        install_crypto();
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(self.roots())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// The configuration every test server (and router) starts from: answers replayed from
/// `scenario_or_dir` (a scenario name under `tests/fixtures`, or an absolute path), a 1 s cache,
/// a 5 s broker timeout and modest limits; plain HTTP, which [`Server::start`] replaces with
/// the generated certificate.
pub(crate) fn base_config(scenario_or_dir: &Path) -> Config {
    Config {
        host: "127.0.0.1".into(),
        port: 0,
        tls: TlsSource::Plain,
        api_alias: None,
        broker: Settings::new(
            // An absolute path replaces the base.
            Source::Replay(fixtures().join(scenario_or_dir)),
            Duration::from_secs(1),
            Duration::from_secs(5),
        ),
        limits: Limits {
            max_connections: 128,
            max_connections_per_address: 64,
            handshake_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        },
        auth: AuthSource::Open,
        threads: 2,
        custom_metrics: Vec::new(),
        custom: flux_metrics::custom::Settings::default(),
        history_interval: Duration::from_secs(15),
        history_retention: Duration::from_secs(3600),
        api_token_file: None,
        shrink: None,
        allow_writes: false,
    }
}

/// A running `flux_metrics::run`, stopped by [`Server::shutdown`] (or abandoned on drop).
pub(crate) struct Server {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    pki: Pki,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    /// Starts a server replaying `scenario_or_dir`: a scenario name under `tests/fixtures`, or an
    /// absolute path. `tweak` may change anything in the configuration before it starts.
    pub(crate) async fn start(
        scenario_or_dir: impl AsRef<Path>,
        tweak: impl FnOnce(&mut Config),
    ) -> Server {
        install_crypto();
        let pki = Pki::generate();
        let mut config = base_config(scenario_or_dir.as_ref());
        config.tls = TlsSource::Files {
            cert: pki.cert.clone(),
            key: pki.key.clone(),
        };
        tweak(&mut config);
        // Bound before the server task exists, so requests can follow at once.
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(flux_metrics::run(config, listener, async move {
            stopped.await.ok();
        }));
        Server {
            addr,
            pki,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A client that lets ALPN choose (the server prefers HTTP/2).
    pub(crate) fn client(&self) -> Client {
        self.client_with(Proto::Auto)
    }

    /// A client presenting a client certificate (PEM chain and key), letting ALPN choose.
    pub(crate) fn client_with_certificate(&self, chain_pem: &str, key_pem: &str) -> Client {
        Client {
            addr: self.addr,
            connector: TlsConnector::from(
                self.pki.client_config_with_certificate(chain_pem, key_pem),
            ),
            local: None,
        }
    }

    /// The PEM of the CA that signed the server's certificate.
    pub(crate) fn server_ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    /// A client speaking `proto`.
    pub(crate) fn client_with(&self, proto: Proto) -> Client {
        let alpn: &[&[u8]] = match proto {
            Proto::Auto => &[b"h2", b"http/1.1"],
            Proto::Http1 => &[b"http/1.1"],
            Proto::Http2 => &[b"h2"],
        };
        Client {
            addr: self.addr,
            connector: TlsConnector::from(self.pki.client_config(alpn)),
            local: None,
        }
    }

    /// `GET path` on a fresh connection, ALPN choosing the protocol.
    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.client().get(path).await
    }

    /// Stops the server and asserts that `run` completes, without error, within `within`.
    pub(crate) async fn shutdown_within(mut self, within: Duration) {
        let stop = self.stop.take().expect("not yet stopped");
        let task = self.task.take().expect("not yet stopped");
        stop.send(()).expect("the server is still running");
        let result = tokio::time::timeout(within, task)
            .await
            .unwrap_or_else(|_| panic!("run() did not complete within {within:?} of shutdown"))
            .expect("the run task panicked");
        result.expect("run() returned an error");
    }

    /// Stops the server and asserts that `run` completes without error.
    pub(crate) async fn shutdown(self) {
        self.shutdown_within(IO_TIMEOUT).await;
    }

    /// Whether `run` has returned (without waiting).
    pub(crate) fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Which HTTP version a client offers in ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Proto {
    /// Offer both; the server picks.
    Auto,
    /// Offer only `http/1.1`.
    Http1,
    /// Offer only `h2`.
    Http2,
}

/// A request body: empty for a GET.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// An empty body.
pub(crate) fn empty() -> Body {
    Empty::new().boxed()
}

/// A body holding `bytes` (with a known length, so hyper sends a Content-Length).
pub(crate) fn full(bytes: &'static [u8]) -> Body {
    Full::new(Bytes::from_static(bytes)).boxed()
}

/// A body holding `bytes` whose length is not announced (no Content-Length; chunked on
/// HTTP/1.1, bare DATA frames on HTTP/2).
pub(crate) fn streamed(bytes: &'static [u8]) -> Body {
    Streamed(Some(Bytes::from_static(bytes))).boxed()
}

struct Streamed(Option<Bytes>);

impl hyper::body::Body for Streamed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.take().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// A TLS client of the test server.
#[derive(Clone)]
pub(crate) struct Client {
    addr: SocketAddr,
    connector: TlsConnector,
    /// The loopback address connections come from (`None`: the system's choice, 127.0.0.1).
    local: Option<std::net::Ipv4Addr>,
}

impl Client {
    /// The same client, connecting from another loopback address (e.g. 127.0.0.2), so that a
    /// test can stand for a second host.
    pub(crate) fn from(&self, local: std::net::Ipv4Addr) -> Client {
        Client {
            local: Some(local),
            ..self.clone()
        }
    }

    /// A TCP connection to the server, from [`Client::from`]'s address if one was given.
    pub(crate) async fn tcp(&self) -> TcpStream {
        self.try_tcp().await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Client::tcp`], or why there is none.
    pub(crate) async fn try_tcp(&self) -> Result<TcpStream, String> {
        let connected = match self.local {
            None => TcpStream::connect(self.addr).await,
            Some(ip) => {
                let socket =
                    tokio::net::TcpSocket::new_v4().map_err(|e| format!("a socket: {e}"))?;
                socket
                    .bind(SocketAddr::from((ip, 0)))
                    .map_err(|e| format!("binding {ip}: {e}"))?;
                socket.connect(self.addr).await
            }
        };
        connected.map_err(|e| format!("connecting: {e}"))
    }

    /// A TLS connection, verified against the test CA for `localhost`.
    pub(crate) async fn tls(&self) -> TlsStream<TcpStream> {
        self.try_tls().await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// A TLS connection, or why there is none (refused, closed, timed out, not verified).
    pub(crate) async fn try_tls(&self) -> Result<TlsStream<TcpStream>, String> {
        let tcp = self.try_tcp().await?;
        let name = ServerName::try_from("localhost").expect("server name");
        tokio::time::timeout(IO_TIMEOUT, self.connector.connect(name, tcp))
            .await
            .map_err(|_| "TLS handshake timed out".to_owned())?
            .map_err(|e| format!("TLS handshake: {e}"))
    }

    /// An HTTP connection, HTTP/2 or HTTP/1.1 as ALPN decided.
    pub(crate) async fn connect(&self) -> Conn {
        self.try_connect().await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// An HTTP connection, or why there is none.
    pub(crate) async fn try_connect(&self) -> Result<Conn, String> {
        let tls = self.try_tls().await?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        let authority = format!("localhost:{}", self.addr.port());
        let sender = if h2 {
            let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Sender::H2(sender)
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Sender::H1(sender)
        };
        Ok(Conn { sender, authority })
    }

    /// `GET path` on a fresh connection.
    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.connect().await.get(path).await
    }

    /// `GET path` with extra headers, on a fresh connection.
    pub(crate) async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.connect()
            .await
            .send("GET", path, headers, empty())
            .await
    }

    /// Writes `bytes` over a TLS connection that offered only `http/1.1`, then returns what the
    /// server sends until it closes the connection (or `IO_TIMEOUT` passes).
    pub(crate) async fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut tls = self.tls().await;
        tls.write_all(bytes).await.expect("writing the raw request");
        tls.flush().await.expect("flushing");
        let mut out = Vec::new();
        // A server closing without close_notify makes rustls report an error after the data:
        // what was read is kept either way.
        let _ = tokio::time::timeout(IO_TIMEOUT, tls.read_to_end(&mut out)).await;
        out
    }
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Body>),
    H2(hyper::client::conn::http2::SendRequest<Body>),
}

/// One HTTP connection; requests on it are sent one after the other (HTTP/1.1) or multiplexed
/// (HTTP/2, through clones of the connection's sender).
pub(crate) struct Conn {
    sender: Sender,
    authority: String,
}

impl Conn {
    /// The protocol of this connection.
    pub(crate) fn version(&self) -> Version {
        match self.sender {
            Sender::H1(_) => Version::HTTP_11,
            Sender::H2(_) => Version::HTTP_2,
        }
    }

    /// `GET path`, no headers but Host.
    pub(crate) async fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path, &[], empty()).await
    }

    /// `GET path`, or why it got no answer (the connection was closed, or it timed out).
    pub(crate) async fn try_get(&mut self, path: &str) -> Result<Reply, String> {
        self.try_send("GET", path, &[], empty()).await
    }

    /// `method path` with `headers` and `body`.
    pub(crate) async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Reply {
        self.try_send(method, path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Conn::send`], or why it got no answer.
    pub(crate) async fn try_send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<Reply, String> {
        let mut req = Request::builder().method(method);
        req = match self.sender {
            // Origin form and a Host header, as HTTP/1.1 clients send.
            Sender::H1(_) => req.uri(path).header("host", &self.authority),
            // HTTP/2 carries scheme and authority as pseudo-headers, from an absolute URI.
            Sender::H2(_) => req.uri(format!("https://{}{path}", self.authority)),
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body).expect("building the request");
        let exchange = async {
            let resp = match &mut self.sender {
                Sender::H1(s) => match s.ready().await {
                    Ok(()) => s.send_request(req).await,
                    Err(e) => Err(e),
                },
                Sender::H2(s) => match s.ready().await {
                    Ok(()) => s.send_request(req).await,
                    Err(e) => Err(e),
                },
            }
            .map_err(|e| format!("{method} {path}: {e}"))?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("{method} {path}: reading the body: {e}"))?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                version: parts.version,
                body,
            })
        };
        tokio::time::timeout(IO_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{method} {path}: no answer within {IO_TIMEOUT:?}"))?
    }

    /// A handle for sending requests concurrently on this HTTP/2 connection.
    pub(crate) fn h2_clone(&self) -> Option<Conn> {
        match &self.sender {
            Sender::H2(s) => Some(Conn {
                sender: Sender::H2(s.clone()),
                authority: self.authority.clone(),
            }),
            Sender::H1(_) => None,
        }
    }
}

/// An answer.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Status code.
    pub(crate) status: StatusCode,
    /// Headers.
    pub(crate) headers: HeaderMap,
    /// HTTP version of the answer.
    pub(crate) version: Version,
    /// The whole body.
    pub(crate) body: Bytes,
}

impl Reply {
    /// The `Content-Type` header, or `""`.
    pub(crate) fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON, after checking that the answer says it is JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        assert_eq!(
            self.content_type(),
            "application/json",
            "Content-Type of a {} answer: {}",
            self.status,
            self.text()
        );
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} answer is not JSON ({e}): {}", self.status, self.text()))
    }

    /// Asserts `status`, then returns the JSON body.
    pub(crate) fn expect_json(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        self.json()
    }

    /// Asserts that the answer is a `metav1.Status` failure with `code` and `reason`, and
    /// returns its message.
    pub(crate) fn expect_status(&self, code: u16, reason: &str) -> String {
        let v = self.expect_json(code);
        let message = v["message"].as_str().unwrap_or_default().to_owned();
        assert_eq!(
            v,
            serde_json::json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": reason,
                "code": code,
            }),
            "not the Status expected"
        );
        assert!(!message.is_empty(), "a Status without a message: {v}");
        message
    }
}

/// Checks that `value` is a `metav1.Time` (RFC 3339, UTC `Z`, second precision).
pub(crate) fn assert_k8s_time(value: &serde_json::Value) {
    let s = value
        .as_str()
        .unwrap_or_else(|| panic!("timestamp {value} is not a string"));
    let b = s.as_bytes();
    let shape = b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    assert!(shape, "timestamp {s:?} is not YYYY-MM-DDTHH:MM:SSZ");
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("timestamp {s:?} is not RFC 3339: {e}"));
}

/// Checks and removes the `timestamp` of every item, so the rest can be compared to a golden.
pub(crate) fn strip_timestamps(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(items) = v.get_mut("items").and_then(|i| i.as_array_mut()) {
        for item in items {
            let obj = item.as_object_mut().expect("an item is an object");
            let t = obj.remove("timestamp").expect("an item has a timestamp");
            assert_k8s_time(&t);
        }
    }
    v
}

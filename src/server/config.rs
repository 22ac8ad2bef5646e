//! Everything `start` needs, validated: what the command line (or a test) hands to
//! [`crate::server::run`]. Built by `cli::config`; nothing here reads flags.

use std::path::PathBuf;
use std::time::Duration;

use crate::source::broker::Settings;

/// How the server speaks TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSource {
    /// Certificate chain and key from PEM files.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// A certificate generated at start for these DNS names and IP addresses.
    SelfSigned(Vec<String>),
    /// Plain HTTP.
    Plain,
}

/// Where the client certificate rules come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthSource {
    /// No rules: any client that reaches the port can read the metrics.
    Open,
    /// CA files and allowed names given on the command line.
    Files {
        /// `--client-ca-file`.
        client_ca: Option<PathBuf>,
        /// `--requestheader-client-ca-file`.
        requestheader_ca: Option<PathBuf>,
        /// `--requestheader-allowed-names`.
        allowed_names: Vec<String>,
    },
    /// The `kube-system/extension-apiserver-authentication` ConfigMap.
    Cluster {
        /// `--authentication-kubeconfig`: read it with this kubeconfig's credentials instead of
        /// the pod's service account.
        kubeconfig: Option<PathBuf>,
    },
}

/// Limits that keep slow or hostile clients from exhausting the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most connections at once; when full, the longest-idle connection makes room.
    pub max_connections: usize,
    /// Most connections from one address without a trusted client certificate.
    pub max_connections_per_address: usize,
    /// Longest TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest wait for request headers (and between requests on a kept-alive connection).
    pub header_timeout: Duration,
    /// Longest time a connection with no request in flight stays open.
    pub idle_timeout: Duration,
    /// Longest time a write to a client that does not read may block.
    pub write_timeout: Duration,
    /// Grace period for requests in flight at shutdown.
    pub shutdown_grace: Duration,
}

/// Everything `start` needs, validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// Host to bind.
    pub host: String,
    /// Port to bind.
    pub port: u16,
    /// TLS settings.
    pub tls: TlsSource,
    /// An extra root for the custom metrics v1beta2 API, when `--api-path` is not the standard one.
    pub api_alias: Option<String>,
    /// Broker thread settings.
    pub broker: Settings,
    /// Connection limits.
    pub limits: Limits,
    /// Who may read the metrics.
    pub auth: AuthSource,
    /// Threads serving requests.
    pub threads: usize,
    /// `--custom-metric` files.
    pub custom_metrics: Vec<PathBuf>,
    /// `--custom-metric-timeout`, `--custom-metric-max-memory`, `--custom-metric-allow-rpc`
    /// (`max_age` is the broker's).
    pub custom: crate::custom::Settings,
    /// `--history-interval`.
    pub history_interval: Duration,
    /// `--history-retention`.
    pub history_retention: Duration,
    /// `--api-token-file`.
    pub api_token_file: Option<PathBuf>,
    /// `--drain-before-shrink` with its delays, when on.
    pub shrink: Option<crate::source::shrink::Settings>,
    /// `--allow-writes` (with `--replay` only): rehearsal overrides through
    /// `POST /write-metrics/...`.
    pub allow_writes: bool,
}

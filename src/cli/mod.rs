//! The command line: clap's raw [`Cli`], and its validation into the configs the rest of the
//! program uses. `TryFrom` impls here are the only place flags are checked; nothing else sees clap.
//!
//! `start`'s flags are the Python flux-metrics-api's (`--port`, `--host`, `--namespace`,
//! `--service-name`, `--api-path`, `--ssl-certfile`, `--ssl-keyfile`, `--no-cache`, `--verbose`),
//! so existing MiniCluster specs keep working; every flag can also come from the environment.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::source::broker::{Settings, Source};

pub mod deploy;
pub mod get;

/// The standard root of the custom metrics v1beta2 API (the Python tool's `--api-path` default).
pub const DEFAULT_API_PATH: &str = "/apis/custom.metrics.k8s.io/v1beta2";

/// Serve Flux's state as the Kubernetes Custom and External Metrics APIs.
#[derive(Debug, Parser)]
#[command(name = "flux-metrics-api", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Logging flags, accepted before or after the command.
    #[command(flatten)]
    pub log: LogArgs,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the HTTPS server (inside a Flux instance, or with --replay anywhere).
    Start(Box<StartArgs>),
    /// Print the current value of every metric (or of the ones named), for a person in the pod.
    Get(GetArgs),
    /// Print the version and exit.
    Version,
    /// Write a CA and a serving certificate for the Service in front of the server.
    Certs(CertsArgs),
    /// Print the Kubernetes objects that register the server (for `kubectl apply -f -`).
    Manifests(ManifestsArgs),
}

/// How much to log, and how.
#[derive(Debug, Args, Clone)]
pub struct LogArgs {
    /// Log debug detail of this program (broker rounds, connections).
    #[arg(long, global = true, env = "FLUX_METRICS_VERBOSE")]
    pub verbose: bool,
    /// Log debug detail of everything, libraries included.
    #[arg(long, global = true, env = "FLUX_METRICS_DEBUG")]
    pub debug: bool,
    /// Log warnings and errors only (no access lines).
    #[arg(long, global = true, env = "FLUX_METRICS_QUIET", conflicts_with_all = ["verbose", "debug"])]
    pub quiet: bool,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "FLUX_METRICS_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogArgs {
    /// The tracing filter directive these flags ask for (`RUST_LOG` overrides it).
    pub fn filter(&self) -> &'static str {
        if self.debug {
            "debug"
        } else if self.verbose {
            "info,flux_metrics=debug,flux_metrics_api=debug"
        } else if self.quiet {
            "warn"
        } else {
            "info"
        }
    }
}

/// Where broker answers come from; shared by `start` and `get`.
#[derive(Debug, Args, Clone)]
pub struct BrokerArgs {
    /// Broker URI [default: flux's own choice: $FLUX_URI, else the system instance]
    #[arg(long, env = "FLUX_URI", value_name = "URI")]
    pub flux_uri: Option<String>,
    /// Path of libflux-core [default: libflux-core.so.2 from the dynamic loader's path]
    #[arg(long, env = "FLUX_CORE_LIB", value_name = "PATH")]
    pub flux_core_lib: Option<PathBuf>,
    /// Longest wait for the broker's answers (e.g. 5s, 500ms)
    #[arg(long, env = "FLUX_METRICS_FLUX_TIMEOUT", default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub flux_timeout: Duration,
    /// Answer from broker answers recorded in DIR (one TOPIC.json per RPC) instead of a live broker
    #[arg(long, env = "FLUX_METRICS_REPLAY", value_name = "DIR")]
    pub replay: Option<PathBuf>,
}

/// Custom metric scripts; shared by `start` and `get`.
#[derive(Debug, Args, Clone)]
pub struct CustomArgs {
    /// Rhai script whose public one-parameter functions become metrics (repeatable; see
    /// example/custom-metrics.rhai)
    #[arg(
        long,
        env = "FLUX_METRICS_CUSTOM_METRIC",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub custom_metric: Vec<PathBuf>,
    /// Longest run of one custom metric function
    #[arg(long, env = "FLUX_METRICS_CUSTOM_METRIC_TIMEOUT", default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub custom_metric_timeout: Duration,
}

/// Flags of `start`.
#[derive(Debug, Args, Clone)]
pub struct StartArgs {
    /// Port to listen on
    #[arg(long, env = "FLUX_METRICS_PORT", default_value_t = 8443)]
    pub port: u16,
    /// Address to listen on
    #[arg(long, env = "FLUX_METRICS_HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Namespace of the Service in front of this server (names the generated certificate)
    #[arg(long, env = "FLUX_METRICS_NAMESPACE", default_value = "flux-operator")]
    pub namespace: String,
    /// Name of the Service in front of this server (names the generated certificate)
    #[arg(
        long,
        env = "FLUX_METRICS_SERVICE_NAME",
        default_value = "custom-metrics-apiserver"
    )]
    pub service_name: String,
    /// Also serve the custom metrics v1beta2 API under this root
    #[arg(long, env = "FLUX_METRICS_API_PATH", default_value = DEFAULT_API_PATH)]
    pub api_path: String,
    /// TLS certificate chain (PEM); without it a self-signed certificate is generated
    #[arg(long, env = "FLUX_METRICS_SSL_CERTFILE", value_name = "FILE")]
    pub ssl_certfile: Option<PathBuf>,
    /// TLS private key (PEM) of --ssl-certfile
    #[arg(long, env = "FLUX_METRICS_SSL_KEYFILE", value_name = "FILE")]
    pub ssl_keyfile: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS (local debugging only: kube-aggregator needs HTTPS)
    #[arg(long, env = "FLUX_METRICS_INSECURE_HTTP", conflicts_with_all = ["ssl_certfile", "ssl_keyfile"])]
    pub insecure_http: bool,
    /// Custom metric scripts.
    #[command(flatten)]
    pub custom: CustomArgs,
    /// How often every metric is sampled into the in-memory history (for windows, the history
    /// API and the dashboard)
    #[arg(long, env = "FLUX_METRICS_HISTORY_INTERVAL", default_value = "15s", value_parser = parse_duration, value_name = "DURATION")]
    pub history_interval: Duration,
    /// How much history is kept (the longest `window` a selector may ask for)
    #[arg(long, env = "FLUX_METRICS_HISTORY_RETENTION", default_value = "1h", value_parser = parse_duration, value_name = "DURATION")]
    pub history_retention: Duration,
    /// File holding a bearer token that /metrics, /api/v1/* and /ui then require
    #[arg(long, env = "FLUX_METRICS_API_TOKEN_FILE", value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,
    /// Ask the broker on every request (same as --max-age 0)
    #[arg(long, env = "FLUX_METRICS_NO_CACHE")]
    pub no_cache: bool,
    /// Reuse a broker answer younger than this for every request
    #[arg(long, env = "FLUX_METRICS_MAX_AGE", default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub max_age: Duration,
    /// Where broker answers come from.
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// CA bundle of kube-apiserver's front-proxy client certificate: when set, API requests must
    /// come with a certificate it signed, and X-Remote-User/X-Remote-Group name the user
    #[arg(
        long,
        env = "FLUX_METRICS_REQUESTHEADER_CLIENT_CA_FILE",
        value_name = "FILE"
    )]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Front-proxy certificate CNs let in, comma-separated [default: any the requestheader CA signed]
    #[arg(
        long,
        env = "FLUX_METRICS_REQUESTHEADER_ALLOWED_NAMES",
        value_delimiter = ',',
        value_name = "NAMES"
    )]
    pub requestheader_allowed_names: Vec<String>,
    /// CA bundle of client certificates let in directly (user = CN, groups = O)
    #[arg(long, env = "FLUX_METRICS_CLIENT_CA_FILE", value_name = "FILE")]
    pub client_ca_file: Option<PathBuf>,
    /// Read those CAs and names from the kube-system/extension-apiserver-authentication
    /// ConfigMap (needs a service account allowed to read it), refreshed every minute
    #[arg(long, env = "FLUX_METRICS_AUTHENTICATION_FROM_CLUSTER", conflicts_with_all = ["requestheader_client_ca_file", "client_ca_file"])]
    pub authentication_from_cluster: bool,
    /// Most connections served at once; more are closed at once, with a log line
    #[arg(long, env = "FLUX_METRICS_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Threads serving requests (one serves about 60,000 requests/s and leaves the node's
    /// other cores to Flux jobs)
    #[arg(long, env = "FLUX_METRICS_THREADS", default_value_t = 1)]
    pub threads: usize,
    /// Longest TLS handshake
    #[arg(long, env = "FLUX_METRICS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub handshake_timeout: Duration,
    /// Longest wait for a request's headers, and for the next request on an idle connection
    #[arg(long, env = "FLUX_METRICS_HEADER_TIMEOUT", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub header_timeout: Duration,
    /// On SIGTERM/SIGINT, how long requests in flight may take to finish
    #[arg(long, env = "FLUX_METRICS_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub shutdown_grace: Duration,
}

/// Output formats of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// An aligned table.
    Table,
    /// A JSON object.
    Json,
}

/// Flags of `get`.
#[derive(Debug, Args, Clone)]
pub struct GetArgs {
    /// Metrics to print [default: all]
    pub metrics: Vec<String>,
    /// Output format
    #[arg(long, short, value_enum, default_value_t = Output::Table, env = "FLUX_METRICS_OUTPUT")]
    pub output: Output,
    /// Where broker answers come from.
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Custom metric scripts.
    #[command(flatten)]
    pub custom: CustomArgs,
}

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
    Cluster,
}

/// Limits that keep slow or hostile clients from exhausting the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most connections at once.
    pub max_connections: usize,
    /// Longest TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest wait for request headers (and between requests on a kept-alive connection).
    pub header_timeout: Duration,
    /// Grace period for requests in flight at shutdown.
    pub shutdown_grace: Duration,
}

/// Everything `start` needs, validated.
#[derive(Clone, Debug)]
pub struct ServeConfig {
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
    /// `--custom-metric-timeout`.
    pub custom_timeout: Duration,
    /// `--history-interval`.
    pub history_interval: Duration,
    /// `--history-retention`.
    pub history_retention: Duration,
    /// `--api-token-file`.
    pub api_token_file: Option<PathBuf>,
}

/// Flags of `certs`.
#[derive(Debug, Args, Clone)]
pub struct CertsArgs {
    /// Namespace of the Service in front of the server
    #[arg(long, default_value = "flux-operator")]
    pub namespace: String,
    /// Name of the Service in front of the server
    #[arg(long, default_value = "custom-metrics-apiserver")]
    pub service_name: String,
    /// Directory to write ca.crt, ca.key, tls.crt and tls.key to (created if missing)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Days the certificates are valid
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: u32,
    /// Replace certificate files already in DIR
    #[arg(long)]
    pub force: bool,
}

/// Flags of `manifests`.
#[derive(Debug, Args, Clone)]
pub struct ManifestsArgs {
    /// Namespace of the Service and of the MiniCluster
    #[arg(long, default_value = "flux-operator")]
    pub namespace: String,
    /// Name of the Service in front of the server
    #[arg(long, default_value = "custom-metrics-apiserver")]
    pub service_name: String,
    /// MiniCluster whose leader broker pod runs the server
    #[arg(long, default_value = "flux-sample")]
    pub minicluster: String,
    /// Service account of the MiniCluster's pods (the server's identity)
    #[arg(long, default_value = "default")]
    pub service_account: String,
    /// Port the server listens on in the pod (the Service's targetPort)
    #[arg(long, default_value_t = 8443, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// CA certificate that signed the server's certificate, for the APIServices' caBundle
    #[arg(long, value_name = "FILE", conflicts_with = "insecure_skip_tls_verify")]
    pub ca_file: Option<PathBuf>,
    /// Let kube-apiserver skip verifying the server's certificate
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
    /// Point the Service at a server at this IP address (e.g. on the host of a kind cluster)
    /// instead of the MiniCluster's leader broker pod
    #[arg(long, value_name = "IP")]
    pub endpoint: Option<std::net::IpAddr>,
}

/// Parses `5s`, `500ms`, `2m`, `1h`, or a plain number of seconds (`1.5`).
///
/// # Errors
/// Text saying what forms are accepted.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 5s, 500ms, 2m or 1.5"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?} in {s:?}: use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(n * scale).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

impl TryFrom<&BrokerArgs> for Source {
    type Error = anyhow::Error;

    fn try_from(b: &BrokerArgs) -> anyhow::Result<Source> {
        match &b.replay {
            Some(dir) => {
                let meta = std::fs::metadata(dir).with_context(|| {
                    format!("--replay {}: cannot read the directory", dir.display())
                })?;
                if !meta.is_dir() {
                    bail!(
                        "--replay {}: not a directory of recorded broker answers",
                        dir.display()
                    );
                }
                Ok(Source::Replay(dir.clone()))
            }
            None => Ok(Source::Live {
                library: b.flux_core_lib.clone(),
                uri: b.flux_uri.clone(),
            }),
        }
    }
}

impl TryFrom<&BrokerArgs> for Settings {
    type Error = anyhow::Error;

    fn try_from(b: &BrokerArgs) -> anyhow::Result<Settings> {
        if b.flux_timeout.is_zero() {
            bail!("--flux-timeout must be more than 0");
        }
        Ok(Settings {
            source: Source::try_from(b)?,
            max_age: Duration::ZERO,
            timeout: b.flux_timeout,
        })
    }
}

impl TryFrom<StartArgs> for ServeConfig {
    type Error = anyhow::Error;

    fn try_from(a: StartArgs) -> anyhow::Result<ServeConfig> {
        if a.history_interval < Duration::from_secs(1) {
            bail!("--history-interval must be at least 1s");
        }
        if a.history_retention < a.history_interval {
            bail!("--history-retention must be at least --history-interval");
        }
        if a.custom.custom_metric_timeout.is_zero() {
            bail!("--custom-metric-timeout must be more than 0");
        }
        let tls = match (a.ssl_certfile, a.ssl_keyfile, a.insecure_http) {
            (_, _, true) => TlsSource::Plain,
            (Some(cert), Some(key), false) => TlsSource::Files { cert, key },
            (None, None, false) => {
                let (svc, ns) = (&a.service_name, &a.namespace);
                TlsSource::SelfSigned(vec![
                    svc.clone(),
                    format!("{svc}.{ns}"),
                    format!("{svc}.{ns}.svc"),
                    format!("{svc}.{ns}.svc.cluster.local"),
                    "localhost".into(),
                    "127.0.0.1".into(),
                    "::1".into(),
                ])
            }
            (Some(_), None, false) => bail!("--ssl-certfile was given without --ssl-keyfile"),
            (None, Some(_), false) => bail!("--ssl-keyfile was given without --ssl-certfile"),
        };
        let api_path = a.api_path.trim_end_matches('/');
        if !api_path.starts_with('/') {
            bail!("--api-path {:?} must start with /", a.api_path);
        }
        let api_alias = (api_path != DEFAULT_API_PATH).then(|| api_path.to_owned());
        if a.threads == 0 {
            bail!("--threads must be at least 1");
        }
        if a.max_connections == 0 {
            bail!("--max-connections must be at least 1");
        }
        let auth = match (
            a.authentication_from_cluster,
            a.client_ca_file,
            a.requestheader_client_ca_file,
        ) {
            (true, _, _) => AuthSource::Cluster,
            (false, None, None) => {
                if !a.requestheader_allowed_names.is_empty() {
                    bail!("--requestheader-allowed-names needs --requestheader-client-ca-file");
                }
                AuthSource::Open
            }
            (false, client_ca, requestheader_ca) => AuthSource::Files {
                client_ca,
                requestheader_ca,
                allowed_names: a
                    .requestheader_allowed_names
                    .into_iter()
                    .filter(|n| !n.is_empty())
                    .collect(),
            },
        };
        if auth != AuthSource::Open && tls == TlsSource::Plain {
            bail!("client certificate authentication needs HTTPS: drop --insecure-http");
        }
        let mut broker = Settings::try_from(&a.broker)?;
        broker.max_age = if a.no_cache {
            Duration::ZERO
        } else {
            a.max_age
        };
        Ok(ServeConfig {
            host: a.host,
            port: a.port,
            tls,
            api_alias,
            broker,
            limits: Limits {
                max_connections: a.max_connections,
                handshake_timeout: a.handshake_timeout,
                header_timeout: a.header_timeout,
                shutdown_grace: a.shutdown_grace,
            },
            auth,
            threads: a.threads,
            custom_metrics: a.custom.custom_metric,
            custom_timeout: a.custom.custom_metric_timeout,
            history_interval: a.history_interval,
            history_retention: a.history_retention,
            api_token_file: a.api_token_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn start(args: &[&str]) -> anyhow::Result<ServeConfig> {
        let mut argv = vec!["flux-metrics-api", "start"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Start(s) => ServeConfig::try_from(*s),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn python_command_line_still_works() {
        let c = start(&[
            "--port",
            "8443",
            "--ssl-certfile",
            "/etc/certs/tls.crt",
            "--ssl-keyfile",
            "/etc/certs/tls.key",
            "--namespace",
            "flux-operator",
            "--service-name",
            "custom-metrics-apiserver",
        ])
        .unwrap();
        assert_eq!(c.port, 8443);
        assert_eq!(
            c.tls,
            TlsSource::Files {
                cert: "/etc/certs/tls.crt".into(),
                key: "/etc/certs/tls.key".into()
            }
        );
        assert_eq!(c.api_alias, None);
        assert_eq!(c.broker.max_age, Duration::from_secs(1));
    }

    #[test]
    fn self_signed_names_cover_the_service() {
        let c = start(&["--namespace", "ns", "--service-name", "svc"]).unwrap();
        let TlsSource::SelfSigned(names) = c.tls else {
            panic!()
        };
        for n in [
            "svc",
            "svc.ns",
            "svc.ns.svc",
            "svc.ns.svc.cluster.local",
            "localhost",
            "127.0.0.1",
        ] {
            assert!(names.iter().any(|x| x == n), "{n}");
        }
    }

    #[test]
    fn key_without_cert_is_an_error() {
        let e = start(&["--ssl-keyfile", "k.pem"]).unwrap_err();
        assert!(e.to_string().contains("without --ssl-certfile"), "{e}");
        let e = start(&["--ssl-certfile", "c.pem"]).unwrap_err();
        assert!(e.to_string().contains("without --ssl-keyfile"), "{e}");
    }

    #[test]
    fn no_cache_means_max_age_zero() {
        assert_eq!(
            start(&["--no-cache"]).unwrap().broker.max_age,
            Duration::ZERO
        );
        assert_eq!(
            start(&["--max-age", "250ms"]).unwrap().broker.max_age,
            Duration::from_millis(250)
        );
    }

    #[test]
    fn api_path_alias_only_when_not_standard() {
        assert_eq!(
            start(&["--api-path", "/apis/custom.metrics.k8s.io/v1beta2/"])
                .unwrap()
                .api_alias,
            None
        );
        assert_eq!(
            start(&["--api-path", "/metrics/api"])
                .unwrap()
                .api_alias
                .as_deref(),
            Some("/metrics/api")
        );
        assert!(start(&["--api-path", "relative"]).is_err());
    }

    #[test]
    fn replay_dir_must_exist() {
        let e = start(&["--replay", "/nonexistent/dir"]).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/dir"), "{e:#}");
    }

    #[test]
    fn custom_metric_files_and_timeout() {
        let c = start(&["--custom-metric", "a.rhai", "--custom-metric", "b.rhai"]).unwrap();
        assert_eq!(
            c.custom_metrics,
            [PathBuf::from("a.rhai"), PathBuf::from("b.rhai")]
        );
        assert_eq!(c.custom_timeout, Duration::from_secs(2));
        assert!(start(&["--custom-metric-timeout", "0s"]).is_err());
    }

    #[test]
    fn authentication_flags() {
        assert_eq!(start(&[]).unwrap().auth, AuthSource::Open);
        let c = start(&[
            "--requestheader-client-ca-file",
            "/rh.crt",
            "--requestheader-allowed-names",
            "front-proxy-client,aggregator",
        ])
        .unwrap();
        assert_eq!(
            c.auth,
            AuthSource::Files {
                client_ca: None,
                requestheader_ca: Some("/rh.crt".into()),
                allowed_names: vec!["front-proxy-client".into(), "aggregator".into()],
            }
        );
        assert_eq!(
            start(&["--authentication-from-cluster"]).unwrap().auth,
            AuthSource::Cluster
        );
        assert!(start(&["--requestheader-allowed-names", "x"]).is_err());
        assert!(start(&["--client-ca-file", "/c.crt", "--insecure-http"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["", "s", "5x", "-1s", "1e400", "abc"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

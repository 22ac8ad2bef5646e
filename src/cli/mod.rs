//! The command line: clap's raw [`Cli`] (this file), its validation into the configs of the
//! layers below ([`config`]), and the commands other than `start` ([`get`], [`record`],
//! [`check`], [`certs`], [`manifests`], and `completions`, which like the man page of
//! `tests/cli.rs` comes from this file's definitions). Nothing outside this folder sees clap.
//!
//! `start`'s flags are the Python flux-metrics-api's (`--port`, `--host`, `--namespace`,
//! `--service-name`, `--api-path`, `--ssl-certfile`, `--ssl-keyfile`, `--no-cache`, `--verbose`),
//! so existing MiniCluster specs keep working; every flag can also come from the environment.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::util::duration;

pub mod certs;
pub mod check;
pub mod config;
pub mod get;
pub mod manifests;
pub mod record;

/// The standard root of the custom metrics v1beta2 API (the Python tool's `--api-path` default).
pub const DEFAULT_API_PATH: &str =
    concat!("/apis/", crate::api::types::custom_group!(), "/v1beta2");
/// Default port of `start`, and of `manifests --port` (the Service's targetPort).
pub const DEFAULT_PORT: u16 = 8443;
/// Default namespace of the Service in front of the server (the Flux Operator's own).
pub const DEFAULT_NAMESPACE: &str = "flux-operator";
/// Default name of the Service in front of the server (the Python tool's).
pub const DEFAULT_SERVICE_NAME: &str = "custom-metrics-apiserver";
/// Default MiniCluster of `manifests` (the Flux Operator's examples use it).
pub const DEFAULT_MINICLUSTER: &str = "flux-sample";
/// Default service account of `manifests`: the one a MiniCluster's pods run as.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Serve Flux's state as the Kubernetes Custom and External Metrics APIs.
#[derive(Debug, Parser)]
#[command(
    name = "flux-metrics-api",
    version = crate::util::version::VERSION,
    long_version = crate::util::version::long(),
    about,
    long_about = None,
    propagate_version = true,
    subcommand_help_heading = "Commands",
    next_help_heading = "Logging (also after start, get, record and check)"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Logging flags given before the command.
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
    /// Save the answers of every RPC the server sends to a live broker as a --replay directory.
    Record(RecordArgs),
    /// Check a deployment's inputs (certificates, CAs, custom metrics, the broker) and say how
    /// to fix what fails.
    Check(Box<StartArgs>),
    /// Print the version, commit and build date, and exit.
    Version,
    /// Write a CA and a serving certificate for the Service in front of the server.
    Certs(CertsArgs),
    /// Print the Kubernetes objects that register the server (for `kubectl apply -f -`).
    Manifests(ManifestsArgs),
    /// Print a shell completion script (e.g. `flux-metrics-api completions bash >
    /// /etc/bash_completion.d/flux-metrics-api`).
    Completions(CompletionsArgs),
}

impl Command {
    /// The logging flags given after the command, for the commands that take them.
    pub fn log(&self) -> Option<&LogArgs> {
        match self {
            Command::Start(a) => Some(&a.log),
            Command::Get(a) => Some(&a.log),
            Command::Record(a) => Some(&a.log),
            Command::Check(a) => Some(&a.log),
            Command::Version
            | Command::Certs(_)
            | Command::Manifests(_)
            | Command::Completions(_) => None,
        }
    }
}

/// How much to log, and how.
#[derive(Debug, Args, Clone, Default)]
pub struct LogArgs {
    /// Log debug detail of this program (broker rounds, connections).
    #[arg(long, env = "FLUX_METRICS_VERBOSE")]
    pub verbose: bool,
    /// Log debug detail of everything, libraries included.
    #[arg(long, env = "FLUX_METRICS_DEBUG")]
    pub debug: bool,
    /// Log warnings and errors only (no access lines).
    #[arg(long, env = "FLUX_METRICS_QUIET", conflicts_with_all = ["verbose", "debug"])]
    pub quiet: bool,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "FLUX_METRICS_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
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

    /// These flags with those given after the command (`after`): a switch set in either place
    /// is set, and a log format other than the default wins.
    pub fn merged(&self, after: Option<&LogArgs>) -> LogArgs {
        let Some(a) = after else { return self.clone() };
        LogArgs {
            verbose: self.verbose || a.verbose,
            debug: self.debug || a.debug,
            quiet: self.quiet || a.quiet,
            log_format: match a.log_format {
                LogFormat::Text => self.log_format,
                LogFormat::Json => LogFormat::Json,
            },
        }
    }
}

/// How to reach a live broker; shared by `start`, `get`, `record` and `check`.
#[derive(Debug, Args, Clone)]
pub struct LiveArgs {
    /// Broker URI [default: flux's own choice: $FLUX_URI, else the system instance]
    #[arg(long, env = "FLUX_URI", value_name = "URI")]
    pub flux_uri: Option<String>,
    /// Path of libflux-core [default: libflux-core.so.2 from the dynamic loader's path]
    #[arg(long, env = "FLUX_CORE_LIB", value_name = "PATH")]
    pub flux_core_lib: Option<PathBuf>,
    /// Longest wait for the broker's answers (e.g. 5s, 500ms)
    #[arg(long, env = "FLUX_METRICS_FLUX_TIMEOUT", default_value = "5s", value_parser = duration::parse, value_name = "DURATION")]
    pub flux_timeout: Duration,
}

/// Where broker answers come from; shared by `start`, `get` and `check`.
#[derive(Debug, Args, Clone)]
pub struct BrokerArgs {
    /// The live broker.
    #[command(flatten)]
    pub live: LiveArgs,
    /// Answer from broker answers recorded in DIR (one TOPIC.json per RPC, as `record` writes
    /// them) instead of a live broker
    #[arg(long, env = "FLUX_METRICS_REPLAY", value_name = "DIR")]
    pub replay: Option<PathBuf>,
    /// A runnable job that the demand model places on the running nodes but that has waited
    /// this long counts as needing new nodes of its own, so that a model that disagrees with
    /// the scheduler costs nodes for a while, never a job that waits forever
    #[arg(long, env = "FLUX_METRICS_STUCK_AFTER", default_value = "5m", value_parser = duration::parse, value_name = "DURATION")]
    pub stuck_after: Duration,
}

/// Custom metric scripts; shared by `start`, `get`, `record` and `check`.
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
    #[arg(long, env = "FLUX_METRICS_CUSTOM_METRIC_TIMEOUT", default_value = "2s", value_parser = duration::parse, value_name = "DURATION")]
    pub custom_metric_timeout: Duration,
    /// Most heap memory one run of a custom metric function may hold (e.g. 32MiB, 512KiB)
    #[arg(long, env = "FLUX_METRICS_CUSTOM_METRIC_MAX_MEMORY", default_value = "32MiB", value_parser = crate::util::size::parse, value_name = "SIZE")]
    pub custom_metric_max_memory: usize,
    /// Let custom metrics send this broker RPC besides the read-only ones (repeatable, or
    /// comma-separated; `SERVICE.*` allows every topic of a service)
    #[arg(
        long,
        env = "FLUX_METRICS_CUSTOM_METRIC_ALLOW_RPC",
        value_name = "TOPIC",
        value_delimiter = ','
    )]
    pub custom_metric_allow_rpc: Vec<String>,
}

/// Flags of `start` (and of `check`, which checks what `start` would be given).
#[derive(Debug, Args, Clone)]
pub struct StartArgs {
    /// Port to listen on
    #[arg(long, env = "FLUX_METRICS_PORT", default_value_t = DEFAULT_PORT, help_heading = "Listening")]
    pub port: u16,
    /// Address to listen on
    #[arg(
        long,
        env = "FLUX_METRICS_HOST",
        default_value = "0.0.0.0",
        help_heading = "Listening"
    )]
    pub host: String,
    /// Threads serving requests (one serves about 60,000 requests/s and leaves the node's
    /// other cores to Flux jobs)
    #[arg(
        long,
        env = "FLUX_METRICS_THREADS",
        default_value_t = 1,
        help_heading = "Listening"
    )]
    pub threads: usize,
    /// Most connections served at once; a new one then closes the longest-idle connection (never
    /// one with a request in flight; untrusted ones first), or is closed itself when all are busy
    #[arg(
        long,
        env = "FLUX_METRICS_MAX_CONNECTIONS",
        default_value_t = 1024,
        help_heading = "Listening"
    )]
    pub max_connections: usize,
    /// Most connections from one IP address without a trusted client certificate (handshakes
    /// included); more are closed at once. Connections of the front proxy and of the client CA
    /// do not count
    #[arg(
        long,
        env = "FLUX_METRICS_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 64,
        help_heading = "Listening"
    )]
    pub max_connections_per_address: usize,
    /// Longest TLS handshake
    #[arg(long, env = "FLUX_METRICS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = duration::parse, value_name = "DURATION", help_heading = "Listening")]
    pub handshake_timeout: Duration,
    /// Longest wait for a request's headers, and for the next request on an idle connection
    #[arg(long, env = "FLUX_METRICS_HEADER_TIMEOUT", default_value = "30s", value_parser = duration::parse, value_name = "DURATION", help_heading = "Listening")]
    pub header_timeout: Duration,
    /// Longest time a connection (HTTP/2 included) with no request in flight stays open
    #[arg(long, env = "FLUX_METRICS_IDLE_TIMEOUT", default_value = "60s", value_parser = duration::parse, value_name = "DURATION", help_heading = "Listening")]
    pub idle_timeout: Duration,
    /// Longest time an answer may wait for a client that does not read it; the connection is
    /// then closed
    #[arg(long, env = "FLUX_METRICS_WRITE_TIMEOUT", default_value = "10s", value_parser = duration::parse, value_name = "DURATION", help_heading = "Listening")]
    pub write_timeout: Duration,
    /// On SIGTERM/SIGINT, how long requests in flight may take to finish
    #[arg(long, env = "FLUX_METRICS_SHUTDOWN_GRACE", default_value = "10s", value_parser = duration::parse, value_name = "DURATION", help_heading = "Listening")]
    pub shutdown_grace: Duration,
    /// Also serve the custom metrics v1beta2 API under this root
    #[arg(long, env = "FLUX_METRICS_API_PATH", default_value = DEFAULT_API_PATH, help_heading = "Listening")]
    pub api_path: String,
    /// TLS certificate chain (PEM); without it a self-signed certificate is generated
    #[arg(
        long,
        env = "FLUX_METRICS_SSL_CERTFILE",
        value_name = "FILE",
        help_heading = "TLS"
    )]
    pub ssl_certfile: Option<PathBuf>,
    /// TLS private key (PEM) of --ssl-certfile
    #[arg(
        long,
        env = "FLUX_METRICS_SSL_KEYFILE",
        value_name = "FILE",
        help_heading = "TLS"
    )]
    pub ssl_keyfile: Option<PathBuf>,
    /// Namespace of the Service in front of this server (names the generated certificate)
    #[arg(long, env = "FLUX_METRICS_NAMESPACE", default_value = DEFAULT_NAMESPACE, help_heading = "TLS")]
    pub namespace: String,
    /// Name of the Service in front of this server (names the generated certificate)
    #[arg(
        long,
        env = "FLUX_METRICS_SERVICE_NAME",
        default_value = DEFAULT_SERVICE_NAME,
        help_heading = "TLS"
    )]
    pub service_name: String,
    /// Serve plain HTTP instead of HTTPS (local debugging only: kube-aggregator needs HTTPS)
    #[arg(long, env = "FLUX_METRICS_INSECURE_HTTP", conflicts_with_all = ["ssl_certfile", "ssl_keyfile"], help_heading = "TLS")]
    pub insecure_http: bool,
    /// CA bundle of kube-apiserver's front-proxy client certificate: when set, API requests must
    /// come with a certificate it signed, and X-Remote-User/X-Remote-Group name the user
    #[arg(
        long,
        env = "FLUX_METRICS_REQUESTHEADER_CLIENT_CA_FILE",
        value_name = "FILE",
        help_heading = "Who may read"
    )]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Front-proxy certificate CNs let in, comma-separated [default: any the requestheader CA signed]
    #[arg(
        long,
        env = "FLUX_METRICS_REQUESTHEADER_ALLOWED_NAMES",
        value_delimiter = ',',
        value_name = "NAMES",
        help_heading = "Who may read"
    )]
    pub requestheader_allowed_names: Vec<String>,
    /// CA bundle of client certificates let in directly (user = CN, groups = O)
    #[arg(
        long,
        env = "FLUX_METRICS_CLIENT_CA_FILE",
        value_name = "FILE",
        help_heading = "Who may read"
    )]
    pub client_ca_file: Option<PathBuf>,
    /// Read those CAs and names from the kube-system/extension-apiserver-authentication
    /// ConfigMap (needs a service account allowed to read it), refreshed every minute
    #[arg(long, env = "FLUX_METRICS_AUTHENTICATION_FROM_CLUSTER", conflicts_with_all = ["requestheader_client_ca_file", "client_ca_file"], help_heading = "Who may read")]
    pub authentication_from_cluster: bool,
    /// Kubeconfig whose current context reads that ConfigMap (a token or a client certificate,
    /// and the API server's CA), for a server outside a pod [default: the pod's service account]
    #[arg(
        long,
        env = "FLUX_METRICS_AUTHENTICATION_KUBECONFIG",
        value_name = "FILE",
        requires = "authentication_from_cluster",
        help_heading = "Who may read"
    )]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// File holding a bearer token that /metrics and /api/v1/* then require (the /ui page asks
    /// for it)
    #[arg(
        long,
        env = "FLUX_METRICS_API_TOKEN_FILE",
        value_name = "FILE",
        help_heading = "Who may read"
    )]
    pub api_token_file: Option<PathBuf>,
    /// Where broker answers come from.
    #[command(flatten, next_help_heading = "Flux broker")]
    pub broker: BrokerArgs,
    /// Reuse a broker answer younger than this for every request
    #[arg(long, env = "FLUX_METRICS_MAX_AGE", default_value = "1s", value_parser = duration::parse, value_name = "DURATION", help_heading = "Flux broker")]
    pub max_age: Duration,
    /// Ask the broker on every request (the same as --max-age 0, so not with --max-age)
    #[arg(
        long,
        env = "FLUX_METRICS_NO_CACHE",
        conflicts_with = "max_age",
        help_heading = "Flux broker"
    )]
    pub no_cache: bool,
    /// Custom metric scripts.
    #[command(flatten, next_help_heading = "Custom metrics")]
    pub custom: CustomArgs,
    /// How often every metric is sampled into the in-memory history (for windows, the history
    /// API and the dashboard)
    #[arg(long, env = "FLUX_METRICS_HISTORY_INTERVAL", default_value = "15s", value_parser = duration::parse, value_name = "DURATION", help_heading = "History")]
    pub history_interval: Duration,
    /// How much history is kept (the longest `window` a selector may ask for)
    #[arg(long, env = "FLUX_METRICS_HISTORY_RETENTION", default_value = "1h", value_parser = duration::parse, value_name = "DURATION", help_heading = "History")]
    pub history_retention: Duration,
    /// Drain the ranks a shrink will remove, so that no job is lost, and undrain them when they
    /// are needed again (needs the instance owner's rights; see docs/autoscaling.md)
    #[arg(
        long,
        env = "FLUX_METRICS_DRAIN_BEFORE_SHRINK",
        help_heading = "Drain before shrink"
    )]
    pub drain_before_shrink: bool,
    /// How long the size Flux needs must stay below the current size before the ranks above it
    /// are drained (set the HPA's scale-down stabilization window to the same)
    #[arg(long, env = "FLUX_METRICS_SHRINK_DELAY", default_value = "5m", value_parser = duration::parse, value_name = "DURATION", requires = "drain_before_shrink", help_heading = "Drain before shrink")]
    pub shrink_delay: Duration,
    /// How long the desired size must stay above a rank drained for a shrink before it is
    /// undrained (longer than the operator takes to remove a pod after the HPA's decision), and
    /// how long a job must wait before it counts on such a rank
    #[arg(long, env = "FLUX_METRICS_UNDRAIN_GRACE", default_value = "30s", value_parser = duration::parse, value_name = "DURATION", requires = "drain_before_shrink", help_heading = "Drain before shrink")]
    pub undrain_grace: Duration,
    /// With --replay: accept POST /write-metrics/PATH, PATH that of a read (body: a Quantity such as
    /// "300m") to override that value until the server stops, to rehearse an HPA
    #[arg(long, env = "FLUX_METRICS_ALLOW_WRITES", help_heading = "Rehearsal")]
    pub allow_writes: bool,
    /// Logging.
    #[command(flatten, next_help_heading = "Logging")]
    pub log: LogArgs,
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
    #[command(flatten, next_help_heading = "Flux broker")]
    pub broker: BrokerArgs,
    /// Custom metric scripts.
    #[command(flatten, next_help_heading = "Custom metrics")]
    pub custom: CustomArgs,
    /// Logging.
    #[command(flatten, next_help_heading = "Logging")]
    pub log: LogArgs,
}

/// Flags of `record`.
#[derive(Debug, Args, Clone)]
pub struct RecordArgs {
    /// Directory to write one TOPIC.json per RPC to (created if missing), for `--replay DIR`
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Replace answers already recorded in DIR
    #[arg(long)]
    pub force: bool,
    /// The live broker.
    #[command(flatten, next_help_heading = "Flux broker")]
    pub live: LiveArgs,
    /// Custom metric scripts, whose `flux.rpc` answers are recorded too.
    #[command(flatten, next_help_heading = "Custom metrics")]
    pub custom: CustomArgs,
    /// Logging.
    #[command(flatten, next_help_heading = "Logging")]
    pub log: LogArgs,
}

/// Flags of `completions`.
#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Flags of `certs`.
#[derive(Debug, Args, Clone)]
pub struct CertsArgs {
    /// Namespace of the Service in front of the server
    #[arg(long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Name of the Service in front of the server
    #[arg(long, default_value = DEFAULT_SERVICE_NAME)]
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
#[command(
    group(clap::ArgGroup::new("trust").required(true).args(["ca_file", "insecure_skip_tls_verify"])),
    after_help = "One of --ca-file (kube-apiserver verifies the server's certificate against that CA) or --insecure-skip-tls-verify (it does not: anything that takes over the Service's endpoints can then feed the HPA) is required."
)]
pub struct ManifestsArgs {
    /// Namespace of the Service and of the MiniCluster
    #[arg(long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Name of the Service in front of the server
    #[arg(long, default_value = DEFAULT_SERVICE_NAME)]
    pub service_name: String,
    /// MiniCluster whose leader broker pod runs the server
    #[arg(long, default_value = DEFAULT_MINICLUSTER)]
    pub minicluster: String,
    /// Service account of the MiniCluster's pods (the server's identity)
    #[arg(long, default_value = DEFAULT_SERVICE_ACCOUNT)]
    pub service_account: String,
    /// Port the server listens on in the pod (the Service's targetPort)
    #[arg(long, default_value_t = DEFAULT_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// CA certificate that signed the server's certificate, for the APIServices' caBundle
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Let kube-apiserver skip verifying the server's certificate
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
    /// Point the Service at a server at this IP address (e.g. on the host of a kind cluster)
    /// instead of the MiniCluster's leader broker pod
    #[arg(long, value_name = "IP", conflicts_with = "external_name")]
    pub endpoint: Option<std::net::IpAddr>,
    /// Make the Service an ExternalName for HOST (e.g. localhost, for a server on
    /// kube-apiserver's own host); the APIServices then use --port directly
    #[arg(long, value_name = "HOST")]
    pub external_name: Option<String>,
}

/// Runs `completions`: the completion script of `shell` on standard output.
///
/// # Errors
/// A failed write.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    use clap::CommandFactory as _;
    let mut script = Vec::new();
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "flux-metrics-api",
        &mut script,
    );
    print_stdout(&String::from_utf8_lossy(&script))
}

/// Writes `text` to standard output; a reader that went away (`| head`) is not an error.
///
/// # Errors
/// Any other write failure.
pub(crate) fn print_stdout(text: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing to standard output")
        }
        _ => Ok(()),
    }
}

/// `s` as one shell word: as is when it holds only safe characters, else single-quoted (control
/// characters shown as `?`, so a printed command or a YAML comment line can never be broken by a
/// file name).
pub(crate) fn shell_word(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        return s.to_owned();
    }
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\'' => out.push_str("'\\''"),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Checks a name flag against one of Kubernetes' name rules ([`crate::util::dns`]).
///
/// # Errors
/// The flag, the value and the rule.
pub(crate) fn check_name(
    flag: &str,
    value: &str,
    rule: fn(&str) -> Result<(), crate::util::dns::NameError>,
) -> anyhow::Result<()> {
    rule(value).map_err(|e| anyhow::anyhow!("{flag} {value:?} is not a valid name: it {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("certs/ca.crt"), "certs/ca.crt");
        assert_eq!(shell_word("my certs/ca.crt"), "'my certs/ca.crt'");
        assert_eq!(shell_word("it's\n"), "'it'\\''s?'");
    }

    #[test]
    fn names_are_checked_with_the_flag_in_the_message() {
        check_name("--namespace", "flux-operator", crate::util::dns::label).unwrap();
        let e = check_name("--service-name", "9svc", crate::util::dns::label_1035).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--service-name \"9svc\" is not a valid name"),
            "{e}"
        );
    }
}

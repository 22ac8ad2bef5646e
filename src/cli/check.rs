//! `flux-metrics-api check [START FLAGS]`: what `start` would be given, checked from inside the
//! pod, one line per check with its fix: the flags, the serving certificate (it loads, its key
//! matches, it covers the Service's name, it is not expired), the client CAs, the API token, the
//! custom metric files, libflux-core's version, the broker's answers (or the `--replay`
//! directory's) and each custom metric's value on them. It exits 1 when one fails.
//!
//! Every check calls the code `start` runs ([`Config::try_from`], [`TlsState::load`],
//! [`crate::server::read_token`], [`crate::server::custom_metrics`], [`Broker`]), so it can never
//! pass what the server would refuse.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use crate::cli::StartArgs;
use crate::custom::{Custom, Host};
use crate::server::config::{AuthSource, Config, TlsSource};
use crate::server::pki::{self, Identity};
use crate::server::tls::TlsState;
use crate::source::broker::{Broker, BrokerError, Source};

/// The checks' lines, and whether one failed.
#[derive(Default)]
struct Report {
    text: String,
    failed: bool,
}

impl Report {
    fn ok(&mut self, what: &str, detail: &str) {
        let _ = writeln!(self.text, "ok    {what}: {detail}");
    }

    /// Works, but is not what a deployment wants.
    fn note(&mut self, what: &str, detail: &str, fix: &str) {
        let _ = writeln!(self.text, "note  {what}: {detail}\n      fix: {fix}");
    }

    fn fail(&mut self, what: &str, error: &str, fix: &str) {
        self.failed = true;
        let error = error.replace('\n', "\n      ");
        let _ = writeln!(self.text, "FAIL  {what}: {error}\n      fix: {fix}");
    }
}

/// Runs `check`: prints every check, and exits 1 when one failed.
///
/// # Errors
/// Only a failed write or a runtime that cannot start; failed checks are printed.
pub fn run(args: StartArgs) -> anyhow::Result<ExitCode> {
    let (namespace, service) = (args.namespace.clone(), args.service_name.clone());
    let mut r = Report::default();
    match Config::try_from(args) {
        Err(e) => r.fail(
            "flags",
            &format!("{e:#}"),
            "as the message says (`flux-metrics-api start --help` lists every flag and its environment variable)",
        ),
        Ok(config) => {
            let scheme = if config.tls == TlsSource::Plain { "http" } else { "https" };
            r.ok(
                "flags",
                &format!(
                    "start would serve {scheme} on {}:{}, answering from the {}",
                    config.host,
                    config.port,
                    config.broker.source.describe()
                ),
            );
            let _ = rustls::crypto::ring::default_provider().install_default();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(checks(&mut r, &config, &namespace, &service));
        }
    }
    crate::cli::print_stdout(&r.text)?;
    Ok(if r.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn checks(r: &mut Report, config: &Config, namespace: &str, service: &str) {
    certificate(r, config, namespace, service).await;
    client_cas(r, config).await;
    if let Some(path) = &config.api_token_file {
        match crate::server::read_token(Some(path)) {
            Ok(_) => r.ok("API token", &format!("{} holds a token", path.display())),
            Err(e) => r.fail(
                "API token",
                &format!("{e:#}"),
                "mount a Secret holding the token at that path (one line, no spaces)",
            ),
        }
    }
    let custom = match crate::server::custom_metrics(config) {
        Ok(None) => None,
        Ok(Some(c)) => {
            r.ok(
                "custom metric files",
                &format!("loaded; metrics: {}", c.names().join(", ")),
            );
            Some(c)
        }
        Err(e) => {
            r.fail(
                "custom metric files",
                &format!("{e:#}"),
                "correct the file at the line and column named (docs/custom-metrics.md)",
            );
            None
        }
    };
    library(r, &config.broker.source);
    broker(r, config, custom.as_ref()).await;
}

/// The serving certificate: it loads with its key as `start` loads it, covers the name
/// kube-apiserver verifies, and is valid.
async fn certificate(r: &mut Report, config: &Config, namespace: &str, service: &str) {
    let what = "serving certificate";
    let host = pki::service_host(namespace, service);
    let certs = format!(
        "`flux-metrics-api certs --namespace {namespace} --service-name {service} --out DIR` makes a CA and a certificate for it (DIR/tls.crt, DIR/tls.key)"
    );
    let (cert, key) = match &config.tls {
        TlsSource::Plain => {
            return r.note(
                what,
                "none: --insecure-http serves plain HTTP, which kube-aggregator refuses",
                "drop --insecure-http outside local debugging",
            );
        }
        TlsSource::SelfSigned(_) => {
            return r.note(
                what,
                &format!(
                    "none given: one is generated at start for {host}, by a CA nobody else has, so the APIServices must skip verifying it"
                ),
                &format!("{certs}; pass --ssl-certfile and --ssl-keyfile"),
            );
        }
        TlsSource::Files { cert, key } => (cert, key),
    };
    if let Err(e) = TlsState::load(config.tls.clone(), AuthSource::Open).await {
        return r.fail(
            what,
            &format!("{e:#}"),
            &format!("give the certificate and the key made with it; {certs}"),
        );
    }
    let described = Identity::from_files(cert, key)
        .and_then(|id| pki::describe(id.chain.first().map_or(&[][..], |c| c.as_ref())));
    let d = match described {
        Ok(d) => d,
        Err(e) => return r.fail(what, &format!("{e:#}"), &certs),
    };
    let days_left = d
        .not_after
        .duration_since(SystemTime::now())
        .map(|left| left.as_secs() / 86_400);
    if !d.covers(&host) {
        r.fail(
            what,
            &format!(
                "{} is not valid for {host}, the name kube-apiserver verifies (it names: {})",
                cert.display(),
                d.names.join(", ")
            ),
            &format!(
                "{certs}, or correct --namespace/--service-name if the Service has another name"
            ),
        );
    } else if let Ok(days) = days_left {
        r.ok(
            what,
            &format!(
                "{} and its key load and match, valid for {host}, for {days} more days",
                cert.display()
            ),
        );
    } else {
        r.fail(
            what,
            &format!("{} has expired", cert.display()),
            &format!("make a new one: {certs}"),
        );
    }
}

/// The client CAs (or the cluster's ConfigMap), read as `start` reads them.
async fn client_cas(r: &mut Report, config: &Config) {
    let what = "who may read";
    if config.auth == AuthSource::Open {
        return r.note(
            what,
            "anyone who reaches the port: no --requestheader-client-ca-file, --client-ca-file or --authentication-from-cluster",
            "pass --authentication-from-cluster (with the RBAC of `flux-metrics-api manifests`) so that only kube-apiserver's front proxy is let in",
        );
    }
    // A generated certificate, so that only the client CAs are judged here.
    let tls = TlsSource::SelfSigned(vec!["localhost".into()]);
    match TlsState::load(tls, config.auth.clone()).await {
        Ok(_) => r.ok(
            what,
            &match &config.auth {
                AuthSource::Cluster { .. } => {
                    "the CAs of kube-system/extension-apiserver-authentication load".to_owned()
                }
                _ => "the client CA files parse".to_owned(),
            },
        ),
        Err(e) => r.fail(
            what,
            &format!("{e:#}"),
            match &config.auth {
                AuthSource::Cluster { kubeconfig: None } => {
                    "bind the pod's service account to extension-apiserver-authentication-reader (`flux-metrics-api manifests` prints the RoleBinding)"
                }
                AuthSource::Cluster { kubeconfig: Some(_) } => {
                    "bind the kubeconfig's user to the Role extension-apiserver-authentication-reader in kube-system, and check its server and CA"
                }
                _ => "mount PEM CA certificates at those paths (kube-apiserver's front-proxy CA for --requestheader-client-ca-file)",
            },
        ),
    }
}

/// libflux-core's version, for a live broker.
fn library(r: &mut Report, source: &Source) {
    let Source::Live { library, .. } = source else {
        return;
    };
    match flux::Library::load(library.as_deref()) {
        Ok(lib) => r.ok(
            "libflux-core",
            &format!("{} at {}", lib.version(), lib.path().display()),
        ),
        Err(e) => r.fail(
            "libflux-core",
            &e.to_string(),
            "pass --flux-core-lib PATH (in a Flux Operator MiniCluster: /mnt/flux/view/lib/libflux-core.so.2)",
        ),
    }
}

/// One round of the broker's answers (or the replay directory's), and each custom metric on it.
async fn broker(r: &mut Report, config: &Config, custom: Option<&Custom>) {
    let mut settings = config.broker.clone();
    settings.max_age = std::time::Duration::ZERO;
    settings.jobspecs_per_round = usize::MAX; // one round: every waiting job's jobspec
    let replay = matches!(settings.source, Source::Replay(_));
    let what = if replay { "replay directory" } else { "broker" };
    let broker = match Broker::start(settings) {
        Ok(b) => b,
        Err(e) => return r.fail(what, &e.to_string(), "free some threads on this node"),
    };
    match broker.snapshot().await {
        Ok(s) => {
            r.ok(
                what,
                &format!(
                    "answers: {} of {} nodes up, {} jobs running, {} waiting",
                    s.nodes.up,
                    s.nodes.all,
                    s.jobs.run,
                    s.jobs.pending()
                ),
            );
            match s.jobs.unshaped {
                0 => r.ok(
                    "jobspecs",
                    "the shape of every runnable waiting job is known (read from its jobspec)",
                ),
                n => r.note(
                    "jobspecs",
                    &format!(
                        "{n} runnable waiting job(s) count by their job-list entry (no GPUs, exclusivity or constraints): their jobspecs could not be read{}",
                        if replay {
                            " (the directory has no job-info.lookup.json answer for them)"
                        } else {
                            " (job-info.lookup lets a guest read only its own jobs)"
                        }
                    ),
                    if replay {
                        "record the directory again with this version's `flux-metrics-api record DIR`"
                    } else {
                        "run the server as the Flux instance owner (as in a MiniCluster's lead broker pod)"
                    },
                ),
            }
            if let Some(custom) = custom {
                let host: Arc<dyn Host> = Arc::new(broker.clone());
                for e in custom.values(&s, &host, |_| true).await {
                    match e.result {
                        Ok(v) => r.ok(&format!("custom metric {}", e.name), &v.to_string()),
                        Err(err) => r.fail(
                            &format!("custom metric {}", e.name),
                            &err.to_string(),
                            "correct the script at the line and column named (docs/custom-metrics.md)",
                        ),
                    }
                }
            }
        }
        Err(e) => {
            let fix = match (&e, replay) {
                (_, true) => {
                    "replay a directory written by `flux-metrics-api record DIR` (or a scenario of example/scenarios/)"
                }
                (BrokerError::Unavailable(_), false) => {
                    "run inside the Flux instance (the MiniCluster's lead broker pod) or pass --flux-uri; outside one, --replay DIR"
                }
                (_, false) => {
                    "the broker answered with an error: are its resource and job-list modules loaded (`flux module list`)?"
                }
            };
            r.fail(what, &e.to_string(), fix);
        }
    }
    broker.stop();
}

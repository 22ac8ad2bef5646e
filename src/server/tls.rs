//! TLS: the rustls server configuration, from PEM files or from a certificate generated at start
//! ([`crate::server::pki`]), with the client certificate rules of [`crate::server::trust`],
//! reloaded when the files change.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::server::pki::Identity;
use tokio_rustls::TlsAcceptor;

use crate::server::config::{AuthSource, TlsSource};
use crate::server::trust::Trust;
use crate::util::stamp::{Stamp, stamps};

/// What the TLS layer serves right now: reloaded as a whole when a file changes.
pub struct Loaded {
    /// Accepts connections with the current certificate and client CA.
    pub acceptor: TlsAcceptor,
    /// The client certificate rules, when authentication is on.
    pub trust: Option<Arc<Trust>>,
}

/// The TLS configuration and what it was made from, so that it can be rebuilt when Kubernetes
/// rotates the mounted files: new connections get the new certificate, open ones are untouched.
pub struct TlsState {
    current: ArcSwap<Loaded>,
    source: TlsSource,
    auth: AuthSource,
    /// The generated identity, kept so that reloads of the client CA keep the same certificate.
    generated: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    stamps: Mutex<Vec<Stamp>>,
}

/// How often mounted files are checked, and the cluster's ConfigMap refreshed.
const FILE_CHECK: Duration = Duration::from_secs(2);
const CLUSTER_REFRESH: Duration = Duration::from_secs(60);

impl TlsState {
    /// Loads certificates and client CAs; `None` for plain HTTP.
    ///
    /// # Errors
    /// Unreadable or invalid files, a key that does not match, an unreadable ConfigMap.
    pub async fn load(
        source: TlsSource,
        auth: AuthSource,
    ) -> anyhow::Result<Option<Arc<TlsState>>> {
        let generated = match &source {
            TlsSource::Plain => return Ok(None),
            TlsSource::Files { .. } => None,
            TlsSource::SelfSigned(names) => {
                let id = Identity::generate(names)?;
                tracing::warn!(
                    names = ?names,
                    "no --ssl-certfile/--ssl-keyfile given: serving a certificate generated at start \
                     (its CA lives only in memory, so clients must skip verification; \
                     `flux-metrics-api certs` makes a CA and certificate you can give the APIService)"
                );
                Some((id.chain, id.key))
            }
        };
        let loaded = build(&source, &auth, generated.as_ref()).await?;
        let state = TlsState {
            current: ArcSwap::from_pointee(loaded),
            source,
            auth,
            generated,
            stamps: Mutex::new(Vec::new()),
        };
        *state.stamps.lock().unwrap_or_else(|e| e.into_inner()) = state.stamps_now();
        match &state.auth {
            AuthSource::Open => tracing::warn!(
                "no --requestheader-client-ca-file, --client-ca-file or --authentication-from-cluster: \
                 ANY client that reaches this port can read the metrics"
            ),
            a => tracing::info!(auth = ?a, "API requests need a trusted client certificate"),
        }
        Ok(Some(Arc::new(state)))
    }

    /// The configuration for a new connection.
    pub fn current(&self) -> Arc<Loaded> {
        self.current.load_full()
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let TlsSource::Files { cert, key } = &self.source {
            files.extend([cert.clone(), key.clone()]);
        }
        if let AuthSource::Files {
            client_ca,
            requestheader_ca,
            ..
        } = &self.auth
        {
            files.extend(client_ca.iter().chain(requestheader_ca.iter()).cloned());
        }
        files
    }

    fn stamps_now(&self) -> Vec<Stamp> {
        stamps(&self.files())
    }

    /// Rebuilds the configuration if a file changed (or, for the cluster source, always).
    /// A broken new version is logged and the old one kept. Returns whether it changed.
    pub async fn reload(&self, force: bool) -> bool {
        let now = self.stamps_now();
        let changed = *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) != now;
        if !changed && !force {
            return false;
        }
        match build(&self.source, &self.auth, self.generated.as_ref()).await {
            Ok(loaded) => {
                self.current.store(Arc::new(loaded));
                *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) = now;
                tracing::info!("reloaded TLS certificates and client CAs");
                true
            }
            Err(e) => {
                // Keep serving the last good files; a rotation may be half-written.
                tracing::warn!(
                    error = format!("{e:#}"),
                    "TLS reload failed: still serving the previous certificates"
                );
                false
            }
        }
    }

    /// Watches the files (every 2 s) and the cluster ConfigMap (every minute) for changes.
    pub fn spawn_reloader(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let state = Arc::clone(self);
        tokio::spawn(async move {
            let mut last_cluster = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(FILE_CHECK).await;
                let cluster_due = matches!(state.auth, AuthSource::Cluster { .. })
                    && last_cluster.elapsed() >= CLUSTER_REFRESH;
                if cluster_due {
                    last_cluster = tokio::time::Instant::now();
                }
                state.reload(cluster_due).await;
            }
        })
    }
}

/// Builds the TLS configuration from its sources.
async fn build(
    source: &TlsSource,
    auth: &AuthSource,
    generated: Option<&(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> anyhow::Result<Loaded> {
    let identity = match (source, generated) {
        (_, Some((chain, key))) => Identity {
            chain: chain.clone(),
            key: key.clone_key(),
        },
        (TlsSource::Files { cert, key }, None) => Identity::from_files(cert, key)?,
        _ => bail!("no certificate to serve"),
    };
    let trust = match auth {
        AuthSource::Open => None,
        AuthSource::Files {
            client_ca,
            requestheader_ca,
            allowed_names,
        } => {
            let read = |p: &PathBuf, flag: &str| {
                std::fs::read(p).with_context(|| format!("reading {flag} {}", p.display()))
            };
            let cl = client_ca
                .as_ref()
                .map(|p| read(p, "--client-ca-file"))
                .transpose()?;
            let rh = requestheader_ca
                .as_ref()
                .map(|p| read(p, "--requestheader-client-ca-file"))
                .transpose()?;
            Some(Arc::new(Trust::from_pem(
                cl.as_deref().map(|b| ("--client-ca-file", b)),
                rh.as_deref().map(|b| ("--requestheader-client-ca-file", b)),
                allowed_names.clone(),
            )?))
        }
        AuthSource::Cluster { kubeconfig } => {
            let c = crate::server::cluster::fetch(kubeconfig.as_deref()).await?;
            Some(Arc::new(Trust::from_pem(
                c.client_ca
                    .as_deref()
                    .map(|p| ("ConfigMap client-ca-file", p.as_bytes())),
                c.requestheader_ca
                    .as_deref()
                    .map(|p| ("ConfigMap requestheader-client-ca-file", p.as_bytes())),
                c.allowed_names,
            )?))
        }
    };
    let builder = ServerConfig::builder();
    let builder = match &trust {
        Some(t) => builder.with_client_cert_verifier(t.handshake_verifier()),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(identity.chain, identity.key)
        .context(
            "the TLS private key does not match the certificate, or is of an unsupported type",
        )?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Loaded {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        trust,
    })
}

//! TLS: the rustls server configuration, from PEM files or from a certificate generated at start,
//! with the client certificate rules of [`crate::server::auth`], reloaded when the files change.
//!
//! A generated certificate is signed by a generated CA rather than being its own CA, because
//! rustls-based clients (kube-rs, oha) refuse a self-signed certificate used as an end entity.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::cli::{AuthSource, TlsSource};
use crate::server::auth::Trust;

/// A certificate chain and its key.
pub struct Identity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

/// Reads a PEM certificate chain and private key.
///
/// # Errors
/// A message naming the file and what is wrong with it.
pub fn load_files(cert: &Path, key: &Path) -> anyhow::Result<Identity> {
    let cert_pem = std::fs::read(cert)
        .with_context(|| format!("reading --ssl-certfile {}", cert.display()))?;
    let chain = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing --ssl-certfile {}", cert.display()))?;
    if chain.is_empty() {
        bail!(
            "--ssl-certfile {} holds no PEM CERTIFICATE block",
            cert.display()
        );
    }
    let key_pem =
        std::fs::read(key).with_context(|| format!("reading --ssl-keyfile {}", key.display()))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .with_context(|| format!("parsing --ssl-keyfile {}", key.display()))?
        .with_context(|| format!("--ssl-keyfile {} holds no PEM private key", key.display()))?;
    Ok(Identity { chain, key })
}

/// Generates a CA and a serving certificate for `names` (DNS names or IP addresses), valid for
/// one year.
///
/// # Errors
/// When a name is not a valid DNS name or IP address.
pub fn generate(names: &[String]) -> anyhow::Result<Identity> {
    use chrono::{Datelike, Days};
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    // From yesterday (tolerating clock skew) to a year from today.
    let today = chrono::Utc::now().date_naive();
    let ymd = |d: chrono::NaiveDate| {
        // Calendar months and days always fit u8.
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    let not_before = ymd(today - Days::new(1));
    let not_after = ymd(today + Days::new(365));

    let ca_key = KeyPair::generate().context("generating a CA key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    ca.distinguished_name
        .push(DnType::CommonName, "flux-metrics-api generated CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = (not_before, not_after);
    let ca_cert = ca.self_signed(&ca_key).context("signing the CA")?;

    let key = KeyPair::generate().context("generating a serving key")?;
    let mut leaf = CertificateParams::new(names.to_vec())
        .with_context(|| format!("certificate names {names:?}"))?;
    leaf.distinguished_name
        .push(DnType::CommonName, names.first().map_or("localhost", |n| n));
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    (leaf.not_before, leaf.not_after) = (not_before, not_after);
    let leaf_cert = leaf
        .signed_by(&key, &ca_cert, &ca_key)
        .context("signing the certificate")?;

    Ok(Identity {
        chain: vec![leaf_cert.der().clone(), ca_cert.der().clone()],
        key: PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| anyhow::anyhow!("serialising the generated key: {e}"))?,
    })
}

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

/// A file's identity for change detection: Secret volumes swap a symlink, which changes these.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Stamp {
    match std::fs::metadata(path) {
        Ok(m) => Stamp {
            modified: m.modified().ok(),
            len: m.len(),
        },
        Err(_) => Stamp {
            modified: None,
            len: 0,
        },
    }
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
                let id = generate(names)?;
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
        self.files().iter().map(|f| stamp(f)).collect()
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
                let cluster_due =
                    state.auth == AuthSource::Cluster && last_cluster.elapsed() >= CLUSTER_REFRESH;
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
        (TlsSource::Files { cert, key }, None) => load_files(cert, key)?,
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
        AuthSource::Cluster => {
            let c = crate::server::cluster::fetch().await?;
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

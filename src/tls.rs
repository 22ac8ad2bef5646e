//! TLS: the rustls server configuration, from PEM files or from a certificate generated at start.
//!
//! A generated certificate is signed by a generated CA rather than being its own CA, because
//! rustls-based clients (kube-rs, oha) refuse a self-signed certificate used as an end entity.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::cli::TlsSource;

/// A certificate chain and its key.
pub struct Identity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// PEM of the CA that signed a generated leaf (`None` for files given by the user).
    pub generated_ca_pem: Option<String>,
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
    Ok(Identity {
        chain,
        key,
        generated_ca_pem: None,
    })
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
        generated_ca_pem: Some(ca_cert.pem()),
    })
}

/// The rustls configuration for `source` (`None` for plain HTTP), with ALPN h2 and http/1.1.
///
/// # Errors
/// Unreadable or invalid certificate files, or a key that does not match the certificate.
pub fn server_config(source: &TlsSource) -> anyhow::Result<Option<Arc<ServerConfig>>> {
    let identity = match source {
        TlsSource::Plain => return Ok(None),
        TlsSource::Files { cert, key } => load_files(cert, key)?,
        TlsSource::SelfSigned(names) => {
            let id = generate(names)?;
            tracing::warn!(
                names = ?names,
                "no --ssl-certfile/--ssl-keyfile given: serving a certificate generated at start \
                 (its CA lives only in memory, so clients must skip verification; give the \
                 APIService a CA of your own for a verified connection)"
            );
            id
        }
    };
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)
        .context(
            "the TLS private key does not match the certificate, or is of an unsupported type",
        )?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

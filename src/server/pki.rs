//! Certificates, defined once: the names a serving certificate for the Service must carry, a CA
//! and the certificates it signs (the one made at start when no `--ssl-certfile` is given, and
//! the files `flux-metrics-api certs` writes), and PEM read from files or written for them.
//!
//! Keys are ECDSA P-256. A serving certificate has keyUsage digitalSignature only (the one usage
//! RFC 5480 allows an ECDSA end entity for TLS), extKeyUsage serverAuth, basicConstraints
//! CA:FALSE and the CA's key identifier, which is what Go, rustls and OpenSSL clients check.
//! It is signed by a CA rather than being its own, because rustls-based clients (kube-rs, oha)
//! refuse a self-signed certificate used as an end entity.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Common name of the CAs this program makes.
pub const CA_COMMON_NAME: &str = "flux-metrics-api CA";

/// The names a serving certificate for Service `service` in `namespace` must carry: every form
/// of the Service's DNS name (kube-apiserver checks `<service>.<namespace>.svc`), plus the
/// loopback names, so that the same certificate also serves a client on the pod or host itself.
pub fn serving_names(namespace: &str, service: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ]
}

/// The name kube-apiserver verifies a serving certificate against: `<service>.<namespace>.svc`.
pub fn service_host(namespace: &str, service: &str) -> String {
    format!("{service}.{namespace}.svc")
}

/// When a certificate is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Not before.
    pub not_before: SystemTime,
    /// Not after.
    pub not_after: SystemTime,
}

impl Validity {
    /// From an hour before `now` (tolerating clock skew between hosts) to `days` days after it.
    ///
    /// # Errors
    /// A validity that overflows the clock.
    pub fn days_from(now: SystemTime, days: u32) -> anyhow::Result<Validity> {
        let not_after = now
            .checked_add(Duration::from_secs(u64::from(days) * 86_400))
            .context("the validity is too long")?;
        let not_before = now.checked_sub(Duration::from_secs(3600)).unwrap_or(now);
        Ok(Validity {
            not_before,
            not_after,
        })
    }

    fn apply(&self, params: &mut CertificateParams) -> anyhow::Result<()> {
        // rcgen takes `time::OffsetDateTime`; the Unix epoch plus a std Duration builds one
        // without naming the `time` crate.
        let at = |t: SystemTime| -> anyhow::Result<_> {
            let since = t
                .duration_since(UNIX_EPOCH)
                .context("the system clock is before 1970")?;
            Ok(rcgen::date_time_ymd(1970, 1, 1) + since)
        };
        params.not_before = at(self.not_before)?;
        params.not_after = at(self.not_after)?;
        Ok(())
    }
}

/// A certificate and its private key, as PEM and DER.
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS #8).
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// The private key, DER.
    pub key_der: PrivateKeyDer<'static>,
}

impl Issued {
    fn new(cert: &rcgen::Certificate, key: &KeyPair) -> anyhow::Result<Issued> {
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: PrivateKeyDer::try_from(key.serialize_der())
                .map_err(|e| anyhow::anyhow!("serialising a generated key: {e}"))?,
        })
    }
}

/// A certificate authority that signs serving and client certificates.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    issued: Issued,
}

impl Ca {
    /// A new CA (basicConstraints CA, keyUsage keyCertSign + cRLSign) named `common_name`.
    ///
    /// # Errors
    /// Key generation or signing failures.
    pub fn new(common_name: &str, validity: Validity) -> anyhow::Result<Ca> {
        let key = KeyPair::generate().context("generating the CA key")?;
        let mut params = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity.apply(&mut params)?;
        let cert = params.self_signed(&key).context("signing the CA")?;
        let issued = Issued::new(&cert, &key)?;
        Ok(Ca { cert, key, issued })
    }

    /// The CA's own certificate and key.
    pub fn issued(&self) -> &Issued {
        &self.issued
    }

    /// A serving certificate for `names` (DNS names or IP addresses), subject CN `common_name`.
    ///
    /// # Errors
    /// A name rcgen refuses, or a signing failure.
    pub fn issue_server(
        &self,
        common_name: &str,
        names: &[String],
        validity: Validity,
    ) -> anyhow::Result<Issued> {
        let mut params = CertificateParams::new(names.to_vec())
            .with_context(|| format!("certificate names {names:?}"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, validity)
    }

    /// A client certificate for user `common_name` in groups `organizations` (subject CN and O,
    /// as Kubernetes reads them), such as kube-apiserver's front proxy or a person opening the
    /// dashboard presents.
    ///
    /// # Errors
    /// A signing failure.
    pub fn issue_client(
        &self,
        common_name: &str,
        organizations: &[&str],
        validity: Validity,
    ) -> anyhow::Result<Issued> {
        let mut params = CertificateParams::new(Vec::<String>::new()).context("parameters")?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        for o in organizations {
            params.distinguished_name.push(DnType::OrganizationName, *o);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, validity)
    }

    fn sign(&self, mut params: CertificateParams, validity: Validity) -> anyhow::Result<Issued> {
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        validity.apply(&mut params)?;
        let key = KeyPair::generate().context("generating a key")?;
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .context("signing the certificate")?;
        Issued::new(&cert, &key)
    }
}

/// A certificate chain (leaf first) and the leaf's private key: what a TLS server presents.
pub struct Identity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// A CA made now and a serving certificate it signed for `names`, valid for a year, served
    /// with the CA in the chain. The CA's key is dropped: nothing can sign with it again.
    ///
    /// # Errors
    /// A name that is not a valid DNS name or IP address.
    pub fn generate(names: &[String]) -> anyhow::Result<Identity> {
        let validity = Validity::days_from(SystemTime::now(), 365)?;
        let ca = Ca::new(CA_COMMON_NAME, validity)?;
        let cn = names.first().map_or("localhost", String::as_str);
        let leaf = ca.issue_server(cn, names, validity)?;
        Ok(Identity {
            chain: vec![leaf.cert_der, ca.issued.cert_der.clone()],
            key: leaf.key_der,
        })
    }

    /// Reads a PEM certificate chain and private key from the `--ssl-certfile` and
    /// `--ssl-keyfile` files.
    ///
    /// # Errors
    /// A message naming the file and what is wrong with it.
    pub fn from_files(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<Identity> {
        let cert_pem = std::fs::read(cert)
            .with_context(|| format!("reading --ssl-certfile {}", cert.display()))?;
        let chain = certificates(&cert_pem)
            .with_context(|| format!("parsing --ssl-certfile {}", cert.display()))?;
        if chain.is_empty() {
            bail!(
                "--ssl-certfile {} holds no PEM CERTIFICATE block",
                cert.display()
            );
        }
        let key_pem = std::fs::read(key)
            .with_context(|| format!("reading --ssl-keyfile {}", key.display()))?;
        let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
            Ok(k) => k,
            Err(rustls::pki_types::pem::Error::NoItemsFound) => {
                bail!("--ssl-keyfile {} holds no PEM private key", key.display())
            }
            Err(e) => {
                return Err(anyhow::anyhow!("{e}"))
                    .with_context(|| format!("parsing --ssl-keyfile {}", key.display()));
            }
        };
        Ok(Identity { chain, key })
    }
}

/// What a certificate says of itself: the names it serves and when it stops being valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Described {
    /// Its subjectAltName DNS names and IP addresses, as text.
    pub names: Vec<String>,
    /// The end of its validity.
    pub not_after: SystemTime,
}

impl Described {
    /// Whether a client verifying `host` accepts the certificate's names: one equal to it
    /// (ignoring case), or a wildcard `*.rest` for a `host` of one more label.
    pub fn covers(&self, host: &str) -> bool {
        self.names.iter().any(|n| {
            n.eq_ignore_ascii_case(host)
                || n.strip_prefix("*.").is_some_and(|rest| {
                    host.split_once('.')
                        .is_some_and(|(_, tail)| tail.eq_ignore_ascii_case(rest))
                })
        })
    }
}

/// Reads the names and the end of validity of a DER certificate.
///
/// # Errors
/// DER that is not an X.509 certificate.
pub fn describe(der: &[u8]) -> anyhow::Result<Described> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| anyhow::anyhow!("not an X.509 certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push((*d).to_owned()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => names.push(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
                    16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(b);
                        names.push(std::net::Ipv6Addr::from(a).to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let secs = u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0);
    Ok(Described {
        names,
        not_after: UNIX_EPOCH + Duration::from_secs(secs),
    })
}

/// Every CERTIFICATE block of a PEM text (other blocks are skipped).
///
/// # Errors
/// PEM that does not parse.
pub fn certificates(pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("not valid PEM: {e}"))
}

/// A root store of the certificates of a PEM bundle; `what` names it in errors.
///
/// # Errors
/// PEM that does not parse, a certificate rustls refuses, or no certificate at all.
pub fn roots(what: &str, pem: &[u8]) -> anyhow::Result<rustls::RootCertStore> {
    let mut store = rustls::RootCertStore::empty();
    for cert in certificates(pem).with_context(|| format!("parsing {what}"))? {
        store
            .add(cert)
            .with_context(|| format!("adding a certificate of {what}"))?;
    }
    if store.is_empty() {
        bail!("{what} holds no PEM CERTIFICATE block");
    }
    Ok(store)
}

/// The CERTIFICATE blocks of a CA bundle, re-encoded as clean PEM (nothing else, `\n` line
/// ends), for an APIService's `caBundle`.
///
/// # Errors
/// PEM that does not parse, no certificate, or a private key in the bundle (a CA bundle is
/// public; a key there is a mistake worth stopping for).
pub fn clean_ca_bundle(bytes: &[u8]) -> Result<String, CaBundleError> {
    let mut out = String::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
        let (kind, der) = section.map_err(|e| CaBundleError::NotPem(e.to_string()))?;
        match kind {
            SectionKind::Certificate => out.push_str(&pem_text("CERTIFICATE", der)),
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                return Err(CaBundleError::PrivateKey);
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(CaBundleError::NoCertificate);
    }
    Ok(out)
}

/// Why a CA bundle was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CaBundleError {
    /// The text is not PEM.
    #[error("not valid PEM: {0}")]
    NotPem(String),
    /// It holds a private key.
    #[error("it holds a private key")]
    PrivateKey,
    /// It holds no certificate.
    #[error("it holds no PEM CERTIFICATE block")]
    NoCertificate,
}

/// One PEM block with `\n` line ends, lines of 64 characters.
pub fn pem_text(tag: &str, der: Vec<u8>) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(tag, der), config)
}

/// Standard base64 with padding (RFC 4648 §4), as Kubernetes writes `[]byte` fields.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validity() -> Validity {
        Validity::days_from(SystemTime::now(), 1).unwrap()
    }

    #[test]
    fn a_serving_certificate_describes_its_names_and_end() {
        let v = validity();
        let ca = Ca::new(CA_COMMON_NAME, v).unwrap();
        let leaf = ca
            .issue_server("svc.ns.svc", &serving_names("ns", "svc"), v)
            .unwrap();
        let d = describe(&leaf.cert_der).unwrap();
        assert!(d.covers(&service_host("ns", "svc")), "{d:?}");
        assert!(
            d.covers("SVC.ns.svc.cluster.local") && d.covers("::1"),
            "{d:?}"
        );
        assert!(
            !d.covers("other.ns.svc") && !d.covers("svc.other.svc"),
            "{d:?}"
        );
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs(d.not_after), secs(v.not_after));
        let wild = Described {
            names: vec!["*.ns.svc".into()],
            not_after: UNIX_EPOCH,
        };
        assert!(wild.covers("svc.ns.svc") && !wild.covers("a.b.ns.svc"));
        assert!(describe(b"not DER").is_err());
    }

    #[test]
    fn serving_certificates_verify_against_their_ca_for_every_name() {
        let ca = Ca::new(CA_COMMON_NAME, validity()).unwrap();
        let names = serving_names("ns", "svc");
        let leaf = ca.issue_server("svc.ns.svc", &names, validity()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf.cert_der).unwrap();
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_encipherment(), "{ku:?}");
        assert!(!cert.is_ca());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.issued().cert_der.clone()).unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        use rustls::client::danger::ServerCertVerifier as _;
        let verifier = rustls::client::WebPkiServerVerifier::builder(std::sync::Arc::new(roots))
            .build()
            .unwrap();
        for name in ["svc.ns.svc", "localhost", "127.0.0.1"] {
            let server = rustls::pki_types::ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(
                    &leaf.cert_der,
                    &[],
                    &server,
                    &[],
                    rustls::pki_types::UnixTime::now(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn validity_starts_an_hour_early() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let v = Validity::days_from(now, 10).unwrap();
        assert_eq!(v.not_before, now - Duration::from_secs(3600));
        assert_eq!(v.not_after, now + Duration::from_secs(10 * 86_400));
    }

    #[test]
    fn ca_bundles_are_cleaned_and_keys_refused() {
        let ca = Ca::new(CA_COMMON_NAME, validity()).unwrap();
        let text = format!("comment\n{}", ca.issued().cert_pem);
        let clean = clean_ca_bundle(text.as_bytes()).unwrap();
        assert!(
            clean.starts_with("-----BEGIN CERTIFICATE-----\n"),
            "{clean}"
        );
        assert_eq!(certificates(clean.as_bytes()).unwrap().len(), 1);
        assert_eq!(
            clean_ca_bundle(ca.issued().key_pem.as_bytes()),
            Err(CaBundleError::PrivateKey)
        );
        assert_eq!(
            clean_ca_bundle(b"nothing"),
            Err(CaBundleError::NoCertificate)
        );
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }
}

//! Which client certificates are trusted, as Kubernetes' own aggregated servers decide it: a
//! chain to `--requestheader-client-ca-file` (kube-apiserver's front proxy) or to
//! `--client-ca-file` (a user named by the certificate's CN and O). [`Trust::classify`] judges a
//! connection's certificate into an [`api::auth::Peer`](crate::api::auth::Peer); the request
//! layer then answers for it.
//!
//! The TLS layer asks for a certificate but accepts any (still checking that the client holds its
//! key); the chain is judged here after the handshake, so that a missing, expired or foreign
//! certificate gets a 401/403 `Status` the client can read instead of a bare TLS alert.

use std::fmt;
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::DistinguishedName;
use rustls::RootCertStore;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::api::auth::Peer;
use crate::server::pki::roots;

/// The CAs and names that decide who is let in.
pub struct Trust {
    requestheader: Option<Arc<dyn ClientCertVerifier>>,
    client: Option<Arc<dyn ClientCertVerifier>>,
    allowed_names: Vec<String>,
    handshake: Arc<dyn ClientCertVerifier>,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trust")
            .field("requestheader", &self.requestheader.is_some())
            .field("client", &self.client.is_some())
            .field("allowed_names", &self.allowed_names)
            .finish_non_exhaustive()
    }
}

fn verifier(store: RootCertStore) -> anyhow::Result<Arc<dyn ClientCertVerifier>> {
    WebPkiClientVerifier::builder(Arc::new(store))
        .allow_unauthenticated()
        .build()
        .context("building a client certificate verifier")
}

impl Trust {
    /// Trust from PEM bundles. `what_*` name where each came from, for error messages.
    ///
    /// # Errors
    /// A bundle without certificates, or one that does not parse.
    pub fn from_pem(
        client_ca: Option<(&str, &[u8])>,
        requestheader_ca: Option<(&str, &[u8])>,
        allowed_names: Vec<String>,
    ) -> anyhow::Result<Trust> {
        let client_roots = client_ca.map(|(what, pem)| roots(what, pem)).transpose()?;
        let rh_roots = requestheader_ca
            .map(|(what, pem)| roots(what, pem))
            .transpose()?;
        let mut union = RootCertStore::empty();
        for store in client_roots.iter().chain(rh_roots.iter()) {
            union.roots.extend(store.roots.iter().cloned());
        }
        if union.is_empty() {
            bail!("no client CA given");
        }
        Ok(Trust {
            client: client_roots.map(verifier).transpose()?,
            requestheader: rh_roots.map(verifier).transpose()?,
            allowed_names,
            handshake: Arc::new(AskAnyCertificate(verifier(union)?)),
        })
    }

    /// The verifier to put in the TLS configuration.
    pub fn handshake_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::clone(&self.handshake)
    }

    /// Judges the certificate chain a client presented (leaf first).
    pub fn classify(&self, chain: Option<&[CertificateDer<'static>]>) -> Peer {
        let Some((leaf, intermediates)) = chain.and_then(|c| c.split_first()) else {
            return Peer::NoCertificate;
        };
        let now = UnixTime::now();
        let (cn, orgs) = subject(leaf);
        let mut reason = String::from("no client CA is configured");
        if let Some(v) = &self.requestheader {
            match v.verify_client_cert(leaf, intermediates, now) {
                Ok(_) if self.allowed_names.is_empty() || self.allowed_names.contains(&cn) => {
                    return Peer::FrontProxy { cn };
                }
                Ok(_) => return Peer::NotAllowed { cn },
                Err(e) => reason = e.to_string(),
            }
        }
        if let Some(v) = &self.client {
            match v.verify_client_cert(leaf, intermediates, now) {
                Ok(_) => return Peer::Client { cn, groups: orgs },
                Err(e) => reason = e.to_string(),
            }
        }
        Peer::Untrusted { cn, reason }
    }
}

/// CN and O values of a certificate's subject. With several CNs the last one counts, as in Go's
/// `crypto/x509` (`pkix.Name.FillFromRDNSequence` keeps overwriting `CommonName`), whose user
/// names kube-apiserver's own aggregated servers use.
fn subject(der: &CertificateDer<'_>) -> (String, Vec<String>) {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => {
            let s = cert.subject();
            let cn = s
                .iter_common_name()
                .last()
                .and_then(|a| a.as_str().ok())
                .unwrap_or_default();
            let orgs = s
                .iter_organization()
                .filter_map(|a| a.as_str().ok())
                .map(str::to_owned)
                .collect();
            (cn.to_owned(), orgs)
        }
        Err(_) => (String::new(), Vec::new()),
    }
}

/// Asks every client for a certificate and lets any through the handshake (still checking the
/// client's signature with its key), so that [`Trust::classify`] can answer with a `Status`.
#[derive(Debug)]
struct AskAnyCertificate(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for AskAnyCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false // health endpoints stay open to probes without certificates
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::pki::{Ca, Validity};
    use std::time::{Duration, SystemTime};

    fn validity(expired: bool) -> Validity {
        let from = if expired {
            SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_800) // 2000-01-01
        } else {
            SystemTime::now()
        };
        Validity::days_from(from, 365).unwrap()
    }

    fn ca(name: &str) -> Ca {
        Ca::new(name, validity(false)).unwrap()
    }

    fn client(ca: &Ca, cn: &str, org: Option<&str>, expired: bool) -> CertificateDer<'static> {
        let orgs: Vec<&str> = org.into_iter().collect();
        ca.issue_client(cn, &orgs, validity(expired))
            .unwrap()
            .cert_der
    }

    fn trust(rh: &Ca, cl: &Ca, allowed: &[&str]) -> Trust {
        let (rh_pem, cl_pem) = (&rh.issued().cert_pem, &cl.issued().cert_pem);
        Trust::from_pem(
            Some(("client", cl_pem.as_bytes())),
            Some(("requestheader", rh_pem.as_bytes())),
            allowed.iter().map(|s| (*s).to_owned()).collect(),
        )
        .unwrap()
    }

    #[test]
    fn certificates_are_classified() {
        let (rh, cl, other) = (ca("front-proxy-ca"), ca("client-ca"), ca("someone-else"));
        let t = trust(&rh, &cl, &["front-proxy-client"]);
        let c = |cert| t.classify(Some(&[cert][..]));
        assert_eq!(t.classify(None), Peer::NoCertificate);
        assert_eq!(
            c(client(&rh, "front-proxy-client", None, false)),
            Peer::FrontProxy {
                cn: "front-proxy-client".into()
            }
        );
        assert_eq!(
            c(client(&rh, "intruder", None, false)),
            Peer::NotAllowed {
                cn: "intruder".into()
            }
        );
        assert_eq!(
            c(client(&cl, "alice", Some("admins"), false)),
            Peer::Client {
                cn: "alice".into(),
                groups: vec!["admins".into()]
            }
        );
        assert!(matches!(
            c(client(&other, "mallory", None, false)),
            Peer::Untrusted { .. }
        ));
        let Peer::Untrusted { reason, .. } = c(client(&cl, "old", None, true)) else {
            panic!()
        };
        assert!(reason.to_lowercase().contains("expired"), "{reason}");
    }

    #[test]
    fn the_last_of_several_common_names_is_the_cn() {
        use rcgen::{CertificateParams, DnType, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        // rcgen keeps one value per attribute type, so the first CN goes in under its raw OID.
        params
            .distinguished_name
            .push(DnType::CustomDnType(vec![2, 5, 4, 3]), "first");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "org");
        params
            .distinguished_name
            .push(DnType::CommonName, "front-proxy-client");
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        let cns: Vec<&str> = parsed
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(cns.len(), 2, "{cns:?}");
        let (cn, orgs) = subject(cert.der());
        assert_eq!(cn, cns[1], "not the last of {cns:?}");
        assert_eq!(orgs, ["org"]);
    }

    #[test]
    fn empty_allowed_names_admit_any_requestheader_certificate() {
        let (rh, cl) = (ca("rh"), ca("cl"));
        let t = trust(&rh, &cl, &[]);
        assert_eq!(
            t.classify(Some(&[client(&rh, "x", None, false)][..])),
            Peer::FrontProxy { cn: "x".into() }
        );
    }
}

//! Reading the `kube-system/extension-apiserver-authentication` ConfigMap, as Kubernetes' own
//! aggregated API servers do, to learn which CAs and names to trust: from inside a pod with its
//! service account, or from anywhere with `--authentication-kubeconfig` (a token or a client
//! certificate, [`crate::server::kubeconfig`]).
//!
//! One GET over TLS verified with the cluster's CA; no Kubernetes client library (kube-rs would
//! double the build for one request).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;

use crate::server::kubeconfig::Target;

const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const CONFIGMAP_PATH: &str =
    "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication";

/// The trust material the ConfigMap holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterAuth {
    /// `client-ca-file`: PEM bundle.
    pub client_ca: Option<String>,
    /// `requestheader-client-ca-file`: PEM bundle.
    pub requestheader_ca: Option<String>,
    /// `requestheader-allowed-names`, decoded from its JSON array.
    pub allowed_names: Vec<String>,
}

#[derive(Deserialize)]
struct ConfigMap {
    #[serde(default)]
    data: std::collections::BTreeMap<String, String>,
}

impl ClusterAuth {
    /// Parses the ConfigMap object as the API server returns it.
    ///
    /// # Errors
    /// JSON that is not a ConfigMap, or allowed names that are not a JSON array of strings.
    pub fn from_configmap_json(body: &[u8]) -> anyhow::Result<ClusterAuth> {
        let cm: ConfigMap =
            serde_json::from_slice(body).context("the ConfigMap is not valid JSON")?;
        let mut data = cm.data;
        let allowed_names = match data.remove("requestheader-allowed-names") {
            Some(text) if !text.trim().is_empty() && text.trim() != "null" => {
                serde_json::from_str(&text).with_context(|| {
                    format!("requestheader-allowed-names {text:?} is not a JSON array of strings")
                })?
            }
            _ => Vec::new(),
        };
        let auth = ClusterAuth {
            client_ca: data.remove("client-ca-file"),
            requestheader_ca: data.remove("requestheader-client-ca-file"),
            allowed_names,
        };
        if auth.client_ca.is_none() && auth.requestheader_ca.is_none() {
            bail!("the ConfigMap names neither client-ca-file nor requestheader-client-ca-file");
        }
        Ok(auth)
    }
}

/// Where the ConfigMap is read from and who asks for it.
struct Endpoint {
    /// For messages: "the pod's service account", "kubeconfig FILE (context C)".
    origin: String,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    ca_pem: Vec<u8>,
    token: Option<String>,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

/// Fetches the ConfigMap: with the credentials of `kubeconfig` when given, else with the pod's
/// service account. Files are read afresh on every call (tokens and certificates rotate).
///
/// # Errors
/// Not in a pod (no `KUBERNETES_SERVICE_HOST` or service account files) and no kubeconfig, a
/// kubeconfig that cannot be used, an unreachable API server, a refusal (RBAC: the
/// `extension-apiserver-authentication-reader` RoleBinding is missing), or an unusable answer.
pub async fn fetch(kubeconfig: Option<&Path>) -> anyhow::Result<ClusterAuth> {
    let endpoint = match kubeconfig {
        Some(path) => from_kubeconfig(path)?,
        None => in_pod()?,
    };
    fetch_from(&endpoint).await
}

async fn fetch_from(endpoint: &Endpoint) -> anyhow::Result<ClusterAuth> {
    let auth = get(endpoint).await.with_context(|| {
        format!(
            "reading kube-system/extension-apiserver-authentication from https://{}:{} as {}",
            endpoint.host, endpoint.port, endpoint.origin
        )
    })?;
    tracing::info!(
        server = format!("https://{}:{}", endpoint.host, endpoint.port),
        credentials = endpoint.origin,
        requestheader_ca = auth.requestheader_ca.is_some(),
        client_ca = auth.client_ca.is_some(),
        allowed_names = ?auth.allowed_names,
        "read kube-system/extension-apiserver-authentication"
    );
    Ok(auth)
}

/// The pod's service account and the API server the pod's environment names.
fn in_pod() -> anyhow::Result<Endpoint> {
    pod_endpoint(
        std::env::var("KUBERNETES_SERVICE_HOST").ok(),
        std::env::var("KUBERNETES_SERVICE_PORT").ok(),
        Path::new(SERVICE_ACCOUNT),
    )
}

/// [`in_pod`] with its environment given: the service host and port variables, and the
/// directory where the kubelet mounts the service account (`token`, `ca.crt`).
fn pod_endpoint(
    host: Option<String>,
    port: Option<String>,
    dir: &Path,
) -> anyhow::Result<Endpoint> {
    let host = host.filter(|h| !h.is_empty()).context(
        "--authentication-from-cluster: KUBERNETES_SERVICE_HOST is unset: not running in a \
         Kubernetes pod (outside a pod, give --authentication-kubeconfig FILE)",
    )?;
    let port = port.unwrap_or_else(|| "443".into());
    let port = port
        .parse()
        .with_context(|| format!("KUBERNETES_SERVICE_PORT {port:?} is not a port"))?;
    let token = std::fs::read_to_string(dir.join("token")).with_context(|| {
        format!(
            "reading the service account token in {} (does the pod mount its token? \
             automountServiceAccountToken)",
            dir.display()
        )
    })?;
    let ca_pem = std::fs::read(dir.join("ca.crt"))
        .with_context(|| format!("reading {}/ca.crt", dir.display()))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok(Endpoint {
        origin: "the pod's service account".into(),
        server_name: server_name(&host)?,
        host,
        port,
        ca_pem,
        token: Some(token.trim().to_owned()),
        client_cert: None,
    })
}

/// The current context of a kubeconfig file.
fn from_kubeconfig(path: &Path) -> anyhow::Result<Endpoint> {
    let target = Target::load(path)?;
    let origin = format!(
        "kubeconfig {} (context {:?})",
        path.display(),
        target.context
    );
    let ca_pem = target.ca.read("certificate-authority")?;
    let token = target
        .token
        .as_ref()
        .map(|t| {
            let bytes = t.read("tokenFile")?;
            String::from_utf8(bytes)
                .map(|s| s.trim().to_owned())
                .context("the token is not UTF-8")
        })
        .transpose()
        .with_context(|| format!("--authentication-kubeconfig {}", path.display()))?;
    let client_cert = target
        .client_cert
        .as_ref()
        .map(|(cert, key)| -> anyhow::Result<_> {
            let chain = crate::server::pki::certificates(&cert.read("client-certificate")?)
                .context("client-certificate")?;
            if chain.is_empty() {
                bail!("client-certificate holds no PEM CERTIFICATE block");
            }
            let key = PrivateKeyDer::from_pem_slice(&key.read("client-key")?)
                .map_err(|e| anyhow::anyhow!("client-key: no usable PEM private key: {e}"))?;
            Ok((chain, key))
        })
        .transpose()
        .with_context(|| format!("--authentication-kubeconfig {}", path.display()))?;
    let name = target.tls_server_name.as_deref().unwrap_or(&target.host);
    Ok(Endpoint {
        origin,
        server_name: server_name(name)?,
        host: target.host,
        port: target.port,
        ca_pem,
        token,
        client_cert,
    })
}

fn server_name(host: &str) -> anyhow::Result<ServerName<'static>> {
    ServerName::try_from(host.to_owned())
        .with_context(|| format!("{host:?} is not a valid API server host name"))
}

async fn get(endpoint: &Endpoint) -> anyhow::Result<ClusterAuth> {
    let roots = crate::server::pki::roots("the cluster CA", &endpoint.ca_pem)?;
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match &endpoint.client_cert {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .context("the client key does not match the client certificate")?,
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let addr = if endpoint.host.contains(':') {
        format!("[{}]:{}", endpoint.host, endpoint.port)
    } else {
        format!("{}:{}", endpoint.host, endpoint.port)
    };
    let request = async {
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let tls = connector
            .connect(endpoint.server_name.clone(), tcp)
            .await
            .context("TLS with the API server")?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .context("HTTP with the API server")?;
        tokio::spawn(conn);
        let mut req = hyper::Request::get(CONFIGMAP_PATH)
            .header("host", &addr)
            .header("accept", "application/json");
        if let Some(token) = &endpoint.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .context("building the request")?;
        let resp = sender
            .send_request(req)
            .await
            .context("asking the API server")?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .context("reading the answer")?
            .to_bytes();
        if !status.is_success() {
            bail!(
                "the API server answered {status} for {CONFIGMAP_PATH}: {} (is the identity bound to the Role extension-apiserver-authentication-reader in kube-system?)",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        ClusterAuth::from_configmap_json(&body)
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), request)
        .await
        .context("the API server did not answer within 10s")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_configmap_kube_apiserver_writes() {
        let body = br#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"extension-apiserver-authentication"},
            "data":{"client-ca-file":"-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n",
                    "requestheader-allowed-names":"[\"front-proxy-client\"]",
                    "requestheader-client-ca-file":"PEM",
                    "requestheader-extra-headers-prefix":"[\"X-Remote-Extra-\"]",
                    "requestheader-group-headers":"[\"X-Remote-Group\"]",
                    "requestheader-username-headers":"[\"X-Remote-User\"]"}}"#;
        let a = ClusterAuth::from_configmap_json(body).unwrap();
        assert_eq!(a.allowed_names, ["front-proxy-client"]);
        assert_eq!(a.requestheader_ca.as_deref(), Some("PEM"));
        assert!(a.client_ca.unwrap().starts_with("-----BEGIN"));
    }

    #[test]
    fn rejects_configmaps_without_cas_or_with_bad_names() {
        assert!(ClusterAuth::from_configmap_json(br#"{"data":{}}"#).is_err());
        assert!(ClusterAuth::from_configmap_json(
            br#"{"data":{"client-ca-file":"x","requestheader-allowed-names":"front-proxy-client"}}"#
        )
        .is_err());
        assert!(ClusterAuth::from_configmap_json(b"not json").is_err());
    }

    #[tokio::test]
    async fn outside_a_pod_the_error_says_so() {
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
            let e = fetch(None).await.unwrap_err();
            let text = format!("{e:#}");
            assert!(text.contains("not running in a Kubernetes pod"), "{text}");
            assert!(text.contains("--authentication-kubeconfig"), "{text}");
        }
    }

    use crate::server::pki::{Ca, Validity};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    const CONFIGMAP: &str = r#"{"kind":"ConfigMap","data":{"requestheader-client-ca-file":"RH","requestheader-allowed-names":"[\"front-proxy-client\"]"}}"#;

    /// A one-request API server on 127.0.0.1: HTTPS with a certificate of `ca` for 127.0.0.1,
    /// asking for (not requiring) a client certificate of `ca`. It answers the ConfigMap when
    /// the request carries `Bearer good` or a client certificate, 403 otherwise, and returns
    /// its port and what it saw (the request head, whether a client certificate came).
    async fn api_server(ca: &Ca) -> (u16, tokio::task::JoinHandle<(String, bool)>) {
        let validity = Validity::days_from(std::time::SystemTime::now(), 1).unwrap();
        let leaf = ca
            .issue_server("api", &["127.0.0.1".to_owned()], validity)
            .unwrap();
        let roots = crate::server::pki::roots("ca", ca.issued().cert_pem.as_bytes()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .allow_unauthenticated()
            .build()
            .unwrap();
        let config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![leaf.cert_der], leaf.key_der)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            let has_cert = tls.get_ref().1.peer_certificates().is_some();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = tls.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client closed before sending its request");
                head.extend_from_slice(&buf[..n]);
            }
            let head = String::from_utf8(head).unwrap();
            let ok = has_cert
                || head
                    .to_ascii_lowercase()
                    .contains("authorization: bearer good\r\n");
            let (status, body) = if ok {
                ("200 OK", CONFIGMAP)
            } else {
                ("403 Forbidden", r#"{"kind":"Status","code":403}"#)
            };
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            tls.write_all(answer.as_bytes()).await.unwrap();
            tls.shutdown().await.ok();
            (head, has_cert)
        });
        (port, task)
    }

    fn rustls_provider() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    #[tokio::test]
    async fn in_pod_reads_with_the_mounted_token_and_ca() {
        rustls_provider();
        let ca = Ca::new(
            "test CA",
            Validity::days_from(std::time::SystemTime::now(), 1).unwrap(),
        )
        .unwrap();
        let (port, server) = api_server(&ca).await;
        let dir = std::env::temp_dir().join(format!("fma-sa-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "good\n").unwrap();
        std::fs::write(dir.join("ca.crt"), &ca.issued().cert_pem).unwrap();
        let endpoint =
            pod_endpoint(Some("127.0.0.1".into()), Some(port.to_string()), &dir).unwrap();
        let auth = fetch_from(&endpoint).await.unwrap();
        assert_eq!(auth.requestheader_ca.as_deref(), Some("RH"));
        assert_eq!(auth.allowed_names, ["front-proxy-client"]);
        let (head, has_cert) = server.await.unwrap();
        assert!(
            head.starts_with(&format!("GET {CONFIGMAP_PATH} HTTP/1.1\r\n")),
            "{head}"
        );
        assert!(!has_cert);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn a_refused_token_names_the_role_to_bind() {
        rustls_provider();
        let ca = Ca::new(
            "test CA",
            Validity::days_from(std::time::SystemTime::now(), 1).unwrap(),
        )
        .unwrap();
        let (port, server) = api_server(&ca).await;
        let dir = std::env::temp_dir().join(format!("fma-sa-bad-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "bad").unwrap();
        std::fs::write(dir.join("ca.crt"), &ca.issued().cert_pem).unwrap();
        let endpoint =
            pod_endpoint(Some("127.0.0.1".into()), Some(port.to_string()), &dir).unwrap();
        let e = format!("{:#}", fetch_from(&endpoint).await.unwrap_err());
        assert!(e.contains("403"), "{e}");
        assert!(
            e.contains("extension-apiserver-authentication-reader"),
            "{e}"
        );
        server.await.unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn in_pod_errors_name_what_is_missing() {
        // Endpoint is not Debug (it holds a token), hence no unwrap_err.
        let error = |host: Option<&str>| match pod_endpoint(
            host.map(str::to_owned),
            None,
            Path::new("/nonexistent"),
        ) {
            Ok(_) => panic!("no error"),
            Err(e) => format!("{e:#}"),
        };
        let e = error(None);
        assert!(e.contains("KUBERNETES_SERVICE_HOST"), "{e}");
        let e = error(Some("10.0.0.1"));
        assert!(e.contains("/nonexistent") && e.contains("token"), "{e}");
    }

    #[tokio::test]
    async fn kubeconfig_with_a_client_certificate_and_inline_ca() {
        rustls_provider();
        let validity = Validity::days_from(std::time::SystemTime::now(), 1).unwrap();
        let ca = Ca::new("test CA", validity).unwrap();
        let admin = ca
            .issue_client("admin", &["system:masters"], validity)
            .unwrap();
        let (port, server) = api_server(&ca).await;
        let dir = std::env::temp_dir().join(format!("fma-kc-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("admin.crt"), &admin.cert_pem).unwrap();
        std::fs::write(dir.join("admin.key"), &admin.key_pem).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority-data: {}\nusers:\n- name: admin\n  user:\n    client-certificate: admin.crt\n    client-key: admin.key\ncontexts:\n- name: x\n  context: {{cluster: c, user: admin}}\ncurrent-context: x\n",
                crate::server::pki::base64(ca.issued().cert_pem.as_bytes())
            ),
        )
        .unwrap();
        let auth = fetch(Some(&kubeconfig)).await.unwrap();
        assert_eq!(auth.allowed_names, ["front-proxy-client"]);
        let (head, has_cert) = server.await.unwrap();
        assert!(has_cert);
        assert!(
            !head.to_ascii_lowercase().contains("authorization:"),
            "{head}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}

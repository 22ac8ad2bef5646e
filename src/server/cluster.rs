//! Reading the `kube-system/extension-apiserver-authentication` ConfigMap from inside a pod, as
//! Kubernetes' own aggregated API servers do, to learn which CAs and names to trust.
//!
//! One GET with the pod's service account token over TLS verified with the pod's cluster CA; no
//! Kubernetes client library (kube-rs would double the build for one request).

use std::path::Path;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use rustls::pki_types::ServerName;
use serde::Deserialize;

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

/// Fetches the ConfigMap with the pod's service account.
///
/// # Errors
/// Not in a pod (no `KUBERNETES_SERVICE_HOST` or service account files), an unreachable API
/// server, a refusal (RBAC: the `extension-apiserver-authentication-reader` RoleBinding is
/// missing), or an unusable answer.
pub async fn fetch() -> anyhow::Result<ClusterAuth> {
    let host = std::env::var("KUBERNETES_SERVICE_HOST")
        .context("--authentication-from-cluster: KUBERNETES_SERVICE_HOST is unset: not running in a Kubernetes pod")?;
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
    let dir = Path::new(SERVICE_ACCOUNT);
    let token = std::fs::read_to_string(dir.join("token"))
        .with_context(|| format!("reading the service account token in {SERVICE_ACCOUNT}"))?;
    let ca = std::fs::read(dir.join("ca.crt"))
        .with_context(|| format!("reading {SERVICE_ACCOUNT}/ca.crt"))?;
    get(&host, &port, token.trim(), &ca).await
}

async fn get(host: &str, port: &str, token: &str, ca_pem: &[u8]) -> anyhow::Result<ClusterAuth> {
    let roots = crate::server::pki::roots("the cluster CA", ca_pem)?;
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(bare.to_owned()).context("the API server host name")?;
    let addr = if bare.contains(':') {
        format!("[{bare}]:{port}")
    } else {
        format!("{bare}:{port}")
    };
    let request = async {
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let tls = connector
            .connect(server_name, tcp)
            .await
            .context("TLS with the API server")?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .context("HTTP with the API server")?;
        tokio::spawn(conn);
        let req = hyper::Request::get(CONFIGMAP_PATH)
            .header("host", &addr)
            .header("authorization", format!("Bearer {token}"))
            .header("accept", "application/json")
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
                "the API server answered {status} for {CONFIGMAP_PATH}: {} (does the service account have the extension-apiserver-authentication-reader RoleBinding?)",
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
            let e = fetch().await.unwrap_err();
            assert!(
                format!("{e:#}").contains("not running in a Kubernetes pod"),
                "{e:#}"
            );
        }
    }
}

//! `manifests`: the Kubernetes objects that register the server, printed for
//! `kubectl apply -f -`: the Service in front of the server, the three APIServices, the RBAC and
//! an example HPA (commented out).
//!
//! The YAML lives in the template files beside this one (`service.yaml`, `apiservice.yaml`,
//! `rbac.yaml`, `hpa-object.yaml`), filled in by [`template`] from names checked to be
//! Kubernetes names (so nothing needs quoting), never from a clock or a hash map: the same flags
//! always print the same bytes, which is what lets `manifests/` be compared with the output.

pub mod template;

use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, bail};

use super::{
    DEFAULT_PORT, DEFAULT_SERVICE_ACCOUNT, ManifestsArgs, check_name, print_stdout, shell_word,
};
use crate::server::pki;
use crate::util::dns;
use template::Values;

/// The manifest files, in the order `manifests` prints them; the last is printed commented out.
pub const FILES: [(&str, &str); 4] = [
    ("service.yaml", include_str!("service.yaml")),
    ("apiservice.yaml", include_str!("apiservice.yaml")),
    ("rbac.yaml", include_str!("rbac.yaml")),
    ("hpa-object.yaml", include_str!("hpa-object.yaml")),
];

/// Port of the Service, and so of every APIService's `service.port` (but with an ExternalName,
/// which maps no ports).
pub const SERVICE_PORT: u16 = 443;

/// How kube-apiserver is to trust the server's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Verify it against this CA bundle (PEM); `source` names where it came from.
    CaBundle {
        /// The file the bundle was read from, for the comments.
        source: String,
        /// The CA certificates, as PEM.
        pem: String,
    },
    /// Do not verify it (`insecureSkipTLSVerify: true`).
    Insecure,
}

/// Where the Service sends kube-apiserver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The MiniCluster's leader broker pod, by label selector.
    LeaderPod,
    /// A server at this address, through Endpoints (e.g. on the host of a kind cluster).
    Endpoint(IpAddr),
    /// A server at this host name, through an ExternalName Service (e.g. `localhost` for a
    /// server beside kube-apiserver, as the end-to-end test runs it).
    ExternalName(String),
}

/// Everything the manifests depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Namespace of the Service (and of the MiniCluster).
    pub namespace: String,
    /// Name of the Service.
    pub service: String,
    /// Name of the MiniCluster whose leader broker pod runs the server.
    pub minicluster: String,
    /// Service account of the MiniCluster's pods.
    pub service_account: String,
    /// Port the server listens on.
    pub port: u16,
    /// Whether and how kube-apiserver verifies the server.
    pub trust: Trust,
    /// Where the server is.
    pub target: Target,
}

impl Spec {
    /// The `manifests` flags that print this spec (`--ca-file` shown as its source).
    pub fn flags(&self) -> String {
        let mut f = format!(
            "--namespace {} --service-name {} --minicluster {}",
            self.namespace, self.service, self.minicluster
        );
        if self.service_account != DEFAULT_SERVICE_ACCOUNT {
            f.push_str(&format!(" --service-account {}", self.service_account));
        }
        if self.port != DEFAULT_PORT {
            f.push_str(&format!(" --port {}", self.port));
        }
        match &self.target {
            Target::LeaderPod => {}
            Target::Endpoint(ip) => f.push_str(&format!(" --endpoint {ip}")),
            Target::ExternalName(host) => f.push_str(&format!(" --external-name {host}")),
        }
        match &self.trust {
            Trust::CaBundle { source, .. } => {
                f.push_str(&format!(" --ca-file {}", shell_word(source)));
            }
            Trust::Insecure => f.push_str(" --insecure-skip-tls-verify"),
        }
        f
    }

    /// The values every template is rendered with.
    fn values(&self) -> Values {
        let (endpoint, external_name) = match &self.target {
            Target::LeaderPod => (String::new(), String::new()),
            Target::Endpoint(ip) => (ip.to_string(), String::new()),
            Target::ExternalName(host) => (String::new(), host.clone()),
        };
        let where_ = match &self.target {
            Target::LeaderPod => format!(
                "in the leader broker pod of MiniCluster {}",
                self.minicluster
            ),
            Target::Endpoint(ip) => format!("at {}", std::net::SocketAddr::new(*ip, self.port)),
            Target::ExternalName(host) => format!("at {host}:{}", self.port),
        };
        // An ExternalName Service maps no ports: kube-apiserver dials the APIService's port.
        let service_port = match self.target {
            Target::ExternalName(_) => self.port,
            _ => SERVICE_PORT,
        };
        let (ca_source, ca_bundle) = match &self.trust {
            Trust::CaBundle { source, pem } => (shell_word(source), pki::base64(pem.as_bytes())),
            Trust::Insecure => (String::new(), String::new()),
        };
        let yes = |b: bool| if b { "yes" } else { "" }.to_owned();
        Values::from([
            ("namespace", self.namespace.clone()),
            ("service", self.service.clone()),
            (
                "service_host",
                pki::service_host(&self.namespace, &self.service),
            ),
            ("minicluster", self.minicluster.clone()),
            ("service_account", self.service_account.clone()),
            (
                "own_service_account",
                yes(self.service_account != DEFAULT_SERVICE_ACCOUNT),
            ),
            ("port", self.port.to_string()),
            ("service_port", service_port.to_string()),
            ("flags", self.flags()),
            ("where", where_),
            ("selector", yes(self.target == Target::LeaderPod)),
            ("endpoint", endpoint),
            ("external_name", external_name),
            ("ca_source", ca_source),
            ("ca_bundle", ca_bundle),
        ])
    }
}

impl TryFrom<&ManifestsArgs> for Spec {
    type Error = anyhow::Error;

    fn try_from(a: &ManifestsArgs) -> anyhow::Result<Spec> {
        check_name("--namespace", &a.namespace, dns::label)?;
        check_name("--service-name", &a.service_name, dns::label_1035)?;
        check_name("--minicluster", &a.minicluster, dns::label)?;
        check_name("--service-account", &a.service_account, dns::subdomain)?;
        let trust = match (&a.ca_file, a.insecure_skip_tls_verify) {
            (Some(path), false) => Trust::CaBundle {
                source: path.display().to_string(),
                pem: read_ca_bundle(path)?,
            },
            (None, true) => Trust::Insecure,
            (Some(_), true) => {
                bail!("--ca-file and --insecure-skip-tls-verify exclude each other: choose one")
            }
            (None, false) => bail!(
                "say how kube-apiserver should trust the server's certificate:\n  \
                 --ca-file DIR/ca.crt            verify it against the CA that signed it (from \
                 `flux-metrics-api certs --out DIR`), set as the APIServices' caBundle\n  \
                 --insecure-skip-tls-verify      do not verify it (anything that takes over the \
                 Service's endpoints can then feed the HPA)"
            ),
        };
        let target = match (a.endpoint, &a.external_name) {
            (Some(ip), _) => {
                let unusable = ip.is_loopback()
                    || ip.is_unspecified()
                    || ip.is_multicast()
                    || match ip {
                        IpAddr::V4(v4) => v4.is_link_local(),
                        IpAddr::V6(v6) => v6.is_unicast_link_local(),
                    };
                if unusable {
                    bail!(
                        "--endpoint {ip}: Kubernetes refuses loopback, link-local, multicast and \
                         unspecified addresses in Endpoints; give an address of the host that the \
                         cluster's nodes can reach (for kind: the gateway of the `kind` docker \
                         network), or --external-name localhost for a server beside kube-apiserver"
                    );
                }
                Target::Endpoint(ip)
            }
            (None, Some(host)) => {
                check_name("--external-name", host, dns::subdomain)?;
                Target::ExternalName(host.clone())
            }
            (None, None) => Target::LeaderPod,
        };
        Ok(Spec {
            namespace: a.namespace.clone(),
            service: a.service_name.clone(),
            minicluster: a.minicluster.clone(),
            service_account: a.service_account.clone(),
            port: a.port,
            trust,
            target,
        })
    }
}

/// Reads the CA certificates of `--ca-file`, as clean PEM.
fn read_ca_bundle(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("--ca-file {}: cannot read", path.display()))?;
    pki::clean_ca_bundle(&bytes).map_err(|e| match e {
        pki::CaBundleError::PrivateKey => anyhow::anyhow!(
            "--ca-file {} holds a private key: give the CA certificate (ca.crt), which is \
             public, not a key",
            path.display()
        ),
        pki::CaBundleError::NoCertificate => anyhow::anyhow!(
            "--ca-file {} holds no PEM CERTIFICATE block: give the ca.crt that \
             `flux-metrics-api certs` wrote",
            path.display()
        ),
        e @ pki::CaBundleError::NotPem(_) => anyhow::anyhow!("--ca-file {}: {e}", path.display()),
    })
}

/// The manifest files for `spec`, named as in [`FILES`] and in that order.
pub fn render(spec: &Spec) -> Vec<(&'static str, String)> {
    let values = spec.values();
    FILES
        .iter()
        .map(|(name, text)| (*name, template::render(text, &values)))
        .collect()
}

/// `text` with every line commented out: `# ` before each line, `#` alone for an empty one.
pub fn comment_out(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "#\n".to_owned()
            } else {
                format!("# {l}\n")
            }
        })
        .collect()
}

/// What `manifests` prints for `spec`: every file of [`render`] in order, the last one (the
/// example HPA) commented out.
pub fn output(spec: &Spec) -> String {
    let files = render(spec);
    let last = files.len() - 1;
    files
        .iter()
        .enumerate()
        .map(|(i, (_, text))| {
            if i == last {
                comment_out(text)
            } else {
                text.clone()
            }
        })
        .collect()
}

/// Runs `manifests`: prints the YAML.
///
/// # Errors
/// Invalid names, no choice of trust, an unreadable or unsuitable `--ca-file`.
pub fn run(args: &ManifestsArgs) -> anyhow::Result<()> {
    let spec = Spec::try_from(args)?;
    print_stdout(&output(&spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(trust: Trust) -> Spec {
        Spec {
            namespace: "flux-operator".into(),
            service: "custom-metrics-apiserver".into(),
            minicluster: "flux-sample".into(),
            service_account: "default".into(),
            port: 8443,
            trust,
            target: Target::LeaderPod,
        }
    }

    fn ca_pem() -> String {
        let v = pki::Validity::days_from(std::time::SystemTime::now(), 1).unwrap();
        pki::Ca::new("test", v).unwrap().issued().cert_pem.clone()
    }

    #[test]
    fn insecure_sets_insecure_skip_tls_verify_only() {
        let out = output(&spec(Trust::Insecure));
        assert_eq!(out.matches("insecureSkipTLSVerify: true").count(), 3);
        assert!(!out.contains("caBundle:"));
        assert!(out.contains("--insecure-skip-tls-verify"));
    }

    #[test]
    fn ca_bundle_is_base64_of_the_pem() {
        let pem = ca_pem();
        let out = output(&spec(Trust::CaBundle {
            source: "certs/ca.crt".into(),
            pem: pem.clone(),
        }));
        let line = format!("  caBundle: {}\n", pki::base64(pem.as_bytes()));
        assert_eq!(out.matches(&line).count(), 3);
        assert!(!out.contains("insecureSkipTLSVerify"));
        assert!(out.contains("--ca-file certs/ca.crt"));
        assert!(out.contains("# caBundle: the CA of certs/ca.crt,"));
    }

    #[test]
    fn output_is_the_files_with_the_example_commented_out() {
        let s = spec(Trust::Insecure);
        let files = render(&s);
        let out = output(&s);
        let (head, tail) = out.split_at(files[..3].iter().map(|(_, t)| t.len()).sum());
        assert_eq!(
            head,
            files[..3]
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<String>()
        );
        assert!(tail.lines().all(|l| l.starts_with('#')), "{tail}");
        assert!(tail.contains("# kind: HorizontalPodAutoscaler\n"));
        assert_eq!(output(&s), out, "deterministic");
        assert!(!out.contains("{{"), "{out}");
    }

    #[test]
    fn endpoint_replaces_the_selector() {
        let mut s = spec(Trust::Insecure);
        s.target = Target::Endpoint("172.18.0.1".parse().unwrap());
        let out = output(&s);
        assert!(!out.contains("  selector:"), "{out}");
        assert!(out.contains("kind: Endpoints\n"));
        assert!(out.contains("      - ip: \"172.18.0.1\"\n"));
        assert!(out.contains("server at 172.18.0.1:8443,"));
        assert!(out.contains("--endpoint 172.18.0.1"));
        s.target = Target::Endpoint("fd00::1".parse().unwrap());
        assert!(output(&s).contains("server at [fd00::1]:8443,"));
    }

    #[test]
    fn external_name_is_dialled_on_the_servers_own_port() {
        let mut s = spec(Trust::Insecure);
        s.target = Target::ExternalName("localhost".into());
        s.port = 18443;
        let out = output(&s);
        assert!(
            out.contains("  type: ExternalName\n  externalName: localhost\n"),
            "{out}"
        );
        assert!(!out.contains("  selector:") && !out.contains("kind: Endpoints"));
        assert_eq!(out.matches("    port: 18443\n").count(), 4, "{out}");
        assert!(out.contains("--port 18443 --external-name localhost"));
    }

    #[test]
    fn service_account_other_than_default_is_created() {
        let mut s = spec(Trust::Insecure);
        s.service_account = "flux-metrics".into();
        let out = output(&s);
        assert!(out.contains("kind: ServiceAccount\nmetadata:\n  name: flux-metrics\n"));
        assert!(out.contains("--service-account flux-metrics"));
        assert_eq!(out.matches("    name: flux-metrics\n").count(), 2);
        let default = output(&spec(Trust::Insecure));
        assert!(!default.contains("apiVersion: v1\nkind: ServiceAccount\n"));
    }
}

//! `certs` and `manifests`: what registering the server with Kubernetes needs, generated.
//!
//! - `certs` writes a CA and a serving certificate for the Service in front of the server.
//! - `manifests` prints the Service that selects the leader broker pod of a MiniCluster, the three
//!   APIServices, the RBAC and an example HPA, ready for `kubectl apply -f -`.
//!
//! The YAML is written as text from names checked to be DNS labels (so nothing needs quoting),
//! never from a clock or a hash map: the same flags always print the same bytes, which is what
//! lets `manifests/` be compared with the output in `tests/deploy.rs`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::cli::{CertsArgs, ManifestsArgs};

/// The files `certs` writes, in the order it writes them.
pub const CERT_FILES: [&str; 4] = ["ca.crt", "ca.key", "tls.crt", "tls.key"];

/// Common name of the CA that `certs` makes.
pub const CA_COMMON_NAME: &str = "flux-metrics-api CA";

/// The manifest files in the order `manifests` prints them; the last is printed commented out.
pub const MANIFEST_FILES: [&str; 4] = [
    "service.yaml",
    "apiservice.yaml",
    "rbac.yaml",
    "hpa-object.yaml",
];

/// Port of the Service, and of every APIService's `service.port`.
pub const SERVICE_PORT: u16 = 443;

/// A CA and a serving certificate it signed, as PEM text.
pub struct Certificates {
    /// The CA certificate.
    pub ca_cert: String,
    /// The CA private key.
    pub ca_key: String,
    /// The serving certificate (the leaf alone: clients are given the CA).
    pub cert: String,
    /// The serving private key.
    pub key: String,
    /// The names the serving certificate is valid for.
    pub names: Vec<String>,
    /// When both certificates stop being valid, in seconds since the Unix epoch.
    pub not_after: u64,
}

/// The names a serving certificate for Service `service` in `namespace` must carry: every form
/// of the Service's DNS name (kube-apiserver checks `<service>.<namespace>.svc`), plus the
/// loopback names, so the same files also work for a client on the pod or host itself.
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

/// Generates a CA and a serving certificate for Service `service` in `namespace`, both valid from
/// an hour before `now` (tolerating clock skew) to `days` days after it.
///
/// Keys are ECDSA P-256. The CA has basicConstraints CA and keyUsage keyCertSign + cRLSign; the
/// serving certificate has basicConstraints CA:FALSE, keyUsage digitalSignature (the only usage
/// RFC 5480 lets an ECDSA end entity have for TLS), extKeyUsage serverAuth, and the CA's key
/// identifier, which is what Go, rustls and OpenSSL clients check.
///
/// # Errors
/// A clock before 1970, a validity that overflows, or a name rcgen refuses.
pub fn generate_certificates(
    namespace: &str,
    service: &str,
    days: u32,
    now: SystemTime,
) -> anyhow::Result<Certificates> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let now = now
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    let not_before = now.saturating_sub(3600);
    let not_after = now
        .checked_add(u64::from(days) * 86_400)
        .context("--days is too large")?;
    // rcgen takes `time::OffsetDateTime`; the Unix epoch plus a std Duration builds one without
    // naming the `time` crate.
    let at = |secs: u64| rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(secs);

    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    ca.distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = (at(not_before), at(not_after));
    let ca_cert = ca.self_signed(&ca_key).context("signing the CA")?;

    let names = serving_names(namespace, service);
    let key = KeyPair::generate().context("generating the serving key")?;
    let mut leaf = CertificateParams::new(names.clone())
        .with_context(|| format!("certificate names {names:?}"))?;
    leaf.distinguished_name
        .push(DnType::CommonName, format!("{service}.{namespace}.svc"));
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    (leaf.not_before, leaf.not_after) = (at(not_before), at(not_after));
    let leaf_cert = leaf
        .signed_by(&key, &ca_cert, &ca_key)
        .context("signing the serving certificate")?;

    Ok(Certificates {
        ca_cert: ca_cert.pem(),
        ca_key: ca_key.serialize_pem(),
        cert: leaf_cert.pem(),
        key: key.serialize_pem(),
        names,
        not_after,
    })
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(
            || format!("{secs} s after 1970"),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
}

/// Runs `certs`: generates the certificates and writes them to `--out`.
///
/// # Errors
/// Invalid names, files already present (without `--force`), an unwritable directory.
pub fn certs(args: &CertsArgs) -> anyhow::Result<()> {
    check_label("--namespace", &args.namespace, false)?;
    check_label("--service-name", &args.service_name, true)?;
    let generated = generate_certificates(
        &args.namespace,
        &args.service_name,
        args.days,
        SystemTime::now(),
    )?;
    let dir = &args.out;
    write_files(
        dir,
        &[
            (CERT_FILES[0], &generated.ca_cert, 0o644),
            (CERT_FILES[1], &generated.ca_key, 0o600),
            (CERT_FILES[2], &generated.cert, 0o644),
            (CERT_FILES[3], &generated.key, 0o600),
        ],
        args.force,
    )?;

    let (ns, svc) = (&args.namespace, &args.service_name);
    let file = |name: &str| shell_word(&dir.join(name).display().to_string());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wrote {}  CA certificate: the APIService caBundle (`manifests --ca-file`)",
        file("ca.crt")
    );
    let _ = writeln!(
        out,
        "wrote {}  CA private key: keep it out of the cluster; no command here needs it again",
        file("ca.key")
    );
    let _ = writeln!(
        out,
        "wrote {}  serving certificate for {}",
        file("tls.crt"),
        generated.names.join(", ")
    );
    let _ = writeln!(out, "wrote {}  serving private key", file("tls.key"));
    let _ = writeln!(
        out,
        "both expire {} ({} days); run `certs --force` again before then and re-apply the manifests",
        utc(generated.not_after),
        args.days
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Store the serving certificate where the MiniCluster mounts it:"
    );
    let _ = writeln!(
        out,
        "  kubectl create secret tls {svc}-tls --namespace {ns} --cert {} --key {}",
        file("tls.crt"),
        file("tls.key")
    );
    let _ = writeln!(out, "Register the server, verified by this CA:");
    let _ = writeln!(
        out,
        "  flux-metrics-api manifests --namespace {ns} --service-name {svc} --ca-file {} | kubectl apply -f -",
        file("ca.crt")
    );
    print_stdout(&out)
}

/// Writes `files` (name, content, mode) into `dir`, creating it; each file is written to a
/// temporary name and renamed, so a reader never sees half a key. Refuses to replace any
/// existing file unless `force`, before writing anything.
fn write_files(dir: &Path, files: &[(&str, &str, u32)], force: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--out {}: cannot create the directory", dir.display()))?;
    if !force {
        let present: Vec<&str> = files
            .iter()
            .map(|(name, ..)| *name)
            .filter(|name| dir.join(name).symlink_metadata().is_ok())
            .collect();
        if !present.is_empty() {
            bail!(
                "--out {} already holds {}: pass --force to replace them (a new CA no longer \
                 matches the caBundle of APIServices made from the old one, so re-apply the \
                 manifests too)",
                dir.display(),
                present.join(", ")
            );
        }
    }
    for (name, content, mode) in files {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = (|| -> std::io::Result<()> {
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(*mode)
                .open(&tmp)?;
            f.write_all(content.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("writing {}", path.display()));
        }
    }
    Ok(())
}

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
    /// Port the server listens on in the pod.
    pub port: u16,
    /// Whether and how kube-apiserver verifies the server.
    pub trust: Trust,
    /// A server outside the cluster, reached through Endpoints instead of the pod selector.
    pub endpoint: Option<IpAddr>,
}

/// Default of `--minicluster`.
pub const DEFAULT_MINICLUSTER: &str = "flux-sample";
/// Default of `--service-account`.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// Default of `--port`.
pub const DEFAULT_PORT: u16 = 8443;

impl Spec {
    /// The `manifests` flags that print this spec (`--ca-file` shown as its source).
    pub fn flags(&self) -> String {
        let mut f = format!(
            "--namespace {} --service-name {} --minicluster {}",
            self.namespace, self.service, self.minicluster
        );
        if self.service_account != DEFAULT_SERVICE_ACCOUNT {
            let _ = write!(f, " --service-account {}", self.service_account);
        }
        if self.port != DEFAULT_PORT {
            let _ = write!(f, " --port {}", self.port);
        }
        if let Some(ip) = self.endpoint {
            let _ = write!(f, " --endpoint {ip}");
        }
        match &self.trust {
            Trust::CaBundle { source, .. } => {
                let _ = write!(f, " --ca-file {}", shell_word(source));
            }
            Trust::Insecure => f.push_str(" --insecure-skip-tls-verify"),
        }
        f
    }
}

impl TryFrom<&ManifestsArgs> for Spec {
    type Error = anyhow::Error;

    fn try_from(a: &ManifestsArgs) -> anyhow::Result<Spec> {
        check_label("--namespace", &a.namespace, false)?;
        check_label("--service-name", &a.service_name, true)?;
        check_label("--minicluster", &a.minicluster, false)?;
        check_subdomain("--service-account", &a.service_account)?;
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
        if let Some(ip) = a.endpoint {
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
                     cluster's nodes can reach (for kind: the gateway of the `kind` docker network)"
                );
            }
        }
        Ok(Spec {
            namespace: a.namespace.clone(),
            service: a.service_name.clone(),
            minicluster: a.minicluster.clone(),
            service_account: a.service_account.clone(),
            port: a.port,
            trust,
            endpoint: a.endpoint,
        })
    }
}

/// Reads the CA certificates of `path` and re-encodes them as clean PEM (nothing but the
/// CERTIFICATE blocks), refusing a file with none, or one holding a private key.
fn read_ca_bundle(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("--ca-file {}: cannot read", path.display()))?;
    let mut pem = String::new();
    for item in rustls_pemfile::read_all(&mut bytes.as_slice()) {
        match item.with_context(|| format!("--ca-file {}: not valid PEM", path.display()))? {
            rustls_pemfile::Item::X509Certificate(der) => pem.push_str(&pem_block(&der)),
            rustls_pemfile::Item::Pkcs1Key(_)
            | rustls_pemfile::Item::Pkcs8Key(_)
            | rustls_pemfile::Item::Sec1Key(_) => bail!(
                "--ca-file {} holds a private key: give the CA certificate (ca.crt), which is \
                 public, not a key",
                path.display()
            ),
            _ => {}
        }
    }
    if pem.is_empty() {
        bail!(
            "--ca-file {} holds no PEM CERTIFICATE block: give the ca.crt that \
             `flux-metrics-api certs` wrote",
            path.display()
        );
    }
    Ok(pem)
}

/// One PEM CERTIFICATE block, lines of 64 characters.
fn pem_block(der: &[u8]) -> String {
    let b64 = base64(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Standard base64 with padding (RFC 4648 §4), as Kubernetes expects for `[]byte` fields.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Checks that `value` is a DNS-1123 label (or, with `letter_first`, a DNS-1035 label, as
/// Service names must be): what Kubernetes accepts for these names, and what needs no quoting
/// in YAML.
fn check_label(flag: &str, value: &str, letter_first: bool) -> anyhow::Result<()> {
    let b = value.as_bytes();
    let ok = (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && (b[0].is_ascii_lowercase() || (!letter_first && b[0].is_ascii_digit()))
        && b[b.len() - 1] != b'-';
    if !ok {
        bail!(
            "{flag} {value:?} is not a valid name: use 1 to 63 lower-case letters, digits and \
             '-', starting with a {} and ending with a letter or digit",
            if letter_first {
                "letter"
            } else {
                "letter or digit"
            }
        );
    }
    Ok(())
}

/// Checks that `value` is a DNS-1123 subdomain (dot-separated labels, at most 253 characters).
fn check_subdomain(flag: &str, value: &str) -> anyhow::Result<()> {
    if value.len() > 253
        || value
            .split('.')
            .any(|label| check_label(flag, label, false).is_err())
    {
        bail!(
            "{flag} {value:?} is not a valid name: use lower-case letters, digits, '-' and '.', \
             at most 253 characters"
        );
    }
    Ok(())
}

/// `s` as one shell word: as is when it holds only safe characters, else single-quoted (control
/// characters shown as `?`, so a comment line can never be broken by a file name).
fn shell_word(s: &str) -> String {
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

/// The `app.kubernetes.io` labels every object carries, at `indent` spaces.
fn labels(spec: &Spec, indent: usize) -> String {
    let pad = " ".repeat(indent);
    format!(
        "{pad}labels:\n{pad}  app.kubernetes.io/name: flux-metrics-api\n\
         {pad}  app.kubernetes.io/instance: {}\n",
        spec.service
    )
}

/// `service.yaml`: a header for the whole set, then the Service (and, with an endpoint, the
/// Endpoints that stand for the pod selector).
fn service_yaml(spec: &Spec) -> String {
    let Spec {
        namespace: ns,
        service: svc,
        minicluster: mc,
        port,
        ..
    } = spec;
    let labels = labels(spec, 2);
    let mut out = format!(
        "# flux-metrics-api as the Kubernetes custom and external metrics APIs: the Service in front of the\n\
         # server {where}, the APIServices that send both APIs to it,\n\
         # the RBAC it and the HPA controller need, and an example HPA (commented out). Generated by\n\
         #   flux-metrics-api manifests {flags}\n\
         # Apply with `kubectl apply -f -`; remove with `kubectl delete -f -`.\n\
         ---\n",
        where = match spec.endpoint {
            None => format!("in the leader broker pod of MiniCluster {mc}"),
            Some(ip) => format!("at {}", std::net::SocketAddr::new(ip, *port)),
        },
        flags = spec.flags(),
    );
    let selector = match spec.endpoint {
        None => {
            out.push_str(&format!(
                "# Selects only the leader broker pod of the MiniCluster (index 0 of its Indexed Job, hostname\n\
                 # {mc}-0), where the Flux Operator runs `commands.brokerPre` and so `flux-metrics-api start`:\n\
                 # - job-name: set by the Job controller on every pod of Job {mc}, which the Flux Operator\n\
                 #   names after the MiniCluster (its {mc}-services pod has it too, but no completion index);\n\
                 # - batch.kubernetes.io/job-completion-index: set by the Job controller on each pod of an Indexed\n\
                 #   Job as it is created (Kubernetes 1.28 or later).\n\
                 # On an older cluster use `job-index: \"0\"` instead, which the Flux Operator adds to each pod\n\
                 # shortly after it starts.\n"
            ));
            format!(
                "\x20 selector:\n\
                 \x20   job-name: {mc}\n\
                 \x20   batch.kubernetes.io/job-completion-index: \"0\"\n"
            )
        }
        Some(_) => {
            out.push_str(
                "# No selector: the Endpoints below say where the server is. Kubernetes mirrors them into the\n\
                 # EndpointSlice that kube-apiserver reads.\n",
            );
            String::new()
        }
    };
    let _ = write!(
        out,
        "apiVersion: v1\n\
         kind: Service\n\
         metadata:\n\
         \x20 name: {svc}\n\
         \x20 namespace: {ns}\n\
         {labels}\
         spec:\n\
         \x20 type: ClusterIP\n\
         {selector}\
         \x20 ports:\n\
         \x20   - name: https\n\
         \x20     protocol: TCP\n\
         \x20     port: {SERVICE_PORT}\n\
         \x20     targetPort: {port}\n"
    );
    if let Some(ip) = spec.endpoint {
        let _ = write!(
            out,
            "---\n\
             apiVersion: v1\n\
             kind: Endpoints\n\
             metadata:\n\
             \x20 name: {svc}\n\
             \x20 namespace: {ns}\n\
             {labels}\
             subsets:\n\
             \x20 - addresses:\n\
             \x20     - ip: \"{ip}\"\n\
             \x20   ports:\n\
             \x20     - name: https\n\
             \x20       protocol: TCP\n\
             \x20       port: {port}\n"
        );
    }
    out
}

/// `apiservice.yaml`: the three APIServices.
fn apiservice_yaml(spec: &Spec) -> String {
    let (ns, svc) = (&spec.namespace, &spec.service);
    let mut out = String::from(
        "# The three API versions kube-apiserver hands to the Service. In custom.metrics.k8s.io, v1beta2\n\
         # has the higher versionPriority, so the HPA controller speaks v1beta2; v1beta1 is there for\n\
         # older clients.\n",
    );
    let trust = match &spec.trust {
        Trust::Insecure => {
            out.push_str(
                "#\n\
                 # insecureSkipTLSVerify: kube-apiserver does not verify the server's certificate, so whatever\n\
                 # takes over the Service's endpoints can feed the HPA. For a verified connection, make a CA\n\
                 # and a serving certificate with `flux-metrics-api certs --out DIR` and generate these\n\
                 # objects with `flux-metrics-api manifests --ca-file DIR/ca.crt`, which sets caBundle instead.\n",
            );
            "  insecureSkipTLSVerify: true\n".to_owned()
        }
        Trust::CaBundle { source, pem } => {
            let _ = write!(
                out,
                "#\n\
                 # caBundle: the CA of {}, against which kube-apiserver verifies the server's certificate;\n\
                 # that certificate must name {svc}.{ns}.svc (those of `flux-metrics-api certs` do).\n",
                shell_word(source)
            );
            format!("  caBundle: {}\n", base64(pem.as_bytes()))
        }
    };
    for (group, version, priority) in [
        ("custom.metrics.k8s.io", "v1beta2", 200),
        ("custom.metrics.k8s.io", "v1beta1", 100),
        ("external.metrics.k8s.io", "v1beta1", 100),
    ] {
        let _ = write!(
            out,
            "---\n\
             apiVersion: apiregistration.k8s.io/v1\n\
             kind: APIService\n\
             metadata:\n\
             \x20 name: {version}.{group}\n\
             {labels}\
             spec:\n\
             \x20 group: {group}\n\
             \x20 version: {version}\n\
             \x20 groupPriorityMinimum: 100\n\
             \x20 versionPriority: {priority}\n\
             \x20 service:\n\
             \x20   name: {svc}\n\
             \x20   namespace: {ns}\n\
             \x20   port: {SERVICE_PORT}\n\
             {trust}",
            labels = labels(spec, 2),
        );
    }
    out
}

/// `rbac.yaml`: the server's bindings and the HPA controller's read access.
fn rbac_yaml(spec: &Spec) -> String {
    let (ns, svc, sa) = (&spec.namespace, &spec.service, &spec.service_account);
    let mut out = format!(
        "# RBAC of the server and of the HPA controller. The server's identity is the service account\n\
         # of the MiniCluster's pods: {sa} in namespace {ns} (a MiniCluster's pods run as `default`\n\
         # unless it sets spec.pod.serviceAccountName).\n"
    );
    if sa == DEFAULT_SERVICE_ACCOUNT {
        let _ = write!(
            out,
            "# Every pod of namespace {ns} that runs as `default` gets these rights too: give the\n\
             # MiniCluster a service account of its own (`flux-metrics-api manifests --service-account\n\
             # NAME`, and spec.pod.serviceAccountName: NAME in the MiniCluster) to keep them to the server.\n"
        );
    } else {
        let _ = write!(
            out,
            "---\n\
             # The MiniCluster's own service account: set spec.pod.serviceAccountName: {sa} in it.\n\
             apiVersion: v1\n\
             kind: ServiceAccount\n\
             metadata:\n\
             \x20 name: {sa}\n\
             \x20 namespace: {ns}\n\
             {labels}",
            labels = labels(spec, 2),
        );
    }
    let subject = format!(
        "subjects:\n\
         \x20 - kind: ServiceAccount\n\
         \x20   name: {sa}\n\
         \x20   namespace: {ns}\n"
    );
    let _ = write!(
        out,
        "---\n\
         # Delegated authentication and authorization: lets the server create TokenReviews and\n\
         # SubjectAccessReviews, as every aggregated API server may.\n\
         apiVersion: rbac.authorization.k8s.io/v1\n\
         kind: ClusterRoleBinding\n\
         metadata:\n\
         \x20 name: {svc}:system:auth-delegator\n\
         {labels}\
         roleRef:\n\
         \x20 apiGroup: rbac.authorization.k8s.io\n\
         \x20 kind: ClusterRole\n\
         \x20 name: system:auth-delegator\n\
         {subject}\
         ---\n\
         # Lets the server read kube-system/extension-apiserver-authentication, where kube-apiserver\n\
         # publishes the CA of the client certificate it presents and the names it may carry\n\
         # (`flux-metrics-api start --authentication-from-cluster`; the MiniCluster's pods must then\n\
         # mount their token: spec.pod.automountServiceAccountToken: true).\n\
         apiVersion: rbac.authorization.k8s.io/v1\n\
         kind: RoleBinding\n\
         metadata:\n\
         \x20 name: {svc}:auth-reader\n\
         \x20 namespace: kube-system\n\
         {labels}\
         roleRef:\n\
         \x20 apiGroup: rbac.authorization.k8s.io\n\
         \x20 kind: Role\n\
         \x20 name: extension-apiserver-authentication-reader\n\
         {subject}\
         ---\n\
         # Reading both metrics APIs. Bound below to the HPA controller, whose built-in role\n\
         # (system:controller:horizontal-pod-autoscaler) already allows it on most clusters; bind it\n\
         # also to the people who should read the metrics with `kubectl get --raw`.\n\
         apiVersion: rbac.authorization.k8s.io/v1\n\
         kind: ClusterRole\n\
         metadata:\n\
         \x20 name: {svc}:metrics-reader\n\
         {labels}\
         rules:\n\
         \x20 - apiGroups:\n\
         \x20     - custom.metrics.k8s.io\n\
         \x20     - external.metrics.k8s.io\n\
         \x20   resources:\n\
         \x20     - \"*\"\n\
         \x20   verbs:\n\
         \x20     - get\n\
         \x20     - list\n\
         ---\n\
         apiVersion: rbac.authorization.k8s.io/v1\n\
         kind: ClusterRoleBinding\n\
         metadata:\n\
         \x20 name: {svc}:hpa-metrics-reader\n\
         {labels}\
         roleRef:\n\
         \x20 apiGroup: rbac.authorization.k8s.io\n\
         \x20 kind: ClusterRole\n\
         \x20 name: {svc}:metrics-reader\n\
         subjects:\n\
         \x20 - kind: ServiceAccount\n\
         \x20   name: horizontal-pod-autoscaler\n\
         \x20   namespace: kube-system\n",
        labels = labels(spec, 2),
    );
    out
}

/// `hpa-object.yaml`: an HPA on an Object metric of the Service.
fn hpa_object_yaml(spec: &Spec) -> String {
    let Spec {
        namespace: ns,
        service: svc,
        minicluster: mc,
        ..
    } = spec;
    format!(
        "# An HPA on an Object metric: grows MiniCluster {mc} while Flux jobs wait. The metric is asked\n\
         # of the Service {svc} (any object in the namespace would do: every flux-metrics-api metric\n\
         # describes the whole Flux instance), as\n\
         #   GET /apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/services/{svc}/job_queue_pending_count\n\
         # Target Value 1: desired pods = ceil(ready pods x waiting jobs / 1), so the MiniCluster grows as\n\
         # soon as two jobs wait, up to maxReplicas; keep that at most the MiniCluster's maxSize (the Flux\n\
         # Operator turns a larger size back into maxSize).\n\
         # Scaling down is disabled: with no job waiting this target asks for minReplicas, and the Job\n\
         # controller removes the highest-numbered pods whether or not they run jobs. For an HPA that\n\
         # also shrinks, without removing a pod that runs a job, see hpa-desired-size.yaml.\n\
         # (`flux-metrics-api manifests` prints this file commented out at the end of its output.)\n\
         ---\n\
         apiVersion: autoscaling/v2\n\
         kind: HorizontalPodAutoscaler\n\
         metadata:\n\
         \x20 name: {mc}-pending-jobs\n\
         \x20 namespace: {ns}\n\
         spec:\n\
         \x20 scaleTargetRef:\n\
         \x20   apiVersion: flux-framework.org/v1alpha2\n\
         \x20   kind: MiniCluster\n\
         \x20   name: {mc}\n\
         \x20 minReplicas: 2\n\
         \x20 maxReplicas: 4\n\
         \x20 metrics:\n\
         \x20   - type: Object\n\
         \x20     object:\n\
         \x20       describedObject:\n\
         \x20         apiVersion: v1\n\
         \x20         kind: Service\n\
         \x20         name: {svc}\n\
         \x20       metric:\n\
         \x20         name: job_queue_pending_count\n\
         \x20       target:\n\
         \x20         type: Value\n\
         \x20         value: \"1\"\n\
         \x20 behavior:\n\
         \x20   scaleDown:\n\
         \x20     selectPolicy: Disabled\n"
    )
}

/// The manifest files for `spec`, named as in [`MANIFEST_FILES`] and in that order.
pub fn render(spec: &Spec) -> Vec<(&'static str, String)> {
    let texts = [
        service_yaml(spec),
        apiservice_yaml(spec),
        rbac_yaml(spec),
        hpa_object_yaml(spec),
    ];
    MANIFEST_FILES.into_iter().zip(texts).collect()
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
    let mut out = String::new();
    let last = files.len() - 1;
    for (i, (_, text)) in files.iter().enumerate() {
        if i == last {
            out.push_str(&comment_out(text));
        } else {
            out.push_str(text);
        }
    }
    out
}

/// Runs `manifests`: prints the YAML.
///
/// # Errors
/// Invalid names, no choice of trust, an unreadable or unsuitable `--ca-file`.
pub fn manifests(args: &ManifestsArgs) -> anyhow::Result<()> {
    let spec = Spec::try_from(args)?;
    print_stdout(&output(&spec))
}

/// Writes `text` to standard output; a reader that went away (`| head`) is not an error.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing to standard output")
        }
        _ => Ok(()),
    }
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
            endpoint: None,
        }
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn names_are_checked() {
        for ok in ["a", "flux-operator", "x9", "a-b-c"] {
            check_label("--x", ok, true).unwrap();
        }
        check_label("--x", "9a", false).unwrap();
        for bad in [
            "",
            "A",
            "-a",
            "a-",
            "a.b",
            "a b",
            "9a",
            &"a".repeat(64),
            "a\nb",
        ] {
            assert!(check_label("--x", bad, true).is_err(), "{bad:?}");
        }
        check_subdomain("--x", "my.service-account").unwrap();
        for bad in ["", ".a", "a..b", "A", "a:b"] {
            assert!(check_subdomain("--x", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("certs/ca.crt"), "certs/ca.crt");
        assert_eq!(shell_word("my certs/ca.crt"), "'my certs/ca.crt'");
        assert_eq!(shell_word("it's\n"), "'it'\\''s?'");
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
        let pem = pem_block(b"not really DER");
        let out = output(&spec(Trust::CaBundle {
            source: "certs/ca.crt".into(),
            pem: pem.clone(),
        }));
        let line = format!("  caBundle: {}\n", base64(pem.as_bytes()));
        assert_eq!(out.matches(&line).count(), 3);
        assert!(!out.contains("insecureSkipTLSVerify"));
        assert!(out.contains("--ca-file certs/ca.crt"));
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
    }

    #[test]
    fn endpoint_replaces_the_selector() {
        let mut s = spec(Trust::Insecure);
        s.endpoint = Some("172.18.0.1".parse().unwrap());
        let out = output(&s);
        assert!(!out.contains("  selector:"), "{out}");
        assert!(out.contains("kind: Endpoints\n"));
        assert!(out.contains("      - ip: \"172.18.0.1\"\n"));
        assert!(out.contains("server at 172.18.0.1:8443,"));
        assert!(out.contains("--endpoint 172.18.0.1"));
        s.endpoint = Some("fd00::1".parse().unwrap());
        assert!(output(&s).contains("server at [fd00::1]:8443,"));
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

    #[test]
    fn certificates_carry_the_service_names_and_expiry() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let c = generate_certificates("ns", "svc", 10, now).unwrap();
        assert_eq!(c.not_after, 1_800_000_000 + 10 * 86_400);
        assert!(c.names.contains(&"svc.ns.svc".to_owned()));
        assert!(c.ca_cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(c.key.contains("PRIVATE KEY"));
        assert_eq!(utc(c.not_after), "2027-01-25 08:00:00 UTC");
    }
}

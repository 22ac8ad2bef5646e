//! The part of a kubeconfig file that `--authentication-kubeconfig` needs: the current
//! context's server, the CA that verifies it, and a token or a client certificate. It is what
//! Kubernetes' own aggregated servers take to read the cluster's authentication ConfigMap from
//! outside a pod; exec plugins, auth providers, basic auth and skipping TLS verification are
//! refused, each with a message, rather than half-supported.
//!
//! Parsed with `yaml-rust2` (pure Rust, maintained, no serde layer; `serde_yaml` is archived and
//! `yaml-rust` is flagged unmaintained by RustSec). File references are read relative to the
//! kubeconfig's own directory, as kubectl reads them.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine as _;
use yaml_rust2::{Yaml, YamlLoader};

/// Bytes given inline (`*-data`, base64) or as a file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Material {
    /// Decoded from a `*-data` field.
    Inline(Vec<u8>),
    /// A file, already resolved against the kubeconfig's directory.
    File(PathBuf),
}

impl Material {
    /// The bytes; `what` names the field in errors.
    ///
    /// # Errors
    /// A file that cannot be read.
    pub fn read(&self, what: &str) -> anyhow::Result<Vec<u8>> {
        match self {
            Material::Inline(b) => Ok(b.clone()),
            Material::File(p) => {
                std::fs::read(p).with_context(|| format!("reading {what} {}", p.display()))
            }
        }
    }
}

/// What the current context of a kubeconfig says about reaching its API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The context used.
    pub context: String,
    /// `cluster.server`, as written.
    pub server: String,
    /// Host of the server URL (brackets of an IPv6 address removed).
    pub host: String,
    /// Port of the server URL (443 when it names none).
    pub port: u16,
    /// `tls-server-name`: the name the server's certificate is checked for, instead of `host`.
    pub tls_server_name: Option<String>,
    /// `certificate-authority(-data)`.
    pub ca: Material,
    /// `token`, or the content of `tokenFile`, read when the request is made.
    pub token: Option<Material>,
    /// `client-certificate(-data)` and `client-key(-data)`.
    pub client_cert: Option<(Material, Material)>,
}

impl Target {
    /// Reads the kubeconfig at `path`.
    ///
    /// # Errors
    /// An unreadable file, or anything [`Target::parse`] refuses.
    pub fn load(path: &Path) -> anyhow::Result<Target> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --authentication-kubeconfig {}", path.display()))?;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        Target::parse(&text, dir)
            .with_context(|| format!("--authentication-kubeconfig {}", path.display()))
    }

    /// Parses a kubeconfig's text; relative file names are resolved against `dir`.
    ///
    /// # Errors
    /// Not YAML, no usable current context, a server URL that is not `https://HOST[:PORT]`, no
    /// CA, no credential, or a credential kind this server does not speak.
    pub fn parse(text: &str, dir: &Path) -> anyhow::Result<Target> {
        let docs = YamlLoader::load_from_str(text).context("not valid YAML")?;
        let Some(doc) = docs.first() else {
            bail!("the file is empty");
        };
        let contexts = named_list(doc, "contexts")?;
        let context = match string(doc, "current-context")? {
            Some(c) if !c.is_empty() => c,
            _ if contexts.len() == 1 => contexts[0].0.clone(),
            _ => bail!("no current-context (and not exactly one context to fall back on)"),
        };
        let entry = find(&contexts, &context, "context")?;
        let cluster_name = string(entry, "cluster")?
            .with_context(|| format!("context {context:?} names no cluster"))?;
        let user_name =
            string(entry, "user")?.with_context(|| format!("context {context:?} names no user"))?;
        let clusters = named_list(doc, "clusters")?;
        let cluster = find(&clusters, &cluster_name, "cluster")?;
        let users = named_list(doc, "users")?;
        let user = find(&users, &user_name, "user")?;

        let server = string(cluster, "server")?
            .with_context(|| format!("cluster {cluster_name:?} has no server"))?;
        let (host, port) = split_server(&server)
            .with_context(|| format!("server {server:?} of cluster {cluster_name:?}"))?;
        if cluster["insecure-skip-tls-verify"].as_bool() == Some(true) {
            bail!(
                "cluster {cluster_name:?} sets insecure-skip-tls-verify: the CAs read from the \
                 cluster decide who may read the metrics, so the API server must be verified \
                 (give certificate-authority or certificate-authority-data)"
            );
        }
        let ca = material(cluster, "certificate-authority", dir)?.with_context(|| {
            format!("cluster {cluster_name:?} has neither certificate-authority nor certificate-authority-data")
        })?;

        for unsupported in ["exec", "auth-provider", "username", "password"] {
            if !user[unsupported].is_badvalue() && !user[unsupported].is_null() {
                bail!(
                    "user {user_name:?} authenticates with {unsupported}, which this server does \
                     not support: use a token, tokenFile or a client certificate"
                );
            }
        }
        let token = match (string(user, "token")?, string(user, "tokenFile")?) {
            (Some(t), _) if !t.is_empty() => Some(Material::Inline(t.into_bytes())),
            (_, Some(f)) if !f.is_empty() => Some(Material::File(dir.join(f))),
            _ => None,
        };
        let client_cert = match (
            material(user, "client-certificate", dir)?,
            material(user, "client-key", dir)?,
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => bail!("user {user_name:?} has a client certificate but no key"),
            (None, Some(_)) => bail!("user {user_name:?} has a client key but no certificate"),
        };
        if token.is_none() && client_cert.is_none() {
            bail!(
                "user {user_name:?} has neither a token (token, tokenFile) nor a client certificate"
            );
        }
        Ok(Target {
            context,
            server,
            host,
            port,
            tls_server_name: string(cluster, "tls-server-name")?.filter(|s| !s.is_empty()),
            ca,
            token,
            client_cert,
        })
    }
}

/// `https://HOST[:PORT][/]` → (HOST, PORT); IPv6 addresses in brackets.
fn split_server(server: &str) -> anyhow::Result<(String, u16)> {
    let Some(rest) = server.strip_prefix("https://") else {
        bail!("not an https:// URL");
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        bail!("a server URL with a path, query or user part is not supported");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').context("unclosed [ in the host")?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        bail!("no host");
    }
    let port = match port {
        Some(p) => p.parse().with_context(|| format!("port {p:?}"))?,
        None => 443,
    };
    Ok((host.to_owned(), port))
}

/// The `(name, value)` pairs of a kubeconfig list such as `clusters`, where each item is
/// `{name: N, <kind>: {...}}` and the value is the inner mapping.
fn named_list<'a>(doc: &'a Yaml, key: &str) -> anyhow::Result<Vec<(String, &'a Yaml)>> {
    let inner = key.trim_end_matches('s');
    let list = &doc[key];
    if list.is_badvalue() || list.is_null() {
        return Ok(Vec::new());
    }
    let items = list
        .as_vec()
        .with_context(|| format!("{key} is not a list"))?;
    items
        .iter()
        .map(|item| {
            let name = item["name"]
                .as_str()
                .with_context(|| format!("an entry of {key} has no name"))?;
            Ok((name.to_owned(), &item[inner]))
        })
        .collect()
}

fn find<'a>(list: &[(String, &'a Yaml)], name: &str, kind: &str) -> anyhow::Result<&'a Yaml> {
    list.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| *v)
        .with_context(|| format!("no {kind} named {name:?}"))
}

/// A string field; absent or null is `None`, another type is an error.
fn string(map: &Yaml, key: &str) -> anyhow::Result<Option<String>> {
    let v = &map[key];
    if v.is_badvalue() || v.is_null() {
        return Ok(None);
    }
    v.as_str()
        .map(|s| Some(s.to_owned()))
        .with_context(|| format!("{key} is not a string"))
}

/// `KEY-data` (base64, preferred, as kubectl prefers it) or `KEY` (a file name).
fn material(map: &Yaml, key: &str, dir: &Path) -> anyhow::Result<Option<Material>> {
    let data_key = format!("{key}-data");
    if let Some(data) = string(map, &data_key)?.filter(|s| !s.is_empty()) {
        let compact: String = data.split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .with_context(|| format!("{data_key} is not base64"))?;
        return Ok(Some(Material::Inline(bytes)));
    }
    Ok(string(map, key)?
        .filter(|s| !s.is_empty())
        .map(|f| Material::File(dir.join(f))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:26443
    certificate-authority: certs/ca.crt
users:
- name: admin
  user:
    client-certificate: /abs/admin.crt
    client-key: certs/admin.key
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
";

    #[test]
    fn client_certificate_files_resolve_against_the_kubeconfig_directory() {
        let t = Target::parse(ADMIN, Path::new("/etc/k")).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 26443));
        assert_eq!(t.ca, Material::File("/etc/k/certs/ca.crt".into()));
        assert_eq!(
            t.client_cert,
            Some((
                Material::File("/abs/admin.crt".into()),
                Material::File("/etc/k/certs/admin.key".into())
            ))
        );
        assert_eq!(t.token, None);
    }

    #[test]
    fn token_and_inline_ca_of_the_current_context() {
        let text = r#"
clusters:
- {name: other, cluster: {server: "https://other:1", certificate-authority-data: eA==}}
- name: c
  cluster:
    server: https://[::1]/
    certificate-authority-data: "UEVN
      Cg=="
    tls-server-name: kubernetes.default.svc
users:
- {name: u, user: {token: abc.def}}
contexts:
- {name: one, context: {cluster: other, user: u}}
- {name: two, context: {cluster: c, user: u}}
current-context: two
"#;
        let t = Target::parse(text, Path::new("/")).unwrap();
        assert_eq!(t.context, "two");
        assert_eq!((t.host.as_str(), t.port), ("::1", 443));
        assert_eq!(t.ca, Material::Inline(b"PEM\n".to_vec()));
        assert_eq!(t.tls_server_name.as_deref(), Some("kubernetes.default.svc"));
        assert_eq!(t.token, Some(Material::Inline(b"abc.def".to_vec())));
        assert_eq!(t.client_cert, None);
    }

    #[test]
    fn token_file_and_a_single_context_without_current_context() {
        let text =
            "clusters: [{name: c, cluster: {server: 'https://h', certificate-authority: ca}}]
users: [{name: u, user: {tokenFile: /run/token}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
";
        let t = Target::parse(text, Path::new("/d")).unwrap();
        assert_eq!(t.token, Some(Material::File("/run/token".into())));
        assert_eq!(t.ca, Material::File("/d/ca".into()));
    }

    fn error(text: &str) -> String {
        format!("{:#}", Target::parse(text, Path::new("/")).unwrap_err())
    }

    #[test]
    fn refuses_what_it_cannot_do_safely_with_a_reason() {
        let base = |cluster: &str, user: &str| {
            format!(
                "clusters: [{{name: c, cluster: {cluster}}}]\nusers: [{{name: u, user: {user}}}]\n\
                 contexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
            )
        };
        let ok_cluster = "{server: 'https://h:6443', certificate-authority: ca}";
        assert!(
            error(&base(
                "{server: 'https://h', insecure-skip-tls-verify: true}",
                "{token: t}"
            ))
            .contains("insecure-skip-tls-verify")
        );
        assert!(
            error(&base("{server: 'https://h'}", "{token: t}")).contains("certificate-authority")
        );
        assert!(
            error(&base(
                "{server: 'http://h', certificate-authority: ca}",
                "{token: t}"
            ))
            .contains("https://")
        );
        assert!(error(&base(ok_cluster, "{exec: {command: x}}")).contains("exec"));
        assert!(error(&base(ok_cluster, "{}")).contains("neither a token"));
        assert!(error(&base(ok_cluster, "{client-certificate: c}")).contains("no key"));
        assert!(
            error(
                &base(ok_cluster, "{token: t}").replace("current-context: x", "current-context: y")
            )
            .contains("no context named \"y\"")
        );
        assert!(error("a: [").contains("not valid YAML"));
        assert!(error("").contains("empty"));
    }

    #[test]
    fn server_urls() {
        assert_eq!(split_server("https://h:1").unwrap(), ("h".into(), 1));
        assert_eq!(split_server("https://h").unwrap(), ("h".into(), 443));
        assert_eq!(
            split_server("https://[fe80::1]:8").unwrap(),
            ("fe80::1".into(), 8)
        );
        assert!(split_server("https://h/prefix").is_err());
        assert!(split_server("https://h:x").is_err());
        assert!(split_server("https://:1").is_err());
    }
}

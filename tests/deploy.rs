//! `certs` and `manifests`, run as the built binary:
//! - `manifests` with the flags `manifests/` was made with prints exactly those files (the last
//!   one commented out), so the two cannot drift apart; `FLUX_METRICS_BLESS=1 cargo test --test
//!   deploy` rewrites the files from the command after a deliberate change;
//! - `manifests` refuses to guess between `--ca-file` and `--insecure-skip-tls-verify`, and embeds
//!   the CA it is given;
//! - `certs` writes files that `openssl verify`, a rustls client and curl accept when the server
//!   serves them (openssl and curl are skipped, with a SKIPPED line, where they are missing).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;
use common::TempDir;
use common::bin::{Process, Started, run, run_command};
use flux_metrics::cli::manifests::{self, Spec};
use flux_metrics::cli::{self, DEFAULT_MINICLUSTER, DEFAULT_NAMESPACE, DEFAULT_SERVICE_NAME};
use flux_metrics::server::pki;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NAMESPACE: &str = DEFAULT_NAMESPACE;
const SERVICE: &str = DEFAULT_SERVICE_NAME;
/// The flags `manifests/` was generated with: the default names, trust left to the reader.
const STATIC_FLAGS: [&str; 7] = [
    "--namespace",
    NAMESPACE,
    "--service-name",
    SERVICE,
    "--minicluster",
    DEFAULT_MINICLUSTER,
    "--insecure-skip-tls-verify",
];

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests")
}

/// The spec `manifests` makes of `STATIC_FLAGS`, parsed by the program's own flags.
fn static_spec() -> Spec {
    let args = ["flux-metrics-api", "manifests"]
        .into_iter()
        .chain(STATIC_FLAGS);
    match cli::Cli::try_parse_from(args)
        .expect("STATIC_FLAGS parse")
        .command
    {
        cli::Command::Manifests(m) => Spec::try_from(&m).expect("STATIC_FLAGS are valid"),
        other => panic!("not the manifests command: {other:?}"),
    }
}

/// The last file `manifests` prints is an example, printed commented out.
fn printed_form(i: usize, text: &str) -> String {
    if i == manifests::FILES.len() - 1 {
        manifests::comment_out(text)
    } else {
        text.to_owned()
    }
}

/// Whether `tool --version` runs; prints a SKIPPED line when it does not.
fn have(tool: &str, test: &str) -> bool {
    let ok = Command::new(tool)
        .arg(if tool == "openssl" {
            "version"
        } else {
            "--version"
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        // Written to the real stderr, past libtest's capture, so CI's summary shows it.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: tests/deploy.rs {test}: {tool} is not installed"
        );
    }
    ok
}

#[test]
fn manifests_output_is_the_static_files() {
    let out = run(["manifests"].into_iter().chain(STATIC_FLAGS));
    out.assert_success();
    let dir = manifests_dir();
    // The binary prints what the library renders, file by file; which file differs is said below.
    let spec = static_spec();
    assert_eq!(
        out.stdout,
        manifests::output(&spec),
        "the binary and the library disagree"
    );
    let rendered = manifests::render(&spec);
    if std::env::var_os("FLUX_METRICS_BLESS").is_some() {
        for (name, text) in &rendered {
            std::fs::write(dir.join(name), text).expect("writing a manifest");
        }
    }
    let files: Vec<String> = manifests::FILES
        .iter()
        .map(|(f, _)| {
            std::fs::read_to_string(dir.join(f))
                .unwrap_or_else(|e| panic!("reading manifests/{f}: {e}"))
        })
        .collect();
    let expected: String = files
        .iter()
        .enumerate()
        .map(|(i, f)| printed_form(i, f))
        .collect();
    if out.stdout == expected {
        return;
    }
    // Say which file differs, and where.
    for (i, ((name, got), want)) in rendered.iter().zip(&files).enumerate() {
        let (got, want) = (printed_form(i, got), printed_form(i, want));
        if got != want {
            let line = got
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .map_or("the end".to_owned(), |n| format!("line {}", n + 1));
            panic!(
                "`flux-metrics-api manifests {}` no longer prints manifests/{name} (first \
                 difference at {line}). If the change is meant, rewrite the files with \
                 `FLUX_METRICS_BLESS=1 cargo test --test deploy` and review the diff.\n\
                 --- printed ---\n{got}\n--- manifests/{name} ---\n{want}",
                STATIC_FLAGS.join(" ")
            );
        }
    }
    panic!(
        "the output differs from manifests/ outside the files:\n{}",
        out.stdout
    );
}

#[test]
fn manifests_want_a_ca_or_an_explicit_insecure() {
    let out = run(["--quiet", "manifests", "--namespace", NAMESPACE]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "printed YAML anyway");
    let err = out.stderr;
    assert!(err.contains("--ca-file"), "{err}");
    assert!(err.contains("--insecure-skip-tls-verify"), "{err}");

    let out = run([
        "manifests",
        "--ca-file",
        "/dev/null",
        "--insecure-skip-tls-verify",
    ]);
    assert!(!out.status.success(), "both trust flags accepted");

    let out = run([
        "manifests",
        "--service-name",
        "Not_A_Name",
        "--insecure-skip-tls-verify",
    ]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("--service-name"), "{}", out.stderr);

    let out = run([
        "manifests",
        "--endpoint",
        "127.0.0.1",
        "--insecure-skip-tls-verify",
    ]);
    assert!(!out.status.success(), "a loopback endpoint accepted");
    assert!(out.stderr.contains("--endpoint"), "{}", out.stderr);
}

#[test]
fn manifests_embed_the_ca_from_certs() {
    let tmp = TempDir::new("cabundle");
    let dir = tmp.path().to_str().expect("UTF-8 temp path");
    let out = run(["certs", "--out", dir]);
    assert!(out.status.success(), "{}", out.stderr);
    let ca_file = tmp.path().join("ca.crt");
    let ca = std::fs::read(&ca_file).expect("reading ca.crt");
    let out = run([
        "manifests",
        "--ca-file",
        ca_file.to_str().expect("UTF-8"),
        "--minicluster",
        "lammps",
        "--port",
        "9443",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let yaml = out.stdout.clone();
    let line = format!("  caBundle: {}\n", pki::base64(&ca));
    assert_eq!(yaml.matches(&line).count(), 3, "{yaml}");
    assert!(!yaml.contains("insecureSkipTLSVerify"), "{yaml}");
    assert!(yaml.contains("    job-name: lammps\n"), "{yaml}");
    assert!(yaml.contains("      targetPort: 9443\n"), "{yaml}");

    for (file, why) in [("ca.key", "private key"), ("missing.crt", "cannot read")] {
        let path = tmp.path().join(file);
        let out = run(["manifests", "--ca-file", path.to_str().expect("UTF-8")]);
        assert!(!out.status.success(), "{file} accepted");
        assert!(out.stderr.contains(why), "{file}: {}", out.stderr);
    }
}

#[test]
fn certs_writes_four_files_and_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("files");
    let dir = tmp.path().join("certs");
    let d = dir.to_str().expect("UTF-8 temp path");
    let out = run([
        "certs",
        "--namespace",
        NAMESPACE,
        "--service-name",
        SERVICE,
        "--out",
        d,
        "--days",
        "30",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let text = out.stdout.clone();
    assert!(text.contains("expire"), "{text}");
    assert!(
        text.contains(&format!("kubectl create secret tls {SERVICE}-tls")),
        "{text}"
    );
    // Exactly the files `certs` names, the keys readable by their owner only.
    let mut written: Vec<String> = std::fs::read_dir(&dir)
        .expect("listing")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let mut named = flux_metrics::cli::certs::FILES.map(str::to_owned).to_vec();
    named.sort();
    assert_eq!(written, named);
    assert_eq!(
        named.len(),
        4,
        "a CA and a serving certificate, each with its key"
    );
    for file in flux_metrics::cli::certs::FILES {
        let mode = if file.ends_with(".key") { 0o600 } else { 0o644 };
        let meta = std::fs::metadata(dir.join(file)).expect(file);
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
    }
    let before = std::fs::read(dir.join("ca.crt")).expect("ca.crt");

    let out = run(["certs", "--out", d]);
    assert!(!out.status.success(), "overwrote without --force");
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(
        std::fs::read(dir.join("ca.crt")).expect("ca.crt"),
        before,
        "a refused run changed ca.crt"
    );

    let out = run(["certs", "--out", d, "--force"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_ne!(std::fs::read(dir.join("ca.crt")).expect("ca.crt"), before);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("listing")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // A path through a regular file cannot be created: a clear error, nothing written.
    let blocked = tmp.path().join("certs/ca.crt/sub");
    let out = run(["certs", "--out", blocked.to_str().expect("UTF-8")]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("--out"), "{}", out.stderr);
}

#[test]
fn certs_verify_with_openssl() {
    if !have("openssl", "certs_verify_with_openssl") {
        return;
    }
    let tmp = TempDir::new("openssl");
    let out = run([
        "certs",
        "--namespace",
        NAMESPACE,
        "--service-name",
        SERVICE,
        "--out",
        tmp.path().to_str().expect("UTF-8"),
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    // The name kube-apiserver verifies, written out here rather than taken from the library.
    let host = format!("{SERVICE}.{NAMESPACE}.svc");
    assert!(pki::serving_names(NAMESPACE, SERVICE).contains(&host));
    let mut verify = Command::new("openssl");
    verify
        .args(["verify", "-purpose", "sslserver", "-verify_hostname", &host])
        .arg("-CAfile")
        .arg(tmp.path().join("ca.crt"))
        .arg(tmp.path().join("tls.crt"));
    let out = run_command(verify);
    out.assert_success();
    assert!(out.stdout.contains(": OK"), "openssl verify: {out}");
    let mut x509 = Command::new("openssl");
    x509.args(["x509", "-noout", "-text", "-in"])
        .arg(tmp.path().join("tls.crt"));
    let text = run_command(x509).assert_success().stdout.clone();
    let names = pki::serving_names(NAMESPACE, SERVICE).into_iter().map(|n| {
        match n.parse::<std::net::IpAddr>() {
            // OpenSSL writes IPv6 addresses in full, without `::`.
            Ok(std::net::IpAddr::V6(v6)) => {
                let groups: Vec<String> = v6.segments().iter().map(|g| format!("{g:X}")).collect();
                format!("IP Address:{}", groups.join(":"))
            }
            Ok(ip) => format!("IP Address:{ip}"),
            Err(_) => format!("DNS:{n}"),
        }
    });
    let usages = ["TLS Web Server Authentication", "CA:FALSE"].map(str::to_owned);
    for want in names.chain(usages) {
        assert!(text.contains(&want), "{want} missing from:\n{text}");
    }
}

/// `start` serving the `certs` output in `dir` over TLS, replaying `idle`; killed on drop.
fn serve_certs(dir: &Path) -> Started {
    let replay = common::fixtures().join("idle");
    common::bin::start(|port| {
        let mut cmd = common::bin::command(["--quiet", "start", "--host", "127.0.0.1"]);
        cmd.arg("--port")
            .arg(port.to_string())
            .arg("--ssl-certfile")
            .arg(dir.join("tls.crt"))
            .arg("--ssl-keyfile")
            .arg(dir.join("tls.key"))
            .arg("--replay")
            .arg(&replay);
        Process::spawn(cmd)
    })
}

/// `GET path` over TLS, verified against `ca_pem` for `name`; returns the status line.
async fn rustls_get(addr: SocketAddr, ca_pem: &[u8], name: &str, path: &str) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let roots = flux_metrics::server::pki::roots("the CA", ca_pem).expect("the CA");
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connecting");
        let server_name = ServerName::try_from(name.to_owned()).expect("server name");
        let mut tls = connector
            .connect(server_name, tcp)
            .await
            .unwrap_or_else(|e| panic!("rustls refused the certificate for {name}: {e}"));
        let request = format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await.expect("writing");
        let mut answer = Vec::new();
        // The server may close without close_notify; what was read is kept.
        let _ = tls.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("no answer within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certs_are_accepted_by_rustls_and_curl() {
    let tmp = TempDir::new("serve");
    let out = run([
        "certs",
        "--namespace",
        NAMESPACE,
        "--service-name",
        SERVICE,
        "--out",
        tmp.path().to_str().expect("UTF-8"),
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let ca = std::fs::read(tmp.path().join("ca.crt")).expect("ca.crt");
    let server = serve_certs(tmp.path());
    let addr = SocketAddr::from(([127, 0, 0, 1], server.port));

    // The name kube-apiserver verifies (<service>.<namespace>.svc), and the loopback names.
    let host = format!("{SERVICE}.{NAMESPACE}.svc");
    for name in [host.as_str(), "localhost", "127.0.0.1"] {
        let status = rustls_get(addr, &ca, name, "/healthz").await;
        assert!(status.contains(" 200"), "{name}: {status}");
    }
    let status = rustls_get(addr, &ca, &host, "/apis/custom.metrics.k8s.io/v1beta2").await;
    assert!(status.contains(" 200"), "discovery: {status}");

    if !have("curl", "certs_are_accepted_by_rustls_and_curl (curl part)") {
        return;
    }
    let port = server.port;
    for (url, extra) in [
        (format!("https://localhost:{port}/healthz"), None),
        (
            format!("https://{host}:{port}/apis/external.metrics.k8s.io/v1beta1"),
            Some(format!("{host}:{port}:127.0.0.1")),
        ),
    ] {
        let mut curl = Command::new("curl");
        curl.args(["--silent", "--show-error", "--fail", "--max-time", "10"])
            .arg("--cacert")
            .arg(tmp.path().join("ca.crt"));
        if let Some(resolve) = &extra {
            curl.arg("--resolve").arg(resolve);
        }
        curl.arg(&url);
        run_command(curl).assert_success();
    }
    drop(server);
}

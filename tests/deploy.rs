//! `certs` and `manifests`, run as the built binary:
//! - `manifests` with the flags `manifests/` was made with prints exactly those files (the last
//!   one commented out), so the two cannot drift apart; `FLUX_METRICS_BLESS=1 cargo test --test
//!   deploy` rewrites the files from the command after a deliberate change;
//! - `manifests` refuses to guess between `--ca-file` and `--insecure-skip-tls-verify`, and embeds
//!   the CA it is given;
//! - `certs` writes files that `openssl verify`, a rustls client and curl accept when the server
//!   serves them (openssl and curl are skipped, with a SKIPPED line, where they are missing).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_flux-metrics-api");
const NAMESPACE: &str = "flux-operator";
const SERVICE: &str = "custom-metrics-apiserver";
/// The flags `manifests/` was generated with.
const STATIC_FLAGS: [&str; 7] = [
    "--namespace",
    NAMESPACE,
    "--service-name",
    SERVICE,
    "--minicluster",
    "flux-sample",
    "--insecure-skip-tls-verify",
];
/// The files of `manifests/` that `manifests` prints, in order; the last one commented out.
const FILES: [&str; 4] = [
    "service.yaml",
    "apiservice.yaml",
    "rbac.yaml",
    "hpa-object.yaml",
];

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running flux-metrics-api")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("UTF-8 output")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests")
}

/// `text` commented out the way `manifests` prints its example: `# ` before each line.
fn comment_out(text: &str) -> String {
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

/// Splits `manifests` output into its files: each starts with the first line of the static file
/// (commented out for the last one).
fn split(out: &str, firsts: &[String]) -> Option<Vec<String>> {
    let mut starts = Vec::new();
    let mut from = 0;
    for first in firsts {
        let at = from + out[from..].find(first.as_str())?;
        starts.push(at);
        from = at + first.len();
    }
    if starts.first() != Some(&0) {
        return None;
    }
    starts.push(out.len());
    Some(
        starts
            .windows(2)
            .map(|w| out[w[0]..w[1]].to_owned())
            .collect(),
    )
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("flux-metrics-deploy-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating a temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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
    let mut args = vec!["manifests"];
    args.extend(STATIC_FLAGS);
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let dir = manifests_dir();
    if std::env::var_os("FLUX_METRICS_BLESS").is_some() {
        bless(&printed, &dir);
    }
    let files: Vec<String> = FILES
        .iter()
        .map(|f| {
            std::fs::read_to_string(dir.join(f))
                .unwrap_or_else(|e| panic!("reading manifests/{f}: {e}"))
        })
        .collect();
    let mut expected: String = files[..3].concat();
    expected.push_str(&comment_out(&files[3]));
    if printed == expected {
        return;
    }
    // Say which file differs, and where.
    let firsts: Vec<String> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let first = f.lines().next().unwrap_or_default();
            if i == 3 {
                format!("# {first}\n")
            } else {
                format!("{first}\n")
            }
        })
        .collect();
    let parts = split(&printed, &firsts).unwrap_or_default();
    for (i, name) in FILES.iter().enumerate() {
        let want = if i == 3 {
            comment_out(&files[i])
        } else {
            files[i].clone()
        };
        let got = parts.get(i).map_or("<not found>", String::as_str);
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
    panic!("the output differs from manifests/ outside the files:\n{printed}");
}

/// Rewrites `manifests/{service,apiservice,rbac,hpa-object}.yaml` from `printed`, split where the
/// current files start (their first lines are stable headers).
fn bless(printed: &str, dir: &Path) {
    let firsts = [
        "# flux-metrics-api as the Kubernetes",
        "# The three API versions",
        "# RBAC of the server",
        "# # An HPA on an Object metric",
    ];
    let mut starts: Vec<usize> = firsts
        .iter()
        .map(|f| {
            printed
                .find(f)
                .unwrap_or_else(|| panic!("bless: {f:?} not found"))
        })
        .collect();
    starts.push(printed.len());
    for (i, name) in FILES.iter().enumerate() {
        let part = &printed[starts[i]..starts[i + 1]];
        let text = if i == 3 {
            part.lines()
                .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(&l[1..])))
                .collect()
        } else {
            part.to_owned()
        };
        std::fs::write(dir.join(name), text).expect("writing a manifest");
    }
}

#[test]
fn manifests_want_a_ca_or_an_explicit_insecure() {
    let out = run(&["--quiet", "manifests", "--namespace", NAMESPACE]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "printed YAML anyway");
    let err = stderr(&out);
    assert!(err.contains("--ca-file"), "{err}");
    assert!(err.contains("--insecure-skip-tls-verify"), "{err}");

    let out = run(&[
        "manifests",
        "--ca-file",
        "/dev/null",
        "--insecure-skip-tls-verify",
    ]);
    assert!(!out.status.success(), "both trust flags accepted");

    let out = run(&[
        "manifests",
        "--service-name",
        "Not_A_Name",
        "--insecure-skip-tls-verify",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--service-name"), "{}", stderr(&out));

    let out = run(&[
        "manifests",
        "--endpoint",
        "127.0.0.1",
        "--insecure-skip-tls-verify",
    ]);
    assert!(!out.status.success(), "a loopback endpoint accepted");
    assert!(stderr(&out).contains("--endpoint"), "{}", stderr(&out));
}

#[test]
fn manifests_embed_the_ca_from_certs() {
    let tmp = TempDir::new("cabundle");
    let dir = tmp.0.to_str().expect("UTF-8 temp path");
    let out = run(&["certs", "--out", dir]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ca_file = tmp.0.join("ca.crt");
    let ca = std::fs::read(&ca_file).expect("reading ca.crt");
    let out = run(&[
        "manifests",
        "--ca-file",
        ca_file.to_str().expect("UTF-8"),
        "--minicluster",
        "lammps",
        "--port",
        "9443",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let yaml = stdout(&out);
    let line = format!("  caBundle: {}\n", flux_metrics::server::pki::base64(&ca));
    assert_eq!(yaml.matches(&line).count(), 3, "{yaml}");
    assert!(!yaml.contains("insecureSkipTLSVerify"), "{yaml}");
    assert!(yaml.contains("    job-name: lammps\n"), "{yaml}");
    assert!(yaml.contains("      targetPort: 9443\n"), "{yaml}");

    for (file, why) in [("ca.key", "private key"), ("missing.crt", "cannot read")] {
        let path = tmp.0.join(file);
        let out = run(&["manifests", "--ca-file", path.to_str().expect("UTF-8")]);
        assert!(!out.status.success(), "{file} accepted");
        assert!(stderr(&out).contains(why), "{file}: {}", stderr(&out));
    }
}

#[test]
fn certs_writes_four_files_and_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("files");
    let dir = tmp.0.join("certs");
    let d = dir.to_str().expect("UTF-8 temp path");
    let out = run(&[
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
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("expire"), "{text}");
    assert!(
        text.contains(&format!("kubectl create secret tls {SERVICE}-tls")),
        "{text}"
    );
    for (file, mode) in [
        ("ca.crt", 0o644),
        ("ca.key", 0o600),
        ("tls.crt", 0o644),
        ("tls.key", 0o600),
    ] {
        let meta = std::fs::metadata(dir.join(file)).expect(file);
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
    }
    let before = std::fs::read(dir.join("ca.crt")).expect("ca.crt");

    let out = run(&["certs", "--out", d]);
    assert!(!out.status.success(), "overwrote without --force");
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(dir.join("ca.crt")).expect("ca.crt"),
        before,
        "a refused run changed ca.crt"
    );

    let out = run(&["certs", "--out", d, "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(std::fs::read(dir.join("ca.crt")).expect("ca.crt"), before);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("listing")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // A path through a regular file cannot be created: a clear error, nothing written.
    let blocked = tmp.0.join("certs/ca.crt/sub");
    let out = run(&["certs", "--out", blocked.to_str().expect("UTF-8")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--out"), "{}", stderr(&out));
}

#[test]
fn certs_verify_with_openssl() {
    if !have("openssl", "certs_verify_with_openssl") {
        return;
    }
    let tmp = TempDir::new("openssl");
    let out = run(&[
        "certs",
        "--namespace",
        NAMESPACE,
        "--service-name",
        SERVICE,
        "--out",
        tmp.0.to_str().expect("UTF-8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let host = format!("{SERVICE}.{NAMESPACE}.svc");
    let out = Command::new("openssl")
        .args(["verify", "-purpose", "sslserver", "-verify_hostname", &host])
        .arg("-CAfile")
        .arg(tmp.0.join("ca.crt"))
        .arg(tmp.0.join("tls.crt"))
        .output()
        .expect("running openssl verify");
    assert!(
        out.status.success() && stdout(&out).contains(": OK"),
        "openssl verify: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(tmp.0.join("tls.crt"))
        .output()
        .expect("running openssl x509");
    let text = stdout(&text);
    for want in [
        format!("DNS:{SERVICE}"),
        format!("DNS:{SERVICE}.{NAMESPACE}"),
        format!("DNS:{host}"),
        format!("DNS:{host}.cluster.local"),
        "DNS:localhost".to_owned(),
        "IP Address:127.0.0.1".to_owned(),
        "TLS Web Server Authentication".to_owned(),
        "CA:FALSE".to_owned(),
    ] {
        assert!(text.contains(&want), "{want} missing from:\n{text}");
    }
}

/// The server binary serving the `certs` output, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(dir: &Path) -> Server {
        // A port that was free a moment ago; the server binds it again at once.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("finding a free port")
            .port();
        let replay = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/idle");
        let mut child = Command::new(BIN)
            .args(["--quiet", "start", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--ssl-certfile")
            .arg(dir.join("tls.crt"))
            .arg("--ssl-keyfile")
            .arg(dir.join("tls.key"))
            .arg("--replay")
            .arg(replay)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the server");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the server exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "the server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let out = run(&[
        "certs",
        "--namespace",
        NAMESPACE,
        "--service-name",
        SERVICE,
        "--out",
        tmp.0.to_str().expect("UTF-8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ca = std::fs::read(tmp.0.join("ca.crt")).expect("ca.crt");
    let server = Server::start(&tmp.0);

    // The name kube-apiserver verifies (<service>.<namespace>.svc), and the loopback names.
    let host = format!("{SERVICE}.{NAMESPACE}.svc");
    for name in [host.as_str(), "localhost", "127.0.0.1"] {
        let status = rustls_get(server.addr, &ca, name, "/healthz").await;
        assert!(status.contains(" 200"), "{name}: {status}");
    }
    let status = rustls_get(
        server.addr,
        &ca,
        &host,
        "/apis/custom.metrics.k8s.io/v1beta2",
    )
    .await;
    assert!(status.contains(" 200"), "discovery: {status}");

    if !have("curl", "certs_are_accepted_by_rustls_and_curl (curl part)") {
        return;
    }
    let port = server.addr.port();
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
            .arg(tmp.0.join("ca.crt"));
        if let Some(resolve) = &extra {
            curl.arg("--resolve").arg(resolve);
        }
        let out = curl.arg(&url).output().expect("running curl");
        assert!(
            out.status.success(),
            "curl {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(server);
}

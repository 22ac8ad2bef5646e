//! The built binary, as a person or a MiniCluster spec runs it: help and version, flag errors
//! that must fail clearly (and never panic), `get` against recorded answers, and `start`
//! serving until SIGTERM, then exiting 0.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_flux-metrics-api");

fn fixtures(scenario: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(scenario)
}

/// The binary with `args`, in an environment free of this program's and flux's variables.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FLUX_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// What a finished run printed.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self.assert_no_panic()
    }

    fn assert_failure(&self) -> &Self {
        assert!(
            !self.status.success(),
            "expected a failure\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self.assert_no_panic()
    }

    fn assert_no_panic(&self) -> &Self {
        assert!(
            !self.stderr.contains("panicked"),
            "the program panicked:\n{}",
            self.stderr
        );
        self
    }
}

/// Kills `pid` with `signal` through kill(1) (the tests have no libc binding of their own).
fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
}

/// Runs the binary with `args` and `env`; kills it and fails if it runs longer than `within`.
fn run_within(args: &[&str], env: &[(&str, &str)], within: Duration) -> Run {
    let mut cmd = command(args);
    cmd.envs(env.iter().copied());
    let started = Instant::now();
    let child = cmd.spawn().expect("starting the binary");
    let pid = child.id();
    let (tx, rx) = mpsc::channel::<std::io::Result<Output>>();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(within) {
        Ok(output) => output.expect("waiting for the binary"),
        Err(_) => {
            kill(pid, "KILL");
            panic!(
                "`flux-metrics-api {}` still ran after {within:?}",
                args.join(" ")
            );
        }
    };
    Run {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        took: started.elapsed(),
    }
}

fn run(args: &[&str]) -> Run {
    run_within(args, &[], Duration::from_secs(20))
}

// ---------------------------------------------------------------------------------------------
// Help and version

#[test]
fn help_lists_the_commands() {
    let r = run(&["--help"]);
    r.assert_success();
    for command in ["start", "get", "version"] {
        assert!(r.stdout.contains(command), "{command}:\n{}", r.stdout);
    }
}

#[test]
fn start_help_mentions_every_python_flag_and_the_broker_flags() {
    let r = run(&["start", "--help"]);
    r.assert_success();
    for flag in [
        "--port",
        "--host",
        "--namespace",
        "--service-name",
        "--api-path",
        "--ssl-certfile",
        "--ssl-keyfile",
        "--no-cache",
        "--verbose",
        "--debug",
        "--quiet",
        "--replay",
        "--flux-uri",
        "--flux-core-lib",
        "--flux-timeout",
        "--max-age",
    ] {
        assert!(r.stdout.contains(flag), "{flag} missing:\n{}", r.stdout);
    }
}

#[test]
fn version_flag_and_command_print_the_version() {
    let version = env!("CARGO_PKG_VERSION");
    for args in [&["--version"][..], &["version"], &["-V"]] {
        let r = run(args);
        r.assert_success();
        assert!(r.stdout.contains(version), "{args:?}: {}", r.stdout);
    }
}

// ---------------------------------------------------------------------------------------------
// `start` refusing bad flags

#[test]
fn start_with_a_key_but_no_certificate_fails_naming_the_missing_flag() {
    let r = run(&["start", "--ssl-keyfile", "k.pem"]);
    r.assert_failure();
    assert!(r.stderr.contains("--ssl-certfile"), "{}", r.stderr);
    let r = run(&["start", "--ssl-certfile", "c.pem"]);
    r.assert_failure();
    assert!(r.stderr.contains("--ssl-keyfile"), "{}", r.stderr);
}

#[test]
fn start_with_missing_certificate_files_fails_naming_the_file() {
    let r = run(&[
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--ssl-certfile",
        "/nonexistent/tls.crt",
        "--ssl-keyfile",
        "/nonexistent/tls.key",
    ]);
    r.assert_failure();
    assert!(r.stderr.contains("/nonexistent/tls.crt"), "{}", r.stderr);
}

#[test]
fn start_with_a_certificate_that_is_not_pem_fails_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("flux-metrics-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("garbage.crt");
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let cert_arg = cert.to_string_lossy().into_owned();
    let r = run(&[
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--ssl-certfile",
        &cert_arg,
        "--ssl-keyfile",
        &cert_arg,
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    r.assert_failure();
    assert!(r.stderr.contains("garbage.crt"), "{}", r.stderr);
}

#[test]
fn start_with_a_missing_replay_directory_fails_naming_it() {
    let r = run(&["start", "--replay", "/nonexistent/replay"]);
    r.assert_failure();
    assert!(
        r.stderr.contains("--replay") && r.stderr.contains("/nonexistent/replay"),
        "{}",
        r.stderr
    );
}

#[test]
fn start_with_a_custom_metric_script_fails_clearly() {
    let r = run(&[
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--replay",
        fixtures("idle").to_str().unwrap(),
        "--custom-metric",
        "x.py",
    ]);
    r.assert_failure();
    assert!(
        r.stderr.contains("--custom-metric") || r.stderr.contains("x.py"),
        "{}",
        r.stderr
    );
}

#[test]
fn start_on_a_port_in_use_fails_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let r = run(&[
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--replay",
        fixtures("idle").to_str().unwrap(),
    ]);
    r.assert_failure();
    assert!(r.stderr.contains(&port), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------------
// `get`

#[test]
fn get_prints_a_table_of_every_metric() {
    let r = run(&["get", "--replay", fixtures("busy").to_str().unwrap()]);
    r.assert_success();
    let value = |metric: &str| -> String {
        r.stdout
            .lines()
            .find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some(metric)).then(|| words.next().unwrap_or("").to_owned())
            })
            .unwrap_or_else(|| panic!("no {metric} row:\n{}", r.stdout))
    };
    assert_eq!(value("node_up_count"), "4");
    assert_eq!(value("node_cores_free_count"), "5");
    assert_eq!(value("job_queue_state_sched_count"), "2");
    assert_eq!(value("job_queue_pending_count"), "3");
    assert_eq!(value("minicluster_desired_size"), "4");
    // Recorded answers are never mistaken for live ones.
    assert!(r.stdout.contains("RECORDED"), "{}", r.stdout);
}

#[test]
fn get_json_has_metrics_and_queues() {
    let r = run(&[
        "get",
        "-o",
        "json",
        "--replay",
        fixtures("gpus-queues").to_str().unwrap(),
    ]);
    r.assert_success();
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", r.stdout));
    assert_eq!(v["metrics"]["node_up_count"], 4, "{v}");
    assert_eq!(v["metrics"]["node_gpus_free_count"], 6, "{v}");
    assert_eq!(v["metrics"]["job_queue_state_sched_count"], 2, "{v}");
    assert_eq!(
        v["queues"]["debug"]["job_queue_state_sched_count"], 2,
        "{v}"
    );
    assert_eq!(v["queues"]["batch"]["job_queue_state_run_count"], 2, "{v}");
    assert!(v["queues"]["batch"].get("node_up_count").is_none(), "{v}");
}

#[test]
fn get_named_metrics_prints_only_those() {
    let r = run(&[
        "get",
        "node_up_count",
        "node_down_count",
        "--replay",
        fixtures("drained").to_str().unwrap(),
    ]);
    r.assert_success();
    let rows: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("node_"))
        .collect();
    assert_eq!(rows.len(), 2, "{}", r.stdout);
    assert!(
        rows[0].split_whitespace().nth(1) == Some("3"),
        "{}",
        r.stdout
    );
    assert!(
        rows[1].split_whitespace().nth(1) == Some("1"),
        "{}",
        r.stdout
    );
}

#[test]
fn get_an_unknown_metric_fails_naming_it() {
    let r = run(&[
        "get",
        "nope",
        "--replay",
        fixtures("idle").to_str().unwrap(),
    ]);
    r.assert_failure();
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
}

#[test]
fn get_without_libflux_core_fails_quickly_and_clearly() {
    let r = run_within(
        &["get"],
        &[("FLUX_CORE_LIB", "/nonexistent/libflux-core.so.2")],
        Duration::from_secs(20),
    );
    r.assert_failure();
    assert!(r.took < Duration::from_secs(5), "took {:?}", r.took);
    assert!(r.stderr.contains("libflux-core"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------------
// `start` serving

/// `GET path` over plain HTTP/1.1; the status code and body, or `None` if nothing listens.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let code = answer.split_whitespace().nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n")?.1.to_owned();
    Some((code, body))
}

/// Stops `child` with `signal` and waits (bounded) for its exit status.
fn stop(child: &mut Child, signal: &str, within: Duration) -> ExitStatus {
    kill(child.id(), signal);
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the server") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not exit within {within:?} of SIG{signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `start --insecure-http` on a free port and waits (bounded) until /healthz answers.
fn serve(scenario: &str) -> (Child, u16) {
    // A port the kernel just handed out, released for the server to take.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port_arg = port.to_string();
    let mut child = command(&[
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        &port_arg,
        "--replay",
        fixtures(scenario).to_str().unwrap(),
        "--insecure-http",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("starting the server");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((200, _)) = http_get(port, "/healthz") {
            return (child, port);
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the server exited before answering: {status:?}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not answer /healthz within 10 s");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn start_serves_until_sigterm_then_exits_zero() {
    let (mut child, port) = serve("idle");
    let (code, body) = http_get(
        port,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/metrics/node_idle_count",
    )
    .expect("an answer");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["items"][0]["value"], "4", "{v}");
    let status = stop(&mut child, "TERM", Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn start_exits_zero_on_sigint_too() {
    let (mut child, _) = serve("busy");
    let status = stop(&mut child, "INT", Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn start_logs_to_stderr_and_keeps_stdout_clean() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port_arg = port.to_string();
    let mut child = command(&[
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        &port_arg,
        "--replay",
        fixtures("idle").to_str().unwrap(),
        "--insecure-http",
    ])
    .spawn()
    .expect("starting the server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(port, "/healthz").is_none() {
        assert!(Instant::now() < deadline, "no answer within 10 s");
        std::thread::sleep(Duration::from_millis(25));
    }
    let status = stop(&mut child, "TERM", Duration::from_secs(10));
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(stdout, "", "logs belong on stderr");
    assert!(stderr.contains("REPLAY"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

//! The built binary, as a person or a MiniCluster spec runs it: help and version, flag errors
//! that must fail clearly (and never panic), `get` against recorded answers, and `start`
//! serving until SIGTERM, then exiting 0.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;

use common::TempDir;
use common::bin::{run, run_command, start_replay};

fn fixtures(scenario: &str) -> PathBuf {
    common::fixtures().join(scenario)
}

// ---------------------------------------------------------------------------------------------
// Help and version

#[test]
fn help_lists_the_commands() {
    let r = run(["--help"]);
    r.assert_success();
    for command in ["start", "get", "version"] {
        assert!(r.stdout.contains(command), "{command}:\n{}", r.stdout);
    }
}

#[test]
fn start_help_mentions_every_python_flag_and_the_broker_flags() {
    let r = run(["start", "--help"]);
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
    let r = run(["start", "--ssl-keyfile", "k.pem"]);
    r.assert_failure();
    assert!(r.stderr.contains("--ssl-certfile"), "{}", r.stderr);
    let r = run(["start", "--ssl-certfile", "c.pem"]);
    r.assert_failure();
    assert!(r.stderr.contains("--ssl-keyfile"), "{}", r.stderr);
}

#[test]
fn start_with_missing_certificate_files_fails_naming_the_file() {
    let r = run([
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
    let dir = TempDir::new("cli-garbage");
    let cert = dir.path().join("garbage.crt");
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let cert_arg = cert.to_string_lossy().into_owned();
    let r = run([
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
    r.assert_failure();
    assert!(r.stderr.contains("garbage.crt"), "{}", r.stderr);
}

#[test]
fn start_with_a_missing_replay_directory_fails_naming_it() {
    let r = run(["start", "--replay", "/nonexistent/replay"]);
    r.assert_failure();
    assert!(
        r.stderr.contains("--replay") && r.stderr.contains("/nonexistent/replay"),
        "{}",
        r.stderr
    );
}

#[test]
fn start_with_a_custom_metric_script_fails_clearly() {
    let r = run([
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
    let r = run([
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
    let r = run(["get", "--replay", fixtures("busy").to_str().unwrap()]);
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
    let r = run([
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
    let r = run([
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
    let r = run([
        "get",
        "nope",
        "--replay",
        fixtures("idle").to_str().unwrap(),
    ]);
    r.assert_failure();
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
}

#[test]
fn get_without_libflux_core_fails_clearly() {
    let mut cmd = common::bin::command(["get"]);
    cmd.env("FLUX_CORE_LIB", "/nonexistent/libflux-core.so.2");
    let r = run_command(cmd);
    r.assert_failure();
    assert!(r.stderr.contains("libflux-core"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------------
// `start` serving

#[test]
fn start_serves_until_sigterm_then_exits_zero() {
    let server = start_replay(&fixtures("idle"), &[]);
    let (code, body) = common::bin::http_get(
        server.port,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/metrics/node_idle_count",
    )
    .expect("an answer");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["items"][0]["value"], "4", "{v}");
    let out = server.stop("TERM");
    assert_eq!(out.status.code(), Some(0), "{out}");
}

#[test]
fn start_exits_zero_on_sigint_too() {
    let out = start_replay(&fixtures("busy"), &[]).stop("INT");
    assert_eq!(out.status.code(), Some(0), "{out}");
}

#[test]
fn start_logs_to_stderr_and_keeps_stdout_clean() {
    let out = start_replay(&fixtures("idle"), &[]).stop("TERM");
    assert_eq!(out.status.code(), Some(0), "{out}");
    assert_eq!(out.stdout, "", "logs belong on stderr");
    assert!(out.stderr.contains("REPLAY"), "{out}");
    out.assert_no_panic();
}

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
    // The long forms name the commit and the build date (build.rs).
    for args in [&["--version"][..], &["version"]] {
        let r = run(args);
        let line = r.stdout.trim();
        let commit = line
            .split("(commit ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap_or_else(|| panic!("{args:?}: no commit in {line:?}"));
        assert!(
            commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
            "{args:?}: commit {commit:?} in {line:?}"
        );
        assert!(
            line.contains(", built 20") && line.ends_with("Z)"),
            "{line:?}"
        );
    }
}

#[test]
fn help_groups_flags_under_headings_and_lists_only_each_commands_own() {
    let start = run(["start", "--help"]);
    start.assert_success();
    let headings = [
        "Listening:",
        "TLS:",
        "Who may read:",
        "Flux broker:",
        "Custom metrics:",
        "History:",
        "Logging:",
    ];
    let mut at = 0;
    for h in headings {
        let found = start.stdout[at..]
            .find(&format!("\n{h}\n"))
            .unwrap_or_else(|| panic!("no heading {h} after byte {at}:\n{}", start.stdout));
        at += found + 1;
    }
    // The logging flags sit under Logging, not among the TLS flags.
    let tls = &start.stdout[start.stdout.find("\nTLS:\n").unwrap()..];
    let tls = &tls[..tls.find("\nWho may read:\n").unwrap()];
    assert!(!tls.contains("--verbose"), "{tls}");

    for sub in ["certs", "manifests", "completions"] {
        let r = run([sub, "--help"]);
        r.assert_success();
        for flag in ["--verbose", "--log-format", "--replay", "--flux-uri"] {
            assert!(
                !r.stdout.contains(flag),
                "`{sub} --help` lists {flag}:\n{}",
                r.stdout
            );
        }
    }
    let manifests = run(["manifests", "--help"]);
    assert!(
        manifests
            .stdout
            .contains("<--ca-file <FILE>|--insecure-skip-tls-verify>"),
        "the usage line does not show that one of them is required:\n{}",
        manifests.stdout
    );
    let r = run(["manifests"]);
    r.assert_failure();
    assert!(
        r.stderr.contains("--ca-file") && r.stderr.contains("--insecure-skip-tls-verify"),
        "{}",
        r.stderr
    );
    // Logging flags are still accepted before any command.
    run(["--quiet", "manifests", "--insecure-skip-tls-verify"]).assert_success();
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _flux__metrics__api"),
        ("zsh", "#compdef flux-metrics-api"),
        ("fish", "complete -c flux-metrics-api"),
    ] {
        let r = run(["completions", shell]);
        r.assert_success();
        assert!(r.stdout.contains(marker), "{shell}:\n{}", r.stdout);
        for word in ["record", "check", "replay", "ca-file"] {
            assert!(r.stdout.contains(word), "{shell} lacks {word}");
        }
    }
    run(["completions", "tcsh"]).assert_failure();
}

/// The man pages clap_mangen makes from the clap definitions: `flux-metrics-api.1`, then one
/// `flux-metrics-api-COMMAND.1` per command.
fn man_pages() -> Vec<(String, Vec<u8>)> {
    use clap::CommandFactory;
    // The plain version: the commit and build date of `--version` change with every build.
    let mut cli =
        flux_metrics::cli::Cli::command().long_version(flux_metrics::util::version::VERSION);
    cli.build();
    let render = |cmd: clap::Command| {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut out)
            .expect("rendering a man page");
        out
    };
    let mut pages = vec![("flux-metrics-api.1".to_owned(), render(cli.clone()))];
    for sub in cli.get_subcommands().filter(|s| s.get_name() != "help") {
        // clap takes a 'static name (its `string` feature is off); a test may leak it.
        let name: &'static str = format!("flux-metrics-api-{}", sub.get_name()).leak();
        pages.push((format!("{name}.1"), render(sub.clone().name(name))));
    }
    pages
}

#[test]
fn man_pages_in_docs_are_the_ones_the_code_makes() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/man");
    let bless = std::env::var_os("FLUX_METRICS_BLESS").is_some();
    let mut stale = Vec::new();
    for (name, page) in man_pages() {
        let path = dir.join(&name);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &page).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&page[..]) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "docs/man/ differs from the clap definitions for {stale:?}: run `FLUX_METRICS_BLESS=1 cargo test --test cli man_pages` and commit docs/man/"
    );
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
fn start_with_a_replay_directory_without_answers_names_the_missing_file() {
    let tmp = TempDir::new("cli-empty");
    let dir = tmp.path();
    let r = run(["start", "--replay", dir.to_str().unwrap(), "--port", "0"]);
    r.assert_failure();
    assert!(
        r.stderr.contains("resource.sched-status.json") && r.stderr.contains("record"),
        "{}",
        r.stderr
    );
}

#[test]
fn no_cache_with_a_max_age_is_refused_naming_both() {
    let r = run(["start", "--no-cache", "--max-age", "3s"]);
    r.assert_failure();
    assert!(
        r.stderr.contains("--no-cache") && r.stderr.contains("--max-age"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_python_custom_metric_file_gets_a_hint_that_scripts_are_rhai() {
    let tmp = TempDir::new("cli-py");
    let dir = tmp.path();
    let script = dir.join("metrics.py");
    std::fs::write(
        &script,
        "import flux.resource\n\ndef my_metric(handle):\n    return 1\n",
    )
    .unwrap();
    let r = run([
        "get",
        "--replay",
        fixtures("idle").to_str().unwrap(),
        "--custom-metric",
        script.to_str().unwrap(),
    ]);
    r.assert_failure();
    assert!(
        r.stderr.contains("metrics.py") && r.stderr.contains("Rhai scripts, not Python"),
        "{}",
        r.stderr
    );
}

#[test]
fn get_prints_a_failing_custom_metric_once() {
    let tmp = TempDir::new("cli-fail");
    let dir = tmp.path();
    let script = dir.join("broken.rhai");
    std::fs::write(&script, "fn broken_metric(flux) { throw \"boom\"; }\n").unwrap();
    let r = run([
        "get",
        "--replay",
        fixtures("idle").to_str().unwrap(),
        "--custom-metric",
        script.to_str().unwrap(),
    ]);
    r.assert_failure();
    assert_eq!(r.stderr.matches("boom").count(), 1, "{}", r.stderr);
    assert!(r.stdout.contains("node_up_count"), "{}", r.stdout);
}

#[test]
fn check_reports_each_input_with_a_fix_and_fails_when_one_fails() {
    let idle = fixtures("idle");
    let r = run(["check", "--replay", idle.to_str().unwrap()]);
    r.assert_success();
    assert!(
        r.stdout
            .contains("ok    replay directory: answers: 4 of 4 nodes up"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("note  serving certificate"),
        "{}",
        r.stdout
    );

    let tmp = TempDir::new("cli-check");
    let dir = tmp.path();
    let script = dir.join("broken.rhai");
    std::fs::write(&script, "fn broken_metric(flux) { throw \"boom\"; }\n").unwrap();
    let r = run([
        "check",
        "--replay",
        idle.to_str().unwrap(),
        "--custom-metric",
        script.to_str().unwrap(),
        "--client-ca-file",
        "/nonexistent/ca.crt",
    ]);
    r.assert_failure();
    for want in [
        "FAIL  who may read: reading --client-ca-file /nonexistent/ca.crt",
        "FAIL  custom metric broken_metric:",
        "boom",
        "ok    custom metric files: loaded; metrics: broken_metric",
    ] {
        assert!(r.stdout.contains(want), "{want:?} missing:\n{}", r.stdout);
    }
    assert_eq!(r.stdout.matches("\n      fix: ").count(), 3, "{}", r.stdout);
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
    // Where to go without Flux, said once.
    assert_eq!(r.stderr.matches("--replay DIR").count(), 1, "{}", r.stderr);
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

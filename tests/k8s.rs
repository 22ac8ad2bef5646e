//! The server on a real Kubernetes control plane: runs `scripts/k8s-e2e.sh` (etcd,
//! kube-apiserver and kube-controller-manager on 127.0.0.1, the server registered with what
//! `certs` and `manifests` produce, HPAs scaling MiniClusters on its answers) with the binary
//! cargo built, and fails if any of its checks fails. Its PASS/FAIL lines and `N passed, M
//! failed` go straight to the terminal.
//!
//! It needs kube-apiserver and kube-controller-manager 1.20.2, which `scripts/k8s-build.sh`
//! builds from Debian's source package into a cache (6-10 minutes once). Whether it runs is
//! decided by `K8S_E2E`:
//! - unset: it runs when `scripts/k8s-e2e.sh --check` finds everything, and otherwise prints a
//!   SKIPPED line with the command that provides what is missing;
//! - `0`: SKIPPED (a quicker `cargo test` for someone who has the cache);
//! - `1`: it must run; anything missing is a failure. `.ci/run` sets it after building the
//!   cache, so CI runs the e2e exactly once, here.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Our binary.
const BIN: &str = env!("CARGO_BIN_EXE_flux-metrics-api");

/// Longest the whole e2e may run (it takes one to two minutes; every wait in it gives up
/// sooner, so this only catches a command that hangs).
const DEADLINE: Duration = Duration::from_secs(20 * 60);

/// Written to the real stderr, not with eprintln!: libtest captures eprintln! output of passing
/// tests, and a SKIPPED line must be seen in a plain `cargo test` run.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[test]
fn server_serves_a_real_kube_apiserver_and_hpa_controller() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("scripts/k8s-e2e.sh");
    let mode = std::env::var("K8S_E2E").unwrap_or_default();
    if mode == "0" {
        say("SKIPPED: tests/k8s.rs (K8S_E2E=0); run it with `cargo test --test k8s`");
        return;
    }
    let check = Command::new("bash")
        .arg(&script)
        .arg("--check")
        .output()
        .expect("running scripts/k8s-e2e.sh --check");
    if !check.status.success() {
        let missing = String::from_utf8_lossy(&check.stderr);
        let missing = missing.trim().replace('\n', "; ");
        assert_ne!(
            mode, "1",
            "K8S_E2E=1 but the e2e cannot run: {missing} ({})",
            check.status
        );
        assert_eq!(
            check.status.code(),
            Some(3),
            "scripts/k8s-e2e.sh --check failed: {missing}"
        );
        say(&format!(
            "SKIPPED: tests/k8s.rs: {missing}; then `cargo test --test k8s`"
        ));
        return;
    }
    // Its own process group, so that a run past the deadline can be stopped whole (the script
    // stops what it started on TERM).
    let mut child = Command::new("bash")
        .arg(&script)
        .env("FLUX_METRICS_API", BIN)
        .current_dir(root)
        .process_group(0)
        .spawn()
        .expect("running scripts/k8s-e2e.sh");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for scripts/k8s-e2e.sh") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            std::thread::sleep(Duration::from_secs(30));
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            panic!(
                "scripts/k8s-e2e.sh still ran after {}s, and was stopped (each of its waits has a timeout: look for a hung command in the logs it names)",
                DEADLINE.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        status.success(),
        "scripts/k8s-e2e.sh failed ({status}): its FAIL lines above say what, and the directory it names holds the logs"
    );
}

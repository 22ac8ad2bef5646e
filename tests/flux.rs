//! End-to-end tests against a real Flux broker (STYLE.md §8).
//!
//! `live_metrics_match_flux_tools` starts `flux start --test-size=4`, drains a rank, submits jobs
//! that end up in every state a scenario can hold still in (running, waiting for resources,
//! held, waiting on a dependency, completed, failed, canceled, timed out), and then compares
//! every metric of the catalogue, as `flux-metrics-api get` and the HTTP server report it, with
//! what flux's own tools (`flux resource list`, `flux resource status`, `flux jobs`) say. The
//! server also loads `example/custom-metrics.rhai` (`--custom-metric`), whose metrics are
//! compared with `flux resource list` and `flux resource status` the same way.
//!
//! `live_drain_before_shrink` runs `--drain-before-shrink` on `flux start --test-size=8`: drains
//! after the delay, an administrator's drain left alone, undrains when a job needs the ranks,
//! an administrator's undrain respected, the drains lifted on SIGTERM.
//! `live_drain_before_shrink_with_brokers_leaving` does it on brokers that leave and join again
//! as a MiniCluster's pods do (`--test-hosts` and a [bootstrap] config): the drained ranks'
//! brokers stop, their drains stay and count, a wide job gets them undrained, new brokers join.
//!
//! `live_server_answers_503_when_the_broker_goes_away` points a server outside any instance at
//! an instance's URI, stops the instance, and checks that metric requests and `/readyz` answer
//! 503 once `--flux-timeout` runs out and that the server still stops cleanly.
//!
//! `a_recorded_directory_replays_to_the_live_values` records an instance with `record` and
//! checks that `get --replay` of the directory prints what `get` printed live.
//!
//! They need `flux` on PATH. Without it they print one SKIPPED line and pass: CI has no Flux,
//! the devcontainer and a developer's build do. Run them with
//! `PATH=/opt/flux-core/bin:$PATH cargo test --test flux -- --nocapture`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use common::TempDir;
use common::bin::{BIN, Process, free_port, http_get, send_signal};
use flux_metrics::source::catalogue::CATALOGUE;

const SKIPPED: &str = "SKIPPED: tests/flux.rs needs a Flux instance: put flux-core's bin directory on PATH (and FLUX_CORE_LIB if libflux-core.so.2 is not on the loader path)";

/// Brokers in the instance of the scenario test (`flux start --test-size`).
const SIZE: u32 = 4;

/// The rank the scenario drains.
const DRAINED_RANK: u32 = 3;

/// The longest a whole scenario may take before its instance is killed.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);

/// Live tests start Flux instances; one at a time keeps a small machine responsive.
static SERIAL: Mutex<()> = Mutex::new(());

/// Where `flux` is, or `None` after printing the SKIPPED line (once per test binary).
fn flux_or_skip() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("flux"))
            .find(|f| is_executable(f))
    });
    if found.is_none() {
        static ONCE: Once = Once::new();
        // Written to the real stderr, not with eprintln!: libtest captures eprintln! output of
        // passing tests, and this line must be seen in a plain `cargo test` run.
        ONCE.call_once(|| {
            let _ = writeln!(std::io::stderr(), "{SKIPPED}");
        });
    }
    found
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `FLUX_CORE_LIB` for our binary: the caller's, else the library installed next to `flux`
/// (`<prefix>/bin/flux` → `<prefix>/lib/libflux-core.so.2`), else none (the loader path).
fn flux_core_lib(flux: &Path) -> Option<OsString> {
    if let Some(lib) = std::env::var_os("FLUX_CORE_LIB") {
        return Some(lib);
    }
    let prefix = flux.parent()?.parent()?;
    let lib = prefix.join("lib/libflux-core.so.2");
    lib.is_file().then(|| lib.into_os_string())
}

/// Polls `path` until the server answers at all (it binds shortly after it starts).
fn wait_for_server(port: u16, path: &str, limit: Duration) -> (u16, String) {
    let deadline = Instant::now() + limit;
    loop {
        match http_get(port, path) {
            Ok(answer) => return answer,
            Err(e) if Instant::now() >= deadline => {
                panic!("the server on port {port} never answered {path}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The value of `metric` from the external metrics API (one series: the whole instance).
fn external_value(port: u16, metric: &str) -> Result<u64, String> {
    let path = format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/{metric}");
    let (status, body) = http_get(port, &path).map_err(|e| format!("GET {path}: {e}"))?;
    if status != 200 {
        return Err(format!("GET {path}: status {status}: {body}"));
    }
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("GET {path}: {e}: {body}"))?;
    v["items"][0]["value"]
        .as_str()
        .and_then(|q| q.parse().ok())
        .ok_or_else(|| format!("GET {path}: no integer items[0].value in {body}"))
}

/// `example/custom-metrics.rhai`, which the live server loads with `--custom-metric`.
fn example_custom_metrics() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("example/custom-metrics.rhai")
}

/// The value of a Kubernetes Quantity in decimal form (`5`, `375m`, `166666667n`, `2k`).
fn parse_quantity(text: &str) -> Option<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let scale = match suffix {
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        _ => return None,
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

/// The Quantity text of `metric` from the custom metrics v1beta2 API (Namespace `default`).
fn custom_value(port: u16, metric: &str) -> Result<String, String> {
    let path = format!("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/{metric}");
    let (status, body) = http_get(port, &path).map_err(|e| format!("GET {path}: {e}"))?;
    if status != 200 {
        return Err(format!("GET {path}: status {status}: {body}"));
    }
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("GET {path}: {e}: {body}"))?;
    let item = &v["items"][0];
    if item["metric"]["name"] != metric {
        return Err(format!("GET {path}: not an answer about {metric}: {body}"));
    }
    item["value"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("GET {path}: no string items[0].value in {body}"))
}

/// What flux's tools say that the example's custom metrics are made of.
struct CustomExpected {
    free_cores: u64,
    allocated_cores: u64,
    up_cores: u64,
    offline: u64,
}

fn custom_expected(out: &BTreeMap<String, Vec<String>>) -> CustomExpected {
    let rl = parse_resource_list(&out["resource-list before"]);
    let cores = |state: &str| rl.get(state).map_or(0, |l| l.ncores);
    // `flux resource status` marks offline nodes with a `*` after their state ("avail*").
    let offline = out["resource-status before"]
        .iter()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|s| s.ends_with('*'))
        })
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("unexpected `flux resource status` line {l:?}"))
        })
        .sum();
    CustomExpected {
        free_cores: cores("free"),
        allocated_cores: cores("allocated"),
        up_cores: cores("up"),
        offline,
    }
}

/// Compares the example file's metrics, served by the live server, with flux's tools.
fn check_custom_metrics(port: u16, want: &CustomExpected, problems: &mut Vec<String>) {
    let fraction = if want.up_cores == 0 {
        0.0
    } else {
        want.allocated_cores as f64 / want.up_cores as f64
    };
    let mut table = String::new();
    for (metric, expected, how) in [
        (
            "my_custom_metric_name",
            want.free_cores as f64,
            "flux resource list: free ncores".to_owned(),
        ),
        (
            "cores_allocated_fraction",
            fraction,
            format!(
                "flux resource list: allocated ncores {} / up ncores {}",
                want.allocated_cores, want.up_cores
            ),
        ),
        (
            "offline_nodes_count",
            want.offline as f64,
            "flux resource status: nnodes of offline (`*`) states".to_owned(),
        ),
    ] {
        let ours = custom_value(port, metric);
        // A Quantity has nano precision and rounds up.
        let ok = match &ours {
            Ok(text) => parse_quantity(text).is_some_and(|v| (v - expected).abs() < 2e-9),
            Err(_) => false,
        };
        let _ = writeln!(
            table,
            "{:8} {metric:32} flux {expected:>8.6}  ours {:>10}  ({how})",
            if ok { "ok" } else { "MISMATCH" },
            ours.as_deref().unwrap_or("-")
        );
        match ours {
            Ok(_) if ok => {}
            Ok(text) => problems.push(format!(
                "custom metric {metric}: flux's tools say {expected} ({how}), the server says {text:?}"
            )),
            Err(e) => problems.push(format!("custom metric {metric}: {e}")),
        }
    }
    eprintln!("custom metrics of example/custom-metrics.rhai (flux tools vs the server):\n{table}");

    // The instance has no named queues: batch_pending_jobs fails, naming the queue, and the
    // others above still answered.
    let path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/batch_pending_jobs";
    match http_get(port, path) {
        Ok((500, body)) if body.contains("\\\"batch\\\"") => {}
        other => problems.push(format!(
            "GET {path}: expected a 500 naming queue \"batch\" (the instance has no named queues), got {other:?}"
        )),
    }
    // Listed in discovery next to the built-in metrics.
    let path = "/apis/custom.metrics.k8s.io/v1beta2";
    match http_get(port, path) {
        Ok((200, body)) => {
            for metric in [
                "my_custom_metric_name",
                "cores_allocated_fraction",
                "offline_nodes_count",
                "batch_pending_jobs",
            ] {
                if !body.contains(&format!("\"namespaces/{metric}\"")) {
                    problems.push(format!("GET {path}: {metric} is not listed: {body}"));
                }
            }
        }
        other => problems.push(format!("GET {path}: {other:?}")),
    }
}

/// An idset as flux prints it (`0-2,5`; empty for none).
fn idset(s: &str) -> BTreeSet<u32> {
    let mut set = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi): (u32, u32) = (
            lo.parse().unwrap_or_else(|_| panic!("bad idset {s:?}")),
            hi.parse().unwrap_or_else(|_| panic!("bad idset {s:?}")),
        );
        set.extend(lo..=hi);
    }
    set
}

/// One line of `flux resource list -no '{state} {nnodes} {ncores} {ngpus} {ranks}'`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct ResourceLine {
    nnodes: u64,
    ncores: u64,
    ngpus: u64,
    ranks: BTreeSet<u32>,
}

fn parse_resource_list(lines: &[String]) -> BTreeMap<String, ResourceLine> {
    lines
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert!(
                f.len() == 4 || f.len() == 5,
                "unexpected `flux resource list` line {l:?}"
            );
            let n = |i: usize| -> u64 { f[i].parse().unwrap_or_else(|_| panic!("{l:?}")) };
            let line = ResourceLine {
                nnodes: n(1),
                ncores: n(2),
                ngpus: n(3),
                ranks: idset(f.get(4).copied().unwrap_or("")),
            };
            assert_eq!(
                line.ranks.len() as u64,
                line.nnodes,
                "nnodes and ranks disagree in {l:?}"
            );
            (f[0].to_owned(), line)
        })
        .collect()
}

/// One line of `flux jobs -no '{id}|{state}|{nnodes}|{ncores}|{urgency}|{result}|{t_submit}'`.
#[derive(Debug)]
struct JobLine {
    state: String,
    nnodes: Option<u64>,
    ncores: Option<u64>,
    urgency: i64,
    result: String,
    t_submit: f64,
}

fn parse_jobs(lines: &[String]) -> Vec<JobLine> {
    lines
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split('|').map(str::trim).collect();
            assert_eq!(f.len(), 7, "unexpected `flux jobs` line {l:?}");
            let opt = |s: &str| -> Option<u64> {
                (!s.is_empty()).then(|| s.parse().unwrap_or_else(|_| panic!("{l:?}")))
            };
            JobLine {
                state: f[1].to_owned(),
                nnodes: opt(f[2]),
                ncores: opt(f[3]),
                urgency: f[4].parse().unwrap_or_else(|_| panic!("{l:?}")),
                result: f[5].to_owned(),
                t_submit: f[6].parse().unwrap_or_else(|_| panic!("{l:?}")),
            }
        })
        .collect()
}

/// `flux jobs --stats-only`: "R running, C completed, F failed, P pending, I inactive purged".
fn parse_stats(line: &str) -> BTreeMap<String, u64> {
    line.split(',')
        .map(|part| {
            let part = part.trim();
            let (n, what) = part
                .split_once(' ')
                .unwrap_or_else(|| panic!("unexpected `flux jobs --stats-only` line {line:?}"));
            let n = n
                .parse()
                .unwrap_or_else(|_| panic!("unexpected `flux jobs --stats-only` line {line:?}"));
            (what.to_owned(), n)
        })
        .collect()
}

/// Sections of the script's output: `=== name` followed by its lines.
fn sections(lines: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = None;
    for l in lines {
        if let Some(name) = l.strip_prefix("=== ") {
            current = Some(name.to_owned());
            out.entry(name.to_owned()).or_default();
        } else if let Some(name) = &current {
            out.entry(name.clone()).or_default().push(l.clone());
        }
    }
    out
}

/// The scenario. Runs as the initial program of `flux start --test-size=4`. It prints what flux's
/// tools say, our `get -o json`, and the tools again (the state must not move in between), then
/// starts our server and waits for the test to release it.
const SCENARIO: &str = r#"
set -eu
say() { printf '=== %s\n' "$*"; }

flux resource drain "$DRAINED_RANK" "tests/flux.rs: drained on purpose"

# Finished jobs: one of each result.
flux run true
! flux run false 2>/dev/null
canceled=$(flux submit --urgency=hold true)
flux cancel "$canceled"
flux run --time-limit=1s sleep 30 2>/dev/null || true

# Running: a whole node, and one core of another (so a node is free but not idle).
node=$(flux submit -N1 sleep 300)
core=$(flux submit -n1 sleep 300)
flux job wait-event -t 30 "$node" start >/dev/null
flux job wait-event -t 30 "$core" start >/dev/null

# Waiting: 4 nodes (never fits: a rank is drained) first, so the FIFO scheduler holds every job
# behind it; then core-only requests (3 + 1 cores), a held job (urgency 0) and a dependency.
wide=$(flux submit -N4 sleep 300)
held=$(flux submit --urgency=hold -n1 sleep 300)
cores3=$(flux submit -n3 sleep 300)
cores1=$(flux submit -n1 sleep 300)
dep=$(flux submit --dependency=afterok:"$node" sleep 300)
for j in "$wide" "$held" "$cores3" "$cores1"; do
    flux job wait-event -t 30 "$j" priority >/dev/null
done
flux job wait-event -t 30 "$dep" validate >/dev/null
sleep 1

tools() {
    say "resource-list $1"
    flux resource list -s up,free,allocated,down,all -no '{state} {nnodes} {ncores} {ngpus} {ranks}'
    say "resource-status $1"
    flux resource status -no '{state} {nnodes} {ranks}'
    say "jobs-stats $1"
    flux jobs --stats-only || true
    say "jobs $1"
    flux jobs -A -a -c 0 -no '{id}|{state}|{nnodes}|{ncores}|{urgency}|{result}|{t_submit}'
}
tools before
say "cores-per-rank"
r=0
while [ "$r" -lt "$SIZE" ]; do
    echo "$r $(flux resource list -s all -i "$r" -no '{ncores} {ngpus}')"
    r=$((r + 1))
done
say "clock-before"
date +%s.%N
say "get"
"$FMA_BIN" get -o json
say "clock-after"
date +%s.%N
tools after
say "human-readable"
flux resource list
flux resource status
flux jobs -A -a

"$FMA_BIN" start --insecure-http --host 127.0.0.1 --port "$FMA_PORT" --no-cache \
    --custom-metric "$FMA_CUSTOM" 2>"$FMA_DIR/server.log" &
server=$!
say "server-started"
i=0
while [ ! -e "$FMA_DIR/release" ] && [ "$i" -lt 900 ]; do sleep 0.1; i=$((i + 1)); done
kill -TERM "$server"
rc=0
wait "$server" || rc=$?
say "server-exit $rc"
flux cancel --all -q >/dev/null 2>&1 || true
"#;

/// What every metric should be, from flux's tools, with how it was derived.
fn expected(
    out: &BTreeMap<String, Vec<String>>,
) -> (BTreeMap<&'static str, (u64, String)>, Vec<String>) {
    let rl = parse_resource_list(&out["resource-list before"]);
    let state = |s: &str| {
        rl.get(s)
            .cloned()
            .unwrap_or_else(|| panic!("`flux resource list` printed no {s} line"))
    };
    let (up, free, allocated, down, all) = (
        state("up"),
        state("free"),
        state("allocated"),
        state("down"),
        state("all"),
    );
    let drained: u64 = out["resource-status before"]
        .iter()
        .filter(|l| l.starts_with("drain")) // drained and draining
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("unexpected `flux resource status` line {l:?}"))
        })
        .sum();
    let max_cores = out["cores-per-rank"]
        .iter()
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("unexpected cores-per-rank line {l:?}"))
        })
        .max()
        .unwrap_or(0);
    let stats = parse_stats(
        out["jobs-stats before"]
            .first()
            .expect("`flux jobs --stats-only` printed nothing"),
    );
    let jobs = parse_jobs(&out["jobs before"]);
    let in_state = |s: &str| jobs.iter().filter(|j| j.state == s).count() as u64;
    let with_result = |r: &str| {
        jobs.iter()
            .filter(|j| j.state == "INACTIVE" && j.result == r)
            .count() as u64
    };

    let idle = up.ranks.difference(&allocated.ranks).count() as u64;
    let min_size = allocated.ranks.last().map_or(0, |r| u64::from(*r) + 1);
    let (depend, priority, sched) = (in_state("DEPEND"), in_state("PRIORITY"), in_state("SCHED"));
    let mut problems_early = Vec::new();
    let (mut demand_nodes, mut demand_cores) = (0, 0);
    for j in &jobs {
        if (j.state == "PRIORITY" || j.state == "SCHED") && j.urgency > 0 {
            match (j.nnodes, j.ncores) {
                (Some(n), _) => demand_nodes += n,
                (None, c) => demand_cores += c.unwrap_or(1),
            }
        }
    }
    let pending_nodes = demand_nodes + demand_cores.div_ceil(max_cores.max(1));
    // The desired size places the waiting jobs first-fit beside what runs; in this scenario the
    // widest waiting job asks for more nodes than are not drained, so it fits nowhere and the
    // size is the whole set (checked below, or this derivation does not hold).
    let widest = jobs
        .iter()
        .filter(|j| (j.state == "PRIORITY" || j.state == "SCHED") && j.urgency > 0)
        .filter_map(|j| j.nnodes)
        .max()
        .unwrap_or(0);
    let undrained = all.nnodes - drained;
    if widest <= undrained {
        problems_early.push(format!(
            "the scenario's widest waiting job asks for {widest} nodes, which {undrained} undrained nodes can hold: the desired size is not the whole set"
        ));
    }
    let desired = all.nnodes;
    // How long the oldest runnable waiting job has waited when `get` ran.
    let oldest_submit = jobs
        .iter()
        .filter(|j| (j.state == "PRIORITY" || j.state == "SCHED") && j.urgency > 0)
        .map(|j| j.t_submit)
        .fold(f64::INFINITY, f64::min);
    let clock = |section: &str| -> f64 {
        out[section]
            .first()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected {section} section {:?}", out[section]))
    };
    let oldest_wait = (clock("clock-before") - oldest_submit).floor().max(0.0) as u64;
    // Ranks a job can still land on (any state but drained, offline, excluded), or that run one.
    let mut open: BTreeSet<u32> = allocated.ranks.clone();
    for l in &out["resource-status before"] {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [state, _, ranks] = f[..] {
            if !matches!(state, "drained" | "offline" | "exclude") {
                open.extend(idset(ranks));
            }
        }
    }
    let safe_size = open.last().map_or(1, |r| u64::from(*r) + 1);
    // Ranks whose broker runs: those of every state of `flux resource status` but offline.
    let mut online: BTreeSet<u32> = BTreeSet::new();
    for l in &out["resource-status before"] {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [state, _, ranks] = f[..] {
            if state != "offline" && state != "STATE" {
                online.extend(idset(ranks));
            }
        }
    }
    let current_size = online.last().map_or(0, |r| u64::from(*r) + 1);

    // `flux jobs --stats` folds canceled and timed-out jobs into "failed" and cleanup into
    // "running"; the per-state and per-result counts come from the job listing, and must add up
    // to what --stats says.
    let mut problems = problems_early;
    let (successful, failed, canceled, timeout) = (
        with_result("COMPLETED"),
        with_result("FAILED"),
        with_result("CANCELED"),
        with_result("TIMEOUT"),
    );
    let (run, cleanup) = (in_state("RUN"), in_state("CLEANUP"));
    for (what, listed, said) in [
        ("pending", depend + priority + sched, stats.get("pending")),
        ("running", run + cleanup, stats.get("running")),
        ("completed", successful, stats.get("completed")),
        ("failed", failed + canceled + timeout, stats.get("failed")),
    ] {
        if Some(&listed) != said {
            problems.push(format!(
                "flux disagrees with itself: `flux jobs -a` gives {what} = {listed}, `flux jobs --stats-only` says {said:?}"
            ));
        }
    }

    let e = |v: u64, how: &str| (v, how.to_owned());
    let want = BTreeMap::from([
        (
            "node_up_count",
            e(up.nnodes, "flux resource list: up nnodes"),
        ),
        (
            "node_free_count",
            e(free.nnodes, "flux resource list: free nnodes"),
        ),
        (
            "node_cores_up_count",
            e(up.ncores, "flux resource list: up ncores"),
        ),
        (
            "node_cores_free_count",
            e(free.ncores, "flux resource list: free ncores"),
        ),
        (
            "node_idle_count",
            e(
                idle,
                "flux resource list: up ranks not in the allocated ranks",
            ),
        ),
        (
            "node_down_count",
            e(down.nnodes, "flux resource list: down nnodes"),
        ),
        (
            "node_drained_count",
            e(drained, "flux resource status: drained + draining nnodes"),
        ),
        (
            "node_allocated_count",
            e(allocated.nnodes, "flux resource list: allocated nnodes"),
        ),
        (
            "node_gpus_up_count",
            e(up.ngpus, "flux resource list: up ngpus"),
        ),
        (
            "node_gpus_free_count",
            e(free.ngpus, "flux resource list: free ngpus"),
        ),
        (
            "node_cores_allocated_count",
            e(
                up.ncores - free.ncores,
                "flux resource list: up ncores - free ncores",
            ),
        ),
        (
            "job_queue_state_new_count",
            e(in_state("NEW"), "flux jobs -a: state NEW"),
        ),
        (
            "job_queue_state_depend_count",
            e(depend, "flux jobs -a: state DEPEND"),
        ),
        (
            "job_queue_state_priority_count",
            e(priority, "flux jobs -a: state PRIORITY"),
        ),
        (
            "job_queue_state_sched_count",
            e(sched, "flux jobs -a: state SCHED"),
        ),
        (
            "job_queue_state_run_count",
            e(run, "flux jobs -a: state RUN"),
        ),
        (
            "job_queue_state_cleanup_count",
            e(cleanup, "flux jobs -a: state CLEANUP"),
        ),
        (
            "job_queue_state_inactive_count",
            e(in_state("INACTIVE"), "flux jobs -a: state INACTIVE"),
        ),
        (
            "job_queue_pending_count",
            e(depend + priority + sched, "flux jobs --stats-only: pending"),
        ),
        (
            "job_successful_count",
            e(successful, "flux jobs -a: result COMPLETED"),
        ),
        ("job_failed_count", e(failed, "flux jobs -a: result FAILED")),
        (
            "job_canceled_count",
            e(canceled, "flux jobs -a: result CANCELED"),
        ),
        (
            "job_timeout_count",
            e(timeout, "flux jobs -a: result TIMEOUT"),
        ),
        (
            "job_pending_nodes_count",
            e(
                pending_nodes,
                &format!(
                    "flux jobs -a: PRIORITY/SCHED jobs with urgency > 0: {demand_nodes} nodes + ceil({demand_cores} cores / {max_cores} cores per node)"
                ),
            ),
        ),
        (
            "minicluster_min_size",
            e(min_size, "flux resource list: highest allocated rank + 1"),
        ),
        (
            "minicluster_current_size",
            e(
                current_size,
                "flux resource status: highest rank that is not offline + 1",
            ),
        ),
        (
            "minicluster_desired_size",
            e(
                desired,
                &format!(
                    "the {widest}-node job fits on no {undrained} undrained nodes: all {}",
                    all.nnodes
                ),
            ),
        ),
        (
            "job_oldest_wait_seconds",
            e(
                oldest_wait,
                "date when get ran - the oldest t_submit of flux jobs' PRIORITY/SCHED jobs with urgency > 0 (give or take the seconds get took)",
            ),
        ),
        (
            "minicluster_safe_size",
            e(
                safe_size,
                "flux resource status: highest rank neither drained nor offline, or allocated, + 1",
            ),
        ),
        (
            "node_shrink_drained_count",
            e(
                0,
                "flux resource drain: no drain has the reason flux-metrics-api: shrinking to N",
            ),
        ),
    ]);
    (want, problems)
}

#[test]
fn live_metrics_match_flux_tools() {
    let Some(flux) = flux_or_skip() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = TempDir::new("flux-scenario");
    let port = free_port();
    let mut cmd = Command::new(&flux);
    cmd.args([
        "start",
        &format!("--test-size={SIZE}"),
        "sh",
        "-c",
        SCENARIO,
    ])
    .current_dir(scratch.path())
    .env("SIZE", SIZE.to_string())
    .env("DRAINED_RANK", DRAINED_RANK.to_string())
    .env("FMA_BIN", BIN)
    .env("FMA_PORT", port.to_string())
    .env("FMA_DIR", scratch.path())
    .env("FMA_CUSTOM", example_custom_metrics());
    if let Some(lib) = flux_core_lib(&flux) {
        cmd.env("FLUX_CORE_LIB", lib);
    }
    let started = Instant::now();
    let deadline = started + SCENARIO_TIMEOUT;
    let mut instance = Process::spawn(cmd);

    let (lines, _) = instance.until("=== server-started", deadline);
    let out = sections(&lines);
    let report = instance.report();
    for name in [
        "resource-list before",
        "resource-status before",
        "jobs-stats before",
        "jobs before",
        "cores-per-rank",
        "get",
        "resource-list after",
        "resource-status after",
        "jobs-stats after",
        "jobs after",
    ] {
        assert!(
            out.contains_key(name),
            "the script printed no section {name}\n{report}"
        );
    }

    // The state must hold still while it is measured, or a mismatch proves nothing.
    for s in ["resource-list", "resource-status", "jobs-stats", "jobs"] {
        assert_eq!(
            out[&format!("{s} before")],
            out[&format!("{s} after")],
            "the state moved while it was measured ({s} before and after `get` differ)\n{report}"
        );
    }

    let get: serde_json::Value = serde_json::from_str(&out["get"].join("\n")).unwrap_or_else(|e| {
        panic!("`flux-metrics-api get -o json` printed no JSON: {e}\n{report}")
    });
    let (want, mut problems) = std::panic::catch_unwind(|| expected(&out)).unwrap_or_else(|_| {
        panic!("cannot read flux's output (see the panic message above)\n{report}")
    });

    // Every metric of the catalogue has an expectation, and `get` prints exactly the catalogue.
    let catalogue: BTreeSet<&str> = CATALOGUE.iter().map(|m| m.name).collect();
    let expected_names: BTreeSet<&str> = want.keys().copied().collect();
    assert_eq!(
        catalogue, expected_names,
        "tests/flux.rs must state what flux's tools say for every metric of the catalogue"
    );
    let printed: BTreeSet<&str> = get["metrics"]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(printed, catalogue, "`get -o json` metrics\n{report}");
    assert_eq!(
        get["queues"],
        serde_json::json!({}),
        "the test instance has no named queues\n{report}"
    );

    let clock = |section: &str| -> f64 {
        out[section]
            .first()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("the script printed no time in {section}\n{report}"))
    };
    let (clock_before, clock_after) = (clock("clock-before"), clock("clock-after"));
    let mut table = String::new();
    for (name, (value, how)) in &want {
        let ours = get["metrics"][name].as_u64();
        // A wait is measured on the clock: `get` read it between the two `date`s.
        let slack = if *name == "job_oldest_wait_seconds" {
            (clock_after - clock_before).ceil() as u64 + 1
        } else {
            0
        };
        let agrees = ours.is_some_and(|o| o >= *value && o <= value + slack);
        let mark = if agrees { "ok" } else { "MISMATCH" };
        let _ = writeln!(
            table,
            "{mark:8} {name:32} flux {value:>3}  ours {:>3}  ({how})",
            ours.map_or("-".into(), |v| v.to_string())
        );
        if !agrees {
            problems.push(format!(
                "{name}: flux's tools say {value} ({how}), `flux-metrics-api get` says {ours:?}"
            ));
        }
    }
    eprintln!("metric comparison (flux tools vs flux-metrics-api get):\n{table}");

    // The scenario must cover what it sets out to, or the comparison above proves little.
    let v = |n: &str| want[n].0;
    for (what, holds) in [
        ("a drained rank", v("node_drained_count") == 1),
        (
            "a node free but not idle",
            v("node_free_count") > v("node_idle_count"),
        ),
        ("two running jobs", v("job_queue_state_run_count") == 2),
        (
            "a job waiting on a dependency",
            v("job_queue_state_depend_count") == 1,
        ),
        (
            "four jobs in SCHED (one held)",
            v("job_queue_state_sched_count") == 4,
        ),
        (
            "4 + ceil(4 / 2) pending nodes",
            v("job_pending_nodes_count") == 6,
        ),
        ("one job of each result", {
            [
                "job_successful_count",
                "job_failed_count",
                "job_canceled_count",
                "job_timeout_count",
            ]
            .iter()
            .all(|n| v(n) == 1)
        }),
    ] {
        if !holds {
            problems.push(format!("the scenario did not produce {what} (flux's scheduler behaves differently than this test expects)"));
        }
    }

    // The HTTP server, inside the same instance, answers the same values.
    let (status, body) = wait_for_server(port, "/readyz", Duration::from_secs(20));
    if status != 200 || !body.contains("readyz check passed") {
        problems.push(format!("/readyz: status {status}: {body}"));
    }
    let path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/node_up_count";
    let up = want["node_up_count"].0.to_string(); // a Quantity: a JSON string
    match http_get(port, path) {
        Ok((200, body)) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let item = &v["items"][0];
            let ok = item["metric"]["name"] == "node_up_count"
                && item["describedObject"]["kind"] == "Namespace"
                && item["describedObject"]["name"] == "default"
                && item["value"].as_str() == Some(up.as_str());
            if !ok {
                problems.push(format!(
                    "GET {path}: expected value \"{up}\" for Namespace default, got {body}"
                ));
            }
        }
        other => problems.push(format!("GET {path}: {other:?}")),
    }
    for (name, (value, how)) in &want {
        match external_value(port, name) {
            Ok(v) if v == *value => {}
            // The server answers after `get`: the oldest job has waited longer by then.
            Ok(v) if *name == "job_oldest_wait_seconds" && v > *value => {}
            Ok(v) => problems.push(format!(
                "{name}: flux's tools say {value} ({how}), the server's external metrics API says {v}"
            )),
            Err(e) => problems.push(e),
        }
    }
    // The example custom metrics, loaded by the same server, against flux's tools.
    let custom = custom_expected(&out);
    check_custom_metrics(port, &custom, &mut problems);
    std::fs::write(scratch.path().join("release"), b"").expect("releasing the script");

    let (_, exit) = instance.until("=== server-exit", deadline);
    if exit != "=== server-exit 0" {
        problems.push(format!(
            "the server did not exit 0 after SIGTERM: {exit}\n---- server log ----\n{}",
            scratch.read("server.log")
        ));
    }
    let status = instance.wait_for(deadline.saturating_duration_since(Instant::now()));
    if !status.is_some_and(|s| s.success()) {
        problems.push(format!("flux start ended with {status:?}"));
    }
    let report = instance.report();
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\n{table}\n{report}\n---- server log ----\n{}",
        problems.len(),
        problems.join("\n  "),
        scratch.read("server.log")
    );
    eprintln!(
        "live scenario passed in {:.1}s; the server answered every metric and exited 0 on SIGTERM",
        started.elapsed().as_secs_f64()
    );
}

/// What the broker-going-away test's instance runs: print the URI and the broker's pid, wait
/// for "stop".
const IDLE_INSTANCE: &str = r#"
printf '=== uri %s %s\n' "$FLUX_URI" "$(flux getattr broker.pid)"
i=0
while [ ! -e "$FMA_DIR/stop" ] && [ "$i" -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
"#;

/// GETs each path once, expecting `want`; records what happened (and how long it took, for the
/// reader) in `seen`. No speed is asserted: with a stopped broker a 503 can only come from
/// `--flux-timeout` running out, and [`http_get`] gives up long before a hang would end.
fn expect_status(
    port: u16,
    paths: &[&str],
    want: u16,
    seen: &mut String,
    problems: &mut Vec<String>,
) {
    for path in paths {
        let asked = Instant::now();
        let answer = http_get(port, path);
        let _ = writeln!(seen, "GET {path} -> {answer:?} in {:?}", asked.elapsed());
        match answer {
            Ok((status, _)) if status == want => {}
            other => problems.push(format!("GET {path}: expected {want}, got {other:?}")),
        }
    }
}

#[test]
fn live_server_answers_503_when_the_broker_goes_away() {
    let Some(flux) = flux_or_skip() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = TempDir::new("flux-goes-away");
    let mut cmd = Command::new(&flux);
    cmd.args(["start", "--test-size=1", "sh", "-c", IDLE_INSTANCE])
        .current_dir(scratch.path())
        .env("FMA_DIR", scratch.path());
    let mut instance = Process::spawn(cmd);
    let (_, line) = instance.until("=== uri ", Instant::now() + Duration::from_secs(60));
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (uri, broker_pid) = match fields[..] {
        [_, _, uri, pid] if uri.starts_with("local://") => match pid.parse::<u32>() {
            Ok(pid) => (uri.to_owned(), pid),
            Err(_) => panic!("bad broker pid in {line:?}\n{}", instance.report()),
        },
        _ => panic!("unexpected line {line:?}\n{}", instance.report()),
    };

    // The server runs outside the instance and finds it only through --flux-uri.
    let started = common::bin::start(|port| {
        let mut server = common::bin::command(["start", "--insecure-http", "--host", "127.0.0.1"]);
        server
            .args(["--no-cache", "--shutdown-grace", "5s"])
            .args(["--port", &port.to_string(), "--flux-uri", &uri])
            .args(["--flux-timeout", "2s"])
            .current_dir(scratch.path());
        if let Some(lib) = flux_core_lib(&flux) {
            server.env("FLUX_CORE_LIB", lib);
        }
        Process::spawn(server)
    });
    let (mut server, port) = (started.process, started.port);
    let metric = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/node_up_count";

    let (status, body) = wait_for_server(port, "/readyz", Duration::from_secs(20));
    assert_eq!(
        status,
        200,
        "/readyz with the instance up: {body}\n{}",
        server.report()
    );
    assert_eq!(
        external_value(port, "node_up_count"),
        Ok(1),
        "{}",
        server.report()
    );

    let mut problems = Vec::new();
    let mut seen = String::from("-- broker stopped (SIGSTOP): no answers --\n");
    // A broker that stops answering: every request gives up after --flux-timeout.
    send_signal("STOP", broker_pid);
    expect_status(port, &[metric, "/readyz"], 503, &mut seen, &mut problems);
    send_signal("CONT", broker_pid);
    // ... and answers resume once it does (the same URI: same instance).
    seen.push_str("-- broker continued (SIGCONT) --\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = http_get(port, metric);
        let done = matches!(answer, Ok((200, _))) || Instant::now() >= deadline;
        if done {
            let _ = writeln!(seen, "GET {metric} -> {answer:?}");
            if !matches!(answer, Ok((200, _))) {
                problems.push(format!(
                    "no answer 200 within 10s of the broker continuing: {answer:?}"
                ));
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    // A broker that goes away: 503 at once, and again after the reconnect backoff.
    std::fs::write(scratch.path().join("stop"), b"").expect("stopping the instance");
    let stopped = instance.wait_for(Duration::from_secs(60));
    assert!(
        stopped.is_some_and(|s| s.success()),
        "the instance did not stop cleanly: {stopped:?}\n{}",
        instance.report()
    );
    seen.push_str("-- instance stopped --\n");
    expect_status(port, &[metric, "/readyz"], 503, &mut seen, &mut problems);
    std::thread::sleep(Duration::from_millis(1500)); // past the longest backoff: reconnects
    expect_status(port, &[metric, "/readyz"], 503, &mut seen, &mut problems);
    expect_status(port, &["/livez"], 200, &mut seen, &mut problems);

    server.signal("TERM");
    let exit = server.wait_for(Duration::from_secs(15));
    if !exit.is_some_and(|s| s.success()) {
        problems.push(format!("the server did not exit 0 after SIGTERM: {exit:?}"));
    }
    assert!(
        problems.is_empty(),
        "{}\n{seen}\n{}",
        problems.join("\n"),
        server.report()
    );
    eprintln!(
        "broker stopped, continued, gone: 503 (--flux-timeout), then 200, then 503; exit 0 on SIGTERM\n{seen}"
    );
}

/// The instance of the recording test: a drained rank, a running job, one waiting for
/// resources and a held one, then `get -o json`, `record` and `get -o json` again.
/// Runs `script` as the initial program of `flux start ARGS` in `scratch` (with `FMA_DIR` and
/// `FMA_BIN` set) until it prints `=== done`, and asserts that the instance stops cleanly.
fn run_until_done(flux: &Path, scratch: &TempDir, args: &[String], script: &str) {
    let mut cmd = Command::new(flux);
    cmd.arg("start")
        .args(args)
        .args(["sh", "-c", script])
        .current_dir(scratch.path())
        .env("FMA_DIR", scratch.path())
        .env("FMA_BIN", BIN);
    if let Some(lib) = flux_core_lib(flux) {
        cmd.env("FLUX_CORE_LIB", lib);
    }
    let mut instance = Process::spawn(cmd);
    instance.until("=== done", Instant::now() + SCENARIO_TIMEOUT);
    let stopped = instance.wait_for(Duration::from_secs(60));
    assert!(
        stopped.is_some_and(|s| s.success()),
        "the instance did not stop cleanly: {stopped:?}\n{}",
        instance.report()
    );
}

const RECORDED_INSTANCE: &str = r#"
set -e
flux resource drain 3 "recorded drain"
run=$(flux submit -N1 sleep inf)
flux submit -N4 sleep inf >/dev/null
flux submit --urgency=0 -n1 true >/dev/null
flux job wait-event "$run" start
"$FMA_BIN" get -o json >"$FMA_DIR/before.json"
"$FMA_BIN" record "$FMA_DIR/recorded" >"$FMA_DIR/record.out"
"$FMA_BIN" get -o json >"$FMA_DIR/after.json"
echo "=== done"
"#;

#[test]
fn a_recorded_directory_replays_to_the_live_values() {
    let Some(flux) = flux_or_skip() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = TempDir::new("flux-record");
    run_until_done(
        &flux,
        &scratch,
        &[format!("--test-size={SIZE}")],
        RECORDED_INSTANCE,
    );
    let recorded = scratch.path().join("recorded");
    let read = |name: &str| std::fs::read_to_string(scratch.path().join(name)).unwrap_or_default();
    let out = read("record.out");
    assert!(out.contains("they replay to the same"), "{out}");
    // One file per RPC of a round, named as replay reads them.
    let mut files: Vec<String> = std::fs::read_dir(&recorded)
        .expect("the recorded directory")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "job-info.lookup.json",
            "job-list.job-stats.json",
            "job-list.list.json",
            "recorded-at",
            "resource.sched-status.json",
            "resource.status.json"
        ],
        "{out}"
    );

    let replayed = common::bin::run([
        "get".as_ref(),
        "-o".as_ref(),
        "json".as_ref(),
        "--replay".as_ref(),
        recorded.as_os_str(),
    ]);
    replayed.assert_success();
    let values = |text: &str| -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        serde_json::json!({"metrics": v["metrics"], "queues": v["queues"]})
    };
    let replayed = values(&replayed.stdout);
    let before = values(&read("before.json"));
    let after = values(&read("after.json"));
    assert_eq!(before, after, "the instance changed while it was recorded");
    assert_eq!(
        replayed, before,
        "the replayed values differ from the live ones"
    );
    // The scenario is what it says: a drained rank, one job running, two waiting (one held).
    let m = &replayed["metrics"];
    assert_eq!(
        (
            &m["node_drained_count"],
            &m["job_queue_state_run_count"],
            &m["job_queue_state_sched_count"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(2)
        ),
        "{replayed}"
    );
    eprintln!("recorded and replayed: {out}");
}

/// The demand issue's example, live: 8 nodes of 4 cores and 2 GPUs (4 brokers up, so nodes 4-7
/// are absent, as in a MiniCluster below its maximum size), a job on each up node holding a core
/// and both GPUs; waiting: two jobs of 1 core and 2 GPUs, and an exclusive node. Then a queue
/// that requires a property only absent nodes have.
const DEMAND_CONFIG: &str = r#"
[resource]
noverify = true
norestrict = true
[[resource.config]]
hosts = "node[0-7]"
cores = "0-3"
gpus = "0-1"
[[resource.config]]
hosts = "node[6-7]"
properties = ["bigmem"]
[queues.batch]
[queues.big]
requires = ["bigmem"]
"#;

const DEMAND_INSTANCE: &str = r#"
set -eu
flux queue start --all >/dev/null
for _ in 1 2 3 4; do flux submit -q batch -N1 -n1 -c1 -g2 sleep 300 >/dev/null; done
flux submit -q batch -n1 -c1 -g2 sleep 300 >/dev/null
flux submit -q batch -n1 -c1 -g2 sleep 300 >/dev/null
flux submit -q batch -N1 --exclusive -n1 sleep 300 >/dev/null
flux submit -q big -n1 -c1 sleep 300 >/dev/null
i=0
while [ "$(flux jobs -n -f run -o '{id}' | wc -l)" -lt 4 ] || [ "$(flux jobs -n -f sched -o '{id}' | wc -l)" -lt 4 ]; do
    sleep 0.2; i=$((i + 1)); [ "$i" -lt 150 ] || { flux jobs -a; exit 1; }
done
"$FMA_BIN" get -o json >"$FMA_DIR/get.json"
flux cancel --all -q >/dev/null 2>&1 || true
echo "=== done"
"#;

#[test]
fn live_demand_reads_the_shape_of_every_waiting_job() {
    let Some(flux) = flux_or_skip() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = TempDir::new("flux-demand");
    let config = scratch.path().join("demand.toml");
    std::fs::write(&config, DEMAND_CONFIG).expect("writing the instance's config");
    run_until_done(
        &flux,
        &scratch,
        &[
            "--test-size=4".into(),
            format!("-o,--config-path={}", config.display()),
        ],
        DEMAND_INSTANCE,
    );
    let text = std::fs::read_to_string(scratch.path().join("get.json")).unwrap_or_default();
    let get: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    let m = &get["metrics"];
    let q = |queue: &str, metric: &str| get["queues"][queue][metric].clone();
    // Every up GPU is busy and no up node has every core free: the two GPU jobs and the
    // exclusive one need a new node each (ranks 4, 5, 6: batch alone needs 7), and the big job
    // one with bigmem: rank 6 alone, rank 7 after the exclusive job took all of rank 6.
    let got = (
        m["node_gpus_free_count"].clone(),
        q("batch", "job_pending_nodes_count"),
        q("batch", "minicluster_desired_size"),
        q("big", "minicluster_desired_size"),
        m["minicluster_desired_size"].clone(),
    );
    let want = (
        serde_json::json!(0),
        serde_json::json!(3),
        serde_json::json!(7),
        serde_json::json!(7),
        serde_json::json!(8),
    );
    assert_eq!(got, want, "{get:#}");
}

/// A server with `--drain-before-shrink` (short delays) on the instance at `uri`, and its port.
fn start_draining_server(flux: &Path, uri: &str, scratch: &TempDir) -> (Process, u16) {
    let started = common::bin::start(|port| {
        let mut server = common::bin::command(["start", "--insecure-http", "--host", "127.0.0.1"]);
        server
            .args(["--port", &port.to_string(), "--flux-uri", uri])
            .args(["--max-age", "500ms", "--drain-before-shrink"])
            .args(["--shrink-delay", "3s", "--undrain-grace", "2s"])
            .current_dir(scratch.path());
        if let Some(lib) = flux_core_lib(flux) {
            server.env("FLUX_CORE_LIB", lib);
        }
        Process::spawn(server)
    });
    (started.process, started.port)
}

/// The ranks of `drains` that this server drained for a shrink (by their reason).
fn ours(drains: &BTreeMap<u32, String>) -> BTreeSet<u32> {
    drains
        .iter()
        .filter(|(_, r)| r.starts_with(flux_metrics::source::shrink::REASON_PREFIX))
        .map(|(&k, _)| k)
        .collect()
}

/// `flux ARGS` against the instance at `uri`; its stdout, or the failure with stderr.
fn flux_at(flux: &Path, uri: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(flux)
        .args(args)
        .env("FLUX_URI", uri)
        .output()
        .map_err(|e| format!("flux {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "flux {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The drained ranks of the instance, as `flux resource drain` lists them: rank → reason.
fn drains_at(flux: &Path, uri: &str) -> BTreeMap<u32, String> {
    let text = flux_at(
        flux,
        uri,
        &["resource", "drain", "-no", "{ranks}\t{reason}"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (ranks, reason) = line.split_once('\t').unwrap_or((line, ""));
        for r in idset(ranks.trim()) {
            out.insert(r, reason.trim().to_owned());
        }
    }
    out
}

/// Waits (at most `limit`) until `ok` holds for the instance's drains; returns them.
fn wait_for_drains(
    flux: &Path,
    uri: &str,
    limit: Duration,
    ok: impl Fn(&BTreeMap<u32, String>) -> bool,
) -> Result<BTreeMap<u32, String>, BTreeMap<u32, String>> {
    let deadline = Instant::now() + limit;
    loop {
        let d = drains_at(flux, uri);
        if ok(&d) {
            return Ok(d);
        }
        if Instant::now() >= deadline {
            return Err(d);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `--drain-before-shrink` on 8 live brokers: an administrator's drain of rank 6, a job pinned
/// to rank 5, nothing else. N is 1, so after the delay ranks 1-5 and 7 are drained (5 keeps
/// its job: draining); a 4-node job raises N and, after the grace, gets ranks 1-3 back; once it
/// runs N is 1 again, but the nodes it fills stay open; an administrator's undrain of rank 7 is
/// respected; SIGTERM undrains the rest, and rank 6 keeps its maintenance drain throughout.
#[test]
fn live_drain_before_shrink() {
    let Some(flux) = flux_or_skip() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = TempDir::new("flux-drain");
    let mut cmd = Command::new(&flux);
    cmd.args(["start", "--test-size=8", "sh", "-c", IDLE_INSTANCE])
        .current_dir(scratch.path())
        .env("FMA_DIR", scratch.path());
    let mut instance = Process::spawn(cmd);
    let (_, line) = instance.until("=== uri ", Instant::now() + Duration::from_secs(60));
    let uri = line
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_owned();
    let f = |args: &[&str]| flux_at(&flux, &uri, args).unwrap_or_else(|e| panic!("{e}"));
    f(&["resource", "drain", "6", "maintenance window"]);
    let pinned = f(&["submit", "--requires=rank:5", "-N1", "sleep", "300"]);
    let pinned = pinned.trim();
    f(&["job", "wait-event", "-t", "30", pinned, "start"]);

    let (server, port) = start_draining_server(&flux, &uri, &scratch);
    let mut problems = Vec::new();
    let mut seen = String::new();
    let limit = Duration::from_secs(30);

    // N = 1 (one node allocated, nothing waiting): ranks 1-5 and 7 drained for a shrink to 1.
    match wait_for_drains(&flux, &uri, limit, |d| ours(d) == idset("1-5,7")) {
        Ok(d) => {
            let _ = writeln!(seen, "drained for a shrink: {d:?}");
            if d.get(&1).map(String::as_str) != Some("flux-metrics-api: shrinking to 1") {
                problems.push(format!("unexpected reason: {d:?}"));
            }
        }
        Err(d) => problems.push(format!("ranks 1-5,7 were not drained: {d:?}")),
    }
    // The new metrics: six ranks drained for a shrink; the job on rank 5 keeps the safe size
    // (and the published size, floored by it) at 6.
    for (metric, want) in [
        ("node_shrink_drained_count", 6),
        ("minicluster_safe_size", 6),
        ("minicluster_desired_size", 6),
    ] {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = external_value(port, metric);
        while got != Ok(want) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            got = external_value(port, metric);
        }
        let _ = writeln!(seen, "{metric}: {got:?}");
        if got != Ok(want) {
            problems.push(format!("{metric}: {got:?}, want {want}"));
        }
    }
    let state = f(&["jobs", "-no", "{state}", pinned]);
    if state.trim() != "RUN" {
        problems.push(format!(
            "the job on rank 5 should run on (draining), it is {state}"
        ));
    }
    let (status, ready) = http_get(port, "/readyz").unwrap_or_default();
    let _ = writeln!(seen, "/readyz {status}:\n{ready}");
    if !ready.contains("[+]drain-before-shrink on (--shrink-delay 3s, --undrain-grace 2s)") {
        problems.push("/readyz lacks the drain-before-shrink line".into());
    }

    // A job of 4 nodes: N rises to 4; after the grace ranks 1-3 are undrained and it runs.
    f(&["cancel", pinned]);
    let wide = f(&["submit", "-N4", "sleep", "300"]);
    let wide = wide.trim();
    match wait_for_drains(&flux, &uri, limit, |d| ours(d) == idset("4-5,7")) {
        Ok(d) => {
            let _ = writeln!(seen, "after the 4-node job: {d:?}");
        }
        Err(d) => problems.push(format!("ranks 1-3 were not undrained for the job: {d:?}")),
    }
    if flux_at(
        &flux,
        &uri,
        &["job", "wait-event", "-t", "30", wide, "start"],
    )
    .is_err()
    {
        problems.push("the 4-node job never started".into());
    }

    // An administrator undrains rank 7: it stays undrained while N does not drop below the
    // size its drain was for (1). Once the 4-node job runs nothing waits, so N is 1 again, but
    // the job holds ranks 0-3 wholly (-N without -n is exclusive): the drains leave the four
    // nodes the running work fills, and nothing more is drained.
    f(&["resource", "undrain", "7"]);
    std::thread::sleep(Duration::from_secs(8)); // more than twice --shrink-delay
    let d = drains_at(&flux, &uri);
    let _ = writeln!(seen, "after `flux resource undrain 7`: {d:?}");
    if ours(&d) != idset("4-5") {
        problems.push(format!(
            "want ranks 4-5 drained for a shrink and rank 7 left alone: {d:?}"
        ));
    }
    let state = f(&["jobs", "-no", "{state}", wide]);
    if state.trim() != "RUN" {
        problems.push(format!(
            "the 4-node job should run on (draining), it is {state}"
        ));
    }

    // SIGTERM: this server's drains are lifted; the administrator's stays.
    let out = server.stop("TERM");
    let d = drains_at(&flux, &uri);
    let _ = writeln!(seen, "after SIGTERM: {d:?}");
    if !ours(&d).is_empty() || d.get(&6).map(String::as_str) != Some("maintenance window") {
        problems.push(format!("after SIGTERM the drains are {d:?}"));
    }
    if !out.status.success() {
        problems.push(format!("the server exited with {:?}", out.status));
    }
    let _ = flux_at(&flux, &uri, &["cancel", "--all"]);
    std::fs::write(scratch.path().join("stop"), b"").expect("stopping the instance");
    let stopped = instance.wait_for(Duration::from_secs(60));
    assert!(
        problems.is_empty(),
        "{}\n{seen}\nserver stderr:\n{}",
        problems.join("\n"),
        out.stderr
    );
    assert!(
        stopped.is_some_and(|s| s.success()),
        "{}",
        instance.report()
    );
    eprintln!("drain before shrink on 8 live brokers:\n{seen}");
}

/// The [bootstrap] config of an instance of 8 brokers that can leave and join again, as a
/// MiniCluster's pods do: TCP on 127.0.0.1 (a port per rank), hostnames fake0-7 (`flux start
/// --test-hosts`), resources given by configuration (so a rank that leaves stays in the set).
fn elastic_config(dir: &Path, flux: &Path) -> PathBuf {
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).expect("creating the config directory");
    let cert = conf.join("curve.cert");
    let keygen = Command::new(flux)
        .arg("keygen")
        .arg(&cert)
        .output()
        .expect("flux keygen");
    assert!(keygen.status.success(), "flux keygen: {keygen:?}");
    let mut toml = format!("[bootstrap]\ncurve_cert = \"{}\"\n", cert.display());
    for rank in 0..8 {
        let port = free_port();
        let _ = write!(
            toml,
            "[[bootstrap.hosts]]\nhost = \"fake{rank}\"\nbind = \"tcp://127.0.0.1:{port}\"\nconnect = \"tcp://127.0.0.1:{port}\"\n"
        );
    }
    toml.push_str(
        "[resource]\nnoverify = true\n[[resource.config]]\nhosts = \"fake[0-7]\"\ncores = \"0-3\"\n",
    );
    std::fs::write(conf.join("instance.toml"), toml).expect("writing the config");
    conf
}

/// `--drain-before-shrink` while the drained brokers really leave and come back, as the pods of
/// a MiniCluster the HPA shrinks and grows: a 2-node job on ranks 0-1 and nothing waiting (N is
/// 1, the running job fills two nodes), so ranks 2-7 are drained for a shrink to 2 and the
/// published size falls to 2; their brokers stop (SIGTERM, as for a deleted pod) and the drains
/// stay, counted; a job of 6 more nodes raises N to 8, the ranks are undrained after the grace
/// while still offline, new brokers join for them, and the job runs.
#[test]
fn live_drain_before_shrink_with_brokers_leaving() {
    let Some(flux) = flux_or_skip() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = TempDir::new("flux-elastic");
    let conf = elastic_config(scratch.path(), &flux);
    let mut cmd = Command::new(&flux);
    cmd.args(["start", "--test-size=8", "--test-hosts=fake[0-7]"])
        .args([
            "--test-exit-mode=leader",
            &format!("--config-path={}", conf.display()),
        ])
        .args(["sh", "-c", IDLE_INSTANCE])
        .current_dir(scratch.path())
        .env_remove("FLUX_URI")
        .env("FMA_DIR", scratch.path());
    let mut instance = Process::spawn(cmd);
    let (_, line) = instance.until("=== uri ", Instant::now() + Duration::from_secs(60));
    let uri = line
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_owned();
    let f = |args: &[&str]| flux_at(&flux, &uri, args).unwrap_or_else(|e| panic!("{e}"));
    let rundir = f(&["getattr", "rundir"]).trim().to_owned();
    let pids: Vec<u32> = (2..8)
        .map(|r| {
            let at = format!("local://{rundir}/local-{r}");
            flux_at(&flux, &at, &["getattr", "broker.pid"])
                .unwrap_or_else(|e| panic!("{e}"))
                .trim()
                .parse()
                .expect("a broker pid")
        })
        .collect();
    let pair = f(&["submit", "-N2", "--exclusive", "sleep", "300"]);
    f(&["job", "wait-event", "-t", "30", pair.trim(), "start"]);

    let (server, port) = start_draining_server(&flux, &uri, &scratch);
    let mut problems = Vec::new();
    let mut seen = String::new();
    let limit = Duration::from_secs(30);
    let expect_metrics =
        |when: &str, want: &[(&str, u64)], seen: &mut String, problems: &mut Vec<String>| {
            for &(metric, want) in want {
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut got = external_value(port, metric);
                while got != Ok(want) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(200));
                    got = external_value(port, metric);
                }
                let _ = writeln!(seen, "{when}: {metric} {got:?}");
                if got != Ok(want) {
                    problems.push(format!("{when}: {metric} is {got:?}, want {want}"));
                }
            }
        };

    // N = 1, the running job fills 2 nodes: ranks 2-7 drained for a shrink to 2, and the
    // published size falls to 2.
    match wait_for_drains(&flux, &uri, limit, |d| ours(d) == idset("2-7")) {
        Ok(d) => {
            let _ = writeln!(seen, "drained: {d:?}");
            if d.get(&2).map(String::as_str) != Some("flux-metrics-api: shrinking to 2") {
                problems.push(format!("unexpected reason: {d:?}"));
            }
        }
        Err(d) => problems.push(format!("ranks 2-7 were not drained: {d:?}")),
    }
    expect_metrics(
        "drained",
        &[
            ("minicluster_desired_size", 2),
            ("minicluster_safe_size", 2),
        ],
        &mut seen,
        &mut problems,
    );

    // The pods of ranks 2-7 are deleted: their brokers stop. The drains stay, and count.
    for &pid in &pids {
        send_signal("TERM", pid);
    }
    let deadline = Instant::now() + limit;
    let mut offline = String::new();
    while Instant::now() < deadline {
        offline = f(&["resource", "status", "-s", "offline", "-no", "{ranks}"]);
        if offline.trim() == "2-7" {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = writeln!(seen, "offline: {}", offline.trim());
    if offline.trim() != "2-7" {
        problems.push(format!("ranks 2-7 did not go offline: {offline:?}"));
    }
    expect_metrics(
        "offline",
        &[
            ("node_shrink_drained_count", 6),
            ("minicluster_desired_size", 2),
            ("minicluster_safe_size", 2),
        ],
        &mut seen,
        &mut problems,
    );
    std::thread::sleep(Duration::from_secs(4)); // more than --shrink-delay: nothing changes
    let d = drains_at(&flux, &uri);
    if ours(&d) != idset("2-7") {
        problems.push(format!("the offline ranks' drains changed: {d:?}"));
    }

    // A job needing 6 more nodes: N = 8. The ranks are undrained after the grace, offline as
    // they are; new brokers join for them (the operator's new pods) and the job runs.
    let wide = f(&["submit", "-N6", "--exclusive", "sleep", "300"]);
    let wide = wide.trim();
    match wait_for_drains(&flux, &uri, limit, |d| ours(d).is_empty()) {
        Ok(d) => {
            let _ = writeln!(seen, "after the 6-node job: {d:?}");
        }
        Err(d) => problems.push(format!("ranks 2-7 were not undrained for the job: {d:?}")),
    }
    let rejoined: Vec<Process> = (2..8)
        .map(|rank| {
            let mut broker = Command::new(&flux);
            broker
                .arg("broker")
                .arg(format!("--config-path={}", conf.display()))
                .arg(format!("--setattr=rundir={rundir}"))
                .arg(format!("--setattr=hostname=fake{rank}"))
                .env_remove("FLUX_URI")
                .current_dir(scratch.path());
            Process::spawn(broker)
        })
        .collect();
    if let Err(e) = flux_at(
        &flux,
        &uri,
        &["job", "wait-event", "-t", "60", wide, "start"],
    ) {
        problems.push(format!("the 6-node job never started: {e}"));
    }
    expect_metrics(
        "rejoined",
        &[("minicluster_desired_size", 8)],
        &mut seen,
        &mut problems,
    );

    let out = server.stop("TERM");
    if !out.status.success() {
        problems.push(format!("the server exited with {:?}", out.status));
    }
    let _ = flux_at(&flux, &uri, &["cancel", "--all"]);
    std::fs::write(scratch.path().join("stop"), b"").expect("stopping the instance");
    let stopped = instance.wait_for(Duration::from_secs(60));
    drop(rejoined); // the brokers leave with the leader; any left are killed
    assert!(
        problems.is_empty(),
        "{}\n{seen}\nserver stderr:\n{}",
        problems.join("\n"),
        out.stderr
    );
    assert!(
        stopped.is_some_and(|s| s.success()),
        "{}",
        instance.report()
    );
    eprintln!("drain before shrink with brokers leaving and joining:\n{seen}");
}

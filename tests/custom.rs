//! Custom metrics (`--custom-metric FILE`, issue 3), answers replayed from the recorded
//! scenarios in `tests/fixtures/`: the example file's values on every path, discovery and
//! `/metrics` through the router (no socket); startup errors of the binary; and through real
//! HTTPS, where connections matter, run-time errors, limits and time-outs of scripts beside
//! other requests, and reloading an edited file without a restart.
//!
//! The expected values are worked out by hand from `tests/fixtures/README.md` (cores free,
//! cores allocated over cores up, the `offline` idset of `resource.status.json`), not from the
//! code under test.
//!
//! That concurrent requests for one custom metric share one evaluation is not observable
//! through the API in replay mode (a script has no clock and no state across evaluations, and
//! replayed RPCs have no side effect): the unit tests of `src/custom/mod.rs`
//! (`concurrent_requests_share_one_evaluation`, `results_are_cached_for_max_age`) count the
//! evaluations. Here, 50 concurrent requests must all answer the same value.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::router::App;
use common::{Proto, Reply, Server, TempDir, strip_timestamps};
use flux_metrics::source::catalogue::CATALOGUE;
use serde_json::{Value, json};

const V1BETA2: &str = "/apis/custom.metrics.k8s.io/v1beta2";
const V1BETA1: &str = "/apis/custom.metrics.k8s.io/v1beta1";
const EXTERNAL: &str = "/apis/external.metrics.k8s.io/v1beta1";

/// `example/custom-metrics.rhai`.
fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("example/custom-metrics.rhai")
}

/// The metrics of the example file, sorted by name (the order discovery lists them in).
const EXAMPLE_METRICS: [&str; 4] = [
    "batch_pending_jobs",
    "cores_allocated_fraction",
    "my_custom_metric_name",
    "offline_nodes_count",
];

/// A metric and its answer: a Quantity, or `None` for a 500.
type Expected = (&'static str, Option<&'static str>);

/// What the example's metrics answer in each scenario.
///
/// - `my_custom_metric_name`: cores free (README table).
/// - `cores_allocated_fraction`: (cores up - cores free) / cores up, as a canonical Quantity;
///   1/6 has no exact decimal form and is rounded up at nano precision, as Kubernetes does.
/// - `offline_nodes_count`: ranks in the `offline` idset of `resource.status.json` (only
///   `elastic` has any: brokers 4-7 never started; a drained node is not offline).
/// - `batch_pending_jobs`: only `gpus-queues` has a queue `batch` (nothing pending in it).
const EXAMPLE_TRUTH: [(&str, [Expected; 4]); 6] = [
    (
        "idle",
        [
            ("my_custom_metric_name", Some("8")),
            ("cores_allocated_fraction", Some("0")),
            ("offline_nodes_count", Some("0")),
            ("batch_pending_jobs", None),
        ],
    ),
    (
        "busy",
        [
            ("my_custom_metric_name", Some("5")),
            ("cores_allocated_fraction", Some("375m")),
            ("offline_nodes_count", Some("0")),
            ("batch_pending_jobs", None),
        ],
    ),
    (
        "drained",
        [
            ("my_custom_metric_name", Some("5")),
            ("cores_allocated_fraction", Some("166666667n")),
            ("offline_nodes_count", Some("0")),
            ("batch_pending_jobs", None),
        ],
    ),
    (
        "gpus-queues",
        [
            ("my_custom_metric_name", Some("5")),
            ("cores_allocated_fraction", Some("687500u")),
            ("offline_nodes_count", Some("0")),
            ("batch_pending_jobs", Some("0")),
        ],
    ),
    (
        "many-jobs",
        [
            ("my_custom_metric_name", Some("0")),
            ("cores_allocated_fraction", Some("1")),
            ("offline_nodes_count", Some("0")),
            ("batch_pending_jobs", None),
        ],
    ),
    (
        "elastic",
        [
            ("my_custom_metric_name", Some("6")),
            ("cores_allocated_fraction", Some("625m")),
            ("offline_nodes_count", Some("4")),
            ("batch_pending_jobs", None),
        ],
    ),
];

/// A v1beta2 `MetricValueList` of one whole-instance item for Namespace `ns`, no timestamp.
fn v1beta2_list(metric: &str, value: &str) -> Value {
    json!({
        "kind": "MetricValueList",
        "apiVersion": "custom.metrics.k8s.io/v1beta2",
        "metadata": {},
        "items": [{
            "describedObject": {"kind": "Namespace", "name": "ns", "apiVersion": "v1"},
            "metric": {"name": metric, "selector": null},
            "value": value,
        }],
    })
}

/// A v1beta1 `MetricValueList` of one whole-instance item for Service `ns/svc`, no timestamp.
fn v1beta1_list(metric: &str, value: &str) -> Value {
    json!({
        "kind": "MetricValueList",
        "apiVersion": "custom.metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": [{
            "describedObject": {"kind": "Service", "namespace": "ns", "name": "svc", "apiVersion": "v1"},
            "metricName": metric,
            "selector": null,
            "value": value,
        }],
    })
}

/// An `ExternalMetricValueList` of one item without labels, no timestamp.
fn external_list(metric: &str, value: &str) -> Value {
    json!({
        "kind": "ExternalMetricValueList",
        "apiVersion": "external.metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": [{"metricName": metric, "metricLabels": {}, "value": value}],
    })
}

/// The three paths a metric is asked on, with the golden answer of each for `value`.
fn paths(metric: &str, value: &str) -> [(String, Value); 3] {
    [
        (
            format!("{V1BETA2}/namespaces/ns/metrics/{metric}"),
            v1beta2_list(metric, value),
        ),
        (
            format!("{V1BETA1}/namespaces/ns/services/svc/{metric}"),
            v1beta1_list(metric, value),
        ),
        (
            format!("{EXTERNAL}/namespaces/ns/{metric}"),
            external_list(metric, value),
        ),
    ]
}

/// The v1beta2 path of `metric` for Namespace `ns`.
fn v1beta2(metric: &str) -> String {
    format!("{V1BETA2}/namespaces/ns/metrics/{metric}")
}

/// The value of a 200 answer of the v1beta2 path (checks the rest of the list's shape).
fn value_of(r: &Reply) -> String {
    let v = strip_timestamps(r.expect_json(200));
    let items = v["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{v}");
    items[0]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no string value in {v}"))
        .to_owned()
}

/// Starts a server replaying `scenario` with the custom metric `files`.
async fn start(scenario: &str, files: &[&Path]) -> Server {
    start_with(scenario, files, Duration::from_secs(2)).await
}

/// [`start`] with `--custom-metric-timeout` `timeout`.
async fn start_with(scenario: &str, files: &[&Path], timeout: Duration) -> Server {
    let files: Vec<PathBuf> = files.iter().map(|f| f.to_path_buf()).collect();
    Server::start(scenario, move |c| {
        c.custom_metrics = files;
        c.custom.timeout = timeout;
    })
    .await
}

/// The router (no socket) replaying `scenario` with the custom metric `files`.
fn app(scenario: &str, files: &[&Path]) -> App {
    let files: Vec<PathBuf> = files.iter().map(|f| f.to_path_buf()).collect();
    App::start(scenario, move |c| c.custom_metrics = files)
}

/// Writes `text` to `dir/name` and returns its path.
fn script(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("writing a script");
    path
}

// ---------------------------------------------------------------------------------------------
// The example file

async fn example_values_in(scenario: &str, truth: &[Expected; 4]) {
    let app = app(scenario, &[&example()]);
    for (metric, want) in truth {
        match want {
            Some(value) => {
                for (path, golden) in paths(metric, value) {
                    let r = app.get(&path).await;
                    assert_eq!(
                        strip_timestamps(r.expect_json(200)),
                        golden,
                        "{scenario}: {path}"
                    );
                }
            }
            None => {
                for (path, _) in paths(metric, "") {
                    let message = app.get(&path).await.expect_status(500, "InternalError");
                    assert!(
                        message.contains("custom metric batch_pending_jobs failed")
                            && message.contains("\"batch\""),
                        "{scenario}: {path}: {message}"
                    );
                    assert!(
                        message.contains("custom-metrics.rhai:"),
                        "{scenario}: {path}: the message names the script: {message}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn example_metrics_have_the_right_values_in_every_scenario() {
    for (scenario, truth) in &EXAMPLE_TRUTH {
        example_values_in(scenario, truth).await;
    }
}

#[test]
fn example_truth_covers_every_example_metric() {
    for (scenario, truth) in &EXAMPLE_TRUTH {
        let mut names: Vec<&str> = truth.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        assert_eq!(names, EXAMPLE_METRICS, "{scenario}");
    }
    let text = std::fs::read_to_string(example()).unwrap();
    for name in EXAMPLE_METRICS {
        assert!(
            text.contains(&format!("\nfn {name}(flux)")),
            "{name} is not a metric of the example file"
        );
    }
}

#[tokio::test]
async fn example_metrics_are_listed_in_both_discovery_documents() {
    let app = app("busy", &[&example()]);
    let names: Vec<&str> = CATALOGUE
        .iter()
        .map(|m| m.name)
        .chain(EXAMPLE_METRICS)
        .collect();
    let custom: Vec<Value> = names
        .iter()
        .flat_map(|name| {
            [
                ("namespaces", false),
                ("services", true),
                ("miniclusters.flux-framework.org", true),
            ]
            .map(|(resource, namespaced)| {
                json!({
                    "name": format!("{resource}/{name}"),
                    "singularName": "",
                    "namespaced": namespaced,
                    "kind": "MetricValueList",
                    "verbs": ["get"],
                })
            })
        })
        .collect();
    for version in ["v1beta2", "v1beta1"] {
        let path = format!("/apis/custom.metrics.k8s.io/{version}");
        assert_eq!(
            app.get(&path).await.expect_json(200),
            json!({
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": format!("custom.metrics.k8s.io/{version}"),
                "resources": custom,
            }),
            "{path}"
        );
    }
    let external: Vec<Value> = names
        .iter()
        .map(|name| {
            json!({
                "name": name,
                "singularName": "",
                "namespaced": true,
                "kind": "ExternalMetricValueList",
                "verbs": ["get"],
            })
        })
        .collect();
    assert_eq!(
        app.get(EXTERNAL).await.expect_json(200),
        json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "external.metrics.k8s.io/v1beta1",
            "resources": external,
        })
    );
}

#[tokio::test]
async fn example_metrics_are_prometheus_gauges() {
    let app = app("busy", &[&example()]);
    let r = app.get("/metrics").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    for (name, sample) in [
        ("my_custom_metric_name", Some("5")),
        ("cores_allocated_fraction", Some("0.375")),
        ("offline_nodes_count", Some("0")),
        // The script fails in `busy` (no queue batch): a gauge without a sample.
        ("batch_pending_jobs", None),
    ] {
        let gauge = format!("flux_{name}");
        assert!(
            lines.contains(&format!("# TYPE {gauge} gauge").as_str()),
            "{gauge} has no TYPE line:\n{text}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("# HELP {gauge} "))),
            "{gauge} has no HELP line:\n{text}"
        );
        let samples: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("{gauge} ")))
            .collect();
        match sample {
            Some(v) => assert_eq!(samples, [&format!("{gauge} {v}")], "{text}"),
            None => assert!(samples.is_empty(), "{text}"),
        }
    }
    assert!(
        lines.contains(&"# HELP flux_my_custom_metric_name Free cores on up nodes (the Python tool's example metric)."),
        "the help text is the function's doc comment:\n{text}"
    );
    assert!(
        !text.contains("offline_ranks"),
        "a private helper is not a metric:\n{text}"
    );
}

#[tokio::test]
async fn a_selector_on_a_custom_metric_is_a_bad_request() {
    let app = app("gpus-queues", &[&example()]);
    for path in [
        format!(
            "{V1BETA2}/namespaces/ns/metrics/my_custom_metric_name?metricLabelSelector=queue%3Dx"
        ),
        format!(
            "{V1BETA1}/namespaces/ns/metrics/batch_pending_jobs?metricLabelSelector=queue%3Dbatch"
        ),
        format!("{EXTERNAL}/namespaces/ns/my_custom_metric_name?labelSelector=queue%3Dx"),
    ] {
        let message = app.get(&path).await.expect_status(400, "BadRequest");
        assert!(message.contains("has no labels"), "{path}: {message}");
    }
    // An empty selector is no selector.
    let r = app
        .get(&format!(
            "{V1BETA2}/namespaces/ns/metrics/my_custom_metric_name?metricLabelSelector="
        ))
        .await;
    assert_eq!(value_of(&r), "5");
}

// ---------------------------------------------------------------------------------------------
// Startup errors of the binary

/// `start` on an ephemeral port replaying `idle` with the custom metric files `files`, which
/// must fail (a server that starts serves until stopped, and is killed after a run's time-out);
/// returns what it printed on stderr.
fn start_fails(files: &[&Path]) -> String {
    let mut cmd = common::bin::command(["start", "--insecure-http", "--host", "127.0.0.1"]);
    cmd.args(["--port", "0", "--replay"])
        .arg(common::fixtures().join("idle"));
    for f in files {
        cmd.arg("--custom-metric").arg(f);
    }
    common::bin::run_command(cmd)
        .assert_failure()
        .stderr
        .clone()
}

#[test]
fn a_file_that_does_not_parse_stops_the_start_with_file_line_and_column() {
    let dir = TempDir::new("custom-syntax");
    let path = script(
        &dir,
        "broken.rhai",
        "fn fine(flux) { 1 }\nfn broken(flux) {\n  let x = ;\n}\n",
    );
    let stderr = start_fails(&[&path]);
    // Line 3, column 11: the `;` where an expression should be.
    let at = format!("{}:3:11", path.display());
    assert!(stderr.contains(&at), "no {at} in:\n{stderr}");
}

#[test]
fn a_function_named_like_a_built_in_metric_stops_the_start_naming_file_and_function() {
    let dir = TempDir::new("custom-builtin");
    let path = script(&dir, "clash.rhai", "fn node_up_count(flux) { 1 }\n");
    let stderr = start_fails(&[&path]);
    let file = path.display().to_string();
    assert!(
        stderr.contains(&file) && stderr.contains("node_up_count") && stderr.contains("built-in"),
        "{stderr}"
    );
}

#[test]
fn an_upper_case_function_name_stops_the_start() {
    let dir = TempDir::new("custom-upper");
    let path = script(
        &dir,
        "upper.rhai",
        "fn Free_Cores(flux) { flux.free.cores }\n",
    );
    let stderr = start_fails(&[&path]);
    let file = path.display().to_string();
    assert!(
        stderr.contains(&file)
            && stderr.contains("Free_Cores")
            && stderr.contains("not a valid metric name"),
        "{stderr}"
    );
}

#[test]
fn the_same_metric_in_two_files_stops_the_start_naming_both() {
    let dir = TempDir::new("custom-twice");
    let a = script(&dir, "a.rhai", "fn twice(flux) { 1 }\n");
    let b = script(&dir, "b.rhai", "fn twice(flux) { 2 }\n");
    let stderr = start_fails(&[&a, &b]);
    for f in [&a, &b] {
        assert!(
            stderr.contains(&f.display().to_string()),
            "{} not named:\n{stderr}",
            f.display()
        );
    }
    assert!(stderr.contains("twice"), "{stderr}");
}

#[test]
fn a_missing_file_stops_the_start_naming_it() {
    let dir = TempDir::new("custom-missing");
    let path = dir.path().join("not-there.rhai");
    let stderr = start_fails(&[&example(), &path]);
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// Run-time errors and limits

/// Scripts that fail in each way, next to ones that work.
const FAILING: &str = r#"fn thrower(flux) {
    throw "the script says no";
}

fn text(flux) { "twelve" }

fn huge(flux) {
    let s = "x";
    loop { s += s; }
}

fn fine(flux) { 42 }

/// Free cores, as the example.
fn free_cores(flux) { flux.free.cores }
"#;

#[tokio::test]
async fn a_failing_function_answers_500_with_the_scripts_message_and_others_answer() {
    let dir = TempDir::new("custom-failing");
    let path = script(&dir, "failing.rhai", FAILING);
    let server = start("busy", &[&path]).await;
    let mut conn = server.client().connect().await;

    let message = conn
        .get(&v1beta2("thrower"))
        .await
        .expect_status(500, "InternalError");
    assert!(
        message.contains("custom metric thrower failed") && message.contains("the script says no"),
        "{message}"
    );
    let at = format!("{}:2:5", path.display());
    assert!(message.contains(&at), "no {at} in {message}");
    // The same on the other paths.
    for (p, _) in paths("thrower", "") {
        let m = conn.get(&p).await.expect_status(500, "InternalError");
        assert!(m.contains("the script says no"), "{p}: {m}");
    }

    let message = conn
        .get(&v1beta2("text"))
        .await
        .expect_status(500, "InternalError");
    assert!(
        message.contains("not a number") && message.contains("\"twelve\""),
        "{message}"
    );

    let message = conn
        .get(&v1beta2("huge"))
        .await
        .expect_status(500, "InternalError");
    assert!(
        message.contains("custom metric huge was stopped"),
        "{message}"
    );

    // Everything else is unaffected, on the same connection.
    assert_eq!(value_of(&conn.get(&v1beta2("node_up_count")).await), "4");
    assert_eq!(value_of(&conn.get(&v1beta2("fine")).await), "42");
    assert_eq!(value_of(&conn.get(&v1beta2("free_cores")).await), "5");
    for (p, golden) in paths("fine", "42") {
        assert_eq!(
            strip_timestamps(conn.get(&p).await.expect_json(200)),
            golden
        );
    }
    // An unknown metric is still a 404, not a script error.
    let message = conn
        .get(&v1beta2("not_a_metric"))
        .await
        .expect_status(404, "NotFound");
    assert!(message.contains("not_a_metric"), "{message}");
    server.shutdown().await;
}

/// Endless loops: `spin` copies a 1 MB string on every turn, so it runs into the time limit long
/// before the operation limit (10 million operations) whatever the build and the machine's
/// speed; `tight` is the plainest endless loop, stopped by whichever limit comes first.
const ENDLESS: &str = r#"fn spin(flux) {
    let s = "";
    s.pad(1000000, "x");
    loop {
        let copy = s + "y";
    }
}

fn tight(flux) {
    loop {}
}

fn fine(flux) { 42 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_answers_500_after_the_timeout() {
    let dir = TempDir::new("custom-endless");
    let path = script(&dir, "endless.rhai", ENDLESS);
    let server = start_with("busy", &[&path], Duration::from_millis(300)).await;
    let mut other = server.client().connect().await;
    assert_eq!(value_of(&other.get(&v1beta2("node_up_count")).await), "4");

    for metric in ["spin", "tight"] {
        let mut conn = server.client().connect().await;
        let path = v1beta2(metric);
        // The client gives up after IO_TIMEOUT: an answer at all shows that the loop was cut.
        let spinning = tokio::spawn(async move { conn.get(&path).await });
        // Meanwhile, built-in and other custom metrics answer.
        assert_eq!(value_of(&other.get(&v1beta2("node_up_count")).await), "4");
        assert_eq!(value_of(&other.get(&v1beta2("fine")).await), "42");

        let r = spinning.await.expect("the spinning request");
        let message = r.expect_status(500, "InternalError");
        assert!(
            message.contains(&format!("custom metric {metric} was stopped")),
            "{message}"
        );
        if metric == "spin" {
            assert!(
                message.contains("ran longer than 300ms (--custom-metric-timeout)"),
                "{message}"
            );
        }
    }
    // And after.
    assert_eq!(value_of(&other.get(&v1beta2("node_up_count")).await), "4");
    assert_eq!(value_of(&other.get(&v1beta2("fine")).await), "42");
    server.shutdown().await;
}

/// Requests for other metrics, health and discovery are answered while a script loops: they
/// come back before the loop's own answer. That the second request for the looping metric
/// shares the first one's evaluation cannot be seen through the API (see the top of this file):
/// `concurrent_requests_share_one_evaluation` in `src/custom/mod.rs` counts the evaluations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_keeps_answering_while_a_script_loops() {
    // A wide window: the loop runs until the 5 s timeout, and everything else must answer first.
    let dir = TempDir::new("custom-endless-5s");
    let path = script(&dir, "endless.rhai", ENDLESS);
    let server = start_with("elastic", &[&path], Duration::from_secs(5)).await;
    let mut first = server.client().connect().await;
    let mut second = server.client().connect().await;
    let mut other = server.client().connect().await;
    assert_eq!(value_of(&other.get(&v1beta2("node_up_count")).await), "4");

    let one = tokio::spawn(async move { first.get(&v1beta2("spin")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    for metric in ["node_up_count", "node_down_count", "fine"] {
        let r = other.get(&v1beta2(metric)).await;
        assert_eq!(r.status, 200, "{metric} while a script loops: {}", r.text());
    }
    // A new connection, health and discovery, too.
    assert_eq!(server.get("/readyz").await.status, 200);
    assert_eq!(server.get(EXTERNAL).await.status, 200);
    assert!(
        !one.is_finished(),
        "the loop answered before the requests sent after it"
    );
    // A second request for the same metric, during the first evaluation.
    let two = tokio::spawn(async move { second.get(&v1beta2("spin")).await });
    let r1 = one.await.expect("the first request");
    let r2 = two.await.expect("the second request");
    for r in [&r1, &r2] {
        let message = r.expect_status(500, "InternalError");
        assert!(
            message.contains("custom metric spin was stopped: ran longer than 5s"),
            "{message}"
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_for_one_custom_metric_agree() {
    let server = start("elastic", &[&example()]).await;
    let conn = server.client_with(Proto::Http2).connect().await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            // Half multiplexed on one HTTP/2 connection, half on connections of their own.
            let shared = if i % 2 == 0 { conn.h2_clone() } else { None };
            let client = server.client();
            tokio::spawn(async move {
                let mut c = match shared {
                    Some(c) => c,
                    None => client.connect().await,
                };
                c.get(&v1beta2("cores_allocated_fraction")).await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(value_of(&t.await.expect("a request")), "625m");
    }
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Reload

/// Polls `path` until `check` accepts the answer, at most `limit`; returns how long it took.
async fn until(
    server: &Server,
    path: &str,
    limit: Duration,
    check: impl Fn(&Reply) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let r = server.get(path).await;
        if check(&r) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "GET {path}: not the expected answer within {limit:?}: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the v1beta2 discovery document lists `metric`.
fn lists(r: &Reply, metric: &str) -> bool {
    r.status == 200
        && r.json()["resources"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["name"] == format!("namespaces/{metric}"))
        })
}

#[tokio::test]
async fn an_edited_file_is_served_without_a_restart_and_a_broken_edit_keeps_the_last_good() {
    // The watcher looks every second and values are cached for --max-age (1 s here): a change
    // is served after about 2 s; the limit only keeps a broken reload from hanging the test.
    let limit = Duration::from_secs(15);
    let dir = TempDir::new("custom-reload");
    let path = script(&dir, "reload.rhai", "fn answer(flux) { 1 }\n");
    let server = start("busy", &[&path]).await;
    assert_eq!(value_of(&server.get(&v1beta2("answer")).await), "1");
    assert!(!lists(&server.get(V1BETA2).await, "added"));
    // Let the watcher take its first look before the file changes.
    tokio::time::sleep(Duration::from_millis(300)).await;

    std::fs::write(&path, "fn answer(flux) { 2 }\n\nfn added(flux) { 0.5 }\n").unwrap();
    let took = until(&server, &v1beta2("answer"), limit, |r| {
        r.status == 200 && value_of(r) == "2"
    })
    .await;
    eprintln!("an edit was served after {took:?}");
    assert!(lists(&server.get(V1BETA2).await, "added"));
    assert_eq!(value_of(&server.get(&v1beta2("added")).await), "500m");

    // A broken edit: the last good version stays, values and discovery alike.
    std::fs::write(&path, "fn answer(flux) { 3 \n").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(value_of(&server.get(&v1beta2("answer")).await), "2");
    assert_eq!(value_of(&server.get(&v1beta2("added")).await), "500m");
    assert!(lists(&server.get(V1BETA2).await, "added"));
    // So is a good file turned bad by a clashing name.
    std::fs::write(&path, "fn node_up_count(flux) { 3 }\n").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(value_of(&server.get(&v1beta2("answer")).await), "2");
    assert_eq!(value_of(&server.get(&v1beta2("node_up_count")).await), "4");

    // A fixed file with one more function: it appears in both discovery documents.
    std::fs::write(
        &path,
        "fn answer(flux) { 4 }\n\nfn added(flux) { 0.5 }\n\nfn another(flux) { flux.free.cores }\n",
    )
    .unwrap();
    until(&server, V1BETA2, limit, |r| lists(r, "another")).await;
    let external = server.get(EXTERNAL).await.expect_json(200);
    assert!(
        external["resources"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["name"] == "another")),
        "{external}"
    );
    assert_eq!(value_of(&server.get(&v1beta2("another")).await), "5");
    until(&server, &v1beta2("answer"), limit, |r| {
        r.status == 200 && value_of(r) == "4"
    })
    .await;

    // A function removed by an edit is gone: 404 and out of discovery.
    std::fs::write(&path, "fn answer(flux) { 4 }\n").unwrap();
    until(&server, &v1beta2("added"), limit, |r| r.status == 404).await;
    assert!(!lists(&server.get(V1BETA2).await, "added"));
    server.shutdown().await;
}

#[test]
fn get_prints_custom_metrics_beside_built_in_ones() {
    let mut cmd = common::bin::command(["get", "-o", "json", "--replay"]);
    cmd.arg(common::fixtures().join("busy"))
        .arg("--custom-metric")
        .arg(example())
        .args([
            "my_custom_metric_name",
            "cores_allocated_fraction",
            "node_up_count",
        ]);
    let out = common::bin::run_command(cmd);
    out.assert_success();
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v["metrics"]["my_custom_metric_name"], 5);
    assert_eq!(v["metrics"]["cores_allocated_fraction"], 0.375);
    assert_eq!(v["metrics"]["node_up_count"], 4);

    // A failing script is reported and makes the exit status non-zero; the rest is printed.
    let mut cmd = common::bin::command(["get", "--replay"]);
    cmd.arg(common::fixtures().join("idle"))
        .arg("--custom-metric")
        .arg(example());
    let out = common::bin::run_command(cmd);
    out.assert_failure();
    assert!(out.stderr.contains("batch_pending_jobs"), "{out}");
    assert!(out.stdout.contains("my_custom_metric_name"), "{out}");
}

/// Answers are kept per broker answer (`src/api/answers.rs`), but never a custom metric's: with
/// a broker answer kept for an hour, an edited script is still served as soon as it reloads.
#[tokio::test]
async fn kept_answers_never_hide_a_reloaded_custom_metric() {
    let dir = TempDir::new("custom-kept");
    let path = script(&dir, "kept.rhai", "fn kept(flux) { 1 }\n");
    let files = vec![path.clone()];
    let server = Server::start("busy", move |c| {
        c.custom_metrics = files;
        c.broker.max_age = Duration::from_secs(3600);
    })
    .await;
    let builtin = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/metrics/node_up_count";
    let first = server.get(builtin).await;
    assert_eq!(
        server.get(builtin).await.body,
        first.body,
        "the same answer twice"
    );
    assert_eq!(value_of(&server.get(&v1beta2("kept")).await), "1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(&path, "fn kept(flux) { 2 }\n").unwrap();
    until(&server, &v1beta2("kept"), Duration::from_secs(15), |r| {
        r.status == 200 && value_of(r) == "2"
    })
    .await;
    server.shutdown().await;
}

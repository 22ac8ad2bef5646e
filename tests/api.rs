//! The HTTP surface, answers replayed from the recorded scenarios in `tests/fixtures/`: every
//! route, error and header case that kubectl, client-go, the HPA and the Python client exercise,
//! with golden JSON for each answer (timestamps checked for format, then removed). The values
//! come from a truth table written out below, independent of the code under test: it restates
//! `tests/fixtures/README.md` and each scenario's `truth.json`.
//!
//! Handler logic goes through the router itself (`common::router::App`, no socket); the last
//! section runs `flux_metrics::run` on a port of its own with a client that verifies the
//! certificate, for what only the transport decides: request framing, HTTP/1.1 and HTTP/2,
//! concurrent streams and shutdown.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use common::router::App;
use common::{Proto, Reply, SCENARIOS, Server, TempDir, full, strip_timestamps};
use flux_metrics::source::broker::Source;
use flux_metrics::source::catalogue::CATALOGUE;
use hyper::Version;
use serde_json::{Value, json};

const V1BETA2: &str = "/apis/custom.metrics.k8s.io/v1beta2";
const V1BETA1: &str = "/apis/custom.metrics.k8s.io/v1beta1";
const EXTERNAL: &str = "/apis/external.metrics.k8s.io/v1beta1";

/// Every metric's value in each scenario, in the order of [`SCENARIOS`]:
/// idle, busy, drained, gpus-queues, many-jobs, elastic, gpu-exclusive, queue-constrained,
/// room-on-busy.
const TRUTH: [(&str, [u64; 9]); 30] = [
    ("node_up_count", [4, 4, 3, 4, 2, 4, 4, 4, 4]),
    ("node_free_count", [4, 4, 3, 4, 0, 2, 4, 2, 4]),
    ("node_cores_up_count", [8, 8, 6, 16, 4, 16, 16, 16, 16]),
    ("node_cores_free_count", [8, 5, 5, 5, 0, 6, 12, 8, 8]),
    ("job_queue_state_new_count", [0, 0, 0, 0, 0, 0, 0, 0, 0]),
    ("job_queue_state_depend_count", [0, 1, 0, 0, 0, 0, 0, 0, 0]),
    (
        "job_queue_state_priority_count",
        [0, 0, 0, 0, 0, 0, 0, 0, 0],
    ),
    (
        "job_queue_state_sched_count",
        [0, 2, 0, 2, 3500, 3, 3, 2, 3],
    ),
    ("job_queue_state_run_count", [0, 2, 1, 3, 1, 2, 4, 1, 1]),
    ("job_queue_state_cleanup_count", [0, 0, 0, 0, 0, 0, 0, 0, 0]),
    (
        "job_queue_state_inactive_count",
        [0, 2, 0, 0, 0, 0, 0, 0, 0],
    ),
    ("node_idle_count", [4, 1, 2, 0, 0, 1, 0, 2, 0]),
    ("node_down_count", [0, 0, 1, 0, 0, 4, 4, 4, 4]),
    ("node_drained_count", [0, 0, 1, 0, 0, 0, 0, 0, 0]),
    ("node_allocated_count", [0, 3, 1, 4, 2, 3, 4, 2, 4]),
    ("node_gpus_up_count", [0, 0, 0, 8, 0, 0, 8, 0, 0]),
    ("node_gpus_free_count", [0, 0, 0, 6, 0, 0, 0, 0, 0]),
    ("node_cores_allocated_count", [0, 3, 1, 11, 4, 10, 4, 8, 8]),
    ("job_queue_pending_count", [0, 3, 0, 2, 3500, 3, 3, 2, 3]),
    ("job_successful_count", [0, 1, 0, 0, 0, 0, 0, 0, 0]),
    ("job_failed_count", [0, 1, 0, 0, 0, 0, 0, 0, 0]),
    ("job_canceled_count", [0, 0, 0, 0, 0, 0, 0, 0, 0]),
    ("job_timeout_count", [0, 0, 0, 0, 0, 0, 0, 0, 0]),
    ("job_pending_nodes_count", [0, 4, 0, 5, 250, 5, 3, 2, 6]),
    // The older recordings have no submission times; the newer ones were recorded 1 s after.
    ("job_oldest_wait_seconds", [0, 0, 0, 0, 0, 0, 1, 1, 1]),
    ("minicluster_min_size", [0, 3, 1, 4, 2, 3, 4, 2, 4]),
    ("minicluster_current_size", [4, 4, 4, 4, 2, 4, 4, 4, 4]),
    ("minicluster_desired_size", [1, 4, 1, 4, 2, 7, 7, 5, 7]),
    ("minicluster_safe_size", [4, 4, 3, 4, 2, 4, 4, 4, 4]),
    ("node_shrink_drained_count", [0, 0, 0, 0, 0, 0, 0, 0, 0]),
];

/// The value of `metric` in `scenario` according to [`TRUTH`].
fn truth(scenario: &str, metric: &str) -> u64 {
    let i = SCENARIOS
        .iter()
        .position(|s| *s == scenario)
        .expect("a known scenario");
    TRUTH
        .iter()
        .find(|(m, _)| *m == metric)
        .unwrap_or_else(|| panic!("{metric} is missing from the truth table"))
        .1[i]
}

/// The `describedObject` of a metric asked through `namespaces/<ns>/metrics/<m>`.
fn namespace_object(ns: &str) -> Value {
    json!({"kind": "Namespace", "name": ns, "apiVersion": "v1"})
}

/// A v1beta2 `MetricValueList` of one item, without its timestamp.
fn v1beta2_list(described: Value, metric: &str, selector: Value, value: &str) -> Value {
    let mut list = json!({
        "kind": "MetricValueList",
        "apiVersion": "custom.metrics.k8s.io/v1beta2",
        "metadata": {},
        "items": [{"metric": {"name": metric}, "value": value}],
    });
    let item = &mut list["items"][0];
    item["describedObject"] = described;
    item["metric"]["selector"] = selector;
    list
}

/// A v1beta1 `MetricValueList` of one item, without its timestamp.
fn v1beta1_list(described: Value, metric: &str, selector: Value, value: &str) -> Value {
    let mut list = json!({
        "kind": "MetricValueList",
        "apiVersion": "custom.metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": [{"metricName": metric, "value": value}],
    });
    let item = &mut list["items"][0];
    item["describedObject"] = described;
    item["selector"] = selector;
    list
}

/// An `ExternalMetricValueList` of `(labels, value)` items, without timestamps.
fn external_list(metric: &str, items: &[(Value, &str)]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(
            |(labels, value)| json!({"metricName": metric, "metricLabels": labels, "value": value}),
        )
        .collect();
    json!({
        "kind": "ExternalMetricValueList",
        "apiVersion": "external.metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": items,
    })
}

/// Asserts a 200 JSON answer and returns its body with timestamps checked and removed.
fn ok_json(r: &Reply) -> Value {
    strip_timestamps(r.expect_json(200))
}

// ---------------------------------------------------------------------------------------------
// Discovery

fn custom_group() -> Value {
    json!({
        "name": "custom.metrics.k8s.io",
        "versions": [
            {"groupVersion": "custom.metrics.k8s.io/v1beta2", "version": "v1beta2"},
            {"groupVersion": "custom.metrics.k8s.io/v1beta1", "version": "v1beta1"},
        ],
        "preferredVersion": {"groupVersion": "custom.metrics.k8s.io/v1beta2", "version": "v1beta2"},
    })
}

fn external_group() -> Value {
    json!({
        "name": "external.metrics.k8s.io",
        "versions": [{"groupVersion": "external.metrics.k8s.io/v1beta1", "version": "v1beta1"}],
        "preferredVersion": {"groupVersion": "external.metrics.k8s.io/v1beta1", "version": "v1beta1"},
    })
}

fn standalone(mut group: Value) -> Value {
    group["kind"] = json!("APIGroup");
    group["apiVersion"] = json!("v1");
    group
}

#[test]
fn truth_table_covers_the_whole_catalogue() {
    let table: Vec<&str> = TRUTH.iter().map(|(m, _)| *m).collect();
    let catalogue: Vec<&str> = CATALOGUE.iter().map(|m| m.name).collect();
    assert_eq!(table, catalogue);
}

#[tokio::test]
async fn serves_the_group_list_at_apis_with_and_without_trailing_slash() {
    let app = App::start("idle", |_| {});
    let expected = json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [custom_group(), external_group()],
    });
    for path in ["/apis", "/apis/"] {
        assert_eq!(app.get(path).await.expect_json(200), expected, "{path}");
    }
}

#[tokio::test]
async fn serves_each_group_document() {
    let app = App::start("idle", |_| {});
    assert_eq!(
        app.get("/apis/custom.metrics.k8s.io")
            .await
            .expect_json(200),
        standalone(custom_group())
    );
    assert_eq!(
        app.get("/apis/external.metrics.k8s.io")
            .await
            .expect_json(200),
        standalone(external_group())
    );
}

#[tokio::test]
async fn lists_every_metric_in_custom_discovery_of_both_versions() {
    let app = App::start("idle", |_| {});
    let resources: Vec<Value> = CATALOGUE
        .iter()
        .flat_map(|m| {
            [
                ("namespaces", false),
                ("services", true),
                ("miniclusters.flux-framework.org", true),
            ]
            .map(|(resource, namespaced)| {
                json!({
                    "name": format!("{resource}/{}", m.name),
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
                "resources": resources,
            }),
            "{path}"
        );
    }
}

#[tokio::test]
async fn lists_every_metric_in_external_discovery() {
    let app = App::start("idle", |_| {});
    let resources: Vec<Value> = CATALOGUE
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
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
            "resources": resources,
        })
    );
}

#[tokio::test]
async fn serves_version_and_openapi_documents() {
    let app = App::start("idle", |_| {});
    let version = env!("CARGO_PKG_VERSION");
    let mut parts = version.split('.');
    let mut v = app.get("/version").await.expect_json(200);
    let mut take = |field: &str| -> String {
        let value = v.as_object_mut().and_then(|o| o.remove(field));
        value
            .and_then(|x| x.as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("{field}"))
    };
    // Filled by build.rs: the checkout's commit, and an RFC 3339 build time.
    let (commit, date) = (take("gitCommit"), take("buildDate"));
    assert!(
        commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "gitCommit {commit:?}"
    );
    assert!(
        chrono::DateTime::parse_from_rfc3339(&date).is_ok(),
        "buildDate {date:?}"
    );
    assert_eq!(
        v,
        json!({
            "major": parts.next().unwrap(),
            "minor": parts.next().unwrap(),
            "gitVersion": format!("v{version}"),
            "gitTreeState": "",
            "goVersion": "",
            "compiler": "rustc",
            "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        })
    );

    let v2 = app.get("/openapi/v2").await.expect_json(200);
    assert_eq!(v2["swagger"], "2.0", "{v2}");
    assert!(
        v2["paths"]
            .get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/metrics/{metric}")
            .is_some(),
        "{}",
        v2["paths"]
    );
    let v3 = app.get("/openapi/v3").await.expect_json(200);
    for gv in [
        "apis/custom.metrics.k8s.io/v1beta2",
        "apis/custom.metrics.k8s.io/v1beta1",
        "apis/external.metrics.k8s.io/v1beta1",
    ] {
        let url = v3["paths"][gv]["serverRelativeURL"]
            .as_str()
            .unwrap_or_else(|| panic!("{gv} missing from the OpenAPI v3 index: {v3}"));
        let doc = app.get(url).await.expect_json(200);
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
            "{url}: {doc}"
        );
    }
}

#[tokio::test]
async fn health_endpoints_answer_plain_text_and_readyz_says_answers_are_recorded() {
    let app = App::start("idle", |_| {});
    for path in ["/healthz", "/livez", "/readyz"] {
        let r = app.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(r.content_type().starts_with("text/plain"), "{path}: {r:?}");
    }
    assert_eq!(app.get("/healthz").await.text(), "ok");
    assert_eq!(app.get("/livez").await.text(), "ok");
    let ready = app.get("/readyz").await.text();
    assert!(
        ready.contains("RECORDED") && ready.contains("replayed"),
        "{ready}"
    );
}

// ---------------------------------------------------------------------------------------------
// Values

/// Every metric of `scenario`, as a custom v1beta2 metric of the Namespace and as an external
/// metric.
async fn every_metric_matches_the_truth_table(scenario: &str) {
    let app = App::start(scenario, |_| {});
    for m in CATALOGUE {
        let value = truth(scenario, m.name).to_string();
        let r = app
            .get(&format!("{V1BETA2}/namespaces/ns/metrics/{}", m.name))
            .await;
        assert_eq!(
            ok_json(&r),
            v1beta2_list(namespace_object("ns"), m.name, Value::Null, &value),
            "{scenario}: custom {}",
            m.name
        );
        let r = app
            .get(&format!("{EXTERNAL}/namespaces/default/{}", m.name))
            .await;
        assert_eq!(
            ok_json(&r),
            external_list(m.name, &[(json!({}), &value)]),
            "{scenario}: external {}",
            m.name
        );
    }
}

#[tokio::test]
async fn every_metric_matches_the_truth_table_in_idle() {
    every_metric_matches_the_truth_table("idle").await;
}

#[tokio::test]
async fn every_metric_matches_the_truth_table_in_busy() {
    every_metric_matches_the_truth_table("busy").await;
}

#[tokio::test]
async fn every_metric_matches_the_truth_table_in_drained() {
    every_metric_matches_the_truth_table("drained").await;
}

#[tokio::test]
async fn every_metric_matches_the_truth_table_in_gpus_queues() {
    every_metric_matches_the_truth_table("gpus-queues").await;
}

#[tokio::test]
async fn every_metric_matches_the_truth_table_in_many_jobs() {
    every_metric_matches_the_truth_table("many-jobs").await;
}

#[tokio::test]
async fn every_metric_matches_the_truth_table_in_elastic() {
    every_metric_matches_the_truth_table("elastic").await;
}

#[tokio::test]
async fn every_metric_matches_the_truth_table_in_gpu_exclusive() {
    every_metric_matches_the_truth_table("gpu-exclusive").await;
}

#[tokio::test]
async fn every_metric_matches_the_truth_table_in_queue_constrained() {
    every_metric_matches_the_truth_table("queue-constrained").await;
}

#[tokio::test]
async fn every_metric_matches_the_truth_table_in_room_on_busy() {
    every_metric_matches_the_truth_table("room-on-busy").await;
}

#[tokio::test]
async fn v1beta1_answers_use_metric_name_and_a_top_level_null_selector() {
    let app = App::start("busy", |_| {});
    let r = app
        .get(&format!(
            "{V1BETA1}/namespaces/ns/metrics/job_queue_pending_count"
        ))
        .await;
    assert_eq!(
        ok_json(&r),
        v1beta1_list(
            namespace_object("ns"),
            "job_queue_pending_count",
            Value::Null,
            "3"
        )
    );
}

#[tokio::test]
async fn object_metric_of_a_service_describes_that_service() {
    let app = App::start("busy", |_| {});
    let service = json!({"kind": "Service", "namespace": "ns", "name": "svc", "apiVersion": "v1"});
    let r = app
        .get(&format!(
            "{V1BETA2}/namespaces/ns/services/svc/node_up_count"
        ))
        .await;
    assert_eq!(
        ok_json(&r),
        v1beta2_list(service.clone(), "node_up_count", Value::Null, "4")
    );
    let r = app
        .get(&format!(
            "{V1BETA1}/namespaces/ns/services/svc/node_up_count"
        ))
        .await;
    assert_eq!(
        ok_json(&r),
        v1beta1_list(service, "node_up_count", Value::Null, "4")
    );
}

#[tokio::test]
async fn root_scoped_object_metric_describes_the_node() {
    let app = App::start("drained", |_| {});
    let r = app.get(&format!("{V1BETA2}/nodes/n1/node_up_count")).await;
    assert_eq!(
        ok_json(&r),
        v1beta2_list(
            json!({"kind": "Node", "name": "n1", "apiVersion": "v1"}),
            "node_up_count",
            Value::Null,
            "3"
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Queues (gpus-queues: batch runs 2 jobs, debug runs 1 and has 2 waiting for 5 nodes)

#[tokio::test]
async fn metric_label_selector_narrows_a_job_metric_to_one_queue() {
    let app = App::start("gpus-queues", |_| {});
    let debug = json!({"matchLabels": {"queue": "debug"}});
    let batch = json!({"matchLabels": {"queue": "batch"}});
    let cases = [
        ("job_queue_state_sched_count", "queue%3Ddebug", &debug, "2"),
        ("job_queue_state_sched_count", "queue%3Dbatch", &batch, "0"),
        ("job_queue_state_run_count", "queue%3D%3Dbatch", &batch, "2"),
        (
            "job_queue_state_run_count",
            "queue%20in%20(debug)",
            &debug,
            "1",
        ),
        ("job_pending_nodes_count", "queue%3Ddebug", &debug, "5"),
        ("job_queue_pending_count", "queue!%3Dbatch", &debug, "2"),
    ];
    for (metric, selector, echoed, value) in cases {
        let r = app
            .get(&format!(
                "{V1BETA2}/namespaces/ns/metrics/{metric}?metricLabelSelector={selector}"
            ))
            .await;
        assert_eq!(
            ok_json(&r),
            v1beta2_list(namespace_object("ns"), metric, echoed.clone(), value),
            "{metric}?{selector}"
        );
    }
    let r = app
        .get(&format!(
            "{V1BETA1}/namespaces/ns/metrics/job_queue_state_run_count?metricLabelSelector=queue%3Dbatch"
        ))
        .await;
    assert_eq!(
        ok_json(&r),
        v1beta1_list(
            namespace_object("ns"),
            "job_queue_state_run_count",
            batch,
            "2"
        )
    );
}

#[tokio::test]
async fn external_label_selector_lists_one_item_per_selected_queue() {
    let app = App::start("gpus-queues", |_| {});
    let m = "job_queue_state_sched_count";
    let both = external_list(
        m,
        &[
            (json!({"queue": "batch"}), "0"),
            (json!({"queue": "debug"}), "2"),
        ],
    );
    for selector in [
        "queue%20in%20(batch,debug)",
        "queue",
        "queue+in+(debug,batch)",
    ] {
        let r = app
            .get(&format!(
                "{EXTERNAL}/namespaces/default/{m}?labelSelector={selector}"
            ))
            .await;
        assert_eq!(ok_json(&r), both, "{selector}");
    }
    let r = app
        .get(&format!(
            "{EXTERNAL}/namespaces/default/{m}?labelSelector=queue%3Ddebug"
        ))
        .await;
    assert_eq!(
        ok_json(&r),
        external_list(m, &[(json!({"queue": "debug"}), "2")])
    );
    // Not naming the queue label asks for the whole instance, never a sum of the series.
    let r = app
        .get(&format!(
            "{EXTERNAL}/namespaces/default/{m}?labelSelector=!queue"
        ))
        .await;
    assert_eq!(ok_json(&r), external_list(m, &[(json!({}), "2")]));
}

#[tokio::test]
async fn returns_404_status_naming_the_queues_for_an_unknown_queue() {
    let app = App::start("gpus-queues", |_| {});
    for path in [
        format!(
            "{V1BETA2}/namespaces/ns/metrics/job_queue_state_sched_count?metricLabelSelector=queue%3Dnope"
        ),
        format!(
            "{EXTERNAL}/namespaces/default/job_queue_state_sched_count?labelSelector=queue%3Dnope"
        ),
        format!(
            "{EXTERNAL}/namespaces/default/job_queue_state_sched_count?labelSelector=queue%20in%20(debug,nope)"
        ),
    ] {
        let message = app.get(&path).await.expect_status(404, "NotFound");
        assert!(
            message.contains("nope") && message.contains("batch") && message.contains("debug"),
            "{path}: {message}"
        );
    }
}

#[tokio::test]
async fn returns_400_status_for_a_queue_on_a_node_metric() {
    let app = App::start("gpus-queues", |_| {});
    for path in [
        format!("{V1BETA2}/namespaces/ns/metrics/node_up_count?metricLabelSelector=queue%3Ddebug"),
        format!("{EXTERNAL}/namespaces/default/node_up_count?labelSelector=queue%3Ddebug"),
    ] {
        let message = app.get(&path).await.expect_status(400, "BadRequest");
        assert!(message.contains("node_up_count"), "{path}: {message}");
    }
}

#[tokio::test]
async fn returns_400_status_for_labels_other_than_queue() {
    let app = App::start("gpus-queues", |_| {});
    for path in [
        format!(
            "{V1BETA2}/namespaces/ns/metrics/job_queue_state_sched_count?metricLabelSelector=foo%3Dbar"
        ),
        format!(
            "{EXTERNAL}/namespaces/default/job_queue_state_sched_count?labelSelector=app%3Dweb"
        ),
    ] {
        let message = app.get(&path).await.expect_status(400, "BadRequest");
        assert!(message.contains("queue"), "{path}: {message}");
    }
}

#[tokio::test]
async fn returns_400_status_for_a_malformed_selector() {
    let app = App::start("gpus-queues", |_| {});
    for (path, param) in [
        (
            format!(
                "{V1BETA2}/namespaces/ns/metrics/job_queue_state_sched_count?metricLabelSelector=queue%20in%20(a"
            ),
            "metricLabelSelector",
        ),
        (
            format!(
                "{EXTERNAL}/namespaces/default/job_queue_state_sched_count?labelSelector=queue%20in%20(a"
            ),
            "labelSelector",
        ),
    ] {
        let message = app.get(&path).await.expect_status(400, "BadRequest");
        assert!(message.contains(param), "{path}: {message}");
    }
}

#[tokio::test]
async fn returns_400_status_when_a_custom_metric_selects_several_queues() {
    let app = App::start("gpus-queues", |_| {});
    for selector in ["queue%20in%20(batch,debug)", "queue"] {
        let path = format!(
            "{V1BETA2}/namespaces/ns/metrics/job_queue_state_sched_count?metricLabelSelector={selector}"
        );
        let message = app.get(&path).await.expect_status(400, "BadRequest");
        assert!(
            message.contains("batch") && message.contains("debug"),
            "{path}: {message}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

#[tokio::test]
async fn returns_404_status_for_unknown_metric() {
    let app = App::start("idle", |_| {});
    for path in [
        format!("{V1BETA2}/namespaces/ns/metrics/nope"),
        format!("{V1BETA1}/namespaces/ns/services/svc/nope"),
        format!("{V1BETA2}/nodes/n1/nope"),
        format!("{EXTERNAL}/namespaces/default/nope"),
    ] {
        let message = app.get(&path).await.expect_status(404, "NotFound");
        assert!(message.contains("nope"), "{path}: {message}");
    }
}

#[tokio::test]
async fn returns_404_status_for_unknown_paths() {
    let app = App::start("idle", |_| {});
    for path in [
        "/nope",
        "/api",
        "/apis/metrics.k8s.io",
        "/apis/custom.metrics.k8s.io/v2/namespaces/ns/metrics/node_up_count",
        "/apis/custom.metrics.k8s.io/v1beta2/blah",
        "/apis/custom.metrics.k8s.io/v1beta2/nodes/foo",
        "/apis/external.metrics.k8s.io/v1beta1/nonexistent-metric",
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/foo",
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/foo/group/metric",
        "/openapi/v3/apis/nope/v1",
    ] {
        app.get(path).await.expect_status(404, "NotFound");
    }
}

#[tokio::test]
async fn returns_400_status_for_a_wildcard_object_pointing_to_object_or_external_metrics() {
    let app = App::start("idle", |_| {});
    for path in [
        format!("{V1BETA2}/namespaces/ns/pods/%2A/node_up_count"),
        format!("{V1BETA2}/namespaces/ns/pods/*/node_up_count"),
        format!("{V1BETA1}/nodes/%2A/node_up_count"),
    ] {
        let message = app.get(&path).await.expect_status(400, "BadRequest");
        assert!(
            message.contains("Object metric") && message.contains("External metric"),
            "{path}: {message}"
        );
    }
}

#[tokio::test]
async fn returns_400_status_for_bad_percent_encoding() {
    let app = App::start("idle", |_| {});
    let message = app
        .get(&format!("{V1BETA2}/nodes/%FF/node_up_count"))
        .await
        .expect_status(400, "BadRequest");
    assert!(message.contains("%FF"), "{message}");
}

#[tokio::test]
async fn returns_405_status_for_write_methods_on_api_paths() {
    let app = App::start("idle", |_| {});
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for path in [
            "/apis".to_owned(),
            format!("{V1BETA2}/namespaces/ns/metrics/node_up_count"),
            format!("{EXTERNAL}/namespaces/default/node_up_count"),
        ] {
            let r = app.send(method, &path, &[], Body::empty()).await;
            let message = r.expect_status(405, "MethodNotAllowed");
            assert!(message.contains(method), "{method} {path}: {message}");
            assert_eq!(r.headers["allow"], "GET,HEAD", "{method} {path}");
        }
    }
}

/// The fixed routes (`/healthz`, `/livez`, `/readyz`, `/version`, `/openapi/*`) answer a write
/// method with a `metav1.Status`, as every `/apis` path does, not with axum's bare 405 (empty
/// body, no Content-Type).
#[tokio::test]
async fn returns_405_status_for_write_methods_on_fixed_routes() {
    let app = App::start("idle", |_| {});
    for method in ["POST", "PUT", "DELETE"] {
        for path in ["/healthz", "/readyz", "/version", "/openapi/v2"] {
            let r = app.send(method, path, &[], Body::empty()).await;
            r.expect_status(405, "MethodNotAllowed");
            assert_eq!(r.headers["allow"], "GET,HEAD", "{method} {path}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Headers

#[tokio::test]
async fn answers_plain_json_whatever_accept_header_real_clients_send() {
    let app = App::start("busy", |_| {});
    let accepts: [&[(&str, &str)]; 5] = [
        &[],
        &[("accept", "*/*")],
        &[("accept", "application/json, */*")],
        &[("accept", "application/vnd.kubernetes.protobuf, */*")],
        &[(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )],
    ];
    for headers in accepts {
        for path in [
            "/apis".to_owned(),
            "/apis/".to_owned(),
            V1BETA2.to_owned(),
            format!("{V1BETA2}/namespaces/ns/metrics/node_up_count"),
            format!("{EXTERNAL}/namespaces/default/node_up_count"),
        ] {
            let r = app.get_with(&path, headers).await;
            assert_eq!(r.status, 200, "{path} {headers:?}: {}", r.text());
            assert_eq!(r.content_type(), "application/json", "{path} {headers:?}");
            r.json();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The broker

#[tokio::test]
async fn unavailable_broker_gives_503_status_while_discovery_and_liveness_stay_up() {
    let app = App::start("idle", |c| {
        c.broker.source = Source::Live {
            library: Some("/nonexistent/libflux-core.so.2".into()),
            uri: None,
        };
    });
    assert_eq!(app.get("/apis").await.status, 200);
    assert_eq!(app.get(V1BETA2).await.status, 200);
    assert_eq!(app.get(EXTERNAL).await.status, 200);
    assert_eq!(app.get("/healthz").await.status, 200);
    assert_eq!(app.get("/livez").await.status, 200);

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(ready.text().contains("libflux-core"), "{}", ready.text());

    for path in [
        format!("{V1BETA2}/namespaces/ns/metrics/node_up_count"),
        format!("{EXTERNAL}/namespaces/default/node_up_count"),
    ] {
        let message = app
            .get(&path)
            .await
            .expect_status(503, "ServiceUnavailable");
        assert!(
            message.contains("libflux-core") && message.contains("--flux-core-lib"),
            "{path}: {message}"
        );
    }
}

/// Asks `path` until `done` accepts the answer (the broker backs off for up to a second after a
/// failure, answering with the last error meanwhile).
async fn eventually(app: &App, path: &str, done: impl Fn(&Reply) -> bool) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.get(path).await;
        if done(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: still {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn broken_recorded_answers_give_500_status_naming_the_rpc_then_recover() {
    let dir = TempDir::with_scenario("busy");
    let app = App::start(dir.path(), |c| c.broker.max_age = Duration::ZERO);
    let path = format!("{V1BETA2}/namespaces/ns/metrics/node_up_count");
    assert_eq!(app.get(&path).await.status, 200);

    // A missing answer.
    let stats = dir.path().join("job-list.job-stats.json");
    let stats_text = std::fs::read(&stats).unwrap();
    std::fs::remove_file(&stats).unwrap();
    let r = eventually(&app, &path, |r| r.status == 500).await;
    let message = r.expect_status(500, "InternalError");
    assert!(message.contains("job-list.job-stats"), "{message}");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.text().contains("job-list.job-stats"),
        "{}",
        ready.text()
    );

    // A truncated answer.
    std::fs::write(&stats, &stats_text).unwrap();
    let sched = dir.path().join("resource.sched-status.json");
    let sched_text = std::fs::read(&sched).unwrap();
    std::fs::write(&sched, &sched_text[..sched_text.len() / 2]).unwrap();
    let r = eventually(&app, &path, |r| {
        r.text()
            .contains("malformed answer to resource.sched-status")
    })
    .await;
    r.expect_status(500, "InternalError");

    // Restored: answers again, with the recorded value.
    std::fs::write(&sched, &sched_text).unwrap();
    let r = eventually(&app, &path, |r| r.status == 200).await;
    assert_eq!(
        ok_json(&r),
        v1beta2_list(namespace_object("ns"), "node_up_count", Value::Null, "4")
    );
    assert_eq!(app.get("/readyz").await.status, 200);
}

// ---------------------------------------------------------------------------------------------
// Lifecycle and flags

#[tokio::test]
async fn api_path_alias_serves_custom_metrics_v1beta2() {
    let app = App::start("busy", |c| c.api_alias = Some("/custom/root".into()));
    let r = app
        .get("/custom/root/namespaces/ns/metrics/node_up_count")
        .await;
    assert_eq!(
        ok_json(&r),
        v1beta2_list(namespace_object("ns"), "node_up_count", Value::Null, "4")
    );
    let r = app
        .get("/custom/root/namespaces/ns/services/svc/job_queue_pending_count")
        .await;
    assert_eq!(
        ok_json(&r),
        v1beta2_list(
            json!({"kind": "Service", "namespace": "ns", "name": "svc", "apiVersion": "v1"}),
            "job_queue_pending_count",
            Value::Null,
            "3"
        )
    );
    // The alias root is the v1beta2 resource list; the standard root still works beside it.
    let alias_doc = app.get("/custom/root").await.expect_json(200);
    assert_eq!(alias_doc, app.get(V1BETA2).await.expect_json(200));
    let r = app
        .get(&format!("{V1BETA2}/namespaces/ns/metrics/node_up_count"))
        .await;
    assert_eq!(r.status, 200);
}

// ---------------------------------------------------------------------------------------------
// Transport: real HTTPS (request framing, HTTP/1.1 and HTTP/2, concurrent streams, shutdown)

#[tokio::test]
async fn returns_413_status_for_a_get_with_a_body() {
    let server = Server::start("idle", |_| {}).await;
    for proto in [Proto::Http1, Proto::Http2] {
        for path in [
            "/apis".to_owned(),
            format!("{V1BETA2}/namespaces/ns/metrics/node_up_count"),
            "/healthz".to_owned(),
        ] {
            let r = server
                .client_with(proto)
                .connect()
                .await
                .send("GET", &path, &[], full(b"hello"))
                .await;
            r.expect_status(413, "RequestEntityTooLarge");
        }
    }
    // Content-Length: 5 written by hand, and a chunked body.
    let raw = server
        .client()
        .raw(b"GET /apis HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        .await;
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 413 "), "{raw}");
    assert!(
        raw.contains("\"reason\":\"RequestEntityTooLarge\""),
        "{raw}"
    );
    let raw = server
        .client()
        .raw(b"GET /apis HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .await;
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 413 "), "{raw}");
    server.shutdown().await;
}

/// A body is refused even when the request does not announce it: an HTTP/2 GET whose body comes
/// as DATA frames without a content-length header (legal in HTTP/2) gets 413, as the same GET
/// over HTTP/1.1 (chunked) does.
#[tokio::test]
async fn returns_413_status_for_an_http2_get_with_an_unannounced_body() {
    let server = Server::start("idle", |_| {}).await;
    let r = server
        .client_with(Proto::Http2)
        .connect()
        .await
        .send("GET", "/apis", &[], common::streamed(b"hello"))
        .await;
    assert_eq!(r.status, 413, "{}", r.text());
    server.shutdown().await;
}

/// A body of zero length is no body: `Content-Length: 00`, a chunked body of no chunk, and an
/// HTTP/2 request whose stream ends with an empty DATA frame are served.
#[tokio::test]
async fn a_body_of_zero_length_is_no_body() {
    let server = Server::start("idle", |_| {}).await;
    for head in [
        "Content-Length: 00\r\n\r\n",
        "Content-Length: 0\r\n\r\n",
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        let request =
            format!("GET /apis HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{head}");
        let raw = server.client().raw(request.as_bytes()).await;
        let raw = String::from_utf8_lossy(&raw);
        assert!(raw.starts_with("HTTP/1.1 200 "), "{head:?}: {raw}");
    }
    let r = server
        .client_with(Proto::Http2)
        .connect()
        .await
        .send("GET", "/apis", &[], common::streamed(b""))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    server.shutdown().await;
}

#[tokio::test]
async fn a_refused_body_does_not_desynchronise_a_kept_alive_connection() {
    let server = Server::start("idle", |_| {}).await;
    // If the unread body were parsed as the next request, the second answer would be a 400.
    let raw = server
        .client()
        .raw(
            b"GET /apis HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello\
               GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await;
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 413 "), "{raw}");
    let second = raw.find("HTTP/1.1 ").and_then(|first| {
        raw[first + 1..]
            .find("HTTP/1.1 ")
            .map(|i| &raw[first + 1 + i..])
    });
    match second {
        // hyper may also close the connection after a refused body instead of reading on.
        None => {}
        Some(second) => {
            assert!(second.starts_with("HTTP/1.1 200 "), "{raw}");
            assert!(second.ends_with("ok"), "{raw}");
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn returns_400_for_a_malformed_http_request() {
    let server = Server::start("idle", |_| {}).await;
    for garbage in [
        &b"BLAH\r\n\r\n"[..],
        b"GET /apis HTTP/1.1\r\nHost: localhost\r\nbad header\r\n\r\n",
        b"GET /apis/custom.metrics.k8s.io/v1beta2/nodes/\xff/node_up_count HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ] {
        let raw = server.client().raw(garbage).await;
        let raw = String::from_utf8_lossy(&raw);
        assert!(
            raw.starts_with("HTTP/1.1 400 "),
            "{:?}: {raw}",
            String::from_utf8_lossy(garbage)
        );
    }
    // The server is still up.
    assert_eq!(server.get("/healthz").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn returns_431_for_oversized_headers() {
    let server = Server::start("idle", |_| {}).await;
    let big = "a".repeat(20 * 1024);
    let request = format!("GET /apis HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n");
    let raw = server.client().raw(request.as_bytes()).await;
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 431 "), "{raw}");
    server.shutdown().await;
}

#[tokio::test]
async fn serves_http1_and_http2() {
    let server = Server::start("busy", |_| {}).await;
    for (proto, version) in [
        (Proto::Http1, Version::HTTP_11),
        (Proto::Http2, Version::HTTP_2),
        (Proto::Auto, Version::HTTP_2),
    ] {
        let mut conn = server.client_with(proto).connect().await;
        assert_eq!(conn.version(), version, "{proto:?}");
        // Several requests on one kept-alive connection.
        for _ in 0..3 {
            let r = conn
                .get(&format!("{V1BETA2}/namespaces/ns/metrics/node_up_count"))
                .await;
            assert_eq!(r.version, version);
            assert_eq!(
                ok_json(&r),
                v1beta2_list(namespace_object("ns"), "node_up_count", Value::Null, "4")
            );
        }
    }
    server.shutdown().await;
}

/// The `*_broker_rounds_total` counter of `/metrics`.
async fn broker_rounds(server: &Server) -> u64 {
    let r = server.get("/metrics").await;
    assert_eq!(r.status, 200, "/metrics: {}", r.text());
    let text = r.text();
    text.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(' ')?;
            name.ends_with("_broker_rounds_total")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no *_broker_rounds_total in /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_all_succeed_and_share_broker_rounds() {
    // A long cache, so that the one round of the burst is still fresh when /metrics is read.
    let server = Server::start("busy", |c| c.broker.max_age = Duration::from_secs(30)).await;
    let client = server.client_with(Proto::Http2);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let conn = client.connect().await;
        for i in 0..25 {
            let mut conn = conn.h2_clone().expect("an HTTP/2 connection");
            let (metric, value) = TRUTH[i % TRUTH.len()];
            tasks.push(tokio::spawn(async move {
                let r = conn
                    .get(&format!("{V1BETA2}/namespaces/ns/metrics/{metric}"))
                    .await;
                let expected = value[1].to_string();
                assert_eq!(
                    ok_json(&r),
                    v1beta2_list(namespace_object("ns"), metric, Value::Null, &expected)
                );
            }));
        }
    }
    assert_eq!(tasks.len(), 200);
    for t in tasks {
        t.await.expect("a request task panicked");
    }
    let rounds = broker_rounds(&server).await;
    assert!(
        (1..=2).contains(&rounds),
        "200 concurrent requests caused {rounds} broker rounds"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_idle_connections() {
    let server = Server::start("idle", |c| {
        c.limits.shutdown_grace = Duration::from_secs(600);
    })
    .await;
    let mut h1 = server.client_with(Proto::Http1).connect().await;
    let mut h2 = server.client_with(Proto::Http2).connect().await;
    assert_eq!(h1.get("/healthz").await.status, 200);
    assert_eq!(h2.get("/healthz").await.status, 200);
    let addr = server.addr;
    // Idle kept-alive connections must not hold the server for the whole grace period: it ends
    // long before that.
    server.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting connections after shutdown"
    );
}

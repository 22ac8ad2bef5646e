//! `/metrics`, `/api/v1/*`, windowed values and the bearer token in replay mode: through the
//! router (no socket), but for the history, which needs the running server's sampler.

mod common;

use std::time::Duration;

use common::router::App;
use common::{Server, TempDir};

const V1BETA2: &str = "/apis/custom.metrics.k8s.io/v1beta2";
const EXTERNAL: &str = "/apis/external.metrics.k8s.io/v1beta1";

fn fast_history(c: &mut flux_metrics::server::config::Config) {
    c.history_interval = Duration::from_secs(1);
    c.history_retention = Duration::from_secs(60);
}

#[tokio::test]
async fn prometheus_exposition_has_flux_gauges_and_server_health() {
    let app = App::start("gpus-queues", |_| {});
    app.get(&format!("{V1BETA2}/namespaces/ns/metrics/node_up_count"))
        .await
        .expect_json(200);
    let reply = app.get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .content_type()
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        reply.content_type()
    );
    let text = reply.text();
    for line in [
        "# TYPE flux_node_up_count gauge",
        "flux_node_up_count 4",
        "flux_node_cores_up_count 16",
        "flux_job_queue_state_sched_count{queue=\"debug\"} 2",
        "flux_job_queue_state_run_count{queue=\"batch\"} 2",
        "flux_metrics_api_requests_total{route=\"custom\",code=\"200\"} 1",
        "flux_metrics_api_broker_up 1",
        "flux_metrics_api_replay 1",
        "# TYPE flux_metrics_api_request_duration_seconds histogram",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
}

#[tokio::test]
async fn prometheus_exposition_survives_a_missing_broker() {
    let app = App::start("idle", |c| {
        c.broker.source = flux_metrics::source::broker::Source::Live {
            library: Some("/nonexistent/libflux-core.so.2".into()),
            uri: None,
        };
    });
    let reply = app.get("/metrics").await;
    assert_eq!(reply.status, 200);
    let text = reply.text();
    assert!(text.contains("flux_metrics_api_broker_up 0\n"), "{text}");
    assert!(!text.contains("flux_node_up_count "), "{text}");
    app.get("/api/v1/metrics")
        .await
        .expect_status(503, "ServiceUnavailable");
    let status = app.get("/api/v1/status").await.expect_json(200);
    assert_eq!(status["connected"], false);
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("libflux-core"),
        "{status}"
    );
}

#[tokio::test]
async fn flat_json_has_values_queues_and_help() {
    let app = App::start("gpus-queues", |_| {});
    let v = app.get("/api/v1/metrics").await.expect_json(200);
    assert_eq!(v["metrics"]["node_gpus_free_count"], 6);
    assert_eq!(v["queues"]["debug"]["job_queue_state_sched_count"], 2);
    assert!(
        v["help"]["node_up_count"]
            .as_str()
            .unwrap()
            .starts_with("Nodes up")
    );
}

#[tokio::test]
async fn history_series_and_bad_parameters() {
    let server = Server::start("gpus-queues", fast_history).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let h = server
        .get("/api/v1/history/job_queue_state_sched_count?queue=debug&step=1s&agg=max")
        .await
        .expect_json(200);
    let points = h["points"].as_array().unwrap();
    assert!(!points.is_empty(), "{h}");
    assert!(points.iter().all(|p| p["v"] == 2.0), "{h}");
    assert_eq!(h["queue"], "debug");
    for (query, word) in [
        ("node_up_count?agg=median", "agg"),
        ("node_up_count?since=yesterday", "since"),
        ("node_up_count?step=0s", "step"),
        ("node_up_count?since=1m&until=2m", "until"),
        ("node_up_count?queue=batch", "queue"),
        ("node_up_count?color=red", "color"),
    ] {
        let message = server
            .get(&format!("/api/v1/history/{query}"))
            .await
            .expect_status(400, "BadRequest");
        assert!(message.contains(word), "{query}: {message}");
    }
    server
        .get("/api/v1/history/nope")
        .await
        .expect_status(404, "NotFound");
    server
        .get("/api/v1/history/job_queue_state_run_count?queue=gpu")
        .await
        .expect_status(404, "NotFound");
    server.shutdown().await;
}

#[tokio::test]
async fn window_selector_averages_history_and_sets_window_seconds() {
    let server = Server::start("gpus-queues", fast_history).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let v = server
        .get(&format!(
            "{V1BETA2}/namespaces/ns/metrics/node_cores_free_count?metricLabelSelector=window%3D30s"
        ))
        .await
        .expect_json(200);
    assert_eq!(
        v["items"][0]["metric"]["selector"]["matchLabels"]["window"], "30s",
        "{v}"
    );
    // Less history exists than the 30 s asked for: the answer says what its average really
    // covers.
    let covered = v["items"][0]["windowSeconds"].as_i64().unwrap();
    assert!((1..30).contains(&covered), "{v}");
    assert_eq!(v["items"][0]["value"], "5", "{v}");
    let v = server
        .get("/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/metrics/node_cores_free_count?metricLabelSelector=window%3D30s")
        .await
        .expect_json(200);
    assert!(
        (1..=30).contains(&v["items"][0]["window"].as_i64().unwrap()),
        "{v}"
    );
    let v = server
        .get(&format!("{EXTERNAL}/namespaces/ns/job_queue_state_sched_count?labelSelector=queue%3Ddebug,window%3D20s"))
        .await
        .expect_json(200);
    assert!(
        (1..=20).contains(&v["items"][0]["window"].as_i64().unwrap()),
        "{v}"
    );
    assert_eq!(v["items"][0]["value"], "2", "{v}");
    assert_eq!(v["items"][0]["metricLabels"]["queue"], "debug", "{v}");
    for (selector, word) in [
        ("window%3D2h", "longer than"),
        ("window%3Dsoon", "window"),
        ("window%20in%20(1m,2m)", "one value"),
    ] {
        let message = server
            .get(&format!(
                "{V1BETA2}/namespaces/ns/metrics/node_up_count?metricLabelSelector={selector}"
            ))
            .await
            .expect_status(400, "BadRequest");
        assert!(message.contains(word), "{selector}: {message}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn bearer_token_guards_telemetry_but_not_health_or_the_metrics_api() {
    let dir = TempDir::new("token");
    let file = dir.path().join("token");
    std::fs::write(&file, "s3cret\n").unwrap();
    let app = App::start("idle", |c| c.api_token_file = Some(file.clone()));
    for path in [
        "/metrics",
        "/api/v1/metrics",
        "/api/v1/status",
        "/api/v1/history/node_up_count",
        "/api/v1/ranks",
    ] {
        let reply = app.get(path).await;
        reply.expect_status(401, "Unauthorized");
        assert_eq!(
            reply.headers.get("www-authenticate").unwrap(),
            "Bearer",
            "{path}"
        );
        let wrong = app
            .get_with(path, &[("authorization", "Bearer s3creT")])
            .await;
        assert_eq!(wrong.status, 401, "{path}");
        // The scheme is case-insensitive, as Kubernetes reads it.
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let ok = app
                .get_with(path, &[("authorization", &format!("{scheme} s3cret"))])
                .await;
            assert_eq!(ok.status, 200, "{scheme} {path}: {}", ok.text());
        }
    }
    assert_eq!(app.get("/readyz").await.status, 200);
    // The dashboard's page holds no data: it loads, and asks for the token.
    assert_eq!(app.get("/ui").await.status, 200);
    app.get(&format!("{V1BETA2}/namespaces/ns/metrics/node_up_count"))
        .await
        .expect_json(200);
}

//! Rehearsal writes (`--replay` with `--allow-writes`): `POST /write-metrics/` + the path of a
//! read overrides that series until the server stops, in the metrics APIs, `/api/v1/metrics`,
//! the history and `/readyz`; refused without the flag, and the reads still refuse bodies.

mod common;

use std::time::Duration;

use common::{Server, full};

const V1BETA2: &str = "/apis/custom.metrics.k8s.io/v1beta2";
const EXTERNAL: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default";

async fn post(server: &Server, path: &str, body: &'static [u8]) -> common::Reply {
    server
        .client()
        .connect()
        .await
        .send(
            "POST",
            path,
            &[("content-type", "application/json")],
            full(body),
        )
        .await
}

fn value(r: &common::Reply) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    v["items"][0]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn writes_override_one_series_everywhere_until_the_server_stops() {
    let server = Server::start("gpus-queues", |c| {
        c.allow_writes = true;
        c.history_interval = Duration::from_secs(1);
        c.broker.max_age = Duration::ZERO; // a new answer for every sample
    })
    .await;
    let read = format!("{V1BETA2}/namespaces/default/metrics/node_up_count");
    assert_eq!(value(&server.get(&read).await), "4");

    let w = post(&server, &format!("/write-metrics{read}"), b"\"300m\"").await;
    assert_eq!(w.status, 200, "{}", w.text());
    let j: serde_json::Value = serde_json::from_slice(&w.body).unwrap();
    assert_eq!(
        (j["metric"].as_str(), j["value"].as_str()),
        (Some("node_up_count"), Some("300m"))
    );
    assert_eq!(value(&server.get(&read).await), "300m");
    // The same series through the external API, and a queue's series given bare.
    assert_eq!(
        value(&server.get(&format!("{EXTERNAL}/node_up_count")).await),
        "300m"
    );
    let sched = format!("{EXTERNAL}/job_queue_state_sched_count");
    let w = post(
        &server,
        &format!("/write-metrics{sched}?labelSelector=queue%3Ddebug"),
        b"7",
    )
    .await;
    assert_eq!(w.status, 200, "{}", w.text());
    assert_eq!(
        value(
            &server
                .get(&format!("{sched}?labelSelector=queue%3Ddebug"))
                .await
        ),
        "7"
    );
    assert_eq!(
        value(&server.get(&sched).await),
        "2",
        "the whole-instance series is untouched"
    );

    let all = server.get("/api/v1/metrics").await.expect_json(200);
    assert_eq!(all["metrics"]["node_up_count"], 0.3, "{all}");
    assert_eq!(
        all["queues"]["debug"]["job_queue_state_sched_count"], 7,
        "{all}"
    );
    assert_eq!(
        all["overridden"],
        serde_json::json!(["job_queue_state_sched_count{queue=debug}", "node_up_count"])
    );
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert!(
        ready.text().contains("[!]rehearsal (--allow-writes): 2 value(s) overridden: job_queue_state_sched_count{queue=debug}=7, node_up_count=300m"),
        "{}",
        ready.text()
    );
    let status = server.get("/api/v1/status").await.expect_json(200);
    assert_eq!(
        status["rehearsal"]["overridden"]["node_up_count"], 0.3,
        "{status}"
    );
    // The history samples the overridden value (at the next sample, within a few seconds).
    let mut h = serde_json::Value::Null;
    for _ in 0..40 {
        h = server
            .get("/api/v1/history/node_up_count?agg=last")
            .await
            .expect_json(200);
        let last = h["points"]
            .as_array()
            .and_then(|p| p.last())
            .cloned()
            .unwrap_or_default();
        if last["v"] == 0.3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let last = h["points"]
        .as_array()
        .and_then(|p| p.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        last["v"], 0.3,
        "no sample of the overridden value in 10 s: {h}"
    );

    // Mistakes are answered with what to write.
    let bad = post(&server, &format!("/write-metrics{read}"), b"\"lots\"").await;
    let message = bad.expect_status(400, "BadRequest");
    assert!(
        message.contains("\"lots\" is not a Kubernetes quantity"),
        "{message}"
    );
    let nope = post(
        &server,
        &format!("/write-metrics{V1BETA2}/namespaces/default/metrics/no_such"),
        b"1",
    )
    .await;
    nope.expect_status(404, "NotFound");
    let nothing = post(&server, "/write-metrics/apis", b"1").await;
    assert!(
        nothing
            .expect_status(400, "BadRequest")
            .contains("names no metric")
    );
    let two = post(
        &server,
        &format!("/write-metrics{sched}?labelSelector=queue%20in%20(batch,debug)"),
        b"1",
    )
    .await;
    two.expect_status(400, "BadRequest");
    // Reads still refuse bodies.
    let r = server
        .client()
        .connect()
        .await
        .send("GET", &read, &[], full(b"1"))
        .await;
    r.expect_status(413, "RequestEntityTooLarge");
    server.shutdown().await;
}

#[tokio::test]
async fn writes_are_refused_without_allow_writes() {
    let server = Server::start("idle", |_| {}).await;
    let read = format!("{V1BETA2}/namespaces/default/metrics/node_up_count");
    let w = post(&server, &format!("/write-metrics{read}"), b"\"300m\"").await;
    let message = w.expect_status(403, "Forbidden");
    assert!(message.contains("--allow-writes"), "{message}");
    assert_eq!(value(&server.get(&read).await), "4");
    assert!(!server.get("/readyz").await.text().contains("rehearsal"));
    server.shutdown().await;
}

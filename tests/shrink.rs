//! `--drain-before-shrink` in replay mode: the server's loop drains and undrains by writing
//! the replay directory's `resource.status.json`, as the resource module changes its answer,
//! so these tests read back what a broker would say. (The decision itself is unit-tested in
//! src/source/shrink; tests/flux.rs runs the loop on a live instance.)

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Server, TempDir};
use flux_metrics::source::shrink::Settings;
use serde_json::Value;

const REASON: &str = "flux-metrics-api: shrinking to 1";

fn quick() -> Settings {
    Settings {
        shrink_delay: Duration::from_secs(2),
        undrain_grace: Duration::from_secs(1),
        ..Settings::default()
    }
}

/// The `drain` entries of the directory's `resource.status.json`: idset → reason.
fn drains(dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join("resource.status.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["drain"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, i)| (k.clone(), i["reason"].as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (at most 30 s) until `ok` holds for the directory's drains.
async fn wait_for_drains(dir: &Path, what: &str, ok: impl Fn(&[(String, String)]) -> bool) {
    for _ in 0..300 {
        if ok(&drains(dir)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: the drains are {:?}", drains(dir));
}

async fn readyz(server: &Server) -> String {
    let r = server.get("/readyz").await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    r.text()
}

#[tokio::test]
async fn drains_above_n_after_the_delay_and_undrains_when_it_stops() {
    let tmp = TempDir::with_scenario("idle"); // 4 idle nodes: N = 1
    let dir = tmp.path().to_owned();
    let server = Server::start(&dir, |c| c.shrink = Some(quick())).await;
    wait_for_drains(&dir, "ranks 1-3 drained", |d| {
        d == [("1-3".to_owned(), REASON.to_owned())]
    })
    .await;
    let ready = readyz(&server).await;
    assert!(
        ready.contains("[+]drain-before-shrink on (--shrink-delay 2s, --undrain-grace 1s)"),
        "{ready}"
    );
    // Once the loop has seen its drain, /readyz names it.
    let line = "ranks 1-3 drained for a shrink; the cluster can shrink to 1 now";
    let mut ready = String::new();
    for _ in 0..100 {
        ready = readyz(&server).await;
        if ready.contains(line) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready.contains(line), "{ready}");
    // The metrics say so too, and the published size may now fall to N.
    let v = server.get("/api/v1/metrics").await.expect_json(200);
    let m = &v["metrics"];
    assert_eq!(
        (
            &m["node_shrink_drained_count"],
            &m["minicluster_safe_size"],
            &m["minicluster_desired_size"],
            &m["node_drained_count"]
        ),
        (&3.into(), &1.into(), &1.into(), &3.into()),
        "{v}"
    );
    server.shutdown().await;
    assert_eq!(drains(&dir), [], "undrained when the server stopped");
}

#[tokio::test]
async fn an_administrators_drain_is_left_alone() {
    // `drained`: rank 3 drained for "maintenance window", a job on rank 0.
    let tmp = TempDir::with_scenario("drained");
    let dir = tmp.path().to_owned();
    let server = Server::start(&dir, |c| c.shrink = Some(quick())).await;
    wait_for_drains(&dir, "ranks 1-2 drained beside the administrator's", |d| {
        d.len() == 2 && d.contains(&("1-2".to_owned(), REASON.to_owned()))
    })
    .await;
    server.shutdown().await;
    assert_eq!(
        drains(&dir),
        [("3".to_owned(), "maintenance window".to_owned())]
    );
}

#[tokio::test]
async fn a_server_that_is_not_the_owner_says_so_and_drains_nothing() {
    let tmp = TempDir::with_scenario("idle");
    let dir = tmp.path().to_owned();
    let me = flux_metrics::util::process::uid().expect("a uid from /proc/self");
    let owner = me.wrapping_add(1);
    std::fs::write(
        dir.join("attr.get.json"),
        format!(r#"{{"value": "{owner}", "flags": 1}}"#),
    )
    .unwrap();
    let server = Server::start(&dir, |c| c.shrink = Some(quick())).await;
    let off = format!(
        "[+]drain-before-shrink OFF: this server runs as uid {me} and the Flux instance is owned by uid {owner}"
    );
    let mut ready = String::new();
    for _ in 0..100 {
        ready = readyz(&server).await;
        if ready.contains(&off) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready.contains(&off), "{ready}");
    assert!(
        ready.contains("readyz check passed"),
        "still ready: {ready}"
    );
    // Metrics are served; the published size loses its drain floor (once the answers cached
    // before the owner check expire).
    let mut v = Value::Null;
    for _ in 0..100 {
        v = server.get("/api/v1/metrics").await.expect_json(200);
        if v["metrics"]["minicluster_desired_size"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(v["metrics"]["minicluster_desired_size"], 1, "{v}");
    // Twice the delay later, still nothing drained.
    tokio::time::sleep(quick().shrink_delay * 2).await;
    assert_eq!(drains(&dir), []);
    server.shutdown().await;
    assert_eq!(drains(&dir), []);
}

#[tokio::test]
async fn nothing_is_drained_while_the_broker_cannot_be_asked() {
    let tmp = TempDir::with_scenario("idle");
    let dir = tmp.path().to_owned();
    std::fs::write(dir.join("fault"), "unavailable").unwrap();
    let server = Server::start(&dir, |c| c.shrink = Some(quick())).await;
    let mut ready = String::new();
    for _ in 0..100 {
        let r = server.get("/readyz").await;
        ready = r.text();
        if ready.contains("nothing is decided on stale data") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Not ready (the broker is down); the loop waits.
    assert!(ready.contains("[-]flux-broker failed"), "{ready}");
    tokio::time::sleep(quick().shrink_delay * 2).await;
    assert_eq!(drains(&dir), []);
    std::fs::remove_file(dir.join("fault")).unwrap();
    wait_for_drains(&dir, "drained once the broker answers", |d| !d.is_empty()).await;
    server.shutdown().await;
}

#[tokio::test]
async fn without_the_flag_an_earlier_runs_drains_are_reported_and_left() {
    let tmp = TempDir::with_scenario("idle");
    let dir = tmp.path().to_owned();
    let status = std::fs::read_to_string(dir.join("resource.status.json")).unwrap();
    let mut v: Value = serde_json::from_str(&status).unwrap();
    v["drain"] = serde_json::json!({"2-3": {"timestamp": 1.0, "reason": "flux-metrics-api: shrinking to 2"}});
    std::fs::write(dir.join("resource.status.json"), v.to_string()).unwrap();
    let server = Server::start(&dir, |_| {}).await;
    let ready = readyz(&server).await;
    assert!(
        ready.contains("[+]drain-before-shrink off: ranks 2-3 are still drained by an earlier run"),
        "{ready}"
    );
    server.shutdown().await;
    assert_eq!(drains(&dir).len(), 1, "left as they were");
}

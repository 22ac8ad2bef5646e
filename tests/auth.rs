//! Client certificate authentication through real TLS: no certificate, a foreign CA, a CN not
//! allowed, an expired certificate, the front proxy and a client-CA user; and certificate files
//! rotated under load without a failed request.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use common::{Server, TempDir};
use flux_metrics::server::config::AuthSource;
use flux_metrics::server::pki::{Ca, Validity};

const METRIC: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/metrics/node_up_count";

fn ca(name: &str) -> Ca {
    Ca::new(name, validity()).unwrap()
}

fn validity() -> Validity {
    Validity::days_from(SystemTime::now(), 1).unwrap()
}

/// A client certificate (PEM chain, PEM key) signed by `ca`.
fn client(ca: &Ca, cn: &str, org: Option<&str>, expired: bool) -> (String, String) {
    let validity = if expired {
        let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_800); // 2000-01-01
        Validity::days_from(long_ago, 365).unwrap()
    } else {
        validity()
    };
    let orgs: Vec<&str> = org.into_iter().collect();
    let issued = ca.issue_client(cn, &orgs, validity).unwrap();
    (issued.cert_pem, issued.key_pem)
}

fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test]
async fn only_trusted_certificates_reach_the_api() {
    let (front_ca, users_ca, stranger_ca) = (ca("front-proxy-ca"), ca("client-ca"), ca("stranger"));
    let dir = TempDir::new("auth");
    let rh = write(&dir, "rh.crt", &front_ca.issued().cert_pem);
    let cl = write(&dir, "cl.crt", &users_ca.issued().cert_pem);
    let server = Server::start("busy", |c| {
        c.auth = AuthSource::Files {
            client_ca: Some(cl.clone()),
            requestheader_ca: Some(rh.clone()),
            allowed_names: vec!["front-proxy-client".into()],
        };
    })
    .await;

    // No certificate: 401, but health stays open.
    server.get(METRIC).await.expect_status(401, "Unauthorized");
    server
        .get("/metrics")
        .await
        .expect_status(401, "Unauthorized");
    assert_eq!(server.get("/readyz").await.status, 200);
    assert_eq!(server.get("/healthz").await.status, 200);

    let front = client(&front_ca, "front-proxy-client", None, false);
    let headers = [
        ("x-remote-user", "system:kube-aggregator"),
        ("x-remote-group", "system:masters"),
    ];
    let c = server.client_with_certificate(&front.0, &front.1);
    c.get_with(METRIC, &headers).await.expect_json(200);
    c.get_with("/apis/custom.metrics.k8s.io/v1beta2", &headers)
        .await
        .expect_json(200);
    // The front proxy must name the user.
    let m = c.get(METRIC).await.expect_status(401, "Unauthorized");
    assert!(m.contains("X-Remote-User"), "{m}");

    let intruder = client(&front_ca, "intruder", None, false);
    let m = server
        .client_with_certificate(&intruder.0, &intruder.1)
        .get_with(METRIC, &headers)
        .await
        .expect_status(403, "Forbidden");
    assert!(m.contains("intruder"), "{m}");

    let alice = client(&users_ca, "alice", Some("admins"), false);
    server
        .client_with_certificate(&alice.0, &alice.1)
        .get(METRIC)
        .await
        .expect_json(200);

    let mallory = client(&stranger_ca, "mallory", None, false);
    server
        .client_with_certificate(&mallory.0, &mallory.1)
        .get_with(METRIC, &headers)
        .await
        .expect_status(401, "Unauthorized");

    let old = client(&users_ca, "old", None, true);
    let m = server
        .client_with_certificate(&old.0, &old.1)
        .get(METRIC)
        .await
        .expect_status(401, "Unauthorized");
    assert!(m.to_lowercase().contains("expired"), "{m}");
    server.shutdown().await;
}

#[tokio::test]
async fn rotated_files_are_served_without_failed_requests() {
    let (ca1, ca2) = (ca("ca-one"), ca("ca-two"));
    let dir = TempDir::new("rotate");
    let cl = write(&dir, "client-ca.crt", &ca1.issued().cert_pem);
    let server = Server::start("idle", |c| {
        c.auth = AuthSource::Files {
            client_ca: Some(cl.clone()),
            requestheader_ca: None,
            allowed_names: vec![],
        };
    })
    .await;
    let (one, two) = (
        client(&ca1, "one", None, false),
        client(&ca2, "two", None, false),
    );
    let c1 = server.client_with_certificate(&one.0, &one.1);
    c1.get(METRIC).await.expect_json(200);
    server
        .client_with_certificate(&two.0, &two.1)
        .get(METRIC)
        .await
        .expect_status(401, "Unauthorized");

    // Load on a kept-alive connection and on fresh ones while the CA file is rotated.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut kept = c1.connect().await;
    let loader = {
        let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(
                    kept.get(METRIC).await.status,
                    200,
                    "kept-alive connection failed"
                );
                done.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // Both CAs, as a rotation publishes them, then only the new one.
    std::fs::write(
        &cl,
        format!("{}{}", ca1.issued().cert_pem, ca2.issued().cert_pem),
    )
    .unwrap();
    let c2 = server.client_with_certificate(&two.0, &two.1);
    let mut accepted = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if c2.get(METRIC).await.status == 200 {
            accepted = true;
            break;
        }
    }
    assert!(
        accepted,
        "the rotated client CA was not picked up within 10 s"
    );
    stop.store(true, Ordering::Relaxed);
    loader.await.unwrap();
    assert!(
        done.load(Ordering::Relaxed) > 10,
        "too few requests under load"
    );
    server.shutdown().await;
}

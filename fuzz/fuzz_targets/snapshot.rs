//! `Snapshot::parse` on four arbitrary broker answers, then every metric of the catalogue
//! computed from the snapshot, as the routes do.
//!
//! Input: the answers to `resource.sched-status`, `resource.status`, `job-list.job-stats` and
//! `job-list.list`, in that order, separated by NUL bytes (missing parts are empty; invalid
//! UTF-8 is replaced, as the broker client does not do but a fuzzer should not stop at).
//! `fuzz/seed.sh` builds seeds in this format from `tests/fixtures/*/`.
//!
//! Invariants: parse never panics; when it succeeds the counts are consistent
//! (free ≤ up ≤ all, idle ≤ free, cores_free ≤ cores_up, gpus_free ≤ gpus_up,
//! desired_size ≤ max(all, 1)), and every metric value, for the whole instance and for each
//! queue, is computed without panicking and formats as a quantity.
#![no_main]

use flux_metrics::source::catalogue::CATALOGUE;
use flux_metrics::api::quantity;
use flux_metrics::source::snapshot::{Answers, Snapshot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |&b| b == 0);
    let mut next = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let a = Answers {
        sched_status: next(),
        resource_status: next(),
        job_stats: next(),
        job_list: next(),
    };
    let Ok(snap) = Snapshot::parse(&a, chrono::Utc::now()) else {
        return;
    };
    let n = &snap.nodes;
    assert!(n.up <= n.all, "up {} > all {}", n.up, n.all);
    assert!(n.free <= n.up, "free {} > up {}", n.free, n.up);
    assert!(n.idle <= n.free, "idle {} > free {}", n.idle, n.free);
    assert!(n.cores_free <= n.cores_up, "cores_free {} > cores_up {}", n.cores_free, n.cores_up);
    assert_eq!(n.cores_allocated, n.cores_up - n.cores_free);
    assert!(n.gpus_free <= n.gpus_up, "gpus_free {} > gpus_up {}", n.gpus_free, n.gpus_up);
    assert_eq!(n.all, snap.all.nnodes());
    assert_eq!(n.up, snap.up.nnodes());
    assert_eq!(n.free, snap.free.nnodes());
    assert!(snap.up.ranks().is_subset(&snap.all.ranks()));
    assert!(snap.free.ranks().is_subset(&snap.up.ranks()));
    assert_eq!(n.min_size, snap.allocated.ranks().max().map_or(0, |r| u64::from(r) + 1));
    let desired = snap.desired_size();
    assert!(
        desired <= n.all.max(1),
        "desired_size {desired} > max(all {}, 1)",
        n.all
    );
    if n.all > 0 {
        assert!(desired >= 1);
    }

    // Every metric, as the routes compute and print it: whole instance, each queue, and a
    // queue that does not exist.
    let queues: Vec<String> = snap.queues.keys().cloned().collect();
    let unknown = format!("{}-not-a-queue", queues.join("-"));
    for m in CATALOGUE {
        let v = m.value(&snap, None).expect("every metric has a value without labels");
        let _ = quantity::format_int(i64::try_from(v).unwrap_or(i64::MAX));
        for q in &queues {
            match m.value(&snap, Some(q)) {
                Ok(v) => {
                    assert!(m.has_queue_label());
                    let _ = quantity::format_int(i64::try_from(v).unwrap_or(i64::MAX));
                }
                Err(_) => assert!(!m.has_queue_label()),
            }
        }
        assert!(m.value(&snap, Some(&unknown)).is_err());
    }
});

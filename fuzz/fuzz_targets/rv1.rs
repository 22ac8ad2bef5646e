//! `ResourceSet::from_json` on arbitrary JSON (the `all`/`down`/`allocated` members of
//! `resource.sched-status` are Rv1 sets).
//!
//! Invariants: a parsed set minus itself is empty, minus nothing is itself; its node count is
//! the size of its rank set; every rank it lists has a node; core and GPU totals agree with the
//! per-node sets. A top-level array of two sets also checks `difference` and `ranks_wholly_in`
//! between them.
#![no_main]

use flux_metrics::source::rlist::{MAX_RANKS, ResourceSet};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match ResourceSet::from_json(&v) {
        Ok(rs) => check(&rs),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Value::Array(pair) = &v {
        if let [a, b] = pair.as_slice() {
            if let (Ok(a), Ok(b)) = (ResourceSet::from_json(a), ResourceSet::from_json(b)) {
                check_pair(&a, &b);
            }
        }
    }
});

fn check(rs: &ResourceSet) {
    let ranks = rs.ranks();
    assert_eq!(rs.nnodes(), ranks.len(), "nnodes != |ranks|");
    assert!(rs.nnodes() <= MAX_RANKS);
    assert_eq!(rs.difference(rs).nnodes(), 0, "a set minus itself is not empty");
    assert_eq!(rs.difference(rs).ncores(), 0);
    assert_eq!(&rs.difference(&ResourceSet::default()), rs);
    assert_eq!(rs.ranks_wholly_in(rs), ranks);

    let (mut cores, mut gpus, mut max_cores, mut n) = (0u64, 0u64, 0u64, 0u64);
    for (rank, node) in rs.nodes() {
        assert!(ranks.contains(rank));
        assert_eq!(rs.node(rank), Some(node));
        cores += node.cores.len();
        gpus += node.gpus.len();
        max_cores = max_cores.max(node.cores.len());
        n += 1;
    }
    assert_eq!(n, rs.nnodes());
    assert_eq!(cores, rs.ncores());
    assert_eq!(gpus, rs.ngpus());
    assert_eq!(max_cores, rs.max_cores_per_node());
}

fn check_pair(a: &ResourceSet, b: &ResourceSet) {
    let d = a.difference(b);
    assert!(d.ranks().is_subset(&a.ranks()), "a - b has ranks a lacks");
    assert!(d.ncores() <= a.ncores() && d.ngpus() <= a.ngpus());
    assert_eq!(d.difference(b), d, "(a - b) - b != a - b");
    for (rank, node) in d.nodes() {
        let orig = a.node(rank).expect("rank of a - b is in a");
        assert!(node.cores.is_subset(&orig.cores) && node.gpus.is_subset(&orig.gpus));
        if let Some(o) = b.node(rank) {
            assert!(node.cores.intersection(&o.cores).is_empty());
            assert!(node.gpus.intersection(&o.gpus).is_empty());
        }
    }
    let wholly = a.ranks_wholly_in(b);
    assert!(wholly.is_subset(&a.ranks()) && wholly.is_subset(&b.ranks()));
    // A rank wholly in b keeps nothing in a - b.
    assert!(wholly.intersection(&d.ranks()).is_empty(), "a rank wholly in b survives a - b");
}

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::*;

/// An Rv1 set of `ranks`, each with `cores` and `gpus` (idsets).
fn set(entries: &[(&str, &str, &str)]) -> ResourceSet {
    let r_lite: Vec<_> = entries
        .iter()
        .map(|(rank, core, gpu)| {
            let mut children = json!({"core": core});
            if !gpu.is_empty() {
                children["gpu"] = json!(gpu);
            }
            json!({"rank": rank, "children": children})
        })
        .collect();
    ResourceSet::from_json(&json!({"version": 1, "execution": {"R_lite": r_lite}})).unwrap()
}

fn ids(s: &str) -> IdSet {
    IdSet::parse(s).unwrap()
}

fn slots(n: u32, cores: u32, gpus: u32) -> Shape {
    Shape {
        nodes: 0,
        slots: n,
        cores_per_slot: cores,
        gpus_per_slot: gpus,
        exclusive: false,
        constraint: None,
    }
}

fn nodes(n: u32, exclusive: bool) -> Shape {
    Shape {
        nodes: n,
        slots: 1,
        cores_per_slot: 1,
        gpus_per_slot: 0,
        exclusive,
        constraint: None,
    }
}

const NOW: f64 = 1_800_000_000.0;

fn waiting(shapes: &[Shape]) -> Vec<Waiting<'_>> {
    shapes
        .iter()
        .map(|shape| Waiting {
            shape,
            since: Some(NOW - 1.0),
        })
        .collect()
}

/// The pool of `all` with `allocated` taken, brokers `online` up, `closed` ranks closed.
fn pool(
    all: &ResourceSet,
    allocated: &ResourceSet,
    online: &str,
    closed: &str,
    current_size: u64,
) -> Pool {
    Pool::new(&Resources {
        all,
        allocated,
        online: &ids(online),
        closed: &IdSet::parse(closed).unwrap(),
        shrink_drained: &IdSet::default(),
        current_size,
    })
}

/// The size `jobs` fit in on `pool`, no node having a property, with the default bound.
fn size_of(pool: &Pool, shapes: &[Shape]) -> u64 {
    let (p, h) = (BTreeMap::new(), BTreeMap::new());
    let n = Nodes {
        properties: &p,
        hostnames: &h,
    };
    pool.size(&waiting(shapes), &n, NOW, Duration::from_secs(300))
}

/// The example: 8 ranks × 4 cores × 2 GPUs, brokers 0-3 up, every up GPU busy (and a
/// core of each up node); waiting: two jobs of 1 core and 2 GPUs, one exclusive 1-node job.
#[test]
fn gpu_jobs_and_an_exclusive_node_need_three_new_nodes() {
    let (all, allocated) = (set(&[("0-7", "0-3", "0-1")]), set(&[("0-3", "0", "0-1")]));
    let pool = pool(&all, &allocated, "0-3", "", 4);
    let shapes = [slots(1, 1, 2), slots(1, 1, 2), nodes(1, true)];
    assert_eq!(pool.pending_nodes(&shapes), 3);
    assert_eq!(size_of(&pool, &shapes), 7);
    // Without the GPUs the two small jobs fit beside what runs: only the exclusive job grows.
    assert_eq!(
        size_of(&pool, &[slots(1, 1, 0), slots(1, 1, 0), nodes(1, true)]),
        5
    );
}

#[test]
fn drained_ranks_take_nothing_and_down_ranks_below_the_size_neither() {
    let (all, allocated) = (set(&[("0-3", "0-3", "")]), set(&[("0", "0-3", "")]));
    let pool = pool(&all, &allocated, "0,2-3", "2", 4);
    // Rank 0 is full, rank 1 is down, rank 2 drained: one node fits, on rank 3.
    assert_eq!(size_of(&pool, &[nodes(1, false)]), 4);
    // Two do not fit anywhere: the whole set.
    assert_eq!(size_of(&pool, &[nodes(2, false)]), 4);
    // Nothing waits: 1.
    assert_eq!(size_of(&pool, &[]), 1);
}

#[test]
fn room_on_busy_nodes_is_used_before_new_ones() {
    // 4 ranks of 4 cores, 2 up, each with 2 cores busy: 4 one-core slots fit on the up ones.
    let (all, allocated) = (set(&[("0-3", "0-3", "")]), set(&[("0-1", "0-1", "")]));
    let pool = pool(&all, &allocated, "0-1", "", 2);
    let shapes = [slots(4, 1, 0)];
    assert_eq!(size_of(&pool, &shapes), 2);
    assert_eq!(pool.pending_nodes(&shapes), 1);
    // A 2-node job of 3 cores a node does not fit beside them: ranks 2 and 3.
    let mut big = nodes(2, false);
    big.slots = 3;
    assert_eq!(size_of(&pool, &[big]), 4);
}

#[test]
fn constrained_jobs_go_only_where_the_property_is() {
    let (all, allocated) = (set(&[("0-7", "0-3", "")]), ResourceSet::default());
    let pool = pool(&all, &allocated, "0-3", "", 4);
    let props = BTreeMap::from([("bigmem".to_string(), ids("6-7"))]);
    let hosts = BTreeMap::new();
    let n = Nodes {
        properties: &props,
        hostnames: &hosts,
    };
    let mut job = slots(2, 2, 0);
    job.constraint = Some(Constraint::Properties(vec!["bigmem".into()]));
    let d = Duration::from_secs(300);
    assert_eq!(
        pool.size(&waiting(std::slice::from_ref(&job)), &n, NOW, d),
        7
    );
    job.slots = 3; // 6 cores: rank 6 and rank 7
    assert_eq!(pool.size(&waiting(&[job]), &n, NOW, d), 8);
}

#[test]
fn order_decides_who_gets_the_room() {
    // One free node up, none beyond: the first job takes it, the second needs the next rank.
    let (all, allocated) = (set(&[("0-2", "0-1", "")]), set(&[("0", "0-1", "")]));
    let pool = pool(&all, &allocated, "0-1", "", 2);
    assert_eq!(size_of(&pool, &[slots(2, 1, 0), slots(1, 1, 0)]), 3);
    assert_eq!(size_of(&pool, &[slots(1, 1, 0)]), 2);
}

#[test]
fn a_job_that_waits_too_long_where_it_fits_gets_new_nodes() {
    let (all, allocated) = (set(&[("0-3", "0-3", "")]), ResourceSet::default());
    let pool = pool(&all, &allocated, "0-1", "", 2);
    let (p, h) = (BTreeMap::new(), BTreeMap::new());
    let n = Nodes {
        properties: &p,
        hostnames: &h,
    };
    let shape = nodes(1, false);
    let young = [Waiting {
        shape: &shape,
        since: Some(NOW - 10.0),
    }];
    let old = [Waiting {
        shape: &shape,
        since: Some(NOW - 600.0),
    }];
    let bound = Duration::from_secs(300);
    assert_eq!(pool.size(&young, &n, NOW, bound), 1);
    // The model says it fits on rank 0, but it has waited 10 minutes: it gets rank 2.
    assert_eq!(pool.size(&old, &n, NOW, bound), 3);
    // Already growing for another job (3 nodes, one core each): the old one keeps its place
    // beside it, on rank 0.
    let big = nodes(3, false);
    let both = [
        Waiting {
            shape: &big,
            since: Some(NOW - 10.0),
        },
        old[0].clone(),
    ];
    assert_eq!(pool.size(&both, &n, NOW, bound), 3);
    let both = [old[0].clone(), both[0].clone()];
    assert_eq!(pool.size(&both, &n, NOW, bound), 3);
}

#[test]
fn exclusive_needs_every_core_free() {
    let (all, allocated) = (set(&[("0-1", "0-3", "0")]), set(&[("0", "", "0")]));
    let pool = pool(&all, &allocated, "0-1", "", 2);
    // Rank 0 has every core free (only its GPU is busy), as flux's scheduler checks.
    assert_eq!(size_of(&pool, &[nodes(1, true)]), 1);
    assert_eq!(size_of(&pool, &[nodes(1, true), nodes(1, true)]), 2);
    assert_eq!(size_of(&pool, &[nodes(3, true)]), 2);
}

#[test]
fn a_job_counts_on_drained_room_once_it_has_waited_the_grace() {
    // Ranks 0-3 of four cores up; 0-1 full, 2-3 drained by this server for a shrink.
    let all = set(&[("0-3", "0-3", "")]);
    let allocated = set(&[("0-1", "0-3", "")]);
    let drained = ids("2-3");
    let pool = Pool::new(&Resources {
        all: &all,
        allocated: &allocated,
        online: &ids("0-3"),
        closed: &IdSet::default(),
        shrink_drained: &drained,
        current_size: 4,
    });
    let (p, h) = (BTreeMap::new(), BTreeMap::new());
    let n = Nodes {
        properties: &p,
        hostnames: &h,
    };
    let job = slots(1, 2, 0);
    let waited = |secs: f64| {
        [Waiting {
            shape: &job,
            since: Some(NOW - secs),
        }]
    };
    let bound = Duration::from_secs(300);
    // Without the rule (the loop off), the drained rank 2 is room at once.
    assert_eq!(pool.size(&waited(5.0), &n, NOW, bound), 3);
    let grace = pool.clone().drained_room_after(Duration::from_secs(30));
    // Waiting 5 s for the full ranks: left out, the size stays 1.
    assert_eq!(grace.size(&waited(5.0), &n, NOW, bound), 1);
    // Waiting 40 s: it needs rank 2.
    assert_eq!(grace.size(&waited(40.0), &n, NOW, bound), 3);
    // A job whose wait is not known counts at once.
    let unknown = [Waiting {
        shape: &job,
        since: None,
    }];
    assert_eq!(grace.size(&unknown, &n, NOW, bound), 3);
    // A job that fits nowhere makes the whole set, young or not.
    let huge = slots(1, 8, 0);
    let huge = [Waiting {
        shape: &huge,
        since: Some(NOW - 1.0),
    }];
    assert_eq!(grace.size(&huge, &n, NOW, bound), 4);
}

//! The state of each broker rank, for the dashboard's rank map (`/api/v1/ranks`): free, partly
//! or fully allocated, drained, down, or absent (a rank of the resource set whose broker is not
//! running and above the current size: a MiniCluster's pod that does not exist), with its
//! hostname, cores, GPUs, drain reason and whether this server drained it for a shrink. Pure
//! code on a [`Snapshot`].

use serde::Serialize;

use crate::source::rlist::IdSet;
use crate::source::snapshot::Snapshot;

/// What a rank is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Up, nothing allocated.
    Free,
    /// Up, some of its cores or GPUs allocated.
    Partial,
    /// Up, every core and GPU allocated.
    Full,
    /// Drained by an administrator (or by a shrink): no new job lands there.
    Drained,
    /// Down within the current size: its broker should run but does not answer (or it is
    /// excluded, or torpid).
    Down,
    /// Offline and at or above the current size: not started (a MiniCluster below its
    /// maximum size).
    Absent,
}

/// One rank of the resource set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rank {
    /// Broker rank.
    pub rank: u32,
    /// Its hostname, from the resource set's nodelist (`None` when that is unusable).
    pub hostname: Option<String>,
    /// What it is doing.
    pub state: State,
    /// Its cores.
    pub cores: u64,
    /// Of those, allocated to jobs.
    pub cores_allocated: u64,
    /// Its GPUs.
    pub gpus: u64,
    /// Of those, allocated to jobs.
    pub gpus_allocated: u64,
    /// Why it was drained, when it is.
    pub drain_reason: Option<String>,
    /// Whether this server drained it for a shrink (`--drain-before-shrink`).
    pub shrink: bool,
}

/// Every rank of `s`'s resource set, in rank order.
pub fn ranks(s: &Snapshot) -> Vec<Rank> {
    let current = s.nodes.current_size;
    let mut reasons = std::collections::BTreeMap::new();
    for (set, reason) in &s.drains {
        for rank in set.iter().filter(|r| s.all.node(*r).is_some()) {
            reasons.entry(rank).or_insert(reason.as_str());
        }
    }
    s.all
        .nodes()
        .map(|(rank, node)| {
            let alloc = s.allocated.node(rank);
            let used = |mine: &IdSet, theirs: Option<&IdSet>| {
                theirs.map_or(0, |t| mine.intersection(t).len())
            };
            let cores_allocated = used(&node.cores, alloc.map(|a| &a.cores));
            let gpus_allocated = used(&node.gpus, alloc.map(|a| &a.gpus));
            let (cores, gpus) = (node.cores.len(), node.gpus.len());
            let state = if s.drained.contains(rank) {
                State::Drained
            } else if s.down.node(rank).is_some() {
                if !s.online.contains(rank) && u64::from(rank) >= current {
                    State::Absent
                } else {
                    State::Down
                }
            } else if cores_allocated + gpus_allocated == 0 {
                State::Free
            } else if cores_allocated == cores && gpus_allocated == gpus {
                State::Full
            } else {
                State::Partial
            };
            Rank {
                rank,
                hostname: s
                    .hostnames
                    .as_ref()
                    .ok()
                    .and_then(|h| h.get(&rank).cloned()),
                state,
                cores,
                cores_allocated,
                gpus,
                gpus_allocated,
                drain_reason: reasons.get(&rank).map(|r| (*r).to_owned()),
                shrink: s.shrink_drains.iter().any(|(set, _)| set.contains(rank)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::snapshot::tests::{answers, snapshot};

    fn states(scenario: &str) -> Vec<(u32, State)> {
        ranks(&snapshot(scenario))
            .iter()
            .map(|r| (r.rank, r.state))
            .collect()
    }

    #[test]
    fn a_minicluster_below_its_size_has_absent_ranks_above_the_current_size() {
        // elastic: 8 ranks, brokers 0-3 up; jobs on 0-1 (all cores) and 2 (two of four).
        use State::*;
        assert_eq!(
            states("elastic"),
            [
                (0, Full),
                (1, Full),
                (2, Partial),
                (3, Free),
                (4, Absent),
                (5, Absent),
                (6, Absent),
                (7, Absent)
            ]
        );
        let r = ranks(&snapshot("elastic"));
        assert_eq!(r[4].hostname.as_deref(), Some("flux-sample-4"));
        assert_eq!((r[2].cores, r[2].cores_allocated), (4, 2));
        assert_eq!(snapshot("elastic").nodes.current_size, 4);
    }

    #[test]
    fn a_drained_rank_says_why() {
        let r = ranks(&snapshot("drained"));
        assert_eq!(r.len(), 4);
        assert_eq!(r[3].state, State::Drained);
        assert_eq!(r[3].drain_reason.as_deref(), Some("maintenance window"));
        assert!(!r[3].shrink, "an administrator's drain");
        assert_eq!(r[3].hostname.as_deref(), Some("vm"));
        assert!(r[..3].iter().all(|x| x.drain_reason.is_none()));
    }

    #[test]
    fn gpus_are_counted_per_rank() {
        let r = ranks(&snapshot("gpus-queues"));
        let gpus: Vec<(u64, u64)> = r.iter().map(|x| (x.gpus, x.gpus_allocated)).collect();
        assert_eq!(gpus.iter().map(|g| g.0).sum::<u64>(), 8);
        assert_eq!(gpus.iter().map(|g| g.1).sum::<u64>(), 2);
        assert_eq!(r[0].hostname.as_deref(), Some("node0"));
        // Every node holds some allocation (node_allocated_count is 4), none is free.
        assert!(r.iter().all(|x| x.state != State::Free), "{r:?}");
    }

    #[test]
    fn a_down_rank_within_the_current_size_is_down_not_absent() {
        use serde_json::{Value, json};
        // elastic, but rank 2's broker stopped answering while rank 3's still runs.
        let mut a = answers("elastic");
        let mut sched: Value = serde_json::from_str(&a.sched_status).unwrap();
        sched["down"]["execution"]["R_lite"] =
            json!([{"rank": "2,4-7", "children": {"core": "0-3"}}]);
        sched["down"]["execution"]["nodelist"] = json!(["flux-sample-[2,4-7]"]);
        sched["allocated"]["execution"]["R_lite"] =
            json!([{"rank": "0-1", "children": {"core": "0-3"}}]);
        sched["allocated"]["execution"]["nodelist"] = json!(["flux-sample-[0-1]"]);
        a.sched_status = sched.to_string();
        let mut status: Value = serde_json::from_str(&a.resource_status).unwrap();
        status["online"] = json!("0-1,3");
        status["offline"] = json!("2,4-7");
        a.resource_status = status.to_string();
        let s = Snapshot::parse(&a, chrono::Utc::now()).unwrap();
        assert_eq!(s.nodes.current_size, 4);
        use State::*;
        let got: Vec<State> = ranks(&s).iter().map(|r| r.state).collect();
        assert_eq!(
            got,
            [Full, Full, Down, Free, Absent, Absent, Absent, Absent]
        );
    }
}

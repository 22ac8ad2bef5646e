//! The decision on synthetic sequences (a broker that applies every RPC at once) and on the
//! recorded scenarios of `tests/fixtures/`.

use std::collections::BTreeMap;

use super::*;
use crate::source::snapshot::tests::snapshot;

fn ids(s: &str) -> IdSet {
    IdSet::parse(s).unwrap()
}

fn settings(delay: u64, grace: u64) -> Settings {
    Settings {
        shrink_delay: Duration::from_secs(delay),
        undrain_grace: Duration::from_secs(grace),
        max_gap: Duration::from_secs(15),
    }
}

/// A Flux instance whose drains the loop changes, observed once a second. It publishes the
/// desired size as the server does with the loop on: max(N, highest busy rank + 1, safe size).
struct Sim {
    loop_: Shrinker,
    at: f64,
    online: IdSet,
    excluded: IdSet,
    /// Ranks running a job.
    busy: IdSet,
    /// The running jobs' packed size ([`packed_running`]).
    running: u64,
    /// Drains by anyone, with their reasons.
    drains: BTreeMap<u32, String>,
    /// Every decision that did something, with its time.
    log: Vec<(f64, Decision)>,
}

impl Sim {
    fn new(settings: Settings, online: &str) -> Sim {
        Sim {
            loop_: Shrinker::new(settings),
            at: 0.0,
            online: ids(online),
            excluded: IdSet::default(),
            busy: IdSet::default(),
            running: 0,
            drains: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    fn blocked(&self) -> IdSet {
        let drained: IdSet = self.drains.keys().copied().collect();
        drained.union(&self.excluded)
    }

    /// The published size for N = `needed`.
    fn desired(&self, needed: u64) -> u64 {
        let open = self.online.difference(&self.blocked()).union(&self.busy);
        let safe = open.max().map_or(1, |r| u64::from(r) + 1);
        let floor = self.busy.max().map_or(0, |r| u64::from(r) + 1);
        needed.max(floor).max(safe)
    }

    fn observation(&self, needed: u64, desired: u64) -> Observation {
        let mut ours: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        for (&rank, reason) in &self.drains {
            if let Some(size) = size_of_reason(reason) {
                ours.entry(size).or_default().push(rank);
            }
        }
        Observation {
            at: self.at,
            needed,
            running: self.running,
            desired,
            online: self.online.clone(),
            blocked: self.blocked(),
            ours: ours
                .into_iter()
                .map(|(size, ranks)| (ranks.into_iter().collect(), size))
                .collect(),
        }
    }

    /// One snapshot, at the current time, with N = `needed` and the published size
    /// `desired`; the decision is carried out; the clock moves on a second.
    fn step_with(&mut self, needed: u64, desired: u64) -> Decision {
        self.loop_.observe(self.observation(needed, desired));
        let d = self.loop_.decide();
        for rank in d.drain.iter() {
            let previous = self.drains.insert(rank, reason(d.size));
            assert!(previous.is_none(), "drained {rank} twice");
        }
        for rank in d.undrain.iter() {
            let reason = self
                .drains
                .remove(&rank)
                .expect("undrained a rank not drained");
            assert!(
                size_of_reason(&reason).is_some(),
                "undrained someone else's drain"
            );
        }
        if !d.is_empty() {
            self.loop_.sent(&d, self.at);
            self.log.push((self.at, d.clone()));
        }
        self.at += 1.0;
        d
    }

    /// `secs` snapshots, one a second, with N = `needed`.
    fn run(&mut self, secs: u64, needed: u64) {
        for _ in 0..secs {
            self.step_with(needed, self.desired(needed));
        }
    }

    fn ours(&self) -> IdSet {
        self.drains
            .iter()
            .filter(|(_, r)| size_of_reason(r).is_some())
            .map(|(&rank, _)| rank)
            .collect()
    }
}

fn undrain(ranks: &str) -> Decision {
    Decision {
        undrain: ids(ranks),
        ..Default::default()
    }
}

#[test]
fn reasons_mark_this_servers_drains() {
    assert_eq!(reason(3), "flux-metrics-api: shrinking to 3");
    assert_eq!(size_of_reason(&reason(3)), Some(3));
    assert_eq!(
        size_of_reason("flux-metrics-api: shrinking to 12 (ranks 12-15)"),
        Some(12)
    );
    assert_eq!(size_of_reason("flux-metrics-api: shrinking to ?"), Some(0));
    assert_eq!(size_of_reason("maintenance window"), None);
    assert_eq!(size_of_reason("shrinking to 3"), None);
}

#[test]
fn drains_the_ranks_above_n_once_n_stayed_below_for_the_delay() {
    let mut sim = Sim::new(settings(300, 30), "0-7");
    sim.run(300, 3);
    assert!(sim.log.is_empty(), "{:?}", sim.log);
    sim.run(1, 3);
    assert_eq!(sim.log.len(), 1);
    let (at, d) = &sim.log[0];
    assert_eq!((*at, d.drain.to_string(), d.size), (300.0, "3-7".into(), 3));
    assert!(d.undrain.is_empty());
    assert_eq!(sim.drains[&5], "flux-metrics-api: shrinking to 3");
    // Nothing more while nothing changes.
    sim.run(600, 3);
    assert_eq!(sim.log.len(), 1);
}

#[test]
fn the_drains_leave_room_for_the_nodes_the_running_jobs_fill() {
    // A trickle: three nodes' worth of jobs run, each new one starts at once, so nothing is
    // seen waiting and N is 1; the drains leave three nodes, not one.
    let mut sim = Sim::new(settings(60, 30), "0-7");
    sim.running = 3;
    sim.run(61, 1);
    assert_eq!(sim.log.len(), 1, "{:?}", sim.log);
    assert_eq!(
        (sim.log[0].1.drain.to_string(), sim.log[0].1.size),
        ("3-7".into(), 3)
    );
    // The load falls to one node's worth: after the delay, one node is left.
    sim.running = 1;
    sim.run(59, 1);
    assert_eq!(
        sim.log.len(),
        1,
        "the three nodes' worth is in the window until then"
    );
    sim.run(2, 1);
    assert_eq!(sim.log.len(), 2, "{:?}", sim.log);
    assert_eq!(
        (sim.log[1].1.drain.to_string(), sim.log[1].1.size),
        ("1-2".into(), 1)
    );
}

#[test]
fn the_target_is_the_highest_n_of_the_delay() {
    let mut sim = Sim::new(settings(300, 30), "0-7");
    sim.run(100, 2);
    sim.run(10, 5); // a short rise, until t=109: a shrink waits for it to leave the window
    sim.run(191, 2);
    assert_eq!(sim.log.len(), 1, "{:?}", sim.log);
    assert_eq!(sim.log[0].0, 300.0);
    assert_eq!(
        (sim.log[0].1.drain.to_string(), sim.log[0].1.size),
        ("5-7".into(), 5)
    );
    sim.run(110, 2);
    assert_eq!(sim.log.len(), 2, "{:?}", sim.log);
    assert_eq!(sim.log[1].0, 410.0, "300 s after the rise ended");
    assert_eq!(
        (sim.log[1].1.drain.to_string(), sim.log[1].1.size),
        ("2-4".into(), 2)
    );
}

#[test]
fn nothing_is_drained_while_n_reaches_the_current_size() {
    let mut sim = Sim::new(settings(60, 30), "0-3");
    sim.run(600, 4);
    sim.run(600, 7); // above the current size: the HPA grows it, nothing to drain
    assert!(sim.log.is_empty());
}

#[test]
fn rank_0_and_excluded_ranks_are_never_drained() {
    let mut sim = Sim::new(settings(10, 5), "0-7");
    sim.excluded = ids("6");
    sim.run(20, 1);
    assert_eq!(sim.ours().to_string(), "1-5,7");
    // Even an N of 0 (nothing known) never drains rank 0.
    let mut sim = Sim::new(settings(0, 0), "0-3");
    sim.step_with(0, 1);
    assert_eq!(sim.ours().to_string(), "1-3");
}

#[test]
fn only_online_ranks_are_drained() {
    let mut sim = Sim::new(settings(10, 5), "0-3,6");
    sim.run(20, 2);
    assert_eq!(sim.ours().to_string(), "2-3,6");
}

#[test]
fn an_administrators_drain_is_never_touched() {
    let mut sim = Sim::new(settings(60, 10), "0-7");
    sim.drains.insert(5, "maintenance window".into());
    sim.run(61, 3);
    assert_eq!(sim.ours().to_string(), "3-4,6-7");
    sim.run(60, 8); // N rises above everything
    assert!(sim.ours().is_empty());
    assert_eq!(sim.drains[&5], "maintenance window");
    assert!(
        sim.log
            .iter()
            .all(|(_, d)| !d.undrain.contains(5) && !d.drain.contains(5))
    );
}

#[test]
fn ranks_with_jobs_are_drained_and_keep_the_published_size_up_until_they_empty() {
    let mut sim = Sim::new(settings(60, 30), "0-7");
    sim.busy = ids("0,6");
    sim.run(61, 2);
    assert_eq!(
        sim.ours().to_string(),
        "2-7",
        "draining: the job on 6 goes on"
    );
    assert_eq!(sim.desired(2), 7, "the floor of the job on rank 6");
    sim.busy = ids("0");
    assert_eq!(sim.desired(2), 2, "the job ended: the HPA may shrink to N");
}

#[test]
fn undrains_wait_until_the_published_size_stayed_above_the_rank_for_the_grace() {
    let mut sim = Sim::new(settings(60, 30), "0-7");
    sim.run(61, 2);
    assert_eq!(sim.ours().to_string(), "2-7");
    sim.run(10, 2); // published: 2 (the HPA may decide a shrink to 2 on it)
    sim.run(30, 6); // N and the published size rise to 6 from t=71
    assert_eq!(sim.ours().to_string(), "2-7", "the grace has not passed");
    sim.run(1, 6);
    assert_eq!(sim.log.len(), 2);
    assert_eq!(sim.log[1], (101.0, undrain("2-5")));
    assert_eq!(sim.ours().to_string(), "6-7", "not above N");
}

#[test]
fn a_dip_of_the_published_size_restarts_the_grace() {
    let mut sim = Sim::new(settings(60, 30), "0-7");
    sim.run(71, 2);
    sim.run(20, 8);
    sim.step_with(8, 3); // one answer at t=91 publishes 3: a shrink to 3 may follow it
    sim.run(30, 8);
    assert_eq!(
        sim.ours().to_string(),
        "3-7",
        "ranks 3-7 wait 30 s from the dip"
    );
    sim.run(1, 8);
    assert!(sim.ours().is_empty());
    assert_eq!(sim.log[1], (101.0, undrain("2")));
    assert_eq!(sim.log[2], (122.0, undrain("3-7")));
}

#[test]
fn a_zero_grace_undrains_at_once() {
    let mut sim = Sim::new(settings(60, 0), "0-7");
    sim.run(66, 2);
    sim.run(1, 8);
    assert!(sim.ours().is_empty());
    assert_eq!(sim.log[1], (66.0, undrain("2-7")));
}

#[test]
fn no_decision_on_stale_data() {
    let mut sim = Sim::new(settings(60, 30), "0-7");
    sim.run(50, 2);
    // The broker cannot be asked for a while: the history starts over when it answers again.
    sim.loop_.forget();
    assert!(sim.loop_.decide().is_empty());
    sim.at += 5.0;
    sim.run(60, 2);
    assert!(
        sim.log.is_empty(),
        "the delay counts from the broker's return"
    );
    sim.run(1, 2);
    assert_eq!(sim.log.len(), 1);
    // Undrains wait too.
    let mut sim = Sim::new(settings(60, 30), "0-7");
    sim.run(66, 2);
    sim.loop_.forget();
    sim.run(30, 8);
    assert_eq!(sim.ours().to_string(), "2-7");
    sim.run(1, 8);
    assert!(sim.ours().is_empty());
}

#[test]
fn a_gap_between_snapshots_starts_the_history_over() {
    let mut sim = Sim::new(settings(60, 30), "0-7");
    sim.run(50, 2);
    sim.at += 15.0; // nobody asked for 16 s: more than max_gap
    sim.run(60, 2);
    assert!(sim.log.is_empty());
    sim.run(1, 2);
    assert_eq!(sim.log.len(), 1);
}

#[test]
fn a_drained_rank_going_offline_stays_ours_and_is_undrained_when_needed_again() {
    let mut sim = Sim::new(settings(60, 30), "0-7");
    sim.run(61, 3);
    // The HPA shrinks to 3: ranks 3-7 leave; their drains remain.
    sim.online = ids("0-2");
    sim.run(300, 3);
    assert_eq!(sim.log.len(), 1, "{:?}", sim.log);
    assert!(
        sim.loop_.released().is_empty(),
        "going offline is not an undrain"
    );
    // A job needs 6 nodes: the HPA grows the cluster; the ranks come back drained.
    sim.run(20, 6);
    sim.online = ids("0-5");
    sim.run(11, 6);
    assert_eq!(sim.ours().to_string(), "6-7");
    assert_eq!(sim.log[1], (391.0, undrain("3-5")));
}

#[test]
fn an_administrators_undrain_is_respected_until_n_drops_again() {
    let mut sim = Sim::new(settings(60, 30), "0-7");
    sim.run(70, 4);
    assert_eq!(sim.ours().to_string(), "4-7");
    sim.drains.remove(&6); // `flux resource undrain 6`
    sim.run(600, 4);
    assert_eq!(sim.ours().to_string(), "4-5,7", "not drained again");
    assert_eq!(sim.loop_.released().to_string(), "6");
    // N drops to 3: a new, lower shrink; rank 6 is drained with the others.
    sim.run(60, 3);
    assert_eq!(sim.ours().to_string(), "4-5,7", "after the delay");
    sim.run(1, 3);
    assert_eq!(sim.ours().to_string(), "3-7");
    assert!(sim.loop_.released().is_empty());
}

#[test]
fn an_administrators_undrain_ends_when_n_rises_above_the_rank() {
    let mut sim = Sim::new(settings(60, 30), "0-7");
    sim.run(61, 4);
    sim.drains.remove(&6); // even before the loop saw its drain of 6
    sim.run(10, 4);
    assert_eq!(sim.loop_.released().to_string(), "6");
    sim.run(40, 8); // N rises: rank 6 is needed anyway, the others are undrained
    assert!(sim.ours().is_empty());
    assert!(sim.loop_.released().is_empty());
    sim.run(61, 4); // and falls again: a new shrink drains 4-7, 6 included
    assert_eq!(sim.ours().to_string(), "4-7");
}

#[test]
fn an_oscillating_n_does_not_flap() {
    let mut sim = Sim::new(settings(300, 30), "0-7");
    // N swings between 2 and 5 every 40 s for an hour: one drain of 5-7, never undrained.
    for i in 0..90 {
        sim.run(40, if i % 2 == 0 { 2 } else { 5 });
    }
    assert_eq!(sim.log.len(), 1, "{:?}", sim.log);
    assert_eq!(sim.ours().to_string(), "5-7");
    // Rises to 8 shorter than the grace, every 10 minutes: nothing undrained.
    for _ in 0..6 {
        sim.run(20, 8);
        sim.run(580, 2);
    }
    assert_eq!(
        sim.log.len(),
        2,
        "one more drain (2-4) once N stayed at 2: {:?}",
        sim.log
    );
    assert_eq!(sim.ours().to_string(), "2-7");
    // Longer rises: each costs one undrain and, 5 minutes after it ends, one drain.
    for _ in 0..3 {
        sim.run(60, 8);
        sim.run(540, 2);
    }
    assert_eq!(sim.log.len(), 2 + 3 * 2, "{:?}", sim.log);
}

#[test]
fn a_restarted_server_recognises_its_drains_by_their_reason() {
    let mut sim = Sim::new(settings(60, 30), "0-7");
    sim.drains.insert(3, reason(3));
    sim.drains.insert(4, reason(3));
    sim.drains.insert(7, "maintenance window".into());
    sim.run(30, 8);
    assert_eq!(
        sim.ours().to_string(),
        "3-4",
        "a new history waits for the grace"
    );
    sim.run(1, 8);
    assert!(sim.ours().is_empty());
    assert_eq!(sim.drains[&7], "maintenance window");
}

#[test]
fn a_cached_answer_seen_after_a_drain_does_not_drain_again() {
    let mut loop_ = Shrinker::new(settings(0, 0));
    let base = Observation {
        at: 1.0,
        needed: 2,
        desired: 4,
        online: ids("0-3"),
        ..Default::default()
    };
    loop_.observe(base.clone());
    let d = loop_.decide();
    assert_eq!(d.drain.to_string(), "2-3");
    loop_.sent(&d, 1.5);
    // An answer taken before the RPC was answered does not show the drain yet.
    loop_.observe(Observation {
        at: 1.2,
        ..base.clone()
    });
    loop_.observe(Observation {
        at: 1.4,
        ..base.clone()
    });
    assert!(loop_.decide().is_empty());
    // Nor does one that lost the race to an undrain of ours, which is not an administrator's.
    let drained = Observation {
        at: 2.0,
        blocked: ids("2-3"),
        ours: vec![(ids("2-3"), 2)],
        ..base.clone()
    };
    loop_.observe(drained.clone());
    let up = Observation {
        needed: 4,
        at: 3.0,
        ..drained.clone()
    };
    loop_.observe(up.clone());
    let d = loop_.decide();
    assert_eq!(d.undrain.to_string(), "2-3");
    loop_.sent(&d, 3.5);
    loop_.observe(Observation {
        at: 3.2,
        ..up.clone()
    });
    assert!(loop_.decide().is_empty(), "sent already");
    loop_.observe(Observation {
        at: 4.0,
        needed: 4,
        ..base.clone()
    });
    assert!(loop_.released().is_empty());
    assert!(loop_.ours().is_empty());
}

#[test]
fn recorded_scenarios_as_observations() {
    // drained: an administrator drained rank 3 ("maintenance window"); one job on rank 0.
    let s = snapshot("drained");
    let obs = Observation::of(&s, 1, 1);
    assert_eq!(
        (obs.online.to_string(), obs.blocked.to_string()),
        ("0-3".into(), "3".into())
    );
    assert!(obs.ours.is_empty());
    let mut loop_ = Shrinker::new(settings(0, 0));
    loop_.observe(obs);
    let d = loop_.decide();
    assert_eq!(
        (d.drain.to_string(), d.size),
        ("1-2".into(), 1),
        "never rank 3"
    );
    // elastic: a MiniCluster of 8 at size 4 (4-7 offline): only online ranks count; its jobs
    // fill ranks 0-1 and half of rank 2, three nodes packed, so rank 3 alone is drained.
    let s = snapshot("elastic");
    let obs = Observation::of(&s, 2, 8);
    assert_eq!((obs.current_size(), obs.running), (4, 3));
    let mut loop_ = Shrinker::new(settings(0, 0));
    loop_.observe(obs);
    assert_eq!(loop_.decide().drain.to_string(), "3");
    // busy: nothing drained, all four ranks online.
    let s = snapshot("busy");
    let obs = Observation::of(&s, 4, 4);
    let mut loop_ = Shrinker::new(settings(0, 0));
    loop_.observe(obs);
    assert!(loop_.decide().is_empty());
}

#[test]
fn the_running_jobs_packed_size_of_the_recorded_scenarios() {
    for (scenario, want, why) in [
        ("idle", 0, "nothing runs"),
        ("drained", 1, "one core of two on rank 0"),
        (
            "busy",
            2,
            "one core of two on each of ranks 0-2: three cores fill two nodes",
        ),
        (
            "elastic",
            3,
            "ranks 0-1 wholly, two cores of four on rank 2",
        ),
        ("room-on-busy", 2, "two cores of four on each of ranks 0-3"),
        (
            "gpu-exclusive",
            4,
            "both GPUs of each of ranks 0-3 (a core each): the GPUs need 4",
        ),
    ] {
        assert_eq!(
            packed_running(&snapshot(scenario)),
            want,
            "{scenario}: {why}"
        );
    }
}

#[test]
fn the_running_jobs_are_placed_not_summed() {
    // room-on-busy: ranks 0-3 of four cores. Three cores held on ranks 0 and 1 and two on
    // rank 2: eight cores, two nodes by a sum, but no two of those fit on one node of four.
    let mut s = snapshot("room-on-busy");
    let held = |lite: serde_json::Value| {
        crate::source::rlist::ResourceSet::from_json(&serde_json::json!({
            "version": 1, "execution": {"R_lite": lite}
        }))
        .unwrap()
    };
    s.allocated = held(serde_json::json!([
        {"rank": "0-1", "children": {"core": "0-2"}},
        {"rank": "2", "children": {"core": "0-1"}},
    ]));
    assert_eq!(packed_running(&s), 3, "3 + 3 + 2 cores on nodes of 4");
    // Two cores on each of ranks 0-3 pack two to a node.
    s.allocated = held(serde_json::json!([{"rank": "0-3", "children": {"core": "2-3"}}]));
    assert_eq!(packed_running(&s), 2);
    // An administrator's drain of rank 0 leaves ranks 1 and 2 for them: size 3.
    s.drained = ids("0");
    assert_eq!(packed_running(&s), 3, "rank 0 takes nothing");
    // This server's shrink drain of rank 0 is room: size 2 again.
    s.shrink_drains = vec![(ids("0"), 2)];
    assert_eq!(packed_running(&s), 2, "a shrink drain counts as room");
}

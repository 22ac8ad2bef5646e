//! Drain before shrink (`--drain-before-shrink`): which ranks to drain so that a shrink of the
//! MiniCluster loses no job, and which of this server's drains to lift when more nodes are
//! needed again.
//!
//! Pure: a [`Shrinker`] is fed one [`Observation`] per snapshot (with its time) and answers a
//! [`Decision`]; the caller sends the RPCs and says so ([`Shrinker::sent`]). Nothing here does
//! I/O or reads a clock. The rules, in the words of docs/autoscaling.md:
//! - **drain** the online ranks ≥ T that nobody drained, where T is the highest of N (the size
//!   the waiting jobs fit in beside what runs, before the floor) and of the running jobs'
//!   packed size ([`packed_running`]) over the last `shrink_delay`, once the history covers
//!   that delay and T is below the current size (highest online rank + 1); never rank 0, never
//!   an excluded rank, never a rank whose drain an administrator lifted (until T falls below
//!   the size that drain was for, or N rises above the rank);
//! - **undrain** a rank of this server's below N once the published desired size has been above
//!   it for all of the last `undrain_grace`: a shrink decided just before may still remove it;
//! - a broken history (the broker unreachable, a gap between snapshots) starts over: no
//!   decision is made on stale data.

pub mod driver;
pub mod reason;

pub use reason::{REASON_PREFIX, reason, size_of_reason};

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::source::demand::{Nodes, Pool, Resources, Shape, Waiting, count};
use crate::source::rlist::{IdSet, ResourceSet};
use crate::source::snapshot::Snapshot;

/// Default `--shrink-delay`: the HPA's default scale-down stabilization window.
pub const DEFAULT_SHRINK_DELAY: Duration = Duration::from_secs(300);
/// Default `--undrain-grace`: longer than an operator takes to remove a pod after the HPA's
/// decision, for pods whose broker stops promptly (docs/autoscaling.md).
pub const DEFAULT_UNDRAIN_GRACE: Duration = Duration::from_secs(30);
/// Snapshots further apart than this break the history: what happened between them is unknown.
pub const DEFAULT_MAX_GAP: Duration = Duration::from_secs(15);

/// The two delays of the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// How long N must stay below the current size before ranks are drained (`--shrink-delay`).
    pub shrink_delay: Duration,
    /// How long the published desired size must stay above a drained rank before it is
    /// undrained (`--undrain-grace`).
    pub undrain_grace: Duration,
    /// Snapshots further apart than this start the history over.
    pub max_gap: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            shrink_delay: DEFAULT_SHRINK_DELAY,
            undrain_grace: DEFAULT_UNDRAIN_GRACE,
            max_gap: DEFAULT_MAX_GAP,
        }
    }
}

/// What one snapshot says, as far as the loop is concerned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    /// When the broker answered, in seconds (any origin, but one clock for every observation).
    pub at: f64,
    /// N: the size Flux needs without the floor of the running jobs.
    pub needed: u64,
    /// The nodes the running jobs would fill packed together ([`packed_running`]).
    pub running: u64,
    /// The desired size as published (`minicluster_desired_size`).
    pub desired: u64,
    /// Online ranks.
    pub online: IdSet,
    /// Ranks this server must not drain: drained by anyone, or excluded.
    pub blocked: IdSet,
    /// This server's drains, with the size each one's reason names.
    pub ours: Vec<(IdSet, u64)>,
}

impl Observation {
    /// The observation of `snapshot`, with its N and published size.
    pub fn of(snapshot: &Snapshot, needed: u64, desired: u64) -> Observation {
        Observation {
            at: snapshot.taken_at.timestamp_micros() as f64 / 1e6,
            needed,
            running: packed_running(snapshot),
            desired,
            online: snapshot.online.clone(),
            blocked: snapshot.drained.union(&snapshot.excluded),
            ours: snapshot.shrink_drains.clone(),
        }
    }

    /// Every rank this server drained.
    pub fn ours(&self) -> IdSet {
        IdSet::union_all(self.ours.iter().map(|(r, _)| r))
    }

    /// The highest online rank + 1: the MiniCluster's current size.
    pub fn current_size(&self) -> u64 {
        self.online.max().map_or(0, |r| u64::from(r) + 1)
    }

    fn size_of(&self, rank: u32) -> Option<u64> {
        self.ours
            .iter()
            .find(|(r, _)| r.contains(rank))
            .map(|&(_, size)| size)
    }
}

/// The size the running jobs of `snapshot` would fit in if they were packed onto the lowest
/// ranks: what each node holds now (all of it for a node held wholly), largest first, placed
/// first-fit on the ranks emptied by the placement model of the waiting jobs ([`Pool`]); 0 when
/// nothing runs. Ranks drained by someone else or excluded take nothing; this server's shrink
/// drains count as room.
///
/// Under a steady load the work that runs now is followed by work like it, so the drains leave
/// that much room: N alone (what the waiting jobs need) is 1 whenever nothing waits, and a
/// trickle of jobs needing three nodes would otherwise be drained down to one node, each new
/// job then waiting `undrain_grace` for its rank (BENCHMARKS.md, drain before shrink). Packed,
/// not counted where they run: jobs the scheduler spread over every node (flux-core's
/// scheduler puts a job on the node with the most free cores) still let the cluster shrink to
/// the nodes they fill. Placed, not summed: three jobs of three cores need three nodes of four
/// cores, not the 9 / 4 rounded up that a sum of cores gives.
pub fn packed_running(snapshot: &Snapshot) -> u64 {
    let whole = snapshot.all.ranks_wholly_in(&snapshot.allocated);
    let mut held: Vec<Shape> = snapshot
        .allocated
        .nodes()
        .map(|(rank, node)| Shape {
            nodes: 1,
            slots: 1,
            cores_per_slot: count(&node.cores),
            gpus_per_slot: count(&node.gpus),
            exclusive: whole.contains(rank),
            constraint: None,
        })
        .collect();
    if held.is_empty() {
        return 0;
    }
    held.sort_by_key(|s| Reverse((s.exclusive, s.cores_per_slot, s.gpus_per_slot)));
    let ours = IdSet::union_all(snapshot.shrink_drains.iter().map(|(r, _)| r));
    let closed = snapshot.drained.difference(&ours).union(&snapshot.excluded);
    let pool = Pool::new(&Resources {
        all: &snapshot.all,
        allocated: &ResourceSet::default(),
        online: &snapshot.online,
        closed: &closed,
        shrink_drained: &ours,
        current_size: snapshot.nodes.current_size,
    });
    let jobs: Vec<Waiting<'_>> = held
        .iter()
        .map(|shape| Waiting { shape, since: None })
        .collect();
    let (no_properties, no_hostnames) = (BTreeMap::new(), BTreeMap::new());
    let anywhere = Nodes {
        properties: &no_properties,
        hostnames: &no_hostnames,
    };
    pool.size(&jobs, &anywhere, 0.0, Duration::MAX)
}

/// What to do now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Ranks to drain, with the reason [`reason()`]`(size)`.
    pub drain: IdSet,
    /// The size the drains are for (T).
    pub size: u64,
    /// This server's drains to lift.
    pub undrain: IdSet,
}

impl Decision {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.drain.is_empty() && self.undrain.is_empty()
    }
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    at: f64,
    /// max(N, the running jobs' packed size): what the drains leave room for.
    hold: u64,
    desired: u64,
}

/// The loop's memory: recent samples of N and of the published size, the drains and undrains
/// sent and not yet seen, and the ranks whose drain an administrator lifted.
#[derive(Clone, Debug)]
pub struct Shrinker {
    settings: Settings,
    samples: VecDeque<Sample>,
    /// The time of the first sample of the unbroken history.
    since: Option<f64>,
    last: Option<Observation>,
    pending_drain: IdSet,
    pending_undrain: IdSet,
    /// The size of the last drain sent.
    pending_size: u64,
    /// When the last RPC was answered: an observation older than that may not show it yet.
    pending_at: f64,
    /// Ranks an administrator undrained, with the size of the drain they lifted.
    released: BTreeMap<u32, u64>,
}

impl Shrinker {
    /// A loop with no history.
    pub fn new(settings: Settings) -> Self {
        Shrinker {
            settings,
            samples: VecDeque::new(),
            since: None,
            last: None,
            pending_drain: IdSet::default(),
            pending_undrain: IdSet::default(),
            pending_size: 0,
            pending_at: f64::NEG_INFINITY,
            released: BTreeMap::new(),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Takes in one snapshot's observation. One older than or as old as the last is ignored
    /// (a cached answer seen twice says nothing new).
    pub fn observe(&mut self, obs: Observation) {
        if let Some(last) = &self.last {
            if obs.at <= last.at {
                return;
            }
        }
        let gap = self.settings.max_gap.as_secs_f64();
        if self.samples.back().is_some_and(|s| obs.at - s.at > gap) {
            self.forget();
        }
        let fresh = obs.at > self.pending_at;
        if let Some(last) = &self.last {
            // Ranks that were ours and are no longer drained by us, without our undrain: an
            // administrator lifted (or replaced) the drain. Respect that.
            let now_ours = obs.ours();
            for rank in last.ours().difference(&now_ours).iter() {
                if !self.pending_undrain.contains(rank) {
                    self.released.insert(rank, last.size_of(rank).unwrap_or(0));
                }
            }
        }
        if fresh {
            // A drain that was answered and that this first answer after it does not show was
            // lifted at once by someone else.
            for rank in self.pending_drain.difference(&obs.ours()).iter() {
                self.released.insert(rank, self.pending_size);
            }
            self.pending_drain = IdSet::default();
            self.pending_undrain = IdSet::default();
        }
        self.samples.push_back(Sample {
            at: obs.at,
            hold: obs.needed.max(obs.running),
            desired: obs.desired,
        });
        self.since.get_or_insert(obs.at);
        let keep = self
            .settings
            .shrink_delay
            .max(self.settings.undrain_grace)
            .as_secs_f64();
        // Keep one sample at or before the longest window's start: its value held there.
        while self.samples.len() > 1 && self.samples[1].at <= obs.at - keep {
            self.samples.pop_front();
        }
        let target = self.target();
        self.released.retain(|&rank, &mut size| {
            u64::from(rank) >= obs.needed && target.is_none_or(|t| t >= size)
        });
        self.last = Some(obs);
    }

    /// Forgets the history of N and of the published size (the broker could not be asked):
    /// drains wait for a whole `shrink_delay` again, undrains for a whole `undrain_grace`.
    pub fn forget(&mut self) {
        self.samples.clear();
        self.since = None;
    }

    /// Records that `decision` was carried out, answered at `at` (the observation clock): the
    /// observations older than that do not show it yet.
    pub fn sent(&mut self, decision: &Decision, at: f64) {
        self.pending_drain = self.pending_drain.union(&decision.drain);
        self.pending_undrain = self.pending_undrain.union(&decision.undrain);
        if !decision.drain.is_empty() {
            self.pending_size = decision.size;
        }
        self.pending_at = self.pending_at.max(at);
    }

    /// The samples of the last `span`, starting with the one in effect at its start; `None`
    /// when the unbroken history is shorter than `span`.
    fn window(&self, span: Duration) -> Option<impl Iterator<Item = &Sample>> {
        let now = self.samples.back()?.at;
        let start = now - span.as_secs_f64();
        if self.since? > start {
            return None;
        }
        let first = self
            .samples
            .iter()
            .rposition(|s| s.at <= start)
            .unwrap_or(0);
        Some(self.samples.iter().skip(first))
    }

    /// T: the highest of N and of the running jobs' packed size over the last `shrink_delay`,
    /// once the history covers it.
    pub fn target(&self) -> Option<u64> {
        self.window(self.settings.shrink_delay)
            .and_then(|w| w.map(|s| s.hold).max())
    }

    /// What to do now, from the last observation and the history; nothing without a history.
    pub fn decide(&self) -> Decision {
        let mut d = Decision::default();
        let Some(obs) = self.last.as_ref().filter(|_| !self.samples.is_empty()) else {
            return d;
        };
        if let Some(target) = self.target().filter(|&t| t < obs.current_size()) {
            let from = u32::try_from(target.max(1)).unwrap_or(u32::MAX);
            d.drain = obs
                .online
                .intersection(&IdSet::range(from, u32::MAX))
                .difference(&obs.blocked)
                .difference(&self.pending_drain)
                .difference(&self.released());
            if !d.drain.is_empty() {
                d.size = target;
            }
        }
        if let Some(window) = self.window(self.settings.undrain_grace) {
            let lowest_desired = window.map(|s| s.desired).min().unwrap_or(0);
            // Below N, and below every published size of the grace period.
            let below = obs.needed.min(lowest_desired);
            if below > 0 {
                let top = u32::try_from(below - 1).unwrap_or(u32::MAX);
                d.undrain = obs
                    .ours()
                    .intersection(&IdSet::range(0, top))
                    .difference(&self.pending_undrain);
            }
        }
        d
    }

    /// The ranks this server has drained, as far as it knows (for the release at exit).
    pub fn ours(&self) -> IdSet {
        self.last
            .as_ref()
            .map(Observation::ours)
            .unwrap_or_default()
            .union(&self.pending_drain)
            .difference(&self.pending_undrain)
    }

    /// The ranks an administrator undrained that are left alone for now.
    pub fn released(&self) -> IdSet {
        self.released.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests;

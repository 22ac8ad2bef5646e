//! What one round of broker RPCs says, parsed, and the numbers derived from it.
//!
//! Pure code: no I/O, no clocks besides the `taken_at` it is given. The broker thread builds a
//! [`Snapshot`] from the raw answers ([`Answers`]); handlers only read it. Semantics follow
//! `flux resource list` and `flux jobs --stats` (see `tests/fixtures/README.md`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::source::demand::{Nodes, Pool, Resources, Shape, Waiting};
use crate::source::rlist::{IdSet, ResourceSet, RlistError};

/// RPC topic of the scheduler's view of resources (all / down / allocated).
pub const TOPIC_SCHED_STATUS: &str = "resource.sched-status";
/// The same RPC under the name flux-core used before 0.49 (tried on ENOSYS).
pub const TOPIC_SCHED_STATUS_OLD: &str = "sched.resource-status";
/// RPC topic of the resource module's status (drain, online, offline).
pub const TOPIC_RESOURCE_STATUS: &str = "resource.status";
/// RPC topic of the job-list module's counters.
pub const TOPIC_JOB_STATS: &str = "job-list.job-stats";
/// RPC topic of the job-list module's job listing.
pub const TOPIC_JOB_LIST: &str = "job-list.list";
/// RPC topic that reads a job's jobspec (and other keys) from the KVS.
pub const TOPIC_JOB_INFO_LOOKUP: &str = "job-info.lookup";
/// RPC topic of a queue's status (enabled, started).
pub const TOPIC_QUEUE_STATUS: &str = "job-manager.queue-status";

/// Payload of `job-manager.queue-status` for `queue` (`""`: the anonymous queue).
pub fn queue_status_payload(queue: &str) -> String {
    if queue.is_empty() {
        "{}".into()
    } else {
        serde_json::json!({ "name": queue }).to_string()
    }
}

/// Whether an answer of `job-manager.queue-status` says the queue is started (`None`: it does
/// not say).
pub fn queue_is_started(answer: &str) -> Option<bool> {
    serde_json::from_str::<serde_json::Value>(answer)
        .ok()?
        .get("start")?
        .as_bool()
}

/// Default `--stuck-after`: how long a runnable job the demand model places on the running nodes
/// may wait before it counts as needing new nodes of its own (docs/autoscaling.md). A scheduler
/// starts a job that fits within seconds; five minutes is far longer, and short beside HPC jobs.
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(300);

/// Flux job state bits (`flux_job_state_t`).
const STATE_DEPEND: u32 = 2;
const STATE_PRIORITY: u32 = 4;
const STATE_SCHED: u32 = 8;

/// Payload of the `job-list.list` RPC: every pending job (DEPEND|PRIORITY|SCHED) of every user,
/// no limit, with the attributes the demand metrics need.
pub fn job_list_payload() -> String {
    serde_json::json!({
        "max_entries": 0,
        "states": STATE_DEPEND | STATE_PRIORITY | STATE_SCHED,
        "results": 0,
        "userid": u32::MAX, // FLUX_USERID_UNKNOWN: all users
        "attrs": ["state", "nnodes", "ntasks", "ncores", "urgency", "priority", "queue", "t_submit", "t_sched"],
    })
    .to_string()
}

/// Payload of the `job-info.lookup` RPC for the jobspec of job `id`, as it is now (with the
/// updates `flux update` made since submission: `FLUX_JOB_LOOKUP_CURRENT`).
pub fn jobspec_lookup_payload(id: u64) -> String {
    serde_json::json!({"id": id, "keys": ["jobspec"], "flags": 2}).to_string()
}

/// The raw JSON text of the answers of one round, by RPC.
#[derive(Clone, Debug, Default)]
pub struct Answers {
    /// `resource.sched-status` (or `sched.resource-status`).
    pub sched_status: String,
    /// `resource.status`.
    pub resource_status: String,
    /// `job-list.job-stats`.
    pub job_stats: String,
    /// `job-list.list` with [`job_list_payload`].
    pub job_list: String,
    /// For recorded answers, when they were recorded (the `recorded-at` file of a replay
    /// directory): the clock that job ages are measured on, so that a replay shows them as they
    /// were. `None` for a live broker: ages are measured at `taken_at`.
    pub recorded_at: Option<DateTime<Utc>>,
}

/// The file of a recording that says when it was made (RFC 3339), read by replay.
pub const RECORDED_AT_FILE: &str = "recorded-at";

/// An answer that could not be understood.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed answer to {topic}: {message}")]
pub struct ParseError {
    /// The RPC whose answer was malformed.
    pub topic: &'static str,
    /// What was wrong with it.
    pub message: String,
}

/// Job counters of the whole instance or of one queue, plus the demand of its waiting jobs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Jobs in state DEPEND.
    pub depend: u64,
    /// Jobs in state PRIORITY.
    pub priority: u64,
    /// Jobs in state SCHED.
    pub sched: u64,
    /// Jobs in state RUN.
    pub run: u64,
    /// Jobs in state CLEANUP.
    pub cleanup: u64,
    /// Jobs in state INACTIVE (not yet purged).
    pub inactive: u64,
    /// Inactive jobs that completed successfully.
    pub successful: u64,
    /// Inactive jobs that failed, as job-list counts them (`flux jobs --stats`).
    pub failed: u64,
    /// Inactive jobs that were canceled.
    pub canceled: u64,
    /// Inactive jobs that ran out of time.
    pub timeout: u64,
    /// Nodes that the runnable waiting jobs ask for ([`crate::source::demand`]).
    pub pending_nodes: u64,
    /// The smallest size the runnable waiting jobs fit in beside what runs now, at least 1
    /// (N, before the floor of [`NodeCounts::min_size`]; [`crate::source::demand`]).
    pub needed_size: u64,
    /// Seconds the oldest runnable waiting job has waited since its submission, or 0.
    pub oldest_wait_seconds: u64,
    /// Runnable waiting jobs counted by their `job-list` entry because their jobspec is not
    /// read (yet, or at all).
    pub unshaped: u64,
}

impl JobCounts {
    /// Jobs waiting to run: DEPEND + PRIORITY + SCHED.
    pub fn pending(&self) -> u64 {
        self.depend
            .saturating_add(self.priority)
            .saturating_add(self.sched)
    }
}

/// Node, core and GPU counts, as `flux resource list` derives them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeCounts {
    /// Nodes in the whole resource set (up or down).
    pub all: u64,
    /// Nodes up (all − down).
    pub up: u64,
    /// Up nodes with at least one free core or GPU.
    pub free: u64,
    /// Up nodes with every core and GPU free.
    pub idle: u64,
    /// Nodes down (drained ones included).
    pub down: u64,
    /// Nodes drained (by an administrator, or by this server for a shrink).
    pub drained: u64,
    /// Nodes holding any allocation.
    pub allocated: u64,
    /// Cores on up nodes.
    pub cores_up: u64,
    /// Free cores on up nodes.
    pub cores_free: u64,
    /// Allocated cores on up nodes.
    pub cores_allocated: u64,
    /// GPUs on up nodes.
    pub gpus_up: u64,
    /// Free GPUs on up nodes.
    pub gpus_free: u64,
    /// Highest allocated rank + 1, or 0 when nothing is allocated.
    pub min_size: u64,
    /// The size the MiniCluster can shrink to now without losing a job, running or future:
    /// 1 + the highest online rank that holds a job or can still be given one (not drained,
    /// not excluded), at least 1.
    pub safe_size: u64,
    /// Nodes this server drained for a shrink, online or not.
    pub shrink_drained: u64,
    /// Highest online rank + 1 (the brokers running now: a MiniCluster's current size), or 0.
    pub current_size: u64,
}

/// The parsed state of the Flux instance at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// When the broker answered (the end of the round).
    pub taken_at: DateTime<Utc>,
    /// Every resource, up or down.
    pub all: ResourceSet,
    /// Resources up.
    pub up: ResourceSet,
    /// Resources down.
    pub down: ResourceSet,
    /// Resources allocated to jobs.
    pub allocated: ResourceSet,
    /// Up resources not allocated.
    pub free: ResourceSet,
    /// Drained ranks.
    pub drained: IdSet,
    /// The drains this server made for a shrink, each with the size its reason names
    /// ([`crate::source::shrink`]).
    pub shrink_drains: Vec<(IdSet, u64)>,
    /// Online ranks (`resource.status`; the up ranks when the answer does not say).
    pub online: IdSet,
    /// Ranks excluded by the instance's configuration (never scheduled, cannot be drained).
    pub excluded: IdSet,
    /// Whether [`Snapshot::desired_size`] is never below [`NodeCounts::safe_size`]: set while
    /// the drain-before-shrink loop runs, so that the HPA never removes a rank that can still
    /// be given a job.
    pub shrink_floor: bool,
    /// Each drain's ranks and reason, as `resource.status` lists them.
    pub drains: Vec<(IdSet, String)>,
    /// The hostname of each rank of the whole set, from its nodelist; why there are none when
    /// the nodelist is unusable (hostnames only label ranks: no metric depends on them).
    pub hostnames: Result<BTreeMap<u32, String>, RlistError>,
    /// Derived node/core/GPU counts.
    pub nodes: NodeCounts,
    /// Job counters of the whole instance.
    pub jobs: JobCounts,
    /// Job counters of each named queue (empty when the instance has no named queues).
    pub queues: BTreeMap<String, JobCounts>,
}

#[derive(Deserialize)]
struct SchedStatus {
    all: serde_json::Value,
    #[serde(default)]
    down: serde_json::Value,
    #[serde(default)]
    allocated: serde_json::Value,
}

#[derive(Deserialize)]
struct ResourceStatus {
    #[serde(default)]
    drain: BTreeMap<String, DrainInfo>,
    #[serde(default)]
    online: Option<String>,
    #[serde(default)]
    exclude: Option<String>,
}

#[derive(Deserialize)]
struct DrainInfo {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StateCounts {
    depend: u64,
    priority: u64,
    sched: u64,
    run: u64,
    cleanup: u64,
    inactive: u64,
}

#[derive(Deserialize)]
struct Stats {
    job_states: StateCounts,
    #[serde(default)]
    successful: u64,
    #[serde(default)]
    failed: u64,
    #[serde(default)]
    canceled: u64,
    #[serde(default)]
    timeout: u64,
}

#[derive(Deserialize)]
struct QueueStats {
    name: String,
    #[serde(flatten)]
    stats: Stats,
}

#[derive(Deserialize)]
struct JobStats {
    #[serde(flatten)]
    stats: Stats,
    #[serde(default)]
    queues: Vec<QueueStats>,
}

/// The pending jobs of a `job-list.list` answer ([`job_list_payload`]).
#[derive(Deserialize)]
pub struct Listing {
    jobs: Vec<PendingJob>,
}

#[derive(Deserialize)]
struct PendingJob {
    #[serde(default)]
    id: u64,
    state: u32,
    #[serde(default)]
    nnodes: Option<u64>,
    #[serde(default)]
    ncores: Option<u64>,
    #[serde(default)]
    urgency: i64,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    t_submit: f64,
    #[serde(default)]
    t_sched: Option<f64>,
}

impl PendingJob {
    /// Since when the job waits for resources: when it entered SCHED, or its submission when
    /// the listing does not say; `None` when neither is known.
    fn since(&self) -> Option<f64> {
        self.t_sched.or(Some(self.t_submit)).filter(|t| *t > 0.0)
    }

    /// Whether the job waits for resources only: PRIORITY or SCHED and not held (urgency 0).
    /// Jobs waiting on dependencies and held jobs ask for nothing yet.
    fn runnable(&self) -> bool {
        (self.state == STATE_PRIORITY || self.state == STATE_SCHED) && self.urgency > 0
    }
}

impl Listing {
    /// Parses a `job-list.list` answer.
    ///
    /// # Errors
    /// A [`ParseError`] for `job-list.list` when the answer is malformed.
    pub fn parse(text: &str) -> Result<Listing, ParseError> {
        json(TOPIC_JOB_LIST, text)
    }

    /// The queues (`""` for a job without one) of the runnable jobs that have waited longer than
    /// `bound` at `now` (seconds since the epoch): the only ones whose status the liveness rule
    /// needs.
    pub fn queues_waiting_longer_than(&self, now: f64, bound: Duration) -> Vec<String> {
        let mut queues: Vec<String> = self
            .in_order()
            .filter(|j| j.since().is_some_and(|t| now - t > bound.as_secs_f64()))
            .map(|j| j.queue.clone().unwrap_or_default())
            .collect();
        queues.sort_unstable();
        queues.dedup();
        queues
    }

    /// The ids of every listed job (any pending state).
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.jobs.iter().map(|j| j.id)
    }

    /// The ids of the runnable waiting jobs, in the scheduler's order: whose jobspecs matter.
    pub fn runnable_ids(&self) -> Vec<u64> {
        self.in_order().map(|j| j.id).collect()
    }

    /// The runnable waiting jobs, in the scheduler's order: priority (highest first), then
    /// submission (job ids grow with submission time).
    fn in_order(&self) -> impl Iterator<Item = &PendingJob> {
        let mut jobs: Vec<&PendingJob> = self.jobs.iter().filter(|j| j.runnable()).collect();
        jobs.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.t_submit.total_cmp(&b.t_submit))
                .then(a.id.cmp(&b.id))
        });
        jobs.into_iter()
    }
}

/// What the demand model is given besides the answers of a round.
#[derive(Clone, Copy, Debug)]
pub struct DemandInputs<'a> {
    /// The shape of each waiting job whose jobspec was read, by job id; jobs without one count
    /// by their `job-list` entry ([`Shape::from_listing`]).
    pub shapes: Option<&'a HashMap<u64, Shape>>,
    /// `--stuck-after` ([`DEFAULT_STUCK_AFTER`]).
    pub stuck_after: Duration,
    /// Queues that are stopped (`flux queue stop`; `""` the anonymous one): their jobs are never
    /// taken as stuck, since more nodes would not start them.
    pub stopped_queues: Option<&'a BTreeSet<String>>,
    /// How long a job must have waited to count on this server's shrink drains as room: the
    /// loop's `--undrain-grace` while it runs, zero otherwise
    /// ([`Pool::drained_room_after`]).
    pub room_after: Duration,
}

impl Default for DemandInputs<'_> {
    fn default() -> Self {
        DemandInputs {
            shapes: None,
            stuck_after: DEFAULT_STUCK_AFTER,
            stopped_queues: None,
            room_after: Duration::ZERO,
        }
    }
}

impl From<&Stats> for JobCounts {
    fn from(s: &Stats) -> Self {
        let j = &s.job_states;
        JobCounts {
            depend: j.depend,
            priority: j.priority,
            sched: j.sched,
            run: j.run,
            cleanup: j.cleanup,
            inactive: j.inactive,
            successful: s.successful,
            failed: s.failed,
            canceled: s.canceled,
            timeout: s.timeout,
            ..JobCounts::default()
        }
    }
}

fn json<'a, T: Deserialize<'a>>(topic: &'static str, text: &'a str) -> Result<T, ParseError> {
    serde_json::from_str(text).map_err(|e| ParseError {
        topic,
        message: e.to_string(),
    })
}

fn rset(
    topic: &'static str,
    which: &str,
    v: &serde_json::Value,
) -> Result<ResourceSet, ParseError> {
    ResourceSet::from_json(v).map_err(|e| ParseError {
        topic,
        message: format!("{which}: {e}"),
    })
}

impl Snapshot {
    /// Parses the answers of one round taken at `taken_at`.
    ///
    /// # Errors
    /// A [`ParseError`] naming the RPC whose answer is malformed (wrong types, bad idsets,
    /// absurd sizes).
    pub fn parse(a: &Answers, taken_at: DateTime<Utc>) -> Result<Snapshot, ParseError> {
        let listing = Listing::parse(&a.job_list)?;
        Snapshot::build(a, &listing, DemandInputs::default(), taken_at)
    }

    /// [`Snapshot::parse`] with the job listing already parsed and what the demand model
    /// knows about the waiting jobs' shapes.
    ///
    /// # Errors
    /// As [`Snapshot::parse`].
    pub fn build(
        a: &Answers,
        listing: &Listing,
        demand: DemandInputs<'_>,
        taken_at: DateTime<Utc>,
    ) -> Result<Snapshot, ParseError> {
        let t = TOPIC_SCHED_STATUS;
        let sched: SchedStatus = json(t, &a.sched_status)?;
        let all = rset(t, "all", &sched.all)?;
        let down = rset(t, "down", &sched.down)?;
        let allocated = rset(t, "allocated", &sched.allocated)?;
        let up = all.difference(&down);
        let free = up.difference(&allocated);

        let status: ResourceStatus = json(TOPIC_RESOURCE_STATUS, &a.resource_status)?;
        let drain_sets = status
            .drain
            .keys()
            .map(|ranks| IdSet::parse(ranks))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ParseError {
                topic: TOPIC_RESOURCE_STATUS,
                message: format!("drain: {e}"),
            })?;
        let drained = IdSet::union_all(&drain_sets);
        let shrink_drains: Vec<(IdSet, u64)> = drain_sets
            .iter()
            .zip(status.drain.values())
            .filter_map(|(ranks, info)| {
                let size = crate::source::shrink::reason::size_of_reason(info.reason.as_deref()?)?;
                Some((ranks.clone(), size))
            })
            .collect();
        let status_set = |which: &str, text: Option<&str>| {
            text.map(IdSet::parse).transpose().map_err(|e| ParseError {
                topic: TOPIC_RESOURCE_STATUS,
                message: format!("{which}: {e}"),
            })
        };
        let online = status_set("online", status.online.as_deref())?.unwrap_or_else(|| up.ranks());
        let excluded = status_set("exclude", status.exclude.as_deref())?.unwrap_or_default();
        let drains = drain_sets
            .iter()
            .zip(status.drain.values())
            .map(|(set, info)| (set.clone(), info.reason.clone().unwrap_or_default()))
            .collect();
        let hostnames = crate::source::rlist::hostnames(&sched.all, &all.ranks());

        let nodes = NodeCounts {
            all: all.nnodes(),
            up: up.nnodes(),
            free: free.nnodes(),
            idle: up.ranks_wholly_in(&free).len(),
            down: down.nnodes(),
            drained: drained.len(),
            allocated: allocated.nnodes(),
            cores_up: up.ncores(),
            cores_free: free.ncores(),
            cores_allocated: up.ncores().saturating_sub(free.ncores()),
            gpus_up: up.ngpus(),
            gpus_free: free.ngpus(),
            min_size: allocated.ranks().max().map_or(0, |r| u64::from(r) + 1),
            safe_size: online
                .difference(&drained.union(&excluded))
                .union(&online.intersection(&allocated.ranks()))
                .max()
                .map_or(1, |r| u64::from(r) + 1),
            shrink_drained: IdSet::union_all(shrink_drains.iter().map(|(r, _)| r)).len(),
            current_size: online.max().map_or(0, |r| u64::from(r) + 1),
        };

        let stats: JobStats = json(TOPIC_JOB_STATS, &a.job_stats)?;
        let mut jobs = JobCounts::from(&stats.stats);
        let mut queues: BTreeMap<String, JobCounts> = stats
            .queues
            .iter()
            .map(|q| (q.name.clone(), JobCounts::from(&q.stats)))
            .collect();

        let properties = crate::source::rlist::properties(&sched.all).map_err(|e| ParseError {
            topic: TOPIC_SCHED_STATUS,
            message: format!("all: {e}"),
        })?;
        let shrink_drained = IdSet::union_all(shrink_drains.iter().map(|(r, _)| r));
        let closed = drained.difference(&shrink_drained).union(&excluded);
        let pool = Pool::new(&Resources {
            all: &all,
            allocated: &allocated,
            online: &online,
            closed: &closed,
            shrink_drained: &shrink_drained,
            current_size: nodes.current_size,
        })
        .drained_room_after(demand.room_after);
        let no_hosts = BTreeMap::new();
        let constraint_nodes = Nodes {
            properties: &properties,
            hostnames: hostnames.as_ref().unwrap_or(&no_hosts),
        };
        let now = a.recorded_at.unwrap_or(taken_at).timestamp_micros() as f64 / 1e6;
        // The shape of every runnable job, in the scheduler's order.
        let runnable: Vec<(&PendingJob, std::borrow::Cow<'_, Shape>)> = listing
            .in_order()
            .map(|j| {
                let shape = match demand.shapes.and_then(|s| s.get(&j.id)) {
                    Some(s) => std::borrow::Cow::Borrowed(s),
                    None => std::borrow::Cow::Owned(Shape::from_listing(j.nnodes, j.ncores)),
                };
                (j, shape)
            })
            .collect();
        let known = |j: &PendingJob| demand.shapes.is_some_and(|s| s.contains_key(&j.id));
        let model = |counts: &mut JobCounts, queue: Option<&str>| {
            let jobs: Vec<(&PendingJob, &Shape)> = runnable
                .iter()
                .filter(|(j, _)| queue.is_none() || j.queue.as_deref() == queue)
                .map(|(j, s)| (*j, s.as_ref()))
                .collect();
            let waiting: Vec<Waiting<'_>> = jobs
                .iter()
                .map(|(j, shape)| Waiting {
                    shape,
                    // A job of a stopped queue waits for its queue, not for nodes: it is never
                    // taken as stuck.
                    since: j.since().filter(|_| {
                        let queue = j.queue.as_deref().unwrap_or_default();
                        !demand.stopped_queues.is_some_and(|s| s.contains(queue))
                    }),
                })
                .collect();
            counts.pending_nodes = pool.pending_nodes(jobs.iter().map(|(_, s)| *s));
            counts.needed_size = pool.size(&waiting, &constraint_nodes, now, demand.stuck_after);
            counts.oldest_wait_seconds = jobs
                .iter()
                .filter(|(j, _)| j.t_submit > 0.0)
                .map(|(j, _)| (now - j.t_submit).max(0.0) as u64)
                .max()
                .unwrap_or(0);
            counts.unshaped = jobs.iter().filter(|(j, _)| !known(j)).count() as u64;
        };
        model(&mut jobs, None);
        for (name, counts) in &mut queues {
            model(counts, Some(name));
        }

        Ok(Snapshot {
            taken_at,
            all,
            up,
            down,
            allocated,
            free,
            drained,
            shrink_drains,
            online,
            excluded,
            shrink_floor: false,
            drains,
            hostnames,
            nodes,
            jobs,
            queues,
        })
    }

    /// The counters of `queue`, or of the whole instance when `None`.
    ///
    /// # Errors
    /// The names of the known queues when `queue` is not one of them.
    pub fn job_counts(&self, queue: Option<&str>) -> Result<&JobCounts, UnknownQueue> {
        match queue {
            None => Ok(&self.jobs),
            Some(q) => self.queues.get(q).ok_or_else(|| UnknownQueue {
                queue: q.to_owned(),
                known: self.queues.keys().cloned().collect(),
            }),
        }
    }

    /// The size the MiniCluster should have (`minicluster_desired_size`): the size the waiting
    /// jobs fit in ([`JobCounts::needed_size`]), never below the highest allocated rank + 1
    /// (nor, with the drain-before-shrink loop, below [`NodeCounts::safe_size`]), never above
    /// the whole resource set, at least 1.
    pub fn desired_size(&self) -> u64 {
        self.desired_size_for(&self.jobs)
    }

    /// [`Snapshot::desired_size`] for the jobs of `counts` (the whole instance's or one
    /// queue's).
    pub fn desired_size_for(&self, counts: &JobCounts) -> u64 {
        let n = &self.nodes;
        let safe = if self.shrink_floor { n.safe_size } else { 0 };
        n.all
            .min(counts.needed_size.max(n.min_size).max(safe))
            .max(1)
    }

    /// The size Flux needs without the floor of the highest allocated rank (N): what
    /// [`Snapshot::desired_size`] is before it applies [`NodeCounts::min_size`]. A shrink to it
    /// removes ranks that run jobs, so only a caller that drains them first may act on it.
    ///
    /// # Errors
    /// The names of the known queues when `queue` is not one of them.
    pub fn needed_size(&self, queue: Option<&str>) -> Result<u64, UnknownQueue> {
        Ok(self.job_counts(queue)?.needed_size)
    }
}

/// A queue name the instance does not have.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("{}", unknown_queue_message(.queue, .known))]
pub struct UnknownQueue {
    /// The queue asked for.
    pub queue: String,
    /// The queues the instance has.
    pub known: Vec<String>,
}

fn unknown_queue_message(queue: &str, known: &[String]) -> String {
    if known.is_empty() {
        format!("flux has no queue {queue:?}: this Flux instance has no named queues")
    } else {
        format!(
            "flux has no queue {queue:?}; its queues are: {}",
            known.join(", ")
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    /// The recorded answers of one scenario in `tests/fixtures/`.
    pub(crate) fn answers(scenario: &str) -> Answers {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(scenario);
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        Answers {
            sched_status: read("resource.sched-status.json"),
            resource_status: read("resource.status.json"),
            job_stats: read("job-list.job-stats.json"),
            job_list: read("job-list.list.json"),
            recorded_at: std::fs::read_to_string(dir.join(RECORDED_AT_FILE))
                .ok()
                .map(|t| DateTime::parse_from_rfc3339(t.trim()).unwrap().to_utc()),
        }
    }

    /// The shapes of a scenario's recorded jobspecs (`job-info.lookup.json`), by job id.
    pub(crate) fn shapes(scenario: &str) -> HashMap<u64, Shape> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(scenario)
            .join(format!("{TOPIC_JOB_INFO_LOOKUP}.json"));
        let Ok(text) = std::fs::read_to_string(path) else {
            return HashMap::new();
        };
        let recorded: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
        recorded
            .iter()
            .map(|(id, answer)| {
                let shape = Shape::from_lookup(&answer.to_string()).unwrap();
                (id.parse().unwrap(), shape)
            })
            .collect()
    }

    /// A scenario's snapshot, with its recorded jobspecs, as a server makes it.
    pub(crate) fn snapshot(scenario: &str) -> Snapshot {
        snapshot_with(scenario, DEFAULT_STUCK_AFTER)
    }

    pub(crate) fn snapshot_with(scenario: &str, stuck_after: Duration) -> Snapshot {
        let t = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let a = answers(scenario);
        let shapes = shapes(scenario);
        let demand = DemandInputs {
            shapes: Some(&shapes),
            stuck_after,
            ..DemandInputs::default()
        };
        Snapshot::build(&a, &Listing::parse(&a.job_list).unwrap(), demand, t).unwrap()
    }

    /// The truth table of tests/fixtures/README.md: up, free, idle, down, cores up, cores free,
    /// gpus up, gpus free, depend, priority, sched, run, cleanup, inactive.
    const TRUTH: [(&str, [u64; 14]); 9] = [
        ("idle", [4, 4, 4, 0, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0]),
        ("busy", [4, 4, 1, 0, 8, 5, 0, 0, 1, 0, 2, 2, 0, 2]),
        ("drained", [3, 3, 2, 1, 6, 5, 0, 0, 0, 0, 0, 1, 0, 0]),
        ("gpus-queues", [4, 4, 0, 0, 16, 5, 8, 6, 0, 0, 2, 3, 0, 0]),
        ("many-jobs", [2, 0, 0, 0, 4, 0, 0, 0, 0, 0, 3500, 1, 0, 0]),
        ("elastic", [4, 2, 1, 4, 16, 6, 0, 0, 0, 0, 3, 2, 0, 0]),
        (
            "gpu-exclusive",
            [4, 4, 0, 4, 16, 12, 8, 0, 0, 0, 3, 4, 0, 0],
        ),
        (
            "queue-constrained",
            [4, 2, 2, 4, 16, 8, 0, 0, 0, 0, 2, 1, 0, 0],
        ),
        ("room-on-busy", [4, 4, 0, 4, 16, 8, 0, 0, 0, 0, 3, 1, 0, 0]),
    ];

    /// The "Demand" table: allocated nodes, pending nodes, minimum safe size, desired size.
    const DEMAND: [(&str, [u64; 4]); 9] = [
        ("idle", [0, 0, 0, 1]),
        ("busy", [3, 4, 3, 4]),
        ("drained", [1, 0, 1, 1]),
        ("gpus-queues", [4, 5, 4, 4]),
        ("many-jobs", [2, 250, 2, 2]),
        ("elastic", [3, 5, 3, 7]),
        ("gpu-exclusive", [4, 3, 4, 7]),
        ("queue-constrained", [2, 2, 2, 5]),
        ("room-on-busy", [4, 6, 4, 7]),
    ];

    #[test]
    fn counts_match_flux_tools_for_every_scenario() {
        for (scenario, want) in TRUTH {
            let s = snapshot(scenario);
            let (n, j) = (s.nodes, s.jobs);
            let got = [
                n.up,
                n.free,
                n.idle,
                n.down,
                n.cores_up,
                n.cores_free,
                n.gpus_up,
                n.gpus_free,
                j.depend,
                j.priority,
                j.sched,
                j.run,
                j.cleanup,
                j.inactive,
            ];
            assert_eq!(got, want, "scenario {scenario}");
        }
    }

    #[test]
    fn demand_matches_the_table_for_every_scenario() {
        for (scenario, want) in DEMAND {
            let s = snapshot(scenario);
            let got = [
                s.nodes.allocated,
                s.jobs.pending_nodes,
                s.nodes.min_size,
                s.desired_size(),
            ];
            assert_eq!(got, want, "scenario {scenario}");
        }
    }

    #[test]
    fn jobspecs_give_the_shape_that_the_listing_lacks() {
        // gpu-exclusive without its jobspecs: the listing has no GPUs and no exclusivity, so
        // the GPU jobs seem to fit beside what runs and the exclusive job on a busy node.
        let a = answers("gpu-exclusive");
        let s = Snapshot::parse(&a, Utc::now()).unwrap();
        assert_eq!(
            (s.jobs.pending_nodes, s.desired_size(), s.jobs.unshaped),
            (2, 4, 3)
        );
        let s = snapshot("gpu-exclusive");
        assert_eq!(
            (s.jobs.pending_nodes, s.desired_size(), s.jobs.unshaped),
            (3, 7, 0)
        );
    }

    #[test]
    fn each_queue_has_its_own_size_and_wait() {
        let s = snapshot("queue-constrained");
        let size = |q| s.desired_size_for(s.job_counts(Some(q)).unwrap());
        // big requires bigmem, which only nodes 4-7 have; batch fits on node 2.
        assert_eq!((size("big"), size("batch"), s.desired_size()), (5, 3, 5));
        assert_eq!(s.job_counts(Some("big")).unwrap().oldest_wait_seconds, 1);
        // The batch job waits behind the big one (a FIFO scheduler) although the model places it:
        // past --stuck-after it counts as needing a new node of its own.
        let s = snapshot_with("queue-constrained", Duration::from_millis(500));
        let size = |q| s.desired_size_for(s.job_counts(Some(q)).unwrap());
        assert_eq!((size("big"), size("batch"), s.desired_size()), (5, 5, 5));
        // Unless its queue is stopped: more nodes would not start it.
        let a = answers("queue-constrained");
        let shapes = shapes("queue-constrained");
        let stopped = BTreeSet::from(["batch".to_string()]);
        let demand = DemandInputs {
            shapes: Some(&shapes),
            stuck_after: Duration::from_millis(500),
            stopped_queues: Some(&stopped),
            ..DemandInputs::default()
        };
        let l = Listing::parse(&a.job_list).unwrap();
        let s = Snapshot::build(&a, &l, demand, Utc::now()).unwrap();
        assert_eq!(s.needed_size(Some("batch")), Ok(3));
        assert_eq!(
            l.queues_waiting_longer_than(1_796_231_077.596, Duration::from_millis(500)),
            ["batch", "big"]
        );
        // A recording without submission times has no job to take as stuck.
        let s = snapshot_with("many-jobs", Duration::from_millis(1));
        assert_eq!((s.desired_size(), s.jobs.oldest_wait_seconds), (2, 0));
    }

    #[test]
    fn drains_for_a_shrink_count_as_room_and_other_drains_do_not() {
        // room-on-busy with ranks 2-3 drained: by an administrator they take nothing, so the two
        // jobs behind the exclusive one need more new nodes; drained by this server for a
        // shrink they count as they will be once undrained.
        let mut a = answers("room-on-busy");
        let shapes = shapes("room-on-busy");
        let demand = DemandInputs {
            shapes: Some(&shapes),
            ..DemandInputs::default()
        };
        let mut size = |reason: &str| {
            a.resource_status = format!(
                r#"{{"online": "0-3", "drain": {{"2-3": {{"timestamp": 1.0, "reason": "{reason}"}}}}}}"#
            );
            let l = Listing::parse(&a.job_list).unwrap();
            Snapshot::build(&a, &l, demand, Utc::now())
                .unwrap()
                .jobs
                .needed_size
        };
        assert_eq!(size("flux-metrics-api: shrinking to 2"), 7);
        assert_eq!(size("maintenance window"), 8);
    }

    #[test]
    fn drained_rank_is_counted() {
        assert_eq!(snapshot("drained").nodes.drained, 1);
        assert_eq!(snapshot("idle").nodes.drained, 0);
    }

    #[test]
    fn drains_of_this_server_are_told_apart_by_their_reason() {
        let mut a = answers("idle");
        a.resource_status = r#"{"online": "0-2", "exclude": "3", "drain": {
            "1": {"timestamp": 1.0, "reason": "maintenance window"},
            "2": {"timestamp": 2.0, "reason": "flux-metrics-api: shrinking to 2"},
            "0": {"timestamp": 3.0}}}"#
            .into();
        let s = Snapshot::parse(&a, Utc::now()).unwrap();
        assert_eq!(s.drained.to_string(), "0-2");
        assert_eq!(s.shrink_drains, [(IdSet::parse("2").unwrap(), 2)]);
        assert_eq!(
            (s.online.to_string(), s.excluded.to_string()),
            ("0-2".into(), "3".into())
        );
        // Without the online set (older brokers), the up ranks are the online ones.
        a.resource_status = r#"{"drain": {}}"#.into();
        let s = Snapshot::parse(&a, Utc::now()).unwrap();
        assert_eq!((s.online.to_string(), s.excluded.len()), ("0-3".into(), 0));
        a.resource_status = r#"{"online": "x"}"#.into();
        assert_eq!(
            Snapshot::parse(&a, Utc::now()).unwrap_err().topic,
            TOPIC_RESOURCE_STATUS
        );
    }

    #[test]
    fn queues_are_counted_separately() {
        let s = snapshot("gpus-queues");
        assert_eq!(s.queues.keys().collect::<Vec<_>>(), ["batch", "debug"]);
        let batch = s.job_counts(Some("batch")).unwrap();
        let debug = s.job_counts(Some("debug")).unwrap();
        assert_eq!((batch.run, batch.sched), (2, 0));
        assert_eq!((debug.run, debug.sched), (1, 2));
        assert_eq!(
            batch.pending_nodes + debug.pending_nodes,
            s.jobs.pending_nodes
        );
    }

    #[test]
    fn unknown_queue_names_the_known_ones() {
        let e = snapshot("gpus-queues").job_counts(Some("gpu")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "flux has no queue \"gpu\"; its queues are: batch, debug"
        );
        let e = snapshot("idle").job_counts(Some("batch")).unwrap_err();
        assert!(e.to_string().contains("no named queues"), "{e}");
    }

    #[test]
    fn allocated_null_is_an_empty_set() {
        // `busy` has allocations, so a null that were misread would show.
        let recorded = snapshot("busy");
        assert_eq!(recorded.nodes.allocated, 3);
        assert_eq!(recorded.nodes.cores_allocated, 3);
        let mut a = answers("busy");
        let mut sched: serde_json::Value = serde_json::from_str(&a.sched_status).unwrap();
        assert!(sched["allocated"].is_object(), "{sched}");
        sched["allocated"] = serde_json::Value::Null;
        a.sched_status = sched.to_string();
        let s = Snapshot::parse(&a, Utc::now()).unwrap();
        let n = s.nodes;
        assert_eq!((n.allocated, n.cores_allocated, n.min_size), (0, 0, 0));
        assert_eq!((n.free, n.idle, n.cores_free), (n.up, n.up, n.cores_up));
        assert_eq!(n.up, recorded.nodes.up);
        assert_eq!(s.free, s.up);
    }

    #[test]
    fn huge_counters_saturate_instead_of_overflowing() {
        let mut a = answers("idle");
        a.job_stats = r#"{"job_states": {"depend": 18446744073709551615, "sched": 1}}"#.into();
        let s = Snapshot::parse(&a, Utc::now()).unwrap();
        assert_eq!(s.jobs.pending(), u64::MAX);
    }

    #[test]
    fn many_drain_entries_are_merged_in_one_pass() {
        let mut a = answers("idle");
        let drain: Vec<String> = (0..50_000)
            .map(|r| format!("\"{}\": {{\"reason\": \"x\"}}", r * 2))
            .collect();
        a.resource_status = format!("{{\"drain\": {{{}}}}}", drain.join(","));
        let s = Snapshot::parse(&a, Utc::now()).unwrap();
        assert_eq!(s.nodes.drained, 50_000);
    }

    #[test]
    fn absurd_sizes_are_refused_not_allocated() {
        let mut a = answers("idle");
        a.sched_status = r#"{"all": {"version": 1, "execution": {"R_lite": [{"rank": "0-4000000000", "children": {"core": "0-1"}}]}}}"#.into();
        let e = Snapshot::parse(&a, Utc::now()).unwrap_err();
        assert_eq!(e.topic, TOPIC_SCHED_STATUS);
        let mut a = answers("idle");
        a.job_stats = r#"{"job_states": {"run": 18446744073709551616}}"#.into();
        assert_eq!(
            Snapshot::parse(&a, Utc::now()).unwrap_err().topic,
            TOPIC_JOB_STATS
        );
    }

    #[test]
    fn malformed_answers_name_the_rpc() {
        type Breakage = fn(&mut Answers);
        let cases: [(Breakage, &str); 5] = [
            (
                |a| a.sched_status = "{\"all\": 3}".into(),
                TOPIC_SCHED_STATUS,
            ),
            (|a| a.sched_status.truncate(40), TOPIC_SCHED_STATUS),
            (
                |a| a.resource_status = "{\"drain\": {\"x-1\": {}}}".into(),
                TOPIC_RESOURCE_STATUS,
            ),
            (
                |a| a.job_stats = "{\"job_states\": {\"run\": -1}}".into(),
                TOPIC_JOB_STATS,
            ),
            (
                |a| a.job_list = "{\"jobs\": [{\"state\": \"8\"}]}".into(),
                TOPIC_JOB_LIST,
            ),
        ];
        for (break_it, topic) in cases {
            let mut a = answers("busy");
            break_it(&mut a);
            let e = Snapshot::parse(&a, Utc::now()).unwrap_err();
            assert_eq!(e.topic, topic, "{e}");
        }
    }
}

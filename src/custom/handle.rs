//! The script API: the "Flux handle" a metric function receives (`flux.nodes`, `flux.jobs`,
//! `flux.queue(name)`, the resource sets, `flux.rpc(topic, payload)`) and the helper functions
//! registered beside it (`idset_count`, `hostlist_count`).

use std::sync::Arc;
use std::time::Instant;

use rhai::{Dynamic, Engine, EvalAltResult, INT, Map, Position};

use super::Host;
use crate::source::rlist::{IdSet, ResourceSet, hostlist_count};
use crate::source::snapshot::{JobCounts, Snapshot};

/// The broker RPCs a script may send without `--custom-metric-allow-rpc`: topics of flux-core's
/// `resource`, `job-list` and `job-info` services that read state and answer once. Left out on
/// purpose: everything that changes state (`job-manager.cancel`, `resource.drain`,
/// `job-list.job-state-pause`...), streaming topics (`job-info.eventlog-watch`: a script reads
/// one answer, and the watch would be left open on the broker), and the KVS (`kvs.lookup` reads
/// any job's data and the instance's configuration).
pub const READ_ONLY_RPCS: &[&str] = &[
    "resource.status",
    "resource.sched-status",
    "sched.resource-status",
    "job-list.list",
    "job-list.list-id",
    "job-list.list-attrs",
    "job-list.job-stats",
    "job-info.lookup",
];

/// Whether a script may send `topic`: a read-only topic, or one `allowed` names (exactly, or as
/// `service.*`).
pub(super) fn rpc_allowed(topic: &str, allowed: &[String]) -> bool {
    READ_ONLY_RPCS.contains(&topic)
        || allowed.iter().any(|a| match a.strip_suffix('*') {
            Some(prefix) if prefix.ends_with('.') => topic.starts_with(prefix),
            _ => a == topic,
        })
}

/// The token `on_progress` stops a script with when its time is up.
pub(super) const TIMEOUT_TOKEN: &str = "custom-metric-timeout";
/// The token `on_progress` stops a script with when it holds more than its memory budget.
pub(super) const MEMORY_TOKEN: &str = "custom-metric-max-memory";

/// The "Flux handle" a metric function receives.
#[derive(Clone)]
pub(super) struct Flux {
    pub(super) snapshot: Arc<Snapshot>,
    pub(super) host: Arc<dyn Host>,
    /// When the evaluation must end (`None`: a timeout too large to represent).
    pub(super) deadline: Option<Instant>,
    /// `--custom-metric-allow-rpc`.
    pub(super) allow_rpc: Arc<[String]>,
    /// `--custom-metric-max-memory`: no answer longer than this is parsed.
    pub(super) max_memory: usize,
}

fn int(v: u64) -> Dynamic {
    Dynamic::from_int(INT::try_from(v).unwrap_or(INT::MAX))
}

fn map<const N: usize>(entries: [(&str, Dynamic); N]) -> Map {
    entries.into_iter().map(|(k, v)| (k.into(), v)).collect()
}

fn jobs_map(j: &JobCounts) -> Map {
    map([
        ("depend", int(j.depend)),
        ("priority", int(j.priority)),
        ("sched", int(j.sched)),
        ("run", int(j.run)),
        ("cleanup", int(j.cleanup)),
        ("inactive", int(j.inactive)),
        ("pending", int(j.pending())),
        ("successful", int(j.successful)),
        ("failed", int(j.failed)),
        ("canceled", int(j.canceled)),
        ("timeout", int(j.timeout)),
        ("pending_nodes", int(j.pending_nodes)),
        ("needed_size", int(j.needed_size)),
        ("oldest_wait_seconds", int(j.oldest_wait_seconds)),
    ])
}

fn set_map(r: &ResourceSet) -> Map {
    map([
        ("nodes", int(r.nnodes())),
        ("cores", int(r.ncores())),
        ("gpus", int(r.ngpus())),
        ("ranks", r.ranks().to_string().into()),
    ])
}

impl Flux {
    fn nodes(&self) -> Map {
        let n = &self.snapshot.nodes;
        map([
            ("all", int(n.all)),
            ("up", int(n.up)),
            ("free", int(n.free)),
            ("idle", int(n.idle)),
            ("down", int(n.down)),
            ("drained", int(n.drained)),
            ("allocated", int(n.allocated)),
            ("cores_up", int(n.cores_up)),
            ("cores_free", int(n.cores_free)),
            ("cores_allocated", int(n.cores_allocated)),
            ("gpus_up", int(n.gpus_up)),
            ("gpus_free", int(n.gpus_free)),
        ])
    }

    fn queue(&self, name: &str) -> Result<Map, Box<EvalAltResult>> {
        match self.snapshot.job_counts(Some(name)) {
            Ok(j) => Ok(jobs_map(j)),
            Err(e) => Err(e.to_string().into()),
        }
    }

    fn rpc(&self, topic: &str, payload: Option<Map>) -> Result<Dynamic, Box<EvalAltResult>> {
        if !rpc_allowed(topic, &self.allow_rpc) {
            return Err(format!(
                "flux RPC {topic} is not allowed: custom metrics may send only read-only RPCs ({}); \
                 start the server with --custom-metric-allow-rpc {topic} to allow it",
                READ_ONLY_RPCS.join(", ")
            )
            .into());
        }
        let payload = match payload {
            Some(m) => {
                let v: serde_json::Value = rhai::serde::from_dynamic(&Dynamic::from_map(m))?;
                Some(v.to_string())
            }
            None => None,
        };
        let answer = self.host.rpc(topic, payload.as_deref());
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(
                EvalAltResult::ErrorTerminated(TIMEOUT_TOKEN.into(), Position::NONE).into(),
            );
        }
        let text = answer.map_err(|e| format!("flux RPC {topic} failed: {e}"))?;
        if text.len() > self.max_memory {
            return Err(EvalAltResult::ErrorTerminated(MEMORY_TOKEN.into(), Position::NONE).into());
        }
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("flux RPC {topic}: the answer is not JSON: {e}"))?;
        rhai::serde::to_dynamic(value)
    }
}

pub(super) fn register_api(e: &mut Engine) {
    e.register_type_with_name::<Flux>("Flux")
        .register_get("nodes", |f: &mut Flux| f.nodes())
        .register_get("jobs", |f: &mut Flux| jobs_map(&f.snapshot.jobs))
        .register_get("queues", |f: &mut Flux| -> rhai::Array {
            f.snapshot
                .queues
                .keys()
                .map(|q| q.as_str().into())
                .collect()
        })
        .register_get("all", |f: &mut Flux| set_map(&f.snapshot.all))
        .register_get("up", |f: &mut Flux| set_map(&f.snapshot.up))
        .register_get("down", |f: &mut Flux| set_map(&f.snapshot.down))
        .register_get("allocated", |f: &mut Flux| set_map(&f.snapshot.allocated))
        .register_get("free", |f: &mut Flux| set_map(&f.snapshot.free))
        .register_fn("queue", |f: &mut Flux, name: &str| f.queue(name))
        .register_fn("rpc", |f: &mut Flux, topic: &str| f.rpc(topic, None))
        .register_fn("rpc", |f: &mut Flux, topic: &str, payload: Map| {
            f.rpc(topic, Some(payload))
        })
        .register_fn(
            "idset_count",
            |s: &str| -> Result<INT, Box<EvalAltResult>> {
                let set = IdSet::parse(s).map_err(|e| e.to_string())?;
                Ok(INT::try_from(set.len()).unwrap_or(INT::MAX))
            },
        )
        .register_fn(
            "hostlist_count",
            |s: &str| -> Result<INT, Box<EvalAltResult>> {
                let n = hostlist_count(s).map_err(|e| e.to_string())?;
                Ok(INT::try_from(n).unwrap_or(INT::MAX))
            },
        );
}

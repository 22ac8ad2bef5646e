//! The metric catalogue: every metric's name, help text and how it is computed, defined once.
//!
//! Discovery, the metric routes, `flux-metrics-api get`, the OpenAPI document and the README's
//! table all read [`CATALOGUE`]; a test keeps the README in step with it.

use crate::source::snapshot::{JobCounts, NodeCounts, Snapshot, UnknownQueue};

/// The label that narrows a job metric to one Flux queue.
pub const QUEUE_LABEL: &str = "queue";

/// How a metric is computed from a [`Snapshot`].
#[derive(Clone, Copy)]
pub enum Compute {
    /// A property of the resource set; takes no labels.
    Nodes(fn(&NodeCounts) -> u64),
    /// A job counter; may be narrowed to one queue with the `queue` label.
    Jobs(fn(&JobCounts) -> u64),
    /// A size of the MiniCluster for the waiting jobs of the whole instance, or of one queue
    /// with the `queue` label: combines the resources with a job counter.
    Size(fn(&Snapshot, &JobCounts) -> u64),
}

/// One metric of the catalogue.
#[derive(Clone, Copy)]
pub struct Metric {
    /// Name as used in API paths and HPA specs.
    pub name: &'static str,
    /// One-line description for discovery, `--help`-like listings and `/metrics`.
    pub help: &'static str,
    /// How its value is derived.
    pub compute: Compute,
}

impl Metric {
    /// Whether the metric accepts the `queue` label.
    pub fn has_queue_label(&self) -> bool {
        matches!(self.compute, Compute::Jobs(_) | Compute::Size(_))
    }

    /// The metric's value in `snapshot`, narrowed to `queue` when given.
    ///
    /// # Errors
    /// [`ValueError::UnknownQueue`] for a queue the instance lacks; [`ValueError::NoQueueLabel`]
    /// when a queue is given to a metric that has no queue label.
    pub fn value(&self, snapshot: &Snapshot, queue: Option<&str>) -> Result<u64, ValueError> {
        match (self.compute, queue) {
            (Compute::Jobs(f), q) => Ok(f(snapshot.job_counts(q)?)),
            (Compute::Size(f), q) => Ok(f(snapshot, snapshot.job_counts(q)?)),
            (Compute::Nodes(_), Some(_)) => Err(ValueError::NoQueueLabel(self.name)),
            (Compute::Nodes(f), None) => Ok(f(&snapshot.nodes)),
        }
    }
}

/// Why a metric has no value for the labels asked.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValueError {
    /// The queue does not exist.
    #[error(transparent)]
    UnknownQueue(#[from] UnknownQueue),
    /// The metric describes the whole instance and has no queue label.
    #[error(
        "metric {0} describes the whole Flux instance and has no queue label; only job_* metrics and minicluster_desired_size can be narrowed to a queue"
    )]
    NoQueueLabel(&'static str),
}

macro_rules! nodes {
    ($name:literal, $help:literal, $field:ident) => {
        Metric {
            name: $name,
            help: $help,
            compute: Compute::Nodes(|n| n.$field),
        }
    };
}
macro_rules! jobs {
    ($name:literal, $help:literal, $f:expr) => {
        Metric {
            name: $name,
            help: $help,
            compute: Compute::Jobs($f),
        }
    };
}

/// Every built-in metric. The first eleven are the Python flux-metrics-api's, with its meaning.
pub const CATALOGUE: &[Metric] = &[
    nodes!("node_up_count", "Nodes up (not down, not drained).", up),
    nodes!(
        "node_free_count",
        "Up nodes with at least one free core or GPU.",
        free
    ),
    nodes!("node_cores_up_count", "Cores on up nodes.", cores_up),
    nodes!(
        "node_cores_free_count",
        "Free cores on up nodes.",
        cores_free
    ),
    jobs!(
        "job_queue_state_new_count",
        "Jobs in state NEW (always 0: it lasts microseconds).",
        |_| 0
    ),
    jobs!(
        "job_queue_state_depend_count",
        "Jobs waiting on dependencies (DEPEND).",
        |j| j.depend
    ),
    jobs!(
        "job_queue_state_priority_count",
        "Jobs waiting for a priority (PRIORITY).",
        |j| j.priority
    ),
    jobs!(
        "job_queue_state_sched_count",
        "Jobs waiting for resources (SCHED).",
        |j| j.sched
    ),
    jobs!("job_queue_state_run_count", "Jobs running (RUN).", |j| j
        .run),
    jobs!(
        "job_queue_state_cleanup_count",
        "Jobs finishing (CLEANUP).",
        |j| j.cleanup
    ),
    jobs!(
        "job_queue_state_inactive_count",
        "Jobs finished and not yet purged (INACTIVE).",
        |j| j.inactive
    ),
    nodes!(
        "node_idle_count",
        "Up nodes with every core and GPU free.",
        idle
    ),
    nodes!(
        "node_down_count",
        "Nodes down, drained ones included.",
        down
    ),
    nodes!(
        "node_drained_count",
        "Nodes drained, by an administrator or for a shrink.",
        drained
    ),
    nodes!(
        "node_allocated_count",
        "Nodes holding any allocation.",
        allocated
    ),
    nodes!("node_gpus_up_count", "GPUs on up nodes.", gpus_up),
    nodes!("node_gpus_free_count", "Free GPUs on up nodes.", gpus_free),
    nodes!(
        "node_cores_allocated_count",
        "Cores allocated to jobs on up nodes.",
        cores_allocated
    ),
    jobs!(
        "job_queue_pending_count",
        "Jobs not yet running: DEPEND + PRIORITY + SCHED.",
        |j| j.pending()
    ),
    jobs!(
        "job_successful_count",
        "Inactive jobs that completed successfully.",
        |j| j.successful
    ),
    jobs!("job_failed_count", "Inactive jobs that failed.", |j| j
        .failed),
    jobs!(
        "job_canceled_count",
        "Inactive jobs that were canceled.",
        |j| j.canceled
    ),
    jobs!(
        "job_timeout_count",
        "Inactive jobs that reached their time limit.",
        |j| j.timeout
    ),
    jobs!(
        "job_pending_nodes_count",
        "Nodes that runnable waiting jobs (PRIORITY or SCHED, not held) ask for, by their jobspecs: node requests (exclusive ones too) in nodes, the rest as their cores or GPUs in nodes of the largest size, whichever is more.",
        |j| j.pending_nodes
    ),
    jobs!(
        "job_oldest_wait_seconds",
        "Seconds since the submission of the oldest runnable waiting job (PRIORITY or SCHED, not held), or 0.",
        |j| j.oldest_wait_seconds
    ),
    nodes!(
        "minicluster_min_size",
        "Highest allocated rank + 1: shrinking below it would remove a node that runs a job.",
        min_size
    ),
    nodes!(
        "minicluster_current_size",
        "Highest online broker rank + 1: the size the MiniCluster runs at now.",
        current_size
    ),
    Metric {
        name: "minicluster_desired_size",
        help: "The smallest size every runnable waiting job fits in, first-fit in the scheduler's order beside what runs now (of one queue with the queue label); never below minicluster_min_size (with --drain-before-shrink, minicluster_safe_size), at least 1.",
        compute: Compute::Size(Snapshot::desired_size_for),
    },
    nodes!(
        "minicluster_safe_size",
        "The size the MiniCluster can shrink to now without losing a job: 1 + the highest online rank that runs a job or can be given one (not drained).",
        safe_size
    ),
    nodes!(
        "node_shrink_drained_count",
        "Nodes drained for a shrink by --drain-before-shrink (reason flux-metrics-api: shrinking to N), present or already removed.",
        shrink_drained
    ),
];

/// One value of the catalogue in a snapshot: a metric, for the whole instance or one queue.
#[derive(Clone, Copy)]
pub struct Sample<'a> {
    /// The metric.
    pub metric: &'static Metric,
    /// The queue, for the per-queue series of a job metric.
    pub queue: Option<&'a str>,
    /// Its value.
    pub value: u64,
}

/// Every series of the catalogue in `snapshot`, in catalogue order: each metric for the whole
/// instance, and each job metric right after once per queue (queues sorted by name).
pub fn samples(snapshot: &Snapshot) -> impl Iterator<Item = Sample<'_>> {
    CATALOGUE.iter().flat_map(move |metric| {
        let queues = metric
            .has_queue_label()
            .then(|| snapshot.queues.keys().map(|q| Some(q.as_str())))
            .into_iter()
            .flatten();
        std::iter::once(None)
            .chain(queues)
            .filter_map(move |queue| {
                let value = metric.value(snapshot, queue).ok()?;
                Some(Sample {
                    metric,
                    queue,
                    value,
                })
            })
    })
}

/// The built-in metric called `name`.
pub fn find(name: &str) -> Option<&'static Metric> {
    CATALOGUE.iter().find(|m| m.name == name)
}

/// Whether `name` is a valid metric name: a DNS-1123-like label of lower-case letters, digits and
/// underscores (what the Python tool's function names and Prometheus both accept).
pub fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::snapshot::tests::snapshot;

    #[test]
    fn names_are_unique_and_valid() {
        let mut names: Vec<_> = CATALOGUE.iter().map(|m| m.name).collect();
        assert!(names.iter().all(|n| is_valid_name(n)));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
    }

    #[test]
    fn python_tool_names_come_first() {
        let python = [
            "node_up_count",
            "node_free_count",
            "node_cores_up_count",
            "node_cores_free_count",
            "job_queue_state_new_count",
            "job_queue_state_depend_count",
            "job_queue_state_priority_count",
            "job_queue_state_sched_count",
            "job_queue_state_run_count",
            "job_queue_state_cleanup_count",
            "job_queue_state_inactive_count",
        ];
        assert_eq!(
            CATALOGUE[..11].iter().map(|m| m.name).collect::<Vec<_>>(),
            python
        );
    }

    #[test]
    fn values_for_busy_scenario() {
        let s = snapshot("busy");
        let v = |n: &str| find(n).unwrap().value(&s, None).unwrap();
        assert_eq!(v("node_up_count"), 4);
        assert_eq!(v("node_cores_free_count"), 5);
        assert_eq!(v("node_cores_allocated_count"), 3);
        assert_eq!(v("job_queue_pending_count"), 3);
        assert_eq!(v("job_queue_state_sched_count"), 2);
        assert_eq!(v("minicluster_desired_size"), 4);
    }

    #[test]
    fn queue_label_only_on_job_metrics() {
        let s = snapshot("gpus-queues");
        let sched = find("job_queue_state_sched_count").unwrap();
        assert_eq!(sched.value(&s, Some("debug")), Ok(2));
        assert_eq!(sched.value(&s, Some("batch")), Ok(0));
        assert!(matches!(
            sched.value(&s, Some("x")),
            Err(ValueError::UnknownQueue(_))
        ));
        let up = find("node_up_count").unwrap();
        assert_eq!(
            up.value(&s, Some("batch")),
            Err(ValueError::NoQueueLabel("node_up_count"))
        );
    }

    #[test]
    fn samples_are_every_metric_then_its_queues() {
        let s = snapshot("gpus-queues");
        let all: Vec<_> = samples(&s).collect();
        let jobs = CATALOGUE.iter().filter(|m| m.has_queue_label()).count();
        assert_eq!(all.len(), CATALOGUE.len() + 2 * jobs);
        let sched: Vec<_> = all
            .iter()
            .filter(|x| x.metric.name == "job_queue_state_sched_count")
            .map(|x| (x.queue, x.value))
            .collect();
        assert_eq!(sched, [(None, 2), (Some("batch"), 0), (Some("debug"), 2)]);
        assert_eq!(samples(&snapshot("idle")).count(), CATALOGUE.len());
    }

    #[test]
    fn name_validation() {
        for ok in ["a", "node_up_count", "my_custom_metric_name", "x9"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "9a", "_a", "A", "a-b", "a.b", "a b", "é"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}

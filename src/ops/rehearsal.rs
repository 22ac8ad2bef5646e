//! Rehearsal values: with `--replay` and `--allow-writes`, a person overrides a series (a
//! metric, for the whole instance or one queue) with a value of their choosing until the server
//! stops, as the Kubernetes test adapter's `/write-metrics` does, so that an HPA can be
//! rehearsed against chosen numbers. Every view applies them through [`Overrides::apply`] (the
//! value table) or [`Overrides::get`] (one series), and says that the value is overridden.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::values::SeriesKey;
use super::values::{Table, Value};

/// The overridden series and their values.
#[derive(Debug, Default)]
pub struct Overrides {
    values: Mutex<BTreeMap<SeriesKey, f64>>,
}

/// `metric` or `metric{queue=q}`, as `get`, the log and `/readyz` name a series.
pub fn label(key: &SeriesKey) -> String {
    match &key.queue {
        None => key.metric.clone(),
        Some(q) => format!("{}{{queue={q}}}", key.metric),
    }
}

impl Overrides {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<SeriesKey, f64>> {
        self.values.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Overrides `key` with `value` (replacing an earlier override of it).
    pub fn set(&self, key: SeriesKey, value: f64) {
        self.map().insert(key, value);
    }

    /// The override of `key`, if any.
    pub fn get(&self, key: &SeriesKey) -> Option<f64> {
        self.map().get(key).copied()
    }

    /// Every override, sorted by series.
    pub fn list(&self) -> Vec<(SeriesKey, f64)> {
        self.map().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Replaces the values of the overridden series in `table` (a failed custom metric's error
    /// too) and names them in [`Table::overridden`].
    pub fn apply(&self, table: &mut Table) {
        for (key, value) in self.list() {
            let row = table
                .rows
                .iter_mut()
                .find(|r| r.name == key.metric && r.queue == key.queue);
            if let Some(row) = row {
                row.value = Ok(Value::Real(value));
                table.overridden.push(label(&key));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::snapshot::tests::snapshot;

    fn key(m: &str, q: Option<&str>) -> SeriesKey {
        SeriesKey {
            metric: m.into(),
            queue: q.map(str::to_owned),
        }
    }

    #[test]
    fn overrides_replace_one_series_and_are_named() {
        let o = Overrides::default();
        o.set(key("job_queue_state_sched_count", Some("debug")), 7.0);
        o.set(key("node_up_count", None), 0.3);
        o.set(key("node_up_count", None), 0.5);
        let mut t = Table::builtin("test", &snapshot("gpus-queues"));
        o.apply(&mut t);
        let j = t.json(false);
        assert_eq!(j["metrics"]["node_up_count"], 0.5);
        assert_eq!(j["queues"]["debug"]["job_queue_state_sched_count"], 7);
        // The whole-instance series of the same metric keeps its value.
        assert_eq!(j["metrics"]["job_queue_state_sched_count"], 2);
        assert_eq!(
            t.overridden,
            ["job_queue_state_sched_count{queue=debug}", "node_up_count"]
        );
        assert_eq!(j["overridden"][1], "node_up_count");
        assert_eq!(o.get(&key("node_up_count", None)), Some(0.5));
        assert_eq!(o.get(&key("node_free_count", None)), None);
    }
}

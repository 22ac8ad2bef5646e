//! The value table: every series of every metric at one moment — the catalogue's (each metric,
//! and each job metric per queue) and each custom metric's, with help texts and, for a custom
//! metric that failed, its error. `get`, `/api/v1/metrics`, `/metrics`, the history and the
//! dashboard all show this one table, so they can never disagree.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::custom::{Custom, Evaluated, Host};
use crate::source::catalogue;
use crate::source::snapshot::Snapshot;

/// One series: a metric, for the whole instance or one queue.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    /// Metric name.
    pub metric: String,
    /// Queue, for per-queue job series.
    pub queue: Option<String>,
}

/// A value as the table holds it: a catalogue count, or a custom metric's number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// A catalogue metric: a count.
    Count(u64),
    /// A custom metric: any finite number.
    Real(f64),
}

impl Value {
    /// As a float (history, averages).
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Count(n) => n as f64,
            Value::Real(v) => v,
        }
    }

    /// As JSON: integral values as integers, as the counts are.
    pub fn json(self) -> serde_json::Value {
        match self {
            Value::Count(n) => n.into(),
            Value::Real(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => (v as i64).into(),
            Value::Real(v) => v.into(),
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.json())
    }
}

/// One series' row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Metric name.
    pub name: String,
    /// Its help text.
    pub help: String,
    /// The queue, for a job metric's per-queue series.
    pub queue: Option<String>,
    /// Whether it is a custom metric.
    pub custom: bool,
    /// Its value, or (custom metrics only) why it has none.
    pub value: Result<Value, String>,
}

/// Every series of every metric at one moment.
#[derive(Clone, Debug)]
pub struct Table {
    /// Where the answers came from (the broker's description).
    pub source: String,
    /// When the broker answered.
    pub taken_at: DateTime<Utc>,
    /// Catalogue rows first (in catalogue order, each metric's queues after it), then custom
    /// metrics sorted by name.
    pub rows: Vec<Row>,
    /// The series whose value is a rehearsal override ([`crate::ops::rehearsal`]), named as
    /// `metric` or `metric{queue=q}`.
    pub overridden: Vec<String>,
}

impl Table {
    /// The table of `snapshot`: the catalogue's series and, with `custom`, every custom metric
    /// evaluated (see [`Custom::values`]).
    pub async fn collect(
        source: &str,
        snapshot: &Arc<Snapshot>,
        custom: Option<&Custom>,
        host: &Arc<dyn Host>,
    ) -> Table {
        let mut table = Table::builtin(source, snapshot);
        if let Some(c) = custom {
            table.add_custom(c.values(snapshot, host, |_| true).await);
        }
        table
    }

    /// The catalogue's series of `snapshot` alone.
    pub fn builtin(source: &str, snapshot: &Snapshot) -> Table {
        let rows = catalogue::samples(snapshot)
            .map(|s| Row {
                name: s.metric.name.to_owned(),
                help: s.metric.help.to_owned(),
                queue: s.queue.map(str::to_owned),
                custom: false,
                value: Ok(Value::Count(s.value)),
            })
            .collect();
        Table {
            source: source.to_owned(),
            taken_at: snapshot.taken_at,
            rows,
            overridden: Vec::new(),
        }
    }

    /// Adds custom metric results after the catalogue's rows.
    pub fn add_custom(&mut self, evaluated: Vec<Evaluated>) {
        self.rows.extend(evaluated.into_iter().map(|e| Row {
            name: e.name,
            help: e.help,
            queue: None,
            custom: true,
            value: e.result.map(Value::Real).map_err(|e| e.to_string()),
        }));
    }

    /// The rows of the metrics `chosen` accepts.
    pub fn retain(&mut self, chosen: impl Fn(&str) -> bool) {
        self.rows.retain(|r| chosen(&r.name));
    }

    /// The table as one JSON object: `{"source", "timestamp", "metrics": {name: value},
    /// "queues": {queue: {name: value}}}`, and with `with_help` also `"help": {name: text}` and
    /// `"errors": {name: why}` (what `/api/v1/metrics` answers; `get -o json` prints it without
    /// them). A custom metric that failed has no value here; its help is still listed. With
    /// rehearsal overrides, `"overridden"` lists them.
    pub fn json(&self, with_help: bool) -> serde_json::Value {
        let mut metrics = serde_json::Map::new();
        let mut queues = serde_json::Map::new();
        let mut help = serde_json::Map::new();
        let mut errors = serde_json::Map::new();
        for r in &self.rows {
            help.entry(r.name.clone())
                .or_insert_with(|| r.help.clone().into());
            let value = match &r.value {
                Ok(v) => *v,
                Err(e) => {
                    errors.insert(r.name.clone(), e.clone().into());
                    continue;
                }
            };
            match &r.queue {
                None => {
                    metrics.insert(r.name.clone(), value.json());
                }
                Some(q) => {
                    let entry = queues
                        .entry(q.clone())
                        .or_insert_with(|| serde_json::json!({}));
                    entry[r.name.as_str()] = value.json();
                }
            }
        }
        let mut doc = serde_json::json!({
            "source": self.source,
            "timestamp": self.taken_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "metrics": metrics,
            "queues": queues,
        });
        if with_help {
            doc["help"] = help.into();
            doc["errors"] = errors.into();
        }
        if !self.overridden.is_empty() {
            doc["overridden"] = self.overridden.clone().into();
        }
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::snapshot::tests::snapshot;

    fn table(scenario: &str) -> Table {
        Table::builtin("test", &snapshot(scenario))
    }

    #[test]
    fn json_has_totals_and_queues() {
        let j = table("gpus-queues").json(false);
        assert_eq!(j["metrics"]["node_cores_up_count"], 16);
        assert_eq!(j["queues"]["debug"]["job_queue_state_run_count"], 1);
        assert!(j["queues"]["debug"].get("node_up_count").is_none());
        assert!(j.get("help").is_none());
    }

    #[test]
    fn help_lists_every_metric_once_and_failed_custom_metrics_have_no_value() {
        let mut t = table("gpus-queues");
        t.add_custom(vec![
            Evaluated {
                name: "mine".into(),
                help: "Mine.".into(),
                result: Ok(0.5),
            },
            Evaluated {
                name: "broken".into(),
                help: "Broken.".into(),
                result: Err(crate::custom::CustomError::Unknown("broken".into())),
            },
        ]);
        let j = t.json(true);
        assert_eq!(
            j["help"].as_object().unwrap().len(),
            catalogue::CATALOGUE.len() + 2
        );
        assert_eq!(j["metrics"]["mine"], 0.5);
        assert!(j["metrics"].get("broken").is_none());
        assert_eq!(j["help"]["broken"], "Broken.");
        assert_eq!(j["errors"]["broken"], "no custom metric \"broken\"");
        assert!(t.json(false).get("errors").is_none());
    }

    #[test]
    fn values_print_integers_as_integers() {
        assert_eq!(Value::Real(5.0).to_string(), "5");
        assert_eq!(Value::Real(0.375).to_string(), "0.375");
        assert_eq!(Value::Count(7).json(), 7);
    }
}

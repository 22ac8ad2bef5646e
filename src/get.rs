//! `flux-metrics-api get`: the current values, straight from the broker, for a person in the pod.
//!
//! It uses the same broker thread, snapshot and catalogue as the server, so what it prints is
//! exactly what the API would answer at that moment.

use std::process::ExitCode;

use anyhow::bail;

use crate::broker::{Broker, Settings};
use crate::cli::{GetArgs, Output};
use crate::metrics::{self, CATALOGUE, Metric};
use crate::snapshot::Snapshot;

/// One printed value.
struct Row {
    metric: &'static Metric,
    queue: Option<String>,
    value: u64,
}

/// Runs `get`.
///
/// # Errors
/// Unknown metric names, an unreachable broker, a malformed answer.
pub fn run(args: &GetArgs) -> anyhow::Result<ExitCode> {
    let chosen: Vec<&'static Metric> = if args.metrics.is_empty() {
        CATALOGUE.iter().collect()
    } else {
        args.metrics
            .iter()
            .map(|n| match metrics::find(n) {
                Some(m) => Ok(m),
                None => bail!(
                    "unknown metric {n:?}; the metrics are: {}",
                    CATALOGUE
                        .iter()
                        .map(|m| m.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
            .collect::<anyhow::Result<_>>()?
    };
    let settings = Settings::try_from(&args.broker)?;
    let broker = Broker::start(settings)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let answer = runtime.block_on(broker.snapshot());
    broker.stop();
    let snapshot = answer?;
    let rows = rows(&chosen, &snapshot);
    match args.output {
        Output::Table => print!("{}", table(&rows, broker.description(), &snapshot)),
        Output::Json => println!("{}", json(&rows, broker.description(), &snapshot)),
    }
    Ok(ExitCode::SUCCESS)
}

fn rows(chosen: &[&'static Metric], s: &Snapshot) -> Vec<Row> {
    let mut rows = Vec::new();
    for &metric in chosen {
        if let Ok(value) = metric.value(s, None) {
            rows.push(Row {
                metric,
                queue: None,
                value,
            });
        }
        if metric.has_queue_label() {
            for q in s.queues.keys() {
                if let Ok(value) = metric.value(s, Some(q)) {
                    rows.push(Row {
                        metric,
                        queue: Some(q.clone()),
                        value,
                    });
                }
            }
        }
    }
    rows
}

fn label(row: &Row) -> String {
    match &row.queue {
        None => row.metric.name.to_owned(),
        Some(q) => format!("{}{{queue={q}}}", row.metric.name),
    }
}

fn table(rows: &[Row], source: &str, s: &Snapshot) -> String {
    let width = rows.iter().map(|r| label(r).len()).max().unwrap_or(0);
    let mut out = format!(
        "# {source}, at {}\n",
        s.taken_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    out.push_str(&format!(
        "{:width$}  {:>8}  {}\n",
        "METRIC", "VALUE", "DESCRIPTION"
    ));
    for r in rows {
        out.push_str(&format!(
            "{:width$}  {:>8}  {}\n",
            label(r),
            r.value,
            r.metric.help
        ));
    }
    out
}

/// Every current value as one JSON object: `{"source", "timestamp", "metrics": {name: value},
/// "queues": {queue: {name: value}}}` (what `get -o json` prints and `/api/v1/metrics` answers).
pub fn values_json(source: &str, s: &Snapshot) -> serde_json::Value {
    json(&rows(&CATALOGUE.iter().collect::<Vec<_>>(), s), source, s)
}

fn json(rows: &[Row], source: &str, s: &Snapshot) -> serde_json::Value {
    let mut metrics = serde_json::Map::new();
    let mut queues = serde_json::Map::new();
    for r in rows {
        match &r.queue {
            None => {
                metrics.insert(r.metric.name.into(), r.value.into());
            }
            Some(q) => {
                let entry = queues
                    .entry(q.clone())
                    .or_insert_with(|| serde_json::json!({}));
                entry[r.metric.name] = r.value.into();
            }
        }
    }
    serde_json::json!({
        "source": source,
        "timestamp": s.taken_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "metrics": metrics,
        "queues": queues,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tests::snapshot;

    #[test]
    fn table_lists_queue_rows_after_the_total() {
        let s = snapshot("gpus-queues");
        let m = [metrics::find("job_queue_state_sched_count").unwrap()];
        let t = table(&rows(&m, &s), "test", &s);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[2].starts_with("job_queue_state_sched_count "), "{t}");
        assert!(
            lines[3].starts_with("job_queue_state_sched_count{queue=batch}"),
            "{t}"
        );
        assert!(
            lines[4].contains("{queue=debug}") && lines[4].contains(" 2 "),
            "{t}"
        );
    }

    #[test]
    fn json_has_totals_and_queues() {
        let s = snapshot("gpus-queues");
        let j = json(&rows(&CATALOGUE.iter().collect::<Vec<_>>(), &s), "test", &s);
        assert_eq!(j["metrics"]["node_cores_up_count"], 16);
        assert_eq!(j["queues"]["debug"]["job_queue_state_run_count"], 1);
        assert!(j["queues"]["debug"].get("node_up_count").is_none());
    }
}

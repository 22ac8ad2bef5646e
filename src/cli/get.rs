//! `flux-metrics-api get`: the current values, straight from the broker, for a person in the pod.
//!
//! It uses the same broker thread, snapshot and catalogue as the server, so what it prints is
//! exactly what the API would answer at that moment.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;

use crate::cli::{GetArgs, Output};
use crate::custom::Custom;
use crate::source::broker::{Broker, Settings};
use crate::source::catalogue::{self as metrics, CATALOGUE};
use crate::source::snapshot::Snapshot;

/// One printed value.
struct Row {
    name: String,
    help: String,
    queue: Option<String>,
    value: serde_json::Value,
}

/// Runs `get`.
///
/// # Errors
/// Unknown metric names, custom metric files that do not load, an unreachable broker, a
/// malformed answer.
pub fn run(args: &GetArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::try_from(&args.broker)?;
    let custom = if args.custom.custom_metric.is_empty() {
        None
    } else {
        let builtins: Vec<&str> = CATALOGUE.iter().map(|m| m.name).collect();
        let custom_settings = crate::custom::Settings {
            timeout: args.custom.custom_metric_timeout,
            ..Default::default()
        };
        Some(Custom::load(
            &args.custom.custom_metric,
            &builtins,
            custom_settings,
        )?)
    };
    let custom_names = custom.as_ref().map(Custom::names).unwrap_or_default();
    let known = |n: &str| metrics::find(n).is_some() || custom_names.iter().any(|c| c == n);
    if let Some(n) = args.metrics.iter().find(|n| !known(n)) {
        let all: Vec<&str> = CATALOGUE
            .iter()
            .map(|m| m.name)
            .chain(custom_names.iter().map(String::as_str))
            .collect();
        bail!("unknown metric {n:?}; the metrics are: {}", all.join(", "));
    }
    let chosen = |n: &str| args.metrics.is_empty() || args.metrics.iter().any(|m| m == n);

    let broker = Broker::start(settings)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let result = runtime.block_on(async {
        let snapshot = broker.snapshot().await?;
        let mut rows = builtin_rows(&snapshot, &chosen);
        let mut failures = Vec::new();
        if let Some(custom) = &custom {
            let host: Arc<dyn crate::custom::Host> = Arc::new(broker.clone());
            for name in custom_names.iter().filter(|n| chosen(n)) {
                match custom
                    .value(name, Arc::clone(&snapshot), Arc::clone(&host))
                    .await
                {
                    Ok(v) => rows.push(Row {
                        name: name.clone(),
                        help: custom.help(name).unwrap_or_default(),
                        queue: None,
                        value: number(v),
                    }),
                    Err(e) => failures.push(e.to_string()),
                }
            }
        }
        anyhow::Ok((snapshot, rows, failures))
    });
    broker.stop();
    let (snapshot, rows, failures) = result?;
    match args.output {
        Output::Table => print!("{}", table(&rows, broker.description(), &snapshot)),
        Output::Json => println!("{}", json(&rows, broker.description(), &snapshot)),
    }
    for f in &failures {
        eprintln!("flux-metrics-api: {f}");
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Every current value of the built-in metrics as one JSON object: `{"source", "timestamp",
/// "metrics": {name: value}, "queues": {queue: {name: value}}}` (what `get -o json` prints and
/// `/api/v1/metrics` answers).
pub fn values_json(source: &str, s: &Snapshot) -> serde_json::Value {
    json(&builtin_rows(s, &|_| true), source, s)
}

/// A custom metric's value as JSON: integral values as integers, as the built-in ones are.
fn number(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        (v as i64).into()
    } else {
        v.into()
    }
}

fn builtin_rows(s: &Snapshot, chosen: &dyn Fn(&str) -> bool) -> Vec<Row> {
    let mut rows = Vec::new();
    for metric in CATALOGUE.iter().filter(|m| chosen(m.name)) {
        let queues = std::iter::once(None).chain(
            metric
                .has_queue_label()
                .then(|| s.queues.keys().map(Some))
                .into_iter()
                .flatten(),
        );
        for q in queues {
            if let Ok(value) = metric.value(s, q.map(String::as_str)) {
                rows.push(Row {
                    name: metric.name.to_owned(),
                    help: metric.help.to_owned(),
                    queue: q.cloned(),
                    value: value.into(),
                });
            }
        }
    }
    rows
}

fn label(row: &Row) -> String {
    match &row.queue {
        None => row.name.to_owned(),
        Some(q) => format!("{}{{queue={q}}}", row.name),
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
            r.value.to_string(),
            r.help
        ));
    }
    out
}

fn json(rows: &[Row], source: &str, s: &Snapshot) -> serde_json::Value {
    let mut metrics = serde_json::Map::new();
    let mut queues = serde_json::Map::new();
    for r in rows {
        match &r.queue {
            None => {
                metrics.insert(r.name.clone(), r.value.clone());
            }
            Some(q) => {
                let entry = queues
                    .entry(q.clone())
                    .or_insert_with(|| serde_json::json!({}));
                entry[r.name.as_str()] = r.value.clone();
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
    use crate::source::snapshot::tests::snapshot;

    #[test]
    fn table_lists_queue_rows_after_the_total() {
        let s = snapshot("gpus-queues");
        let rows = builtin_rows(&s, &|n| n == "job_queue_state_sched_count");
        let t = table(&rows, "test", &s);
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
        let j = values_json("test", &s);
        assert_eq!(j["metrics"]["node_cores_up_count"], 16);
        assert_eq!(j["queues"]["debug"]["job_queue_state_run_count"], 1);
        assert!(j["queues"]["debug"].get("node_up_count").is_none());
    }
}

//! `flux-metrics-api get`: the current values, straight from the broker, for a person in the pod.
//!
//! It uses the same broker thread, snapshot and catalogue as the server, so what it prints is
//! exactly what the API would answer at that moment.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;

use crate::cli::{GetArgs, Output};
use crate::custom::{Custom, Host};
use crate::ops::values::{Row, Table};
use crate::source::broker::{Broker, BrokerError, Settings};
use crate::source::catalogue::{self as metrics, CATALOGUE};

/// Said when no live broker answers: where `get` can read answers without one.
const REPLAY_HINT: &str = "\nWithout a Flux instance, read recorded answers: `flux-metrics-api get --replay DIR` \
     (DIR from `flux-metrics-api record DIR` inside the instance, or a scenario of example/scenarios/)";

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
        let custom_settings = crate::custom::Settings::try_from(&args.custom)?;
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
    let live = !broker.is_replay();
    let result = runtime.block_on(async {
        let snapshot = broker.snapshot().await.map_err(|e| {
            let hint = match e {
                BrokerError::Unavailable(_) if live => REPLAY_HINT,
                _ => "",
            };
            anyhow::anyhow!("{e}{hint}")
        })?;
        let mut table = Table::builtin(broker.description(), &snapshot);
        table.retain(chosen);
        if let Some(custom) = &custom {
            let host: Arc<dyn Host> = Arc::new(broker.clone());
            table.add_custom(custom.values(&snapshot, &host, chosen).await);
        }
        anyhow::Ok(table)
    });
    broker.stop();
    let table = result?;
    match args.output {
        Output::Table => print!("{}", text(&table)),
        Output::Json => println!("{}", table.json(false)),
    }
    let mut failed = false;
    for row in &table.rows {
        if let Err(e) = &row.value {
            eprintln!("flux-metrics-api: {e}");
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn label(row: &Row) -> String {
    match &row.queue {
        None => row.name.clone(),
        Some(q) => format!("{}{{queue={q}}}", row.name),
    }
}

/// The table for a person: a header naming the source and time, then one aligned row per
/// series that has a value.
fn text(t: &Table) -> String {
    let rows: Vec<(&Row, String)> = t
        .rows
        .iter()
        .filter_map(|r| Some((r, r.value.as_ref().ok()?.to_string())))
        .collect();
    let width = rows.iter().map(|(r, _)| label(r).len()).max().unwrap_or(0);
    let mut out = format!(
        "# {}, at {}\n",
        t.source,
        t.taken_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    out.push_str(&format!(
        "{:width$}  {:>8}  {}\n",
        "METRIC", "VALUE", "DESCRIPTION"
    ));
    for (r, value) in rows {
        out.push_str(&format!("{:width$}  {value:>8}  {}\n", label(r), r.help));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::snapshot::tests::snapshot;

    #[test]
    fn table_lists_queue_rows_after_the_total() {
        let mut t = Table::builtin("test", &snapshot("gpus-queues"));
        t.retain(|n| n == "job_queue_state_sched_count");
        let text = text(&t);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[2].starts_with("job_queue_state_sched_count "),
            "{text}"
        );
        assert!(
            lines[3].starts_with("job_queue_state_sched_count{queue=batch}"),
            "{text}"
        );
        assert!(
            lines[4].contains("{queue=debug}") && lines[4].contains(" 2 "),
            "{text}"
        );
    }
}

//! `flux-metrics-api record DIR`: one round of the server's RPCs on a live broker (and the
//! `flux.rpc` calls of the custom metrics, when given), each answer saved as `DIR/<topic>.json`,
//! then the directory replayed to check that it gives the same values. A bug report or a demo
//! is then `--replay DIR`.
//!
//! The answers are written by the broker connection itself as it receives them
//! ([`Source::Record`]), so the files are exactly the RPCs the server sends: there is no second
//! list of topics to fall behind the code.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::cli::RecordArgs;
use crate::custom::{Custom, Host};
use crate::ops::values::Table;
use crate::source::broker::{Broker, Settings, Source};
use crate::source::catalogue::CATALOGUE;

/// Runs `record`.
///
/// # Errors
/// A directory that cannot be written or already holds answers (without `--force`), custom
/// metric files that do not load, a broker that does not answer, a recording that does not
/// replay to the same values.
pub fn run(args: &RecordArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    prepare(dir, args.force)?;
    let custom = if args.custom.custom_metric.is_empty() {
        None
    } else {
        let builtins: Vec<&str> = CATALOGUE.iter().map(|m| m.name).collect();
        // No cache: the replayed values must come from the replayed answers.
        let settings = crate::custom::Settings {
            max_age: std::time::Duration::ZERO,
            ..crate::custom::Settings::try_from(&args.custom)?
        };
        Some(Custom::load(
            &args.custom.custom_metric,
            &builtins,
            settings,
        )?)
    };
    let mut live = Settings::try_from(&args.live)?;
    let Source::Live { library, uri } = live.source else {
        bail!("record needs a live broker");
    };
    live.source = Source::Record {
        library,
        uri,
        dir: dir.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let recorded = runtime.block_on(table(live, custom.as_ref()))?;
    let replay = Settings {
        source: Source::Replay(dir.clone()),
        ..Settings::try_from(&args.live)?
    };
    let replayed = runtime.block_on(table(replay, custom.as_ref()))?;
    let differ: Vec<String> = recorded
        .rows
        .iter()
        .zip(&replayed.rows)
        .filter(|(a, b)| a.value != b.value || a.name != b.name || a.queue != b.queue)
        .map(|(a, b)| format!("{}: {:?} live, {:?} replayed", a.name, a.value, b.value))
        .collect();
    if !differ.is_empty() || recorded.rows.len() != replayed.rows.len() {
        bail!(
            "the recorded answers in {} do not replay to the values the broker gave:\n  {}",
            dir.display(),
            differ.join("\n  ")
        );
    }
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
        .collect();
    files.sort();
    let shown = crate::cli::shell_word(&dir.display().to_string());
    crate::cli::print_stdout(&format!(
        "recorded {} answers of the broker into {shown}: {}\n\
         they replay to the same {} values; serve them anywhere with\n  \
         flux-metrics-api start --replay {shown}\n",
        files.len(),
        files.join(", "),
        recorded.rows.len(),
    ))
}

/// Creates `dir`, refusing to mix a new recording with answers already in it.
fn prepare(dir: &Path, force: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let existing: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    if !existing.is_empty() && !force {
        bail!(
            "{} already holds recorded answers ({}): choose another directory, or pass --force to replace them",
            dir.display(),
            existing.join(", ")
        );
    }
    if force {
        for name in existing {
            std::fs::remove_file(dir.join(&name))
                .with_context(|| format!("removing {}", dir.join(&name).display()))?;
        }
    }
    Ok(())
}

/// One round through a broker thread of `settings`, with the custom metrics evaluated on it.
async fn table(settings: Settings, custom: Option<&Custom>) -> anyhow::Result<Table> {
    let broker = Broker::start(settings)?;
    let result = async {
        let snapshot = broker.snapshot().await?;
        let host: Arc<dyn Host> = Arc::new(broker.clone());
        anyhow::Ok(Table::collect(broker.description(), &snapshot, custom, &host).await)
    }
    .await;
    broker.stop();
    result
}

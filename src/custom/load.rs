//! Loading `--custom-metric` files: compiling each, finding its metric functions (public, one
//! parameter), their help texts (doc comments), refusing bad or clashing names, and reloading
//! them with the last good version of a file kept when an edit does not load.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use rhai::FnAccess;

use super::sandbox::Sandbox;
use super::sandbox::line_column;
use super::{Custom, Loaded, Metric, Script};
use crate::source::catalogue::is_valid_name;

impl Custom {
    /// Re-reads every file. A file that fails to load (unreadable, does not parse, bad or
    /// clashing names as in [`Custom::load`]) keeps its last good version; the reason is logged
    /// and returned. Metrics added or removed by an edit appear or disappear; a file whose text is
    /// unchanged keeps its cached values.
    ///
    /// # Errors
    /// Every file that failed, one per line.
    pub fn reload(&self) -> anyhow::Result<()> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.loaded.load_full();
        let mut errors: Vec<anyhow::Error> = Vec::new();
        let mut scripts = Vec::with_capacity(self.files.len());
        let mut metrics = BTreeMap::new();
        for (path, previous) in self.files.iter().zip(&old.scripts) {
            let fresh = std::fs::read_to_string(path)
                .with_context(|| format!("reading custom metric file {}", path.display()))
                .and_then(|source| {
                    if source == previous.source {
                        Ok(Arc::clone(previous))
                    } else {
                        compile(path, source, &self.reserved, &self.sandbox).map(Arc::new)
                    }
                });
            let script = match fresh {
                Ok(script) if Arc::ptr_eq(&script, previous) => script,
                Ok(script) => match claim(&script, &mut metrics) {
                    Ok(()) => {
                        scripts.push(script);
                        continue;
                    }
                    Err(e) => {
                        errors.push(e);
                        Arc::clone(previous)
                    }
                },
                Err(e) => {
                    errors.push(e);
                    Arc::clone(previous)
                }
            };
            // The last good version; an earlier file may have taken one of its names meanwhile.
            for m in &script.metrics {
                if let Err(e) = claim_one(m, &mut metrics) {
                    errors.push(e);
                }
            }
            scripts.push(script);
        }
        let (before, after) = (old.metrics.keys(), metrics.keys());
        let added: Vec<&String> = after
            .clone()
            .filter(|n| !old.metrics.contains_key(*n))
            .collect();
        let removed: Vec<&String> = before.filter(|n| !metrics.contains_key(*n)).collect();
        let changed = scripts
            .iter()
            .zip(&old.scripts)
            .any(|(a, b)| !Arc::ptr_eq(a, b));
        if changed || !added.is_empty() || !removed.is_empty() {
            tracing::info!(?added, ?removed, "custom metrics reloaded");
        }
        self.loaded.store(Arc::new(Loaded { scripts, metrics }));
        for e in &errors {
            tracing::warn!(
                error = format!("{e:#}"),
                "custom metric file not reloaded; its last good version stays"
            );
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(anyhow!(
                "{}",
                errors
                    .iter()
                    .map(|e| format!("{e:#}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )),
        }
    }
}

/// Compiles one file and collects its metric functions.
/// Whether a file that does not parse as Rhai is probably a Python module, as the Python
/// flux-metrics-api took (a `.py` name, or `def`/`import` lines).
fn looks_like_python(path: &Path, source: &str) -> bool {
    path.extension().is_some_and(|e| e == "py")
        || source.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("def ") || l.starts_with("import ") || l.starts_with("from ")
        })
}

pub(super) fn compile(
    path: &Path,
    source: String,
    reserved: &[String],
    sandbox: &Sandbox,
) -> anyhow::Result<Script> {
    let file = path.display();
    let ast = sandbox.engine().compile(&source).map_err(|e| {
        let (line, column) = line_column(e.position());
        let hint = if looks_like_python(path, &source) {
            "; custom metrics are Rhai scripts, not Python: docs/custom-metrics.md, \
             \"Migrating a Python custom metric\", shows the Python tool's example rewritten"
        } else {
            ""
        };
        anyhow!(
            "{file}:{line}:{column}: syntax error: {}{hint}",
            e.err_type()
        )
    })?;
    let ast = Arc::new(ast);
    let mut metrics = Vec::new();
    for f in ast.iter_functions() {
        if f.access == FnAccess::Private || f.params.len() != 1 {
            continue;
        }
        let name = f.name;
        if !is_valid_name(name) {
            bail!(
                "{file}: function {name}: {name:?} is not a valid metric name (lower-case letters, \
                 digits and underscores, starting with a letter); make it `private fn` if it is a helper"
            );
        }
        if reserved.iter().any(|r| r == name) {
            bail!("{file}: function {name}: {name:?} is the name of a built-in metric");
        }
        let help = doc_text(&f.comments).unwrap_or_else(|| format!("custom metric from {file}"));
        metrics.push(Arc::new(Metric {
            name: name.to_owned(),
            help,
            path: path.to_owned(),
            ast: Arc::clone(&ast),
            cache: tokio::sync::Mutex::new(None),
        }));
    }
    Ok(Script {
        path: path.to_owned(),
        source,
        metrics,
    })
}

/// Adds every metric of `script` to `metrics`, or none if one name is taken by another file.
pub(super) fn claim(
    script: &Script,
    metrics: &mut BTreeMap<String, Arc<Metric>>,
) -> anyhow::Result<()> {
    for m in &script.metrics {
        if let Some(other) = metrics.get(&m.name) {
            return Err(clash(&script.path, &m.name, &other.path));
        }
    }
    for m in &script.metrics {
        metrics.insert(m.name.clone(), Arc::clone(m));
    }
    Ok(())
}

/// Adds `m` to `metrics` unless its name is taken.
fn claim_one(m: &Arc<Metric>, metrics: &mut BTreeMap<String, Arc<Metric>>) -> anyhow::Result<()> {
    if let Some(other) = metrics.get(&m.name) {
        return Err(clash(&m.path, &m.name, &other.path));
    }
    metrics.insert(m.name.clone(), Arc::clone(m));
    Ok(())
}

fn clash(path: &Path, name: &str, other: &Path) -> anyhow::Error {
    anyhow!(
        "{}: function {name}: metric {name:?} is already defined in {}",
        path.display(),
        other.display()
    )
}

/// The first paragraph of `///` and `/** */` doc comments, leaders stripped and lines joined by
/// spaces (one line, like the help of the built-in metrics).
fn doc_text(comments: &[&str]) -> Option<String> {
    let mut words = Vec::new();
    for line in comments.iter().flat_map(|c| c.lines()) {
        let line = line.trim();
        let line = line
            .strip_prefix("///")
            .or_else(|| line.strip_prefix("/**"))
            .unwrap_or(line);
        let line = line.strip_suffix("*/").unwrap_or(line).trim();
        let line = line.strip_prefix('*').unwrap_or(line).trim();
        match (line.is_empty(), words.is_empty()) {
            (false, _) => words.push(line),
            (true, true) => {}
            (true, false) => break,
        }
    }
    (!words.is_empty()).then(|| words.join(" "))
}

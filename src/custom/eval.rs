//! One run of a metric function, on the calling (blocking) thread, under the sandbox's limits and
//! the wall-clock deadline, and its result turned into a number.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rhai::{CallFnOptions, Dynamic};

use super::error::run_error;
use super::handle::{Flux, MEMORY_TOKEN, TIMEOUT_TOKEN};
use super::sandbox::Sandbox;
use super::{CustomError, Host, Metric};
use crate::source::snapshot::Snapshot;

/// The wall-clock deadline is checked every this many operations: reading the clock on every
/// operation would cost as much as the operation itself.
const DEADLINE_CHECK_EVERY: u64 = 256;

/// Most characters of a non-number result quoted in [`CustomError::NotANumber`].
const EXCERPT_CHARS: usize = 64;

/// Runs `metric` once, on the calling (blocking) thread.
pub(super) fn evaluate(
    metric: &Metric,
    sandbox: &Sandbox,
    snapshot: Arc<Snapshot>,
    host: Arc<dyn Host>,
) -> Result<f64, CustomError> {
    let settings = &sandbox.settings;
    let deadline = Instant::now().checked_add(settings.timeout);
    let mut engine = sandbox.engine();
    // Rhai counts operations one by one but may also jump ahead, so the next check is a threshold
    // rather than a multiple.
    let next_check = AtomicU64::new(DEADLINE_CHECK_EVERY);
    // Memory is counted per thread (`alloc-count`), and the whole evaluation runs on this one:
    // what it holds is what this thread allocated since the start and has not freed. Checked
    // after every operation, at the cost of reading a thread-local integer.
    let budget = i64::try_from(settings.max_memory).unwrap_or(i64::MAX);
    let base = alloc_count::thread_net_bytes();
    engine.on_progress(move |ops| {
        if alloc_count::thread_net_bytes() - base > budget {
            return Some(MEMORY_TOKEN.into());
        }
        let d = deadline?;
        if ops < next_check.load(Ordering::Relaxed) {
            return None;
        }
        next_check.store(ops.saturating_add(DEADLINE_CHECK_EVERY), Ordering::Relaxed);
        (Instant::now() >= d).then(|| TIMEOUT_TOKEN.into())
    });
    let flux = Flux {
        snapshot,
        host,
        deadline,
        allow_rpc: settings.allow_rpc.clone().into(),
        max_memory: settings.max_memory,
    };
    let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
    let result = engine.call_fn_with_options::<Dynamic>(
        options,
        &mut rhai::Scope::new(),
        &metric.ast,
        &metric.name,
        (flux,),
    );
    match result {
        Ok(v) => number(&metric.name, &v),
        Err(e) => Err(run_error(metric, settings, &e)),
    }
}

fn number(name: &str, v: &Dynamic) -> Result<f64, CustomError> {
    let not_a_number = |got: String| CustomError::NotANumber {
        name: name.to_owned(),
        got,
    };
    if let Ok(i) = v.as_int() {
        // Exact up to 2^53; beyond that the nearest f64, which is what a Quantity can carry anyway.
        return Ok(i as f64);
    }
    if let Ok(f) = v.as_float() {
        return if f.is_finite() {
            Ok(f)
        } else {
            Err(not_a_number(f.to_string()))
        };
    }
    if v.is_unit() {
        return Err(not_a_number("() (nothing)".into()));
    }
    let excerpt = crate::util::text::excerpt(&format!("{v:?}"), EXCERPT_CHARS);
    Err(not_a_number(format!("{} {excerpt}", v.type_name())))
}

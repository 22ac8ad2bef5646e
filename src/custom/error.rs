//! What a failed custom metric says: Rhai's errors turned into a [`CustomError`] with the file,
//! line and column, the calls that led there, and which limit stopped it.

use rhai::{EvalAltResult, Position};

use super::handle::MEMORY_TOKEN;
use super::sandbox::{
    MAX_CALL_LEVELS, MAX_COLLECTION_SIZE, MAX_STRING_SIZE, MAX_VARIABLES, line_column,
};
use super::{Metric, Settings};

/// Most script-function calls listed in a [`CustomError::Script`] message.
const MAX_CALLS_SHOWN: usize = 3;

/// Why a custom metric has no value.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum CustomError {
    /// There is no custom metric of that name.
    #[error("no custom metric {0:?}")]
    Unknown(String),
    /// The script failed at run time.
    #[error("custom metric {name} failed: {message}")]
    Script {
        /// The metric.
        name: String,
        /// The script's error, with `file:line:column`.
        message: String,
    },
    /// The script was stopped by the operation, memory, call-depth or time limit.
    #[error("custom metric {name} was stopped: {message}")]
    Limit {
        /// The metric.
        name: String,
        /// Which limit, e.g. "ran longer than 2s (--custom-metric-timeout)".
        message: String,
    },
    /// The script returned something that is not a finite number.
    #[error("custom metric {name} returned {got}, not a number")]
    NotANumber {
        /// The metric.
        name: String,
        /// What it returned: its type and an excerpt of its value, or `NaN`/`inf`.
        got: String,
    },
}

pub(super) fn timeout_error(name: &str, settings: &Settings) -> CustomError {
    CustomError::Limit {
        name: name.to_owned(),
        message: format!(
            "ran longer than {:?} (--custom-metric-timeout)",
            settings.timeout
        ),
    }
}

/// Turns Rhai's error into a [`CustomError`]; messages carry `file:line:column` and the calls
/// that led there.
pub(super) fn run_error(metric: &Metric, settings: &Settings, err: &EvalAltResult) -> CustomError {
    let file = metric.path.display();
    // " at FILE:LINE:COLUMN", or nothing where Rhai knows no position (e.g. the operation limit).
    let at = |pos: Position| -> String {
        let (line, column) = line_column(pos);
        if pos.is_none() {
            String::new()
        } else {
            format!(" at {file}:{line}:{column}")
        }
    };
    // Unwind the script-function calls down to the error itself, innermost call first.
    let mut calls = Vec::new();
    let mut inner = err;
    while let EvalAltResult::ErrorInFunctionCall(f, _, e, pos) = inner {
        if f != &metric.name {
            calls.push(format!("in call to {f}{}", at(*pos)));
        }
        inner = e;
    }
    calls.reverse();
    let name = metric.name.clone();
    let limit = |message: String| CustomError::Limit {
        name: name.clone(),
        message: format!("{message}{}", at(inner.position())),
    };
    match inner {
        EvalAltResult::ErrorTerminated(token, _) if token.to_string() == MEMORY_TOKEN => {
            limit(format!(
                "held more than {} of memory (--custom-metric-max-memory)",
                crate::util::size::display(settings.max_memory)
            ))
        }
        EvalAltResult::ErrorTerminated(..) => timeout_error(&metric.name, settings),
        EvalAltResult::ErrorTooManyOperations(..) => limit(format!(
            "ran more than {} operations",
            settings.max_operations
        )),
        EvalAltResult::ErrorDataTooLarge(what, ..) => limit(format!(
            "{what} too large (strings are limited to {MAX_STRING_SIZE} bytes, arrays and maps to \
             {MAX_COLLECTION_SIZE} elements)"
        )),
        EvalAltResult::ErrorStackOverflow(..) => {
            limit(format!("calls nested deeper than {MAX_CALL_LEVELS} levels"))
        }
        EvalAltResult::ErrorTooManyVariables(..) => {
            limit(format!("more than {MAX_VARIABLES} variables"))
        }
        _ => {
            let pos = inner.position();
            let text = match inner {
                // `throw` and the errors of the Flux API: the message itself.
                EvalAltResult::ErrorRuntime(value, _) if !value.is_unit() => value.to_string(),
                _ => {
                    let text = inner.to_string();
                    text.strip_suffix(&format!(" ({pos})"))
                        .unwrap_or(&text)
                        .to_owned()
                }
            };
            let mut message = format!("{}{}", text.replace('\n', " "), at(pos));
            // Endless recursion would list dozens of calls; the innermost few say where.
            for c in calls.iter().take(MAX_CALLS_SHOWN) {
                message.push_str(", ");
                message.push_str(c);
            }
            if calls.len() > MAX_CALLS_SHOWN {
                let more = calls.len() - MAX_CALLS_SHOWN;
                message.push_str(&format!(", and {more} more calls"));
            }
            CustomError::Script { name, message }
        }
    }
}

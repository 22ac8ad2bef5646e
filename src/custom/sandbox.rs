//! The sandbox every script runs in: Rhai's standard library and nothing that reaches files,
//! processes or the network, no `eval`, no `sleep`, limits on operations, sizes, nesting,
//! variables and memory (`eval.rs` applies the last), and broker RPCs limited to read-only
//! topics. The same engine compiles and runs, so what loads is what runs.

use rhai::packages::{Package as _, StandardPackage};
use rhai::{Engine, EvalAltResult, INT, Position};

use super::Settings;
use super::handle::register_api;

/// Longest string a script may build (bytes).
pub(super) const MAX_STRING_SIZE: usize = 1 << 20;
/// Most elements of one array, blob or map a script may build.
pub(super) const MAX_COLLECTION_SIZE: usize = 100_000;
/// Deepest script function call nesting (catches endless recursion long before the Rust stack).
pub(super) const MAX_CALL_LEVELS: usize = 64;
/// Deepest expression nesting, at top level and inside functions (checked when parsing).
pub(super) const MAX_EXPR_DEPTH: (usize, usize) = (64, 32);
/// Most variables alive at once in one evaluation.
pub(super) const MAX_VARIABLES: usize = 10_000;

/// What every engine is made of: the settings, and Rhai's standard library, built once because
/// building it is most of the cost of an engine (milliseconds).
pub(super) struct Sandbox {
    pub(super) settings: Settings,
    std: StandardPackage,
}

impl Sandbox {
    pub(super) fn new(settings: Settings) -> Sandbox {
        Sandbox {
            settings,
            std: StandardPackage::new(),
        }
    }

    /// An engine with the sandbox, the limits and the Flux API; the same for compiling and
    /// running, so that what parses is what runs.
    pub(super) fn engine(&self) -> Engine {
        // Rhai's standard library has no file, process or network functions; `Engine::new_raw`
        // has no module resolver (and the `no_module` feature removes `import` altogether), and
        // no `print` to stdout.
        let mut e = Engine::new_raw();
        self.std.register_into_engine(&mut e);
        e.set_max_operations(self.settings.max_operations)
            .set_max_string_size(MAX_STRING_SIZE)
            .set_max_array_size(MAX_COLLECTION_SIZE)
            .set_max_map_size(MAX_COLLECTION_SIZE)
            .set_max_call_levels(MAX_CALL_LEVELS)
            .set_max_expr_depths(MAX_EXPR_DEPTH.0, MAX_EXPR_DEPTH.1)
            .set_max_variables(MAX_VARIABLES)
            // A misspelt variable fails at load time, a misspelt map property at run time, instead
            // of silently giving `()`.
            .set_strict_variables(true)
            .set_fail_on_invalid_map_property(true)
            .on_print(|s| tracing::debug!(script = s, "custom metric print"))
            .on_debug(|s, _, pos| {
                let (line, column) = line_column(pos);
                tracing::debug!(script = s, line, column, "custom metric debug");
            });
        // `eval` is pure but would hide code from load-time checks.
        e.disable_symbol("eval");
        // `sleep` blocks the thread where `on_progress` cannot stop it; registered functions
        // override the standard library's, also for calls through function pointers.
        e.register_fn("sleep", |_: INT| -> Result<(), Box<EvalAltResult>> {
            Err("sleep is not available to custom metrics".into())
        })
        .register_fn(
            "sleep",
            |_: rhai::FLOAT| -> Result<(), Box<EvalAltResult>> {
                Err("sleep is not available to custom metrics".into())
            },
        );
        register_api(&mut e);
        e
    }
}

/// The line and column of a Rhai position, `0` where it has none.
pub(super) fn line_column(pos: Position) -> (usize, usize) {
    (pos.line().unwrap_or(0), pos.position().unwrap_or(0))
}

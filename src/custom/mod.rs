//! Custom metrics from `--custom-metric` files: user scripts in [Rhai](https://rhai.rs) whose
//! public one-parameter functions become metrics, each given a "Flux handle" (`handle.rs`) to
//! read the parsed [`Snapshot`] and to make RPCs through a [`Host`]. This file is the face of the
//! folder: the loaded metrics and their cached values. Loading and reloading files is in
//! `load.rs`, watching them in `watch.rs`, the limits in `sandbox.rs`, a run in `eval.rs`, and
//! what a failure says in `error.rs`. Not here: their routes (`api`), or the broker (`source`).

mod error;
mod eval;
mod handle;
mod host;
mod load;
mod sandbox;
mod watch;

pub use error::CustomError;
pub use handle::READ_ONLY_RPCS;
pub use host::Host;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use rhai::AST;

use crate::source::snapshot::Snapshot;
use crate::util::stamp::{Stamp, stamps};
use error::timeout_error;
use load::{claim, compile};
use sandbox::Sandbox;

/// How much longer than `--custom-metric-timeout` a request waits for an evaluation that does
/// not come back (a script stuck in a slow [`Host::rpc`] cannot be interrupted by Rhai).
const STUCK_GRACE: Duration = Duration::from_secs(1);

/// How long the error of a run stopped by a limit (time, operations, memory...) is served before
/// the metric runs again; an edit of its file runs it at once (a reload starts a new cache).
pub const LIMIT_BACKOFF: Duration = Duration::from_secs(10);

/// Limits and cache lifetime of custom metrics.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Longest wall-clock time one evaluation may take (`--custom-metric-timeout`).
    pub timeout: Duration,
    /// Most Rhai operations one evaluation may perform.
    pub max_operations: u64,
    /// A value younger than this is served again without running the script (`--max-age`).
    pub max_age: Duration,
    /// Most heap memory one evaluation may hold (`--custom-metric-max-memory`).
    pub max_memory: usize,
    /// RPC topics scripts may send besides [`READ_ONLY_RPCS`] (`--custom-metric-allow-rpc`); a
    /// topic ending in `.*` allows every topic of that service.
    pub allow_rpc: Vec<String>,
}

/// The default of `--custom-metric-max-memory`: a few times what a script reading a
/// `job-list.list` answer of thousands of jobs holds.
pub const DEFAULT_MAX_MEMORY: usize = 32 << 20;

impl Default for Settings {
    /// A 2 s timeout, 10 million operations, a 1 s `max_age`, 32 MiB and only the read-only RPCs
    /// (the flag defaults).
    fn default() -> Self {
        Settings {
            timeout: Duration::from_secs(2),
            max_operations: 10_000_000,
            max_age: Duration::from_secs(1),
            max_memory: DEFAULT_MAX_MEMORY,
            allow_rpc: Vec::new(),
        }
    }
}

/// One custom metric's result, as [`Custom::values`] reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluated {
    /// The metric.
    pub name: String,
    /// Its help text.
    pub help: String,
    /// Its value, or why it has none.
    pub result: Result<f64, CustomError>,
}

/// The custom metrics of the `--custom-metric` files.
pub struct Custom {
    /// The files, in command-line order (an earlier file wins a name clash on reload).
    files: Vec<PathBuf>,
    /// Names of the built-in metrics.
    reserved: Vec<String>,
    sandbox: Arc<Sandbox>,
    /// The last good version of every file and the metrics they define; swapped whole on reload.
    loaded: ArcSwap<Loaded>,
    /// Serializes reloads (the watcher and a caller may race); never held across `.await`.
    reloading: Mutex<()>,
    /// The files' times and sizes just before `load` read them, where `watch` starts from, so
    /// that an edit between loading and watching is not missed.
    stamps_at_load: Vec<Stamp>,
}

/// One consistent set of scripts.
struct Loaded {
    /// The last good version of each file, parallel to [`Custom::files`].
    scripts: Vec<Arc<Script>>,
    /// The metrics being served.
    metrics: BTreeMap<String, Arc<Metric>>,
}

/// One file, compiled.
struct Script {
    path: PathBuf,
    /// The text it was compiled from: a reload of the same text keeps this version and its caches.
    source: String,
    metrics: Vec<Arc<Metric>>,
}

/// One metric: a function of a script, plus its cached result.
struct Metric {
    name: String,
    help: String,
    path: PathBuf,
    ast: Arc<AST>,
    /// Held across the evaluation so that concurrent requests share it.
    cache: tokio::sync::Mutex<Option<Cached>>,
}

struct Cached {
    finished: Instant,
    result: Result<f64, CustomError>,
}

impl Custom {
    /// Loads every file; each public (non-`private`) function of exactly one parameter is a metric
    /// named after it. Functions with any other number of parameters, and `private` ones, are
    /// helpers. Statements outside functions are never run.
    ///
    /// # Errors
    /// A file that cannot be read; a file that does not parse (the message names file, line and
    /// column); a metric function whose name is not a valid metric name
    /// ([`is_valid_name`](crate::source::catalogue::is_valid_name)), is in `reserved` (the built-in names) or is also a metric of another
    /// file (the message names the file and the function).
    pub fn load(
        files: &[PathBuf],
        reserved: &[&str],
        settings: Settings,
    ) -> anyhow::Result<Custom> {
        let reserved: Vec<String> = reserved.iter().map(|&r| r.to_owned()).collect();
        let sandbox = Arc::new(Sandbox::new(settings));
        let stamps_at_load = stamps(files);
        let mut scripts = Vec::with_capacity(files.len());
        let mut metrics = BTreeMap::new();
        for path in files {
            let source = std::fs::read_to_string(path)
                .with_context(|| format!("reading custom metric file {}", path.display()))?;
            let script = Arc::new(compile(path, source, &reserved, &sandbox)?);
            claim(&script, &mut metrics)?;
            scripts.push(script);
        }
        if metrics.is_empty() && !files.is_empty() {
            tracing::warn!(
                "the custom metric files define no metric (no public one-parameter function)"
            );
        }
        Ok(Custom {
            files: files.to_vec(),
            reserved,
            sandbox,
            loaded: ArcSwap::from_pointee(Loaded { scripts, metrics }),
            reloading: Mutex::new(()),
            stamps_at_load,
        })
    }

    /// The names of the current custom metrics, sorted.
    pub fn names(&self) -> Vec<String> {
        self.loaded.load().metrics.keys().cloned().collect()
    }

    /// Whether `name` is a current custom metric (without copying every name).
    pub fn contains(&self, name: &str) -> bool {
        self.loaded.load().metrics.contains_key(name)
    }

    /// The help text of metric `name`: its function's `///` doc comment, or
    /// "custom metric from FILE" when it has none.
    pub fn help(&self, name: &str) -> Option<String> {
        self.loaded.load().metrics.get(name).map(|m| m.help.clone())
    }

    /// The name, help text and result for `snapshot` of every current metric that `chosen`
    /// accepts, sorted by name: what `/metrics`, `/api/v1/metrics`, the history and `get` show.
    /// Each is [`Custom::value`], all evaluated at once under one deadline, so that the answer
    /// takes about one `--custom-metric-timeout` however many scripts run into it.
    pub async fn values(
        &self,
        snapshot: &Arc<Snapshot>,
        host: &Arc<dyn Host>,
        chosen: impl Fn(&str) -> bool,
    ) -> Vec<Evaluated> {
        let deadline = self.deadline();
        let names: Vec<String> = self.names().into_iter().filter(|n| chosen(n)).collect();
        let results = join_all(
            names
                .iter()
                .map(|name| {
                    self.value_until(name, Arc::clone(snapshot), Arc::clone(host), deadline)
                })
                .collect(),
        )
        .await;
        names
            .into_iter()
            .zip(results)
            .map(|(name, result)| {
                let help = self.help(&name).unwrap_or_default();
                Evaluated { name, help, result }
            })
            .collect()
    }

    /// When a request that starts evaluations now stops waiting for them.
    fn deadline(&self) -> tokio::time::Instant {
        let wait = self.sandbox.settings.timeout.saturating_add(STUCK_GRACE);
        let now = tokio::time::Instant::now();
        now.checked_add(wait)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400))
    }

    /// The value of metric `name` for `snapshot` (the current one).
    ///
    /// Runs the function on a blocking thread under the operation and time limits of the
    /// [`Settings`]. A result (error or not) is reused for `max_age`, and requests that arrive
    /// while an evaluation runs wait for it and share its result, even with a `max_age` of zero.
    ///
    /// # Errors
    /// See [`CustomError`].
    pub async fn value(
        &self,
        name: &str,
        snapshot: Arc<Snapshot>,
        host: Arc<dyn Host>,
    ) -> Result<f64, CustomError> {
        self.value_until(name, snapshot, host, self.deadline())
            .await
    }

    /// [`Custom::value`], given up at `deadline` (also while waiting for an evaluation that
    /// another request started).
    async fn value_until(
        &self,
        name: &str,
        snapshot: Arc<Snapshot>,
        host: Arc<dyn Host>,
        deadline: tokio::time::Instant,
    ) -> Result<f64, CustomError> {
        let metric = self
            .loaded
            .load()
            .metrics
            .get(name)
            .cloned()
            .ok_or_else(|| CustomError::Unknown(name.to_owned()))?;
        let arrived = Instant::now();
        let settings = &self.sandbox.settings;
        let Ok(mut cache) = tokio::time::timeout_at(deadline, metric.cache.lock()).await else {
            return Err(timeout_error(&metric.name, settings));
        };
        if let Some(c) = cache.as_ref() {
            // A run stopped by a limit is not tried again for a while: a runaway script would
            // otherwise burn a core for --custom-metric-timeout after every --max-age.
            let keep = match &c.result {
                Err(CustomError::Limit { .. }) => settings.max_age.max(LIMIT_BACKOFF),
                _ => settings.max_age,
            };
            // Finished after we arrived: we waited for that very evaluation.
            if c.finished >= arrived || c.finished.elapsed() < keep {
                return c.result.clone();
            }
        }
        let job = {
            let (metric, sandbox) = (Arc::clone(&metric), Arc::clone(&self.sandbox));
            tokio::task::spawn_blocking(move || eval::evaluate(&metric, &sandbox, snapshot, host))
        };
        let result = match tokio::time::timeout_at(deadline, job).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(CustomError::Script {
                name: metric.name.clone(),
                message: format!("the evaluation panicked (a bug, please report it): {join}"),
            }),
            // The blocking thread is left to finish on its own: it is stuck in `Host::rpc`, whose
            // own timeout ends it, and the script stops at its next operation.
            Err(_) => Err(timeout_error(&metric.name, settings)),
        };
        if let Err(e) = &result {
            // Once per change of error, not once per request.
            let repeated = cache
                .as_ref()
                .is_some_and(|c| c.result.as_ref().err() == Some(e));
            if !repeated {
                tracing::warn!(metric = %metric.name, error = %e, "custom metric failed");
            }
        }
        *cache = Some(Cached {
            finished: Instant::now(),
            result: result.clone(),
        });
        result
    }
}

/// Runs `futures` at once and returns their outputs in order.
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::snapshot::tests::snapshot;
    use crate::util::scratch::TempDir;
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers RPCs from `tests/fixtures/<scenario>/<topic>.json`, counting calls; topic `slow`
    /// answers `{}` after 300 ms, and the most `slow` calls at once are counted.
    struct Replay {
        dir: PathBuf,
        calls: AtomicUsize,
        slow_now: AtomicUsize,
        slow_most: AtomicUsize,
    }

    impl Replay {
        fn new(scenario: &str) -> Arc<Replay> {
            Arc::new(Replay {
                dir: Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures")
                    .join(scenario),
                calls: AtomicUsize::new(0),
                slow_now: AtomicUsize::new(0),
                slow_most: AtomicUsize::new(0),
            })
        }
    }

    impl Host for Replay {
        fn rpc(&self, topic: &str, _payload: Option<&str>) -> Result<String, String> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if topic == "slow" {
                let now = self.slow_now.fetch_add(1, Ordering::SeqCst) + 1;
                self.slow_most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(300));
                self.slow_now.fetch_sub(1, Ordering::SeqCst);
                return Ok("{}".into());
            }
            std::fs::read_to_string(self.dir.join(format!("{topic}.json")))
                .map_err(|_| "Function not implemented".into())
        }
    }

    fn example() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("example/custom-metrics.rhai")
    }

    /// The example file with no cache, so that each scenario is evaluated afresh.
    fn load_example() -> Custom {
        let s = Settings {
            max_age: Duration::ZERO,
            ..Settings::default()
        };
        Custom::load(&[example()], BUILTIN, s).unwrap()
    }

    const BUILTIN: &[&str] = &["node_up_count", "job_queue_state_run_count"];

    /// `<test>.rhai` holding `text`, in `dir`.
    fn script(dir: &TempDir, test: &str, text: &str) -> PathBuf {
        dir.write(&format!("{test}.rhai"), text)
    }

    /// Topics of the test host, allowed as `--custom-metric-allow-rpc` would.
    fn test_topics() -> Vec<String> {
        vec!["slow".into(), "no.such.topic".into()]
    }

    fn settings() -> Settings {
        Settings {
            timeout: Duration::from_millis(200),
            max_age: Duration::ZERO,
            allow_rpc: test_topics(),
            ..Settings::default()
        }
    }

    /// `text` loaded from a file that is gone once it is loaded.
    fn load(test: &str, text: &str) -> Custom {
        let dir = TempDir::new("custom");
        Custom::load(&[script(&dir, test, text)], BUILTIN, settings()).unwrap()
    }

    fn load_err(test: &str, text: &str) -> String {
        let dir = TempDir::new("custom");
        let e = Custom::load(&[script(&dir, test, text)], BUILTIN, settings())
            .err()
            .unwrap();
        format!("{e:#}")
    }

    async fn value(c: &Custom, name: &str, scenario: &str) -> Result<f64, CustomError> {
        c.value(name, Arc::new(snapshot(scenario)), Replay::new(scenario))
            .await
    }

    #[tokio::test]
    async fn example_metrics_match_the_fixtures() {
        let c = load_example();
        assert_eq!(
            c.names(),
            [
                "batch_pending_jobs",
                "cores_allocated_fraction",
                "my_custom_metric_name",
                "offline_nodes_count"
            ]
        );
        // Free cores, allocated/up cores and offline ranks: tests/fixtures/README.md.
        let want = [
            ("idle", 8.0, 0.0, 0.0),
            ("busy", 5.0, 3.0 / 8.0, 0.0),
            ("drained", 5.0, 1.0 / 6.0, 0.0),
            ("gpus-queues", 5.0, 11.0 / 16.0, 0.0),
            ("many-jobs", 0.0, 1.0, 0.0),
            ("elastic", 6.0, 10.0 / 16.0, 4.0),
        ];
        for (scenario, free, fraction, offline) in want {
            let got = (
                value(&c, "my_custom_metric_name", scenario).await,
                value(&c, "cores_allocated_fraction", scenario).await,
                value(&c, "offline_nodes_count", scenario).await,
            );
            assert_eq!(got, (Ok(free), Ok(fraction), Ok(offline)), "{scenario}");
        }
        assert_eq!(
            value(&c, "batch_pending_jobs", "gpus-queues").await,
            Ok(0.0)
        );
        assert_eq!(
            c.help("my_custom_metric_name").as_deref(),
            Some("Free cores on up nodes (the Python tool's example metric).")
        );
        assert_eq!(
            c.help("batch_pending_jobs").as_deref(),
            Some("Jobs waiting to run (depend, priority or sched) in queue batch.")
        );
        assert_eq!(
            c.help("offline_ranks"),
            None,
            "private helpers are not metrics"
        );
    }

    #[test]
    fn custom_is_shared_across_threads_and_its_futures_are_send() {
        fn shared<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: T) {}
        let c = load_example();
        shared(&c);
        send(c.value("x", Arc::new(snapshot("idle")), Replay::new("idle")));
    }

    #[tokio::test]
    async fn batch_queue_missing_names_the_known_queues() {
        let c = load_example();
        let e = value(&c, "batch_pending_jobs", "busy").await.unwrap_err();
        let CustomError::Script { name, message } = e else {
            panic!("{e:?}")
        };
        assert_eq!(name, "batch_pending_jobs");
        assert!(message.contains("no named queues"), "{message}");
        let text = std::fs::read_to_string(example()).unwrap();
        let line = 1 + text
            .lines()
            .position(|l| l.contains("queue(\"batch\")"))
            .unwrap();
        assert!(
            message.contains(&format!("custom-metrics.rhai:{line}:")),
            "{message}"
        );
    }

    #[tokio::test]
    async fn no_cores_up_is_a_fraction_of_zero() {
        let c = load_example();
        let mut s = snapshot("idle");
        s.nodes.cores_up = 0;
        let v = c
            .value("cores_allocated_fraction", Arc::new(s), Replay::new("idle"))
            .await;
        assert_eq!(v, Ok(0.0));
    }

    #[tokio::test]
    async fn handle_offers_state_queues_and_helpers() {
        let c = load(
            "handle",
            r#"
            fn debug_sched(flux) { flux.queue("debug").sched }
            fn queue_count(flux) { flux.queues.len() }
            fn gpus_free(flux) { flux.nodes.gpus_free + flux.free.gpus * 100 }
            fn pending(flux) { flux.jobs.pending }
            fn up_ranks(flux) { idset_count(flux.up.ranks) }
            fn hosts(flux) { hostlist_count("node[0-3],login") }
            fn with_payload(flux) { flux.rpc("job-list.job-stats", #{ "queue": "debug" }).job_states.run }
            fn gpu_queue(flux) { flux.queue("gpu").run }
            fn typo(flux) { flux.nodes.fre }
            "#,
        );
        let s = "gpus-queues";
        assert_eq!(value(&c, "debug_sched", s).await, Ok(2.0));
        assert_eq!(value(&c, "queue_count", s).await, Ok(2.0));
        assert_eq!(value(&c, "gpus_free", s).await, Ok(606.0));
        assert_eq!(value(&c, "pending", s).await, Ok(2.0));
        assert_eq!(value(&c, "up_ranks", s).await, Ok(4.0));
        assert_eq!(value(&c, "hosts", s).await, Ok(5.0));
        assert_eq!(value(&c, "with_payload", s).await, Ok(3.0));
        let e = value(&c, "gpu_queue", s).await.unwrap_err().to_string();
        assert!(e.contains("its queues are: batch, debug"), "{e}");
        let e = value(&c, "typo", s).await.unwrap_err().to_string();
        assert!(e.contains("Property not found: fre"), "{e}");
    }

    #[test]
    fn parse_error_names_file_line_and_column() {
        let e = load_err(
            "syntax",
            "fn ok(flux) { 1 }\nfn broken(flux) {\n  let x = ;\n}\n",
        );
        assert!(e.contains("syntax.rhai:3:11: syntax error"), "{e}");
    }

    #[test]
    fn misspelt_variable_fails_at_load() {
        let e = load_err("strict", "fn a(flux) {\n  flx.nodes.up\n}\n");
        assert!(e.contains("strict.rhai:2:3:"), "{e}");
        assert!(e.contains("flx"), "{e}");
    }

    #[test]
    fn builtin_name_is_a_load_error_naming_file_and_function() {
        let e = load_err("builtin", "fn node_up_count(flux) { 1 }");
        assert!(e.contains("builtin.rhai: function node_up_count"), "{e}");
        assert!(e.contains("built-in"), "{e}");
    }

    #[test]
    fn invalid_name_is_a_load_error() {
        let e = load_err("upper", "fn Bad_Name(flux) { 1 }");
        assert!(e.contains("upper.rhai: function Bad_Name"), "{e}");
        assert!(e.contains("not a valid metric name"), "{e}");
    }

    #[test]
    fn clash_between_files_names_both() {
        let dir = TempDir::new("custom");
        let a = script(&dir, "clash-a", "fn same(flux) { 1 }");
        let b = script(&dir, "clash-b", "fn same(flux) { 2 }");
        let e = Custom::load(&[a, b], BUILTIN, settings()).err().unwrap();
        let e = format!("{e:#}");
        assert!(e.contains("clash-b.rhai: function same"), "{e}");
        assert!(e.contains("clash-a.rhai"), "{e}");
    }

    #[test]
    fn private_and_other_arity_functions_are_helpers() {
        let dir = TempDir::new("custom");
        let path = script(
            &dir,
            "helpers",
            "fn metric(flux) { helper(1, 2) + other(3) + Two_Params(1, 2) }\n\
             fn helper(a, b) { a + b }\n\
             fn Two_Params(a, b) { a * b }\n\
             fn none() { 0 }\n\
             private fn other(a) { a }\n\
             private fn Private_Upper(a) { a }\n",
        );
        let c = Custom::load(std::slice::from_ref(&path), BUILTIN, settings()).unwrap();
        assert_eq!(c.names(), ["metric"]);
        let help = format!("custom metric from {}", path.display());
        assert_eq!(c.help("metric"), Some(help));
    }

    #[tokio::test]
    async fn run_time_error_carries_the_scripts_message() {
        let c = load(
            "runtime",
            "fn thrower(flux) {\n  inner(1)\n}\nfn inner(x, y) { 0 }\nfn inner(x) {\n  throw \"no luck\";\n}\n\
             fn bad_rpc(flux) { flux.rpc(\"no.such.topic\") }\n\
             fn bad_idset(flux) { idset_count(\"3-1\") }\n\
             fn no_sleep(flux) { sleep(10); 1 }\n\
             fn no_sleep_by_pointer(flux) { Fn(\"sleep\").call(10.5); 1 }\n",
        );
        let e = value(&c, "thrower", "busy").await.unwrap_err();
        let CustomError::Script { message, .. } = &e else {
            panic!("{e:?}")
        };
        assert!(message.starts_with("no luck at "), "{message}");
        assert!(message.contains("runtime.rhai:6:3"), "{message}");
        assert!(message.contains("in call to inner at "), "{message}");
        assert!(message.contains("runtime.rhai:2:3"), "{message}");
        let e = value(&c, "bad_rpc", "busy").await.unwrap_err().to_string();
        assert!(
            e.contains("flux RPC no.such.topic failed: Function not implemented"),
            "{e}"
        );
        let e = value(&c, "bad_idset", "busy")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("range end 1 is before start 3"), "{e}");
        for name in ["no_sleep", "no_sleep_by_pointer"] {
            let e = value(&c, name, "busy").await.unwrap_err().to_string();
            assert!(e.contains("sleep is not available"), "{e}");
        }
        assert_eq!(
            value(&c, "nothing", "busy").await,
            Err(CustomError::Unknown("nothing".into()))
        );
    }

    #[test]
    fn eval_is_not_available() {
        let e = load_err("eval", "fn a(flux) { eval(\"1\") }");
        assert!(e.contains("eval.rhai:1:"), "{e}");
    }

    #[tokio::test]
    async fn non_numbers_are_refused() {
        let c = load(
            "nan",
            "fn text(flux) { \"12\" }\nfn unit(flux) { }\nfn nan(flux) { 0.0 / 0.0 }\n\
             fn infinite(flux) { 1.0 / 0.0 }\nfn a_map(flux) { flux.nodes }\nfn yes(flux) { true }\n",
        );
        let got = |name: &'static str| {
            let c = &c;
            async move {
                match value(c, name, "busy").await {
                    Err(CustomError::NotANumber { got, .. }) => got,
                    other => panic!("{name}: {other:?}"),
                }
            }
        };
        assert_eq!(got("text").await, "string \"12\"");
        assert_eq!(got("unit").await, "() (nothing)");
        assert_eq!(got("nan").await, "NaN");
        assert_eq!(got("infinite").await, "inf");
        assert!(got("a_map").await.starts_with("map #{"));
        assert_eq!(got("yes").await, "bool true");
    }

    #[tokio::test]
    async fn endless_loop_is_cut_off_by_the_timeout() {
        let c = load("loop", "fn spin(flux) {\n  loop {}\n}\n");
        let e = value(&c, "spin", "busy").await.unwrap_err();
        assert_eq!(
            e,
            CustomError::Limit {
                name: "spin".into(),
                message: "ran longer than 200ms (--custom-metric-timeout)".into()
            }
        );
    }

    #[tokio::test]
    async fn rpc_beyond_the_deadline_is_a_limit() {
        let c = load("slow-rpc", "fn slow_rpc(flux) { flux.rpc(\"slow\"); 1 }");
        let e = value(&c, "slow_rpc", "busy").await.unwrap_err();
        assert!(
            matches!(&e, CustomError::Limit { message, .. } if message.starts_with("ran longer than 200ms")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn operation_limit_and_recursion_are_limits() {
        let dir = TempDir::new("custom");
        let files = [script(
            &dir,
            "ops",
            "fn busy(flux) { let i = 0; while true { i += 1; } }\nfn deep(flux) { recurse(1) }\nfn recurse(x, y) { 0 }\nprivate fn recurse(x) { recurse(x + 1) }\n",
        )];
        let s = Settings {
            max_operations: 10_000,
            timeout: Duration::from_secs(10),
            ..settings()
        };
        let c = Custom::load(&files, BUILTIN, s).unwrap();
        let e = value(&c, "busy", "busy").await.unwrap_err();
        assert!(
            matches!(&e, CustomError::Limit { message, .. } if message.starts_with("ran more than 10000 operations")),
            "{e:?}"
        );
        let e = value(&c, "deep", "busy").await.unwrap_err();
        assert!(
            matches!(&e, CustomError::Limit { message, .. } if message.starts_with("calls nested deeper than 64")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn huge_allocations_are_limits() {
        let c = load(
            "huge",
            "fn doubling(flux) { let s = \"x\"; loop { s += s; } }\n\
             fn padded(flux) { let s = \"\"; s.pad(1000000000, \"x\"); s.len() }\n\
             fn array(flux) { let a = [1]; loop { a += a; } }\n\
             fn nested(flux) { let a = [1]; loop { a = [a, a]; } }\n\
             fn blobbed(flux) { blob(1000000000).len() }\n\
             fn mapped(flux) { let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; } }\n",
        );
        for name in ["doubling", "padded", "array", "nested", "blobbed", "mapped"] {
            let e = value(&c, name, "busy").await.unwrap_err();
            assert!(matches!(e, CustomError::Limit { .. }), "{name}: {e:?}");
        }
    }

    #[tokio::test]
    async fn reload_picks_up_edits_and_keeps_the_last_good_version() {
        let dir = TempDir::new("custom");
        let path = script(
            &dir,
            "reload",
            "/// One.\nfn answer(flux) { 1 }\nfn gone(flux) { 0 }\n",
        );
        let c = Custom::load(std::slice::from_ref(&path), BUILTIN, settings()).unwrap();
        assert_eq!(value(&c, "answer", "busy").await, Ok(1.0));

        std::fs::write(
            &path,
            "/// Two.\nfn answer(flux) { 2 }\nfn added(flux) { 3 }\n",
        )
        .unwrap();
        c.reload().unwrap();
        assert_eq!(value(&c, "answer", "busy").await, Ok(2.0));
        assert_eq!(c.names(), ["added", "answer"]);
        assert_eq!(c.help("answer").as_deref(), Some("Two."));

        std::fs::write(&path, "fn answer(flux) { 3 ").unwrap();
        let e = format!("{:#}", c.reload().unwrap_err());
        assert!(e.contains("reload.rhai:1:"), "{e}");
        assert_eq!(value(&c, "answer", "busy").await, Ok(2.0));
        assert_eq!(c.names(), ["added", "answer"]);

        std::fs::write(&path, "fn node_up_count(flux) { 4 }").unwrap();
        let e = format!("{:#}", c.reload().unwrap_err());
        assert!(e.contains("function node_up_count"), "{e}");
        assert_eq!(value(&c, "answer", "busy").await, Ok(2.0));
    }

    #[tokio::test]
    async fn reload_refuses_a_name_taken_by_another_file() {
        let dir = TempDir::new("custom");
        let a = script(&dir, "reclash-a", "fn a_metric(flux) { 1 }");
        let b = script(&dir, "reclash-b", "fn b_metric(flux) { 2 }");
        let c = Custom::load(&[a, b.clone()], BUILTIN, settings()).unwrap();
        std::fs::write(&b, "fn a_metric(flux) { 3 }").unwrap();
        let e = format!("{:#}", c.reload().unwrap_err());
        assert!(e.contains("reclash-b.rhai: function a_metric"), "{e}");
        assert_eq!(c.names(), ["a_metric", "b_metric"]);
        assert_eq!(value(&c, "a_metric", "busy").await, Ok(1.0));
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_evaluation() {
        let dir = TempDir::new("custom");
        let text = "fn slow(flux) { flux.rpc(\"slow\"); 7 }";
        let s = Settings {
            max_age: Duration::ZERO,
            allow_rpc: test_topics(),
            ..Settings::default()
        };
        let c = Arc::new(Custom::load(&[script(&dir, "shared", text)], BUILTIN, s).unwrap());
        let host = Replay::new("busy");
        let snap = Arc::new(snapshot("busy"));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (c, host, snap) = (Arc::clone(&c), Arc::clone(&host), Arc::clone(&snap));
                tokio::spawn(async move { c.value("slow", snap, host).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(7.0));
        }
        assert_eq!(host.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_metrics_of_one_answer_are_evaluated_at_once() {
        let dir = TempDir::new("custom");
        let text: String = (0..5)
            .map(|i| format!("fn slow_{i}(flux) {{ flux.rpc(\"slow\"); {i} }}\n"))
            .collect();
        let s = Settings {
            timeout: Duration::from_secs(10),
            ..settings()
        };
        let c = Custom::load(&[script(&dir, "at-once", &text)], BUILTIN, s).unwrap();
        let host = Replay::new("busy");
        let h: Arc<dyn Host> = host.clone();
        let got = c.values(&Arc::new(snapshot("busy")), &h, |_| true).await;
        let values: Vec<_> = got.iter().map(|e| e.result.clone()).collect();
        assert_eq!(values, [Ok(0.0), Ok(1.0), Ok(2.0), Ok(3.0), Ok(4.0)]);
        assert_eq!(
            host.slow_most.load(Ordering::SeqCst),
            5,
            "evaluated one after another"
        );
    }

    #[tokio::test]
    async fn scripts_may_send_only_read_only_rpcs_unless_allowed() {
        let dir = TempDir::new("custom");
        let text = "fn cancel(flux) { flux.rpc(\"job-manager.cancel\", #{ id: 1 }); 1 }\n\
                    fn drain(flux) { flux.rpc(\"resource.drain\"); 1 }\n\
                    fn status(flux) { flux.rpc(\"resource.status\").R.execution.R_lite.len() }\n";
        let c = Custom::load(&[script(&dir, "allow", text)], BUILTIN, settings()).unwrap();
        for name in ["cancel", "drain"] {
            let e = value(&c, name, "busy").await.unwrap_err().to_string();
            assert!(
                e.contains("is not allowed: custom metrics may send only read-only RPCs"),
                "{e}"
            );
            assert!(e.contains("--custom-metric-allow-rpc "), "{e}");
        }
        assert!(value(&c, "status", "busy").await.is_ok());
        // Allowed by name, or by service; the test host then answers (here: it has no such file).
        for allowed in ["resource.drain", "resource.*"] {
            let s = Settings {
                allow_rpc: vec![allowed.into()],
                ..settings()
            };
            let c = Custom::load(&[script(&dir, "allow", text)], BUILTIN, s).unwrap();
            let e = value(&c, "drain", "busy").await.unwrap_err().to_string();
            assert!(
                e.contains("flux RPC resource.drain failed"),
                "{allowed}: {e}"
            );
        }
        assert!(handle::rpc_allowed("job-list.list", &[]));
        assert!(!handle::rpc_allowed("job-list.job-state-pause", &[]));
        assert!(!handle::rpc_allowed(
            "kvs.lookup",
            &["kvs".into(), "kvs*".into()]
        ));
    }

    #[tokio::test]
    async fn an_evaluation_holding_more_than_its_memory_budget_is_stopped() {
        let dir = TempDir::new("custom");
        // 100,000 keys of 4 KiB: a 400 MB map, although no one value breaks a size limit.
        let text = "fn hungry(flux) { let m = #{}; let k = \"\"; k.pad(4096, \"k\"); \
                    for i in 0..100000 { m[`${k}${i}`] = i; } m.len() }\n\
                    fn deep_strings(flux) { hold(0) }\n\
                    private fn hold(n) { let x = \"\"; x.pad(1000000, \"x\"); if n < 40 { hold(n + 1) } else { x.len() } }\n\
                    fn modest(flux) { let m = #{}; for i in 0..1000 { m[`k${i}`] = i; } m.len() }\n";
        let s = Settings {
            max_memory: 8 << 20,
            timeout: Duration::from_secs(20),
            ..settings()
        };
        let c = Custom::load(&[script(&dir, "hungry", text)], BUILTIN, s).unwrap();
        // Also 40 nested calls, each holding a string of 1 MB: each value within the limits.
        for name in ["hungry", "deep_strings"] {
            let e = value(&c, name, "busy").await.unwrap_err();
            assert!(
                matches!(&e, CustomError::Limit { message, .. }
                    if message.starts_with("held more than 8MiB of memory (--custom-metric-max-memory)")),
                "{name}: {e:?}"
            );
        }
        assert_eq!(value(&c, "modest", "busy").await, Ok(1000.0));
    }

    #[tokio::test]
    async fn the_default_budget_holds_a_big_job_list_answer() {
        let dir = TempDir::new("custom");
        let text = "fn jobs(flux) { flux.rpc(\"job-list.list\").jobs.len() }";
        let c = Custom::load(&[script(&dir, "big-answer", text)], BUILTIN, settings()).unwrap();
        // many-jobs: 3500 pending jobs, a 393 kB answer.
        assert_eq!(value(&c, "jobs", "many-jobs").await, Ok(3500.0));
        let s = Settings {
            max_memory: 1 << 20,
            ..settings()
        };
        let c = Custom::load(&[script(&dir, "big-answer", text)], BUILTIN, s).unwrap();
        let e = value(&c, "jobs", "many-jobs")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("held more than 1MiB of memory"), "{e}");
    }

    #[tokio::test]
    async fn a_run_stopped_by_a_limit_is_not_tried_again_for_the_backoff() {
        let dir = TempDir::new("custom");
        let text = "fn spin(flux) { flux.rpc(\"resource.status\"); loop {} }\nfn fine(flux) { flux.rpc(\"resource.status\"); 1 }\n";
        let s = Settings {
            max_operations: 10_000,
            ..settings()
        };
        let c = Custom::load(&[script(&dir, "backoff", text)], BUILTIN, s).unwrap();
        let host = Replay::new("busy");
        let snap = Arc::new(snapshot("busy"));
        for _ in 0..3 {
            let h: Arc<dyn Host> = host.clone();
            let e = c.value("spin", Arc::clone(&snap), h).await.unwrap_err();
            assert!(matches!(e, CustomError::Limit { .. }), "{e:?}");
        }
        assert_eq!(
            host.calls.load(Ordering::SeqCst),
            1,
            "the stopped script ran again"
        );
        // With --max-age 0 a metric that succeeds runs every time.
        for _ in 0..3 {
            let h: Arc<dyn Host> = host.clone();
            assert_eq!(c.value("fine", Arc::clone(&snap), h).await, Ok(1.0));
        }
        assert_eq!(host.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn results_are_cached_for_max_age() {
        let dir = TempDir::new("custom");
        let text = "fn counted(flux) { flux.rpc(\"resource.status\"); 1 }";
        let snap = Arc::new(snapshot("busy"));
        for (max_age, want_calls) in [(Duration::from_secs(3600), 1), (Duration::ZERO, 3)] {
            let s = Settings {
                max_age,
                ..settings()
            };
            let c = Custom::load(&[script(&dir, "cached", text)], BUILTIN, s).unwrap();
            let host = Replay::new("busy");
            for _ in 0..3 {
                let h: Arc<dyn Host> = host.clone();
                assert_eq!(c.value("counted", Arc::clone(&snap), h).await, Ok(1.0));
            }
            assert_eq!(host.calls.load(Ordering::SeqCst), want_calls, "{max_age:?}");
        }
    }

    #[tokio::test]
    async fn watch_reloads_on_change() {
        let dir = TempDir::new("custom");
        let path = script(&dir, "watched", "fn watched(flux) { 1 }");
        let c = Arc::new(Custom::load(std::slice::from_ref(&path), BUILTIN, settings()).unwrap());
        c.watch();
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::write(&path, "fn watched(flux) { 22 }\nfn also(flux) { 0 }").unwrap();
        let reloaded = async {
            while c.names().len() < 2 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), reloaded)
            .await
            .expect("the edit was not picked up within 10 s");
        assert_eq!(value(&c, "watched", "busy").await, Ok(22.0));
    }
}

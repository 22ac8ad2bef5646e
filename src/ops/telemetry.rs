//! The server's own health in numbers: request counts by route and code, latency histograms,
//! and their Prometheus text rendering together with the Flux metrics (`GET /metrics`).
//!
//! Lock-free: one atomic per (route, code class) and per histogram bucket, so counting costs a few
//! nanoseconds on the request path. Routes are a fixed set, never raw paths, so the label
//! cardinality is bounded whatever clients send.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::source::broker::Broker;
use crate::source::catalogue::CATALOGUE;
use crate::source::snapshot::Snapshot;

/// The kinds of request counted separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/apis`, group and resource lists, `/version`, `/openapi/*`.
    Discovery,
    /// Custom metric values.
    Custom,
    /// External metric values.
    External,
    /// `/healthz`, `/livez`, `/readyz`.
    Health,
    /// `/metrics` and `/api/v1/*`.
    Telemetry,
    /// Anything else (404s).
    Other,
}

const ROUTES: [Route; 6] = [
    Route::Discovery,
    Route::Custom,
    Route::External,
    Route::Health,
    Route::Telemetry,
    Route::Other,
];

impl Route {
    /// Classifies a request path (cheaply: prefix checks only).
    pub fn of(path: &str) -> Route {
        if path.starts_with("/apis/custom.metrics.k8s.io/") && path.matches('/').count() > 4 {
            Route::Custom
        } else if path.starts_with("/apis/external.metrics.k8s.io/")
            && path.matches('/').count() > 4
        {
            Route::External
        } else if path.starts_with("/apis") || path == "/version" || path.starts_with("/openapi") {
            Route::Discovery
        } else if matches!(path, "/healthz" | "/livez" | "/readyz") {
            Route::Health
        } else if path == "/metrics" || path.starts_with("/api/v1/") {
            Route::Telemetry
        } else {
            Route::Other
        }
    }

    fn name(self) -> &'static str {
        match self {
            Route::Discovery => "discovery",
            Route::Custom => "custom",
            Route::External => "external",
            Route::Health => "health",
            Route::Telemetry => "telemetry",
            Route::Other => "other",
        }
    }

    fn index(self) -> usize {
        ROUTES
            .iter()
            .position(|r| *r == self)
            .unwrap_or(ROUTES.len() - 1)
    }
}

/// HTTP codes counted by name; any other code is counted under its class (`2xx`...).
const CODES: [u16; 14] = [
    200, 304, 400, 401, 403, 404, 405, 413, 414, 431, 500, 502, 503, 504,
];
const CODE_SLOTS: usize = CODES.len() + 5; // + 1xx..5xx classes

fn code_slot(code: u16) -> usize {
    CODES
        .iter()
        .position(|c| *c == code)
        .unwrap_or_else(|| CODES.len() + usize::from((code / 100).clamp(1, 5) - 1))
}

fn slot_label(slot: usize) -> String {
    match CODES.get(slot) {
        Some(c) => c.to_string(),
        None => format!("{}xx", slot - CODES.len() + 1),
    }
}

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// Counters of the HTTP side.
pub struct Telemetry {
    started: Instant,
    requests: [[AtomicU64; CODE_SLOTS]; ROUTES.len()],
    latency: [Histogram; ROUTES.len()],
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            started: Instant::now(),
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            latency: std::array::from_fn(|_| Histogram::default()),
        }
    }
}

impl Telemetry {
    /// Counts one answered request.
    pub fn record(&self, route: Route, code: u16, took: Duration) {
        let r = route.index();
        self.requests[r][code_slot(code)].fetch_add(1, Ordering::Relaxed);
        let h = &self.latency[r];
        let secs = took.as_secs_f64();
        if let Some(b) = BUCKETS.iter().position(|le| secs <= *le) {
            h.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        h.sum_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The Prometheus text exposition: Flux metrics from `snapshot` (when there is one) and the
    /// server's own health.
    pub fn render(&self, broker: &Broker, snapshot: Option<&Snapshot>) -> String {
        let mut out = String::with_capacity(8 * 1024);
        if let Some(s) = snapshot {
            render_flux(&mut out, s);
        }
        self.render_server(&mut out, broker, snapshot);
        out
    }

    fn render_server(&self, out: &mut String, broker: &Broker, snapshot: Option<&Snapshot>) {
        let p = "flux_metrics_api";
        family(
            out,
            &format!("{p}_build_info"),
            "gauge",
            "Version of this server.",
        );
        let _ = writeln!(
            out,
            "{p}_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        family(
            out,
            &format!("{p}_uptime_seconds"),
            "gauge",
            "Seconds since the server started.",
        );
        let _ = writeln!(
            out,
            "{p}_uptime_seconds {:.3}",
            self.started.elapsed().as_secs_f64()
        );

        family(
            out,
            &format!("{p}_requests_total"),
            "counter",
            "HTTP requests answered, by route and code.",
        );
        for route in ROUTES {
            for (slot, n) in self.requests[route.index()].iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "{p}_requests_total{{route=\"{}\",code=\"{}\"}} {n}",
                        route.name(),
                        slot_label(slot)
                    );
                }
            }
        }
        let name = format!("{p}_request_duration_seconds");
        family(
            out,
            &name,
            "histogram",
            "Time to answer HTTP requests, by route.",
        );
        for route in ROUTES {
            let h = &self.latency[route.index()];
            let count = h.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let r = route.name();
            let mut cumulative = 0;
            for (le, b) in BUCKETS.iter().zip(&h.buckets) {
                cumulative += b.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{route=\"{r}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(out, "{name}_bucket{{route=\"{r}\",le=\"+Inf\"}} {count}");
            let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "{name}_sum{{route=\"{r}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{route=\"{r}\"}} {count}");
        }

        let stats = broker.stats();
        family(
            out,
            &format!("{p}_broker_rounds_total"),
            "counter",
            "Rounds of broker RPCs started.",
        );
        let _ = writeln!(
            out,
            "{p}_broker_rounds_total {}",
            stats.rounds.load(Ordering::Relaxed)
        );
        family(
            out,
            &format!("{p}_broker_errors_total"),
            "counter",
            "Broker rounds or connection attempts that failed.",
        );
        let _ = writeln!(
            out,
            "{p}_broker_errors_total {}",
            stats.failures.load(Ordering::Relaxed)
        );
        family(
            out,
            &format!("{p}_broker_round_duration_seconds"),
            "gauge",
            "Duration of the last successful round of broker RPCs.",
        );
        let last = stats.last_round_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{p}_broker_round_duration_seconds {last}");
        family(
            out,
            &format!("{p}_broker_up"),
            "gauge",
            "1 when the last broker round succeeded, else 0.",
        );
        let _ = writeln!(
            out,
            "{p}_broker_up {}",
            u8::from(broker.last_error().is_none() && snapshot.is_some())
        );
        if let Some(s) = broker.latest() {
            family(
                out,
                &format!("{p}_broker_answer_age_seconds"),
                "gauge",
                "Age of the newest broker answer.",
            );
            let age = (chrono::Utc::now() - s.taken_at).num_milliseconds().max(0) as f64 / 1e3;
            let _ = writeln!(out, "{p}_broker_answer_age_seconds {age}");
        }
        family(
            out,
            &format!("{p}_replay"),
            "gauge",
            "1 when answers are recorded (--replay), not live.",
        );
        let _ = writeln!(out, "{p}_replay {}", u8::from(broker.is_replay()));
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Every catalogue metric as a gauge `flux_<name>`; job metrics also once per queue.
fn render_flux(out: &mut String, s: &Snapshot) {
    for m in CATALOGUE {
        let name = format!("flux_{}", m.name);
        family(out, &name, "gauge", m.help);
        if let Ok(v) = m.value(s, None) {
            let _ = writeln!(out, "{name} {v}");
        }
        if m.has_queue_label() {
            for q in s.queues.keys() {
                if let Ok(v) = m.value(s, Some(q)) {
                    let _ = writeln!(out, "{name}{{queue=\"{}\"}} {v}", escape_label(q));
                }
            }
        }
    }
}

/// Escapes a Prometheus label value.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::snapshot::tests::snapshot;

    #[test]
    fn routes_are_classified() {
        assert_eq!(
            Route::of("/apis/custom.metrics.k8s.io/v1beta2/namespaces/n/metrics/m"),
            Route::Custom
        );
        assert_eq!(
            Route::of("/apis/custom.metrics.k8s.io/v1beta2"),
            Route::Discovery
        );
        assert_eq!(
            Route::of("/apis/external.metrics.k8s.io/v1beta1/namespaces/n/m"),
            Route::External
        );
        assert_eq!(Route::of("/apis"), Route::Discovery);
        assert_eq!(Route::of("/readyz"), Route::Health);
        assert_eq!(Route::of("/metrics"), Route::Telemetry);
        assert_eq!(Route::of("/x"), Route::Other);
    }

    #[test]
    fn flux_gauges_have_help_and_queue_series() {
        let mut out = String::new();
        render_flux(&mut out, &snapshot("gpus-queues"));
        assert!(out.contains("# HELP flux_node_up_count Nodes up"));
        assert!(out.contains("# TYPE flux_node_up_count gauge\nflux_node_up_count 4\n"));
        assert!(out.contains("flux_job_queue_state_sched_count 2\n"));
        assert!(out.contains("flux_job_queue_state_sched_count{queue=\"debug\"} 2\n"));
        assert!(!out.contains("flux_node_up_count{queue"));
    }

    #[test]
    fn codes_and_histogram_are_counted() {
        let t = Telemetry::default();
        t.record(Route::Custom, 200, Duration::from_micros(300));
        t.record(Route::Custom, 200, Duration::from_millis(3));
        t.record(Route::Custom, 418, Duration::from_millis(3));
        let mut out = String::new();
        let broker = crate::source::broker::Broker::start(crate::source::broker::Settings {
            source: crate::source::broker::Source::Replay("/nonexistent".into()),
            max_age: Duration::ZERO,
            timeout: Duration::from_secs(1),
        })
        .unwrap();
        t.render_server(&mut out, &broker, None);
        broker.stop();
        assert!(
            out.contains("flux_metrics_api_requests_total{route=\"custom\",code=\"200\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("flux_metrics_api_requests_total{route=\"custom\",code=\"4xx\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("flux_metrics_api_request_duration_seconds_bucket{route=\"custom\",le=\"0.0005\"} 1\n"), "{out}");
        assert!(
            out.contains(
                "flux_metrics_api_request_duration_seconds_bucket{route=\"custom\",le=\"+Inf\"} 3\n"
            ),
            "{out}"
        );
        assert!(out.contains("flux_metrics_api_broker_up 0\n"), "{out}");
        assert!(out.contains("flux_metrics_api_replay 1\n"), "{out}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

//! The server's own health in numbers: request counts by route and code, latency histograms,
//! and their Prometheus text rendering together with the Flux metrics (`GET /metrics`).
//!
//! Lock-free: one atomic per (route, code class) and per histogram bucket, so counting costs a few
//! nanoseconds on the request path. Routes are a fixed set, never raw paths, so the label
//! cardinality is bounded whatever clients send.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::prometheus::{Exposition, Kind};
use crate::source::broker::Broker;

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
    /// The route's label value.
    pub fn name(self) -> &'static str {
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

    /// The server's own health as Prometheus families (`flux_metrics_api_*`): build, uptime,
    /// requests by route and code, latency histograms, and the broker thread's state.
    pub fn write(&self, out: &mut Exposition, broker: &Broker) {
        let p = "flux_metrics_api";
        let name = format!("{p}_build_info");
        out.family(&name, Kind::Gauge, "Version of this server.");
        let v = crate::util::version::VERSION;
        out.sample(
            &name,
            &[("version", v), ("revision", crate::util::version::COMMIT)],
            1,
        );
        let name = format!("{p}_uptime_seconds");
        out.family(&name, Kind::Gauge, "Seconds since the server started.");
        out.sample(
            &name,
            &[],
            format_args!("{:.3}", self.started.elapsed().as_secs_f64()),
        );

        let name = format!("{p}_requests_total");
        out.family(
            &name,
            Kind::Counter,
            "HTTP requests answered, by route and code.",
        );
        for route in ROUTES {
            for (slot, n) in self.requests[route.index()].iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let code = slot_label(slot);
                    out.sample(&name, &[("route", route.name()), ("code", &code)], n);
                }
            }
        }
        let name = format!("{p}_request_duration_seconds");
        out.family(
            &name,
            Kind::Histogram,
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
                out.sample(
                    &format!("{name}_bucket"),
                    &[("route", r), ("le", &le.to_string())],
                    cumulative,
                );
            }
            out.sample(
                &format!("{name}_bucket"),
                &[("route", r), ("le", "+Inf")],
                count,
            );
            let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            out.sample(&format!("{name}_sum"), &[("route", r)], sum);
            out.sample(&format!("{name}_count"), &[("route", r)], count);
        }

        let stats = broker.stats();
        let counter = |out: &mut Exposition, name: &str, help: &str, v: &AtomicU64| {
            let name = format!("{p}_{name}");
            out.family(&name, Kind::Counter, help);
            out.sample(&name, &[], v.load(Ordering::Relaxed));
        };
        counter(
            out,
            "broker_rounds_total",
            "Rounds of broker RPCs started.",
            &stats.rounds,
        );
        counter(
            out,
            "broker_errors_total",
            "Broker rounds or connection attempts that failed.",
            &stats.failures,
        );
        counter(
            out,
            "jobspecs_read_total",
            "Jobspecs of waiting jobs read (job-info.lookup) and understood.",
            &stats.jobspecs_read,
        );
        let gauge = |out: &mut Exposition, name: &str, help: &str, v: &dyn std::fmt::Display| {
            let name = format!("{p}_{name}");
            out.family(&name, Kind::Gauge, help);
            out.sample(&name, &[], v);
        };
        let last = stats.last_round_micros.load(Ordering::Relaxed) as f64 / 1e6;
        gauge(
            out,
            "broker_round_duration_seconds",
            "Duration of the last successful round of broker RPCs.",
            &last,
        );
        gauge(
            out,
            "jobs_without_jobspec",
            "Runnable waiting jobs of the last round counted by their job-list entry, their jobspec not read (yet).",
            &stats.jobs_without_jobspec.load(Ordering::Relaxed),
        );
        let latest = broker.latest();
        gauge(
            out,
            "broker_up",
            "1 when the last broker round succeeded, else 0.",
            &u8::from(broker.last_error().is_none() && latest.is_some()),
        );
        if let Some(s) = latest {
            let age = (chrono::Utc::now() - s.taken_at).num_milliseconds().max(0) as f64 / 1e3;
            gauge(
                out,
                "broker_answer_age_seconds",
                "Age of the newest broker answer.",
                &age,
            );
        }
        gauge(
            out,
            "replay",
            "1 when answers are recorded (--replay), not live.",
            &u8::from(broker.is_replay()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::snapshot::tests::snapshot;

    #[test]
    fn flux_gauges_have_help_and_queue_series() {
        let mut out = Exposition::new();
        let table = crate::ops::values::Table::builtin("test", &snapshot("gpus-queues"));
        out.gauges(&table, |_| true);
        let out = out.finish();
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
        let mut out = Exposition::new();
        let broker = crate::source::broker::Broker::start(crate::source::broker::Settings::new(
            crate::source::broker::Source::Replay("/nonexistent".into()),
            Duration::ZERO,
            Duration::from_secs(1),
        ))
        .unwrap();
        t.write(&mut out, &broker);
        broker.stop();
        let out = out.finish();
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
}

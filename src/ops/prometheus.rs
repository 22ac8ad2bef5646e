//! The Prometheus text exposition format (version 0.0.4), written in one place: metric families
//! with their `# HELP` and `# TYPE` lines, samples with escaped label values, and the value
//! table as `flux_<metric>` gauges.

use std::fmt::{Display, Write as _};

use super::values::{Row, Table};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What kind of metric a family is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A count that only grows.
    Counter,
    /// Bucketed observations.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }
}

/// An exposition being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Exposition {
            out: String::with_capacity(8 * 1024),
        }
    }

    /// Starts family `name`.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The rows of `table` that `pick` accepts, as gauges `flux_<metric>`: one family per
    /// metric, one sample per series (`queue` labelled); a custom metric that failed has its
    /// family and no sample (its error is in the log).
    pub fn gauges(&mut self, table: &Table, pick: impl Fn(&Row) -> bool) {
        let mut current: Option<&str> = None;
        for row in table.rows.iter().filter(|r| pick(r)) {
            let name = format!("flux_{}", row.name);
            if current != Some(row.name.as_str()) {
                self.family(&name, Kind::Gauge, &row.help);
                current = Some(&row.name);
            }
            let Ok(value) = row.value else { continue };
            match &row.queue {
                None => self.sample(&name, &[], value),
                Some(q) => self.sample(&name, &[("queue", q)], value),
            }
        }
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::values::Value;

    #[test]
    fn families_samples_and_escapes() {
        let mut e = Exposition::new();
        e.family("x_total", Kind::Counter, "Counts a\\b\nthings.");
        e.sample("x_total", &[("route", "a\"b\\c\nd"), ("code", "200")], 3);
        e.sample("x_total", &[], 1.5);
        assert_eq!(
            e.finish(),
            "# HELP x_total Counts a\\\\b\\nthings.\n# TYPE x_total counter\n\
             x_total{route=\"a\\\"b\\\\c\\nd\",code=\"200\"} 3\nx_total 1.5\n"
        );
    }

    #[test]
    fn gauges_group_series_and_skip_failed_values() {
        let row = |name: &str, queue: Option<&str>, value: Result<Value, String>| Row {
            name: name.into(),
            help: "Help.".into(),
            queue: queue.map(Into::into),
            custom: false,
            value,
        };
        let table = Table {
            source: String::new(),
            taken_at: chrono::Utc::now(),
            rows: vec![
                row("a", None, Ok(Value::Count(2))),
                row("a", Some("batch"), Ok(Value::Count(1))),
                row("b", None, Err("failed".into())),
            ],
            overridden: Vec::new(),
        };
        let mut e = Exposition::new();
        e.gauges(&table, |_| true);
        assert_eq!(
            e.finish(),
            "# HELP flux_a Help.\n# TYPE flux_a gauge\nflux_a 2\nflux_a{queue=\"batch\"} 1\n\
             # HELP flux_b Help.\n# TYPE flux_b gauge\n"
        );
    }
}

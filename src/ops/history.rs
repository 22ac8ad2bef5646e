//! A short history of every metric, kept in memory: one sample every `--history-interval` for
//! `--history-retention`, for windowed values (`window=5m` in a selector), the history API and
//! the dashboard. No database: a ring of fixed size.
//!
//! A sample stores its values as a plain `Vec<f64>` beside a layout (which series each value
//! belongs to) shared by every sample with the same series, so an hour at 15 s costs about
//! 240 × (number of series) × 8 bytes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::rehearsal::Overrides;
use super::values::{SeriesKey, Table};
use crate::custom::{Custom, Host};
use crate::source::broker::Broker;

/// The values of every series at one moment.
#[derive(Clone, Debug)]
struct Sample {
    at: DateTime<Utc>,
    layout: Arc<Vec<SeriesKey>>,
    values: Vec<f64>,
}

/// How points are combined into one per step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// Mean of the samples in the step.
    Avg,
    /// Smallest.
    Min,
    /// Largest.
    Max,
    /// The latest.
    Last,
}

impl Aggregate {
    /// Parses `avg`, `min`, `max` or `last`.
    pub fn parse(s: &str) -> Option<Aggregate> {
        match s {
            "avg" => Some(Aggregate::Avg),
            "min" => Some(Aggregate::Min),
            "max" => Some(Aggregate::Max),
            "last" => Some(Aggregate::Last),
            _ => None,
        }
    }
}

/// Why a history question has no answer.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum HistoryError {
    /// The window reaches further back than the history keeps.
    #[error(
        "window {window}s is longer than the {retention}s of history this server keeps (--history-retention)"
    )]
    TooLong {
        /// Seconds asked.
        window: u64,
        /// Seconds kept.
        retention: u64,
    },
    /// No sample of that series falls in the window yet.
    #[error("no sample of {0} in the window yet: history is sampled every --history-interval")]
    NoSamples(String),
}

/// The ring of samples.
pub struct History {
    interval: Duration,
    retention: Duration,
    capacity: usize,
    ring: Mutex<VecDeque<Sample>>,
}

impl History {
    /// A history sampled every `interval`, keeping `retention`.
    pub fn new(interval: Duration, retention: Duration) -> Self {
        let capacity = usize::try_from(retention.as_millis() / interval.as_millis().max(1))
            .unwrap_or(usize::MAX)
            .clamp(1, 1 << 20);
        History {
            interval,
            retention,
            capacity,
            ring: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    /// Sampling interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How far back samples are kept.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, VecDeque<Sample>> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records every series of `table` that has a value, at the table's time.
    pub fn record(&self, table: &Table) {
        let (keys, values): (Vec<SeriesKey>, Vec<f64>) = table
            .rows
            .iter()
            .filter_map(|r| {
                let v = r.value.as_ref().ok()?.as_f64();
                let key = SeriesKey {
                    metric: r.name.clone(),
                    queue: r.queue.clone(),
                };
                Some((key, v))
            })
            .unzip();
        let mut ring = self.ring();
        if ring.back().is_some_and(|last| last.at >= table.taken_at) {
            return; // the same broker answer again: nothing new to record
        }
        let layout = match ring.back() {
            Some(last) if *last.layout == keys => Arc::clone(&last.layout),
            _ => Arc::new(keys),
        };
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(Sample {
            at: table.taken_at,
            layout,
            values,
        });
    }

    /// Every recorded point of one series, oldest first.
    pub fn points(&self, key: &SeriesKey) -> Vec<(DateTime<Utc>, f64)> {
        let ring = self.ring();
        let mut out = Vec::with_capacity(ring.len());
        let mut cached: Option<(*const Vec<SeriesKey>, Option<usize>)> = None;
        for s in ring.iter() {
            let ptr = Arc::as_ptr(&s.layout);
            let index = match cached {
                Some((p, i)) if p == ptr => i,
                _ => {
                    let i = s.layout.iter().position(|k| k == key);
                    cached = Some((ptr, i));
                    i
                }
            };
            if let Some(i) = index {
                out.push((s.at, s.values[i]));
            }
        }
        out
    }

    /// The mean of a series over the last `window`, and the span its samples cover (at most
    /// `window`, at least one interval).
    ///
    /// # Errors
    /// A window longer than the retention, or no sample in it yet.
    pub fn average(
        &self,
        key: &SeriesKey,
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<(f64, Duration), HistoryError> {
        if window > self.retention {
            return Err(HistoryError::TooLong {
                window: window.as_secs(),
                retention: self.retention.as_secs(),
            });
        }
        let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::zero());
        let in_window: Vec<(DateTime<Utc>, f64)> = self
            .points(key)
            .into_iter()
            .filter(|(t, _)| *t >= since)
            .collect();
        let points: Vec<f64> = in_window.iter().map(|(_, v)| *v).collect();
        if points.is_empty() {
            let name = match &key.queue {
                Some(q) => format!("{}{{queue={q}}}", key.metric),
                None => key.metric.clone(),
            };
            return Err(HistoryError::NoSamples(name));
        }
        // The span the samples really cover: shorter than the window while history fills up
        // (each sample stands for one interval).
        let oldest = in_window.first().map_or(now, |(t, _)| *t);
        let covered = (now - oldest)
            .to_std()
            .unwrap_or_default()
            .max(self.interval)
            .min(window);
        Ok((points.iter().sum::<f64>() / points.len() as f64, covered))
    }

    /// Approximate bytes held by the samples.
    pub fn memory_bytes(&self) -> usize {
        let ring = self.ring();
        ring.iter()
            .map(|s| std::mem::size_of::<Sample>() + s.values.len() * 8)
            .sum()
    }
}

/// Samples every series into `history` each interval, forever: the value table of the cached
/// broker answer (so it adds at most one round of RPCs per interval), custom metrics and
/// rehearsal overrides included.
pub async fn sample(
    history: Arc<History>,
    broker: Broker,
    custom: Option<Arc<Custom>>,
    overrides: Option<Arc<Overrides>>,
) {
    let host: Arc<dyn Host> = Arc::new(broker.clone());
    let mut tick = tokio::time::interval(history.interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(snapshot) = broker.snapshot().await else {
            continue;
        };
        let mut table =
            Table::collect(broker.description(), &snapshot, custom.as_deref(), &host).await;
        if let Some(o) = &overrides {
            o.apply(&mut table);
        }
        history.record(&table);
    }
}

/// Groups points into steps of `step` from `since` and combines each step's points.
pub fn aggregate(
    points: &[(DateTime<Utc>, f64)],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    step: Duration,
    agg: Aggregate,
) -> Vec<(DateTime<Utc>, f64)> {
    let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX).max(1);
    let mut out: Vec<(DateTime<Utc>, Vec<f64>)> = Vec::new();
    for (t, v) in points.iter().filter(|(t, _)| *t >= since && *t <= until) {
        let bucket = (*t - since).num_milliseconds() / step_ms;
        let start = since + chrono::Duration::milliseconds(bucket * step_ms);
        match out.last_mut() {
            Some((s, vs)) if *s == start => vs.push(*v),
            _ => out.push((start, vec![*v])),
        }
    }
    out.into_iter()
        .map(|(t, vs)| {
            let v = match agg {
                Aggregate::Avg => vs.iter().sum::<f64>() / vs.len() as f64,
                Aggregate::Min => vs.iter().copied().fold(f64::INFINITY, f64::min),
                Aggregate::Max => vs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                Aggregate::Last => vs.last().copied().unwrap_or(f64::NAN),
            };
            (t, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custom::Evaluated;
    use crate::source::snapshot::tests::snapshot;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn key(m: &str, q: Option<&str>) -> SeriesKey {
        SeriesKey {
            metric: m.into(),
            queue: q.map(str::to_owned),
        }
    }

    #[test]
    fn records_whole_queue_and_custom_series_and_shares_layouts() {
        let h = History::new(Duration::from_secs(15), Duration::from_secs(60));
        for i in 0..6 {
            let mut s = snapshot("gpus-queues");
            s.taken_at = at(i * 15);
            s.nodes.up = 4 - u64::try_from(i % 2).unwrap();
            let mut t = Table::builtin("test", &s);
            t.add_custom(vec![Evaluated {
                name: "mine".into(),
                help: String::new(),
                result: Ok(0.5),
            }]);
            h.record(&t);
        }
        // capacity = 60 / 15 = 4
        let up = h.points(&key("node_up_count", None));
        assert_eq!(up.len(), 4);
        assert_eq!(up[0], (at(30), 4.0));
        assert_eq!(
            h.points(&key("job_queue_state_sched_count", Some("debug")))[0].1,
            2.0
        );
        assert_eq!(h.points(&key("mine", None)).len(), 4);
        let ring = h.ring();
        assert!(Arc::ptr_eq(&ring[0].layout, &ring[3].layout));
    }

    #[test]
    fn the_same_answer_is_recorded_once() {
        let h = History::new(Duration::from_secs(1), Duration::from_secs(60));
        let s = snapshot("idle");
        h.record(&Table::builtin("test", &s));
        h.record(&Table::builtin("test", &s));
        assert_eq!(h.points(&key("node_up_count", None)).len(), 1);
    }

    #[test]
    fn window_average_and_errors() {
        let h = History::new(Duration::from_secs(15), Duration::from_secs(3600));
        for (i, up) in [(0, 4), (15, 2), (30, 3)] {
            let mut s = snapshot("busy");
            s.taken_at = at(i);
            s.nodes.up = up;
            h.record(&Table::builtin("test", &s));
        }
        let k = key("node_up_count", None);
        assert_eq!(
            h.average(&k, Duration::from_secs(20), at(35)),
            Ok((2.5, Duration::from_secs(20)))
        );
        assert_eq!(
            h.average(&k, Duration::from_secs(300), at(35)),
            Ok((3.0, Duration::from_secs(35)))
        );
        assert!(matches!(
            h.average(&k, Duration::from_secs(7200), at(35)),
            Err(HistoryError::TooLong { .. })
        ));
        assert!(matches!(
            h.average(&k, Duration::from_secs(10), at(100)),
            Err(HistoryError::NoSamples(_))
        ));
    }

    #[test]
    fn aggregation_by_step() {
        let pts: Vec<_> = [(0, 1.0), (5, 3.0), (10, 5.0), (25, 7.0)]
            .iter()
            .map(|(t, v)| (at(*t), *v))
            .collect();
        let step = Duration::from_secs(10);
        assert_eq!(
            aggregate(&pts, at(0), at(30), step, Aggregate::Avg),
            [(at(0), 2.0), (at(10), 5.0), (at(20), 7.0)]
        );
        assert_eq!(
            aggregate(&pts, at(0), at(30), step, Aggregate::Max)[0],
            (at(0), 3.0)
        );
        assert_eq!(
            aggregate(&pts, at(0), at(30), step, Aggregate::Min)[0],
            (at(0), 1.0)
        );
        assert_eq!(
            aggregate(&pts, at(0), at(30), step, Aggregate::Last)[0],
            (at(0), 3.0)
        );
        assert_eq!(
            aggregate(&pts, at(6), at(12), step, Aggregate::Last),
            [(at(6), 5.0)]
        );
    }
}

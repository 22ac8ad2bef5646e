//! Metric values: custom metrics of an object (v1beta1 and v1beta2) and external metrics.
//!
//! A Flux metric describes the whole Flux instance, so any one object may carry it (the
//! Namespace, this server's Service, the MiniCluster); job metrics have one label, `queue`.
//! Upstream paths: <https://github.com/kubernetes/metrics/blob/master/pkg/apis/custom_metrics/v1beta2/types.go>.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use axum::Json;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::api::error::ApiError;
use crate::api::objects::described_object;
use crate::api::path::{Object, Query};
use crate::api::quantity;
use crate::api::selector::{Operator, Selector};
use crate::api::types::{
    CustomVersion, EXTERNAL_GROUP_VERSION, ExternalMetricValue, ExternalMetricValueList,
    LabelSelector, MetricValue, MetricValueList, Time,
};
use crate::ops::values::SeriesKey;
use crate::source::catalogue::{self as metrics, Metric, QUEUE_LABEL};
use crate::source::snapshot::Snapshot;

/// Which series of a metric a selector asks for: the whole instance, or some queues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Series {
    /// The whole-instance series (no labels).
    Whole,
    /// These queues' series.
    Queues(Vec<String>),
}

/// Parses a selector parameter.
fn parse_selector(param: &str, text: Option<&str>) -> Result<Selector, ApiError> {
    Selector::parse(text.unwrap_or("")).map_err(|e| ApiError::BadRequest(format!("{param}: {e}")))
}

/// The series of `metric` that `selector` asks for. Without a requirement on `queue`, the
/// whole-instance series (never the sum of every series: an HPA would count jobs twice).
///
/// # Errors
/// 400 for labels flux metrics do not have, 404 for queues the instance lacks.
pub fn select(
    metric: &Metric,
    selector: &Selector,
    snapshot: &Snapshot,
) -> Result<Series, ApiError> {
    if let Some(other) = selector.requirements.iter().find(|r| r.key != QUEUE_LABEL) {
        return Err(ApiError::BadRequest(format!(
            "flux metrics have no label {:?}; the labels are {QUEUE_LABEL:?} (on job_* metrics) and {WINDOW_LABEL:?} (an average over a recent window, e.g. window=5m)",
            other.key
        )));
    }
    let Some(req) = selector.get(QUEUE_LABEL) else {
        return Ok(Series::Whole);
    };
    if !metric.has_queue_label() {
        return Err(metrics::ValueError::NoQueueLabel(metric.name).into());
    }
    if req.operator == Operator::DoesNotExist {
        return Ok(Series::Whole);
    }
    // Named queues must exist: a typo must not look like an empty queue.
    if matches!(req.operator, Operator::Equals | Operator::In) {
        for q in &req.values {
            snapshot
                .job_counts(Some(q))
                .map_err(metrics::ValueError::from)?;
        }
    }
    let queues: Vec<String> = snapshot
        .queues
        .keys()
        .filter(|q| selector.matches(&BTreeMap::from([(QUEUE_LABEL.to_owned(), (*q).clone())])))
        .cloned()
        .collect();
    if queues.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no queue of this Flux instance matches {selector}; its queues are: [{}]",
            snapshot
                .queues
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(Series::Queues(queues))
}

fn unknown_metric(name: &str, what: &str) -> ApiError {
    ApiError::NotFound(format!(
        "the server could not find the metric {name} for {what}: see /apis/{} for the metrics this server has",
        CustomVersion::V1beta2.group_version()
    ))
}

fn value_text(v: u64) -> String {
    quantity::format_int(i64::try_from(v).unwrap_or(i64::MAX))
}

/// One series' value: its queue (`None` for the whole instance) and Quantity text.
type SeriesValue = (Option<String>, String);

/// The answer for one metric: its series' values, when they were measured, and the window they
/// were averaged over.
struct Values {
    series: Vec<SeriesValue>,
    timestamp: Time,
    /// The window asked for, and the span the history really covered (shorter while it fills).
    window: Option<(i64, i64)>,
}

/// The label that asks for an average over a recent window (`window=5m`), instead of the
/// current value.
pub const WINDOW_LABEL: &str = "window";

/// Takes the `window` requirement out of a selector.
fn split_window(selector: &Selector) -> Result<(Selector, Option<Duration>), ApiError> {
    let mut rest = selector.clone();
    rest.requirements.retain(|r| r.key != WINDOW_LABEL);
    let Some(req) = selector.get(WINDOW_LABEL) else {
        return Ok((rest, None));
    };
    let text = match (req.operator, req.values.as_slice()) {
        (Operator::Equals, [v]) => v,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "the window label takes one value, as in window=5m; got {req}"
            )));
        }
    };
    let window = crate::util::duration::parse(text)
        .map_err(|e| ApiError::BadRequest(format!("window: {e}")))?;
    if window.is_zero() {
        return Err(ApiError::BadRequest("window must be longer than 0".into()));
    }
    Ok((rest, Some(window)))
}

/// The values of metric `name` for the series `selector` asks for; `None` when there is no such
/// metric, built-in or custom.
async fn values(s: &AppState, name: &str, selector: &Selector) -> Result<Option<Values>, ApiError> {
    let (selector, window) = split_window(selector)?;
    let snapshot = s.broker.snapshot().await?;
    let queues: Vec<Option<String>> = if let Some(metric) = metrics::find(name) {
        match select(metric, &selector, &snapshot)? {
            Series::Whole => vec![None],
            Series::Queues(q) => q.into_iter().map(Some).collect(),
        }
    } else if s.has_metric(name) {
        if !selector.is_empty() {
            return Err(ApiError::BadRequest(format!(
                "custom metric {name} has no labels: drop the selector {selector}"
            )));
        }
        vec![None]
    } else {
        return Ok(None);
    };
    let mut series = Vec::with_capacity(queues.len());
    let mut covered = window;
    for queue in queues {
        let key = SeriesKey {
            metric: name.to_owned(),
            queue: queue.clone(),
        };
        let overridden = s.overrides.as_ref().and_then(|o| o.get(&key));
        let text = match (window, overridden) {
            (Some(w), _) => {
                let (avg, span) = s
                    .history
                    .average(&key, w, Utc::now())
                    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
                covered = covered.map(|c| c.min(span));
                quantity::format_f64(avg).map_err(|e| ApiError::Internal(e.to_string()))?
            }
            // A rehearsal value (--allow-writes) stands for the series until the server stops.
            (None, Some(v)) => {
                quantity::format_f64(v).map_err(|e| ApiError::Internal(e.to_string()))?
            }
            (None, None) => match metrics::find(name) {
                Some(metric) => value_text(metric.value(&snapshot, queue.as_deref())?),
                None => {
                    let custom = s
                        .custom
                        .as_ref()
                        .ok_or_else(|| ApiError::NotFound(name.to_owned()))?;
                    let v = custom.value(name, Arc::clone(&snapshot), s.host()).await?;
                    quantity::format_f64(v).map_err(|e| ApiError::Internal(e.to_string()))?
                }
            },
        };
        series.push((queue, text));
    }
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let window = window.zip(covered).map(|(w, c)| (secs(w), secs(c)));
    Ok(Some(Values {
        series,
        timestamp: Time(snapshot.taken_at),
        window,
    }))
}

/// `GET /apis/custom.metrics.k8s.io/<v>/...`: the metric of one named object.
///
/// # Errors
/// 404 unknown metric or queue, 400 wildcard or bad selector, 503/500 broker or script.
pub async fn custom(
    s: &AppState,
    version: CustomVersion,
    object: &Object,
    name: &str,
    query: &Query,
) -> Result<Response, ApiError> {
    if !s.has_metric(name) {
        return Err(unknown_metric(
            name,
            &format!("{} {}", object.resource, object.name),
        ));
    }
    if object.is_wildcard() {
        return Err(ApiError::BadRequest(format!(
            "metric {name} describes the whole Flux instance, not each of the {}: use an Object metric naming one object (for example the Service of this server) or an External metric",
            object.resource
        )));
    }
    let selector = parse_selector(
        "metricLabelSelector",
        query.metric_label_selector.as_deref(),
    )?;
    let Values {
        mut series,
        timestamp,
        window,
    } = values(s, name, &selector)
        .await?
        .ok_or_else(|| unknown_metric(name, &format!("{} {}", object.resource, object.name)))?;
    if series.len() != 1 {
        let queues: Vec<String> = series.into_iter().filter_map(|(q, _)| q).collect();
        return Err(ApiError::BadRequest(format!(
            "metricLabelSelector {selector} selects {} queues ({}), and an object metric has one value: select one queue, or use an External metric to sum them",
            queues.len(),
            queues.join(", ")
        )));
    }
    let (queue, value) = series.remove(0);
    let item = MetricValue {
        described_object: described_object(object),
        name: name.to_owned(),
        selector: echoed_selector(queue, window.map(|(asked, _)| asked)),
        timestamp,
        window_seconds: window.map(|(_, covered)| covered),
        value,
    };
    Ok(Json(MetricValueList {
        version,
        items: vec![item],
    })
    .into_response())
}

/// The metric selector an answer was narrowed by, as upstream echoes it (`null` when none).
fn echoed_selector(queue: Option<String>, window: Option<i64>) -> Option<LabelSelector> {
    let mut labels = BTreeMap::new();
    if let Some(q) = queue {
        labels.insert(QUEUE_LABEL.to_owned(), q);
    }
    if let Some(w) = window {
        labels.insert(WINDOW_LABEL.to_owned(), format!("{w}s"));
    }
    (!labels.is_empty()).then_some(LabelSelector {
        match_labels: labels,
    })
}

/// `GET /apis/external.metrics.k8s.io/v1beta1/namespaces/<ns>/<metric>`: one item per series
/// selected by `labelSelector` (the whole instance when it names no queue).
///
/// # Errors
/// 404 unknown metric or queue, 400 bad selector, 503/500 broker or script.
pub async fn external(
    s: &AppState,
    _namespace: &str,
    name: &str,
    query: &Query,
) -> Result<Response, ApiError> {
    let unknown = || {
        ApiError::NotFound(format!(
            "the server could not find the external metric {name}: see /apis/{EXTERNAL_GROUP_VERSION} for the metrics this server has"
        ))
    };
    if !s.has_metric(name) {
        return Err(unknown());
    }
    let selector = parse_selector("labelSelector", query.label_selector.as_deref())?;
    let Values {
        series,
        timestamp,
        window,
    } = values(s, name, &selector).await?.ok_or_else(unknown)?;
    let items = series
        .into_iter()
        .map(|(queue, value)| ExternalMetricValue {
            metric_name: name.to_owned(),
            metric_labels: queue
                .map(|q| BTreeMap::from([(QUEUE_LABEL.to_owned(), q)]))
                .unwrap_or_default(),
            timestamp,
            window_seconds: window.map(|(_, covered)| covered),
            value,
        })
        .collect();
    Ok(Json(ExternalMetricValueList::new(items)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::snapshot::tests::snapshot;

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    #[test]
    fn no_queue_requirement_is_the_whole_instance() {
        let s = snapshot("gpus-queues");
        let m = metrics::find("job_queue_state_sched_count").unwrap();
        assert_eq!(select(m, &sel(""), &s), Ok(Series::Whole));
        assert_eq!(select(m, &sel("!queue"), &s), Ok(Series::Whole));
    }

    #[test]
    fn queue_selectors() {
        let s = snapshot("gpus-queues");
        let m = metrics::find("job_queue_state_sched_count").unwrap();
        let q = |v: &[&str]| Series::Queues(v.iter().map(|s| (*s).to_owned()).collect());
        assert_eq!(select(m, &sel("queue=batch"), &s), Ok(q(&["batch"])));
        assert_eq!(
            select(m, &sel("queue in (debug,batch)"), &s),
            Ok(q(&["batch", "debug"]))
        );
        assert_eq!(select(m, &sel("queue!=batch"), &s), Ok(q(&["debug"])));
        assert_eq!(select(m, &sel("queue"), &s), Ok(q(&["batch", "debug"])));
        assert!(matches!(
            select(m, &sel("queue=gpu"), &s),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            select(m, &sel("queue in (batch,gpu)"), &s),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            select(m, &sel("app=web"), &s),
            Err(ApiError::BadRequest(_))
        ));
        let up = metrics::find("node_up_count").unwrap();
        assert!(matches!(
            select(up, &sel("queue=batch"), &s),
            Err(ApiError::BadRequest(_))
        ));
    }
}

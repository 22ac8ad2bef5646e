//! Kubernetes wire types this server answers with, mirroring upstream field by field.
//!
//! Hand-written rather than taken from `k8s-openapi`: we need ten small types, and that crate
//! costs minutes of compile time on a 2-core machine. Golden-JSON tests at the bottom pin each
//! shape to the upstream examples (`kubernetes/metrics` types.go, apimachinery meta/v1).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

// The group names as macros, so that `concat!` can build every `group/version` and path from
// them at compile time: each name is written once.
macro_rules! custom_group {
    () => {
        "custom.metrics.k8s.io"
    };
}
macro_rules! external_group {
    () => {
        "external.metrics.k8s.io"
    };
}
pub(crate) use custom_group;

/// The custom metrics API group.
pub const CUSTOM_GROUP: &str = custom_group!();
/// The external metrics API group.
pub const EXTERNAL_GROUP: &str = external_group!();
/// The external metrics API version (the only one upstream defines).
pub const EXTERNAL_VERSION: &str = "v1beta1";
/// `external.metrics.k8s.io/v1beta1`.
pub const EXTERNAL_GROUP_VERSION: &str = concat!(external_group!(), "/v1beta1");

/// A served version of the custom metrics API. The JSON of a `MetricValue` differs between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CustomVersion {
    /// `custom.metrics.k8s.io/v1beta1`: `metricName`, `window`, top-level `selector`.
    V1beta1,
    /// `custom.metrics.k8s.io/v1beta2`: `metric{name,selector}`, `windowSeconds`.
    V1beta2,
}

impl CustomVersion {
    /// Every served version, preferred first.
    pub const ALL: [CustomVersion; 2] = [CustomVersion::V1beta2, CustomVersion::V1beta1];

    /// The version segment of the path, e.g. `v1beta2`.
    pub fn as_str(self) -> &'static str {
        match self {
            CustomVersion::V1beta1 => "v1beta1",
            CustomVersion::V1beta2 => "v1beta2",
        }
    }

    /// Parses a path segment.
    pub fn parse(s: &str) -> Option<CustomVersion> {
        CustomVersion::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// `custom.metrics.k8s.io/<version>`.
    pub fn group_version(self) -> &'static str {
        match self {
            CustomVersion::V1beta1 => concat!(custom_group!(), "/v1beta1"),
            CustomVersion::V1beta2 => concat!(custom_group!(), "/v1beta2"),
        }
    }
}

/// `metav1.Time`: RFC 3339 in UTC with second precision, as Go's `time.RFC3339` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Time(pub DateTime<Utc>);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

/// `metav1.ListMeta`: every field is omitempty, and we set none, so it is always `{}`.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ListMeta {}

/// `core/v1.ObjectReference`, the `describedObject` of a custom metric (all fields omitempty).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// Kind of the object, e.g. `Service`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Namespace of the object; empty for cluster-scoped objects.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name of the object.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `group/version` of the object (`v1` for the core group); empty when unknown.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
}

/// `metav1.LabelSelector` (only `matchLabels`: selectors we echo are equality selectors).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Label equalities.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

/// One value of a custom metric, in a version-neutral form; serialised per version by
/// [`MetricValueList`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricValue {
    /// The object the metric describes.
    pub described_object: ObjectReference,
    /// The metric's name.
    pub name: String,
    /// The metric label selector the value was narrowed by, if any.
    pub selector: Option<LabelSelector>,
    /// When the value was measured.
    pub timestamp: Time,
    /// The window the value was averaged over, if any.
    pub window_seconds: Option<i64>,
    /// Canonical Quantity text.
    pub value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetricValueV1beta1<'a> {
    described_object: &'a ObjectReference,
    metric_name: &'a str,
    timestamp: Time,
    #[serde(rename = "window", skip_serializing_if = "Option::is_none")]
    window_seconds: Option<i64>,
    value: &'a str,
    selector: &'a Option<LabelSelector>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetricIdentifier<'a> {
    name: &'a str,
    selector: &'a Option<LabelSelector>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetricValueV1beta2<'a> {
    described_object: &'a ObjectReference,
    metric: MetricIdentifier<'a>,
    timestamp: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    window_seconds: Option<i64>,
    value: &'a str,
}

/// `custom.metrics.k8s.io` `MetricValueList` of one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricValueList {
    /// Which version's JSON to write.
    pub version: CustomVersion,
    /// The values.
    pub items: Vec<MetricValue>,
}

impl Serialize for MetricValueList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("MetricValueList", 4)?;
        st.serialize_field("kind", "MetricValueList")?;
        st.serialize_field("apiVersion", self.version.group_version())?;
        st.serialize_field("metadata", &ListMeta {})?;
        match self.version {
            CustomVersion::V1beta1 => {
                let items: Vec<_> = self
                    .items
                    .iter()
                    .map(|m| MetricValueV1beta1 {
                        described_object: &m.described_object,
                        metric_name: &m.name,
                        timestamp: m.timestamp,
                        window_seconds: m.window_seconds,
                        value: &m.value,
                        selector: &m.selector,
                    })
                    .collect();
                st.serialize_field("items", &items)?;
            }
            CustomVersion::V1beta2 => {
                let items: Vec<_> = self
                    .items
                    .iter()
                    .map(|m| MetricValueV1beta2 {
                        described_object: &m.described_object,
                        metric: MetricIdentifier {
                            name: &m.name,
                            selector: &m.selector,
                        },
                        timestamp: m.timestamp,
                        window_seconds: m.window_seconds,
                        value: &m.value,
                    })
                    .collect();
                st.serialize_field("items", &items)?;
            }
        }
        st.end()
    }
}

/// `external.metrics.k8s.io/v1beta1` `ExternalMetricValue`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetricValue {
    /// The metric's name.
    pub metric_name: String,
    /// The labels of this series (required upstream: `{}` when there are none).
    pub metric_labels: BTreeMap<String, String>,
    /// When the value was measured.
    pub timestamp: Time,
    /// The window the value was averaged over, if any (JSON key `window`).
    #[serde(rename = "window", skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<i64>,
    /// Canonical Quantity text.
    pub value: String,
}

/// `external.metrics.k8s.io/v1beta1` `ExternalMetricValueList`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetricValueList {
    #[serde(flatten)]
    type_meta: TypeMeta,
    metadata: ListMeta,
    /// The values, one per series.
    pub items: Vec<ExternalMetricValue>,
}

impl ExternalMetricValueList {
    /// A list holding `items`.
    pub fn new(items: Vec<ExternalMetricValue>) -> Self {
        ExternalMetricValueList {
            type_meta: TypeMeta::new("ExternalMetricValueList", EXTERNAL_GROUP_VERSION),
            metadata: ListMeta {},
            items,
        }
    }
}

/// `metav1.TypeMeta`, flattened into every top-level object.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TypeMeta {
    /// The object's kind.
    pub kind: &'static str,
    /// The object's `group/version`.
    pub api_version: &'static str,
}

impl TypeMeta {
    /// `kind` and `apiVersion`.
    pub const fn new(kind: &'static str, api_version: &'static str) -> Self {
        TypeMeta { kind, api_version }
    }
}

/// `metav1.GroupVersionForDiscovery`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GroupVersion {
    /// `group/version`.
    pub group_version: String,
    /// `version`.
    pub version: String,
}

/// `metav1.APIGroup`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApiGroup {
    /// Set when the group is a document of its own (`/apis/<group>`), absent inside a list,
    /// as kube-apiserver writes them.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    type_meta: Option<TypeMeta>,
    /// Group name.
    pub name: String,
    /// Served versions, preferred first.
    pub versions: Vec<GroupVersion>,
    /// The preferred version.
    pub preferred_version: GroupVersion,
}

impl ApiGroup {
    /// A group serving `versions` (the first is preferred), as an item of an [`ApiGroupList`].
    ///
    /// # Panics
    /// If `versions` is empty (a programming error: every group serves a version).
    pub fn new(name: &str, versions: &[&str]) -> Self {
        let gv: Vec<GroupVersion> = versions
            .iter()
            .map(|v| GroupVersion {
                group_version: format!("{name}/{v}"),
                version: (*v).into(),
            })
            .collect();
        ApiGroup {
            type_meta: None,
            name: name.into(),
            preferred_version: gv[0].clone(),
            versions: gv,
        }
    }
}

impl ApiGroup {
    /// The same group as the document served at `/apis/<group>`.
    pub fn standalone(mut self) -> Self {
        self.type_meta = Some(TypeMeta::new("APIGroup", "v1"));
        self
    }
}

/// `metav1.APIGroupList`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ApiGroupList {
    #[serde(flatten)]
    type_meta: TypeMeta,
    /// The groups.
    pub groups: Vec<ApiGroup>,
}

impl ApiGroupList {
    /// A list of `groups`.
    pub fn new(groups: Vec<ApiGroup>) -> Self {
        ApiGroupList {
            type_meta: TypeMeta::new("APIGroupList", "v1"),
            groups,
        }
    }
}

/// `metav1.APIResource` (`singularName` has no omitempty upstream).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApiResource {
    /// `resource/metric` for custom metrics, `metric` for external ones.
    pub name: String,
    /// Always empty for metrics.
    pub singular_name: String,
    /// Whether the resource is namespaced.
    pub namespaced: bool,
    /// `MetricValueList` or `ExternalMetricValueList`.
    pub kind: &'static str,
    /// Always `["get"]`.
    pub verbs: Vec<&'static str>,
}

/// `metav1.APIResourceList`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApiResourceList {
    #[serde(flatten)]
    type_meta: TypeMeta,
    /// `group/version`.
    pub group_version: String,
    /// One entry per metric (and described resource).
    pub resources: Vec<ApiResource>,
}

impl ApiResourceList {
    /// The list for `group_version`.
    pub fn new(group_version: &str, resources: Vec<ApiResource>) -> Self {
        ApiResourceList {
            type_meta: TypeMeta::new("APIResourceList", "v1"),
            group_version: group_version.into(),
            resources,
        }
    }
}

/// `metav1.Status` reasons we answer with.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub enum Reason {
    /// 400.
    BadRequest,
    /// 401.
    Unauthorized,
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 413.
    RequestEntityTooLarge,
    /// 500.
    InternalError,
    /// 503.
    ServiceUnavailable,
    /// 504.
    Timeout,
}

/// `metav1.Status` with `status: Failure`: the body of every error answer.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Status {
    #[serde(flatten)]
    type_meta: TypeMeta,
    metadata: ListMeta,
    status: &'static str,
    /// Human-readable description.
    pub message: String,
    /// Machine-readable reason.
    pub reason: Reason,
    /// HTTP status code.
    pub code: u16,
}

impl Status {
    /// A failure Status.
    pub fn failure(code: u16, reason: Reason, message: impl Into<String>) -> Self {
        Status {
            type_meta: TypeMeta::new("Status", "v1"),
            metadata: ListMeta {},
            status: "Failure",
            message: message.into(),
            reason,
            code,
        }
    }
}

/// The `/version` document (`version.Info`), describing this program.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// Major version.
    pub major: String,
    /// Minor version.
    pub minor: String,
    /// `v<semver>`.
    pub git_version: String,
    /// Commit, when known at build time.
    pub git_commit: String,
    /// `clean` or empty.
    pub git_tree_state: String,
    /// Build date, when known.
    pub build_date: String,
    /// The language version (upstream: Go's), here the Rust one.
    pub go_version: String,
    /// Compiler name.
    pub compiler: String,
    /// `os/arch`.
    pub platform: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn t0() -> Time {
        Time(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap())
    }

    fn web1() -> ObjectReference {
        ObjectReference {
            kind: "Pod".into(),
            namespace: "default".into(),
            name: "web-1".into(),
            api_version: "/v1".into(),
        }
    }

    fn item(window: Option<i64>, selector: Option<LabelSelector>) -> MetricValue {
        MetricValue {
            described_object: web1(),
            name: "http_requests".into(),
            selector,
            timestamp: t0(),
            window_seconds: window,
            value: "1500m".into(),
        }
    }

    #[test]
    fn v1beta2_list_matches_upstream_example() {
        let l = MetricValueList {
            version: CustomVersion::V1beta2,
            items: vec![item(Some(60), None)],
        };
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            json!({"kind":"MetricValueList","apiVersion":"custom.metrics.k8s.io/v1beta2","metadata":{},
             "items":[{"describedObject":{"kind":"Pod","namespace":"default","name":"web-1","apiVersion":"/v1"},
                       "metric":{"name":"http_requests","selector":null},
                       "timestamp":"2024-01-01T00:00:00Z","windowSeconds":60,"value":"1500m"}]})
        );
    }

    #[test]
    fn v1beta1_list_matches_upstream_example() {
        let l = MetricValueList {
            version: CustomVersion::V1beta1,
            items: vec![item(Some(60), None)],
        };
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            json!({"kind":"MetricValueList","apiVersion":"custom.metrics.k8s.io/v1beta1","metadata":{},
             "items":[{"describedObject":{"kind":"Pod","namespace":"default","name":"web-1","apiVersion":"/v1"},
                       "metricName":"http_requests","timestamp":"2024-01-01T00:00:00Z","window":60,"value":"1500m","selector":null}]})
        );
    }

    #[test]
    fn window_is_omitted_and_selector_echoed_when_set() {
        let sel = LabelSelector {
            match_labels: [("queue".into(), "batch".into())].into(),
        };
        let l = MetricValueList {
            version: CustomVersion::V1beta2,
            items: vec![item(None, Some(sel))],
        };
        let v = serde_json::to_value(&l).unwrap();
        assert_eq!(
            v["items"][0]["metric"]["selector"],
            json!({"matchLabels":{"queue":"batch"}})
        );
        assert!(v["items"][0].get("windowSeconds").is_none());
    }

    #[test]
    fn empty_list_has_items_array_not_null() {
        let l = MetricValueList {
            version: CustomVersion::V1beta1,
            items: vec![],
        };
        assert_eq!(serde_json::to_value(&l).unwrap()["items"], json!([]));
        assert_eq!(
            serde_json::to_value(ExternalMetricValueList::new(vec![])).unwrap()["items"],
            json!([])
        );
    }

    #[test]
    fn external_list_matches_upstream_example() {
        let l = ExternalMetricValueList::new(vec![ExternalMetricValue {
            metric_name: "queue_depth".into(),
            metric_labels: [("queue".into(), "a".into())].into(),
            timestamp: t0(),
            window_seconds: Some(60),
            value: "42".into(),
        }]);
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            json!({"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1","metadata":{},
             "items":[{"metricName":"queue_depth","metricLabels":{"queue":"a"},"timestamp":"2024-01-01T00:00:00Z","window":60,"value":"42"}]})
        );
    }

    #[test]
    fn external_value_without_labels_has_empty_map() {
        let v = ExternalMetricValue {
            metric_name: "m".into(),
            metric_labels: BTreeMap::new(),
            timestamp: t0(),
            window_seconds: None,
            value: "0".into(),
        };
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            json!({"metricName":"m","metricLabels":{},"timestamp":"2024-01-01T00:00:00Z","value":"0"})
        );
    }

    #[test]
    fn status_matches_upstream_example() {
        let s = Status::failure(
            404,
            Reason::NotFound,
            "the server could not find the metric http_requests for pods web-1",
        );
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the metric http_requests for pods web-1","reason":"NotFound","code":404})
        );
    }

    #[test]
    fn discovery_documents_match_metav1() {
        let g = ApiGroup::new(CUSTOM_GROUP, &["v1beta2", "v1beta1"]);
        assert_eq!(
            serde_json::to_value(ApiGroupList::new(vec![g])).unwrap(),
            json!({"kind":"APIGroupList","apiVersion":"v1","groups":[{
              "name":"custom.metrics.k8s.io",
              "versions":[{"groupVersion":"custom.metrics.k8s.io/v1beta2","version":"v1beta2"},
                          {"groupVersion":"custom.metrics.k8s.io/v1beta1","version":"v1beta1"}],
              "preferredVersion":{"groupVersion":"custom.metrics.k8s.io/v1beta2","version":"v1beta2"}}]})
        );
        let standalone =
            serde_json::to_value(ApiGroup::new(EXTERNAL_GROUP, &["v1beta1"]).standalone()).unwrap();
        assert_eq!(standalone["kind"], "APIGroup");
        assert_eq!(standalone["apiVersion"], "v1");
        let r = ApiResourceList::new(
            "custom.metrics.k8s.io/v1beta2",
            vec![ApiResource {
                name: "services/node_up_count".into(),
                singular_name: String::new(),
                namespaced: true,
                kind: "MetricValueList",
                verbs: vec!["get"],
            }],
        );
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            json!({"kind":"APIResourceList","apiVersion":"v1","groupVersion":"custom.metrics.k8s.io/v1beta2",
              "resources":[{"name":"services/node_up_count","singularName":"","namespaced":true,"kind":"MetricValueList","verbs":["get"]}]})
        );
    }
}

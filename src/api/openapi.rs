//! The OpenAPI documents kube-aggregator fetches: Swagger 2.0 at `/openapi/v2`, and OpenAPI 3.0
//! per group version under `/openapi/v3`, generated from the served paths and [`CATALOGUE`].
//! Only GET and JSON are described; the `--api-path` alias is not (it is a deployment choice).
//! Schema names are Kubernetes' own (<https://kubernetes.io/docs/concepts/overview/kubernetes-api/>).

use serde_json::{Map, Value, json};

use crate::api::objects::DESCRIBED_RESOURCES;
use crate::api::types::{CUSTOM_GROUP, CustomVersion, EXTERNAL_GROUP, EXTERNAL_VERSION};
use crate::source::catalogue::CATALOGUE;

/// Swagger 2.0 document of every path this server serves (served at GET /openapi/v2).
pub fn v2() -> Value {
    let d = Dialect::Swagger2;
    let mut paths = server_paths(d);
    let mut definitions = server_schemas(d);
    for api in APIS {
        paths.extend(api.paths(d));
        definitions.extend(api.schemas(d));
    }
    json!({"swagger": "2.0", "info": info(), "paths": paths, "definitions": definitions})
}

/// The OpenAPI v3 index: {"paths": {"apis/custom.metrics.k8s.io/v1beta2": {"serverRelativeURL": "/openapi/v3/apis/custom.metrics.k8s.io/v1beta2?hash=HEX"}, ... v1beta1, external v1beta1}} (served at GET /openapi/v3).
pub fn v3_index() -> Value {
    let paths: Map<String, Value> = APIS
        .iter()
        .map(|api| {
            let key = format!("apis/{}", api.group_version());
            let url = format!("/openapi/v3/{key}?hash={}", digest(&api.v3()));
            (key, json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

/// The OpenAPI 3.0 document of one group version, or None if not served (GET /openapi/v3/apis/{group}/{version}).
pub fn v3(group: &str, version: &str) -> Option<Value> {
    APIS.iter()
        .find(|a| a.group() == group && a.version() == version)
        .map(|a| a.v3())
}

/// The `hash` of a v3 document in the index: FNV-1a 64 of its serialized text, in hex. Clients
/// only compare it, so any digest that changes with the text will do (Kubernetes uses SHA-512).
fn digest(doc: &Value) -> String {
    format!("{:016X}", fnv1a64(doc.to_string().as_bytes()))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn info() -> Value {
    json!({"title": "flux-metrics-api", "version": env!("CARGO_PKG_VERSION")})
}

// Schema names, as Kubernetes' OpenAPI documents spell them (so that kube-aggregator can merge
// ours with kube-apiserver's).
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const TIME: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Time";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const LABEL_SELECTOR: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector";
const LABEL_SELECTOR_REQUIREMENT: &str =
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement";
const OBJECT_REFERENCE: &str = "io.k8s.api.core.v1.ObjectReference";
const API_RESOURCE_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList";
const API_RESOURCE: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResource";
const API_GROUP_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList";
const API_GROUP: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup";
const GROUP_VERSION: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.GroupVersionForDiscovery";
const VERSION_INFO: &str = "io.k8s.apimachinery.pkg.version.Info";

const JSON: &str = "application/json";
const TEXT: &str = "text/plain";

/// Swagger 2.0 and OpenAPI 3.0 say the same things in different shapes; every document is
/// built once, through these methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    Swagger2,
    OpenApi3,
}

impl Dialect {
    /// A reference to the schema `name`.
    fn schema(self, name: &str) -> Value {
        let prefix = match self {
            Dialect::Swagger2 => "#/definitions/",
            Dialect::OpenApi3 => "#/components/schemas/",
        };
        json!({"$ref": format!("{prefix}{name}")})
    }

    /// The keyword that lets a schema be `null` (Swagger 2.0 has none; go-swagger's extension).
    fn nullable(self) -> &'static str {
        match self {
            Dialect::Swagger2 => "x-nullable",
            Dialect::OpenApi3 => "nullable",
        }
    }

    /// A string parameter, limited to `values` when given.
    fn param(
        self,
        name: &str,
        location: &str,
        description: &str,
        values: Option<&[&str]>,
    ) -> Value {
        let mut schema = json!({"type": "string"});
        if let Some(values) = values {
            schema["enum"] = json!(values);
        }
        let mut p = json!({
            "name": name,
            "in": location,
            "required": location == "path",
            "description": description,
        });
        match (self, schema) {
            // Swagger 2.0 puts the schema's fields in the parameter itself.
            (Dialect::Swagger2, Value::Object(fields)) => {
                if let Value::Object(p) = &mut p {
                    p.extend(fields);
                }
            }
            (_, schema) => p["schema"] = schema,
        }
        p
    }

    /// A response whose body is `schema` in `media`.
    fn response(self, description: &str, media: &str, schema: Value) -> Value {
        let mut r = json!({"description": description});
        match self {
            Dialect::Swagger2 => r["schema"] = schema,
            Dialect::OpenApi3 => r["content"][media]["schema"] = schema,
        }
        r
    }

    /// A path item with one GET operation.
    fn get(self, op: Operation<'_>, responses: Value) -> Value {
        let mut get = json!({
            "operationId": op.id,
            "tags": [op.tag],
            "description": op.description,
        });
        get["responses"] = responses;
        if !op.params.is_empty() {
            get["parameters"] = Value::Array(op.params);
        }
        if self == Dialect::Swagger2 {
            get["produces"] = json!([op.media]);
        }
        json!({"get": get})
    }
}

/// What a GET operation says besides its responses.
struct Operation<'a> {
    id: String,
    tag: &'a str,
    description: &'a str,
    params: Vec<Value>,
    media: &'static str,
}

impl<'a> Operation<'a> {
    /// An operation without parameters.
    fn new(id: String, tag: &'a str, description: &'a str, media: &'static str) -> Self {
        Operation {
            id,
            tag,
            description,
            params: Vec::new(),
            media,
        }
    }
}

/// A served group version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    Custom(CustomVersion),
    External,
}

/// Every served group version, in the order of the v3 index.
const APIS: [Api; 3] = [
    Api::Custom(CustomVersion::V1beta2),
    Api::Custom(CustomVersion::V1beta1),
    Api::External,
];

impl Api {
    fn group(self) -> &'static str {
        match self {
            Api::Custom(_) => CUSTOM_GROUP,
            Api::External => EXTERNAL_GROUP,
        }
    }

    fn version(self) -> &'static str {
        match self {
            Api::Custom(v) => v.as_str(),
            Api::External => EXTERNAL_VERSION,
        }
    }

    /// `group/version`, also the tag of the operations.
    fn group_version(self) -> String {
        format!("{}/{}", self.group(), self.version())
    }

    /// The group in operation ids, Kubernetes-style.
    fn group_id(self) -> &'static str {
        match self {
            Api::Custom(_) => "CustomMetrics",
            Api::External => "ExternalMetrics",
        }
    }

    /// The group version in operation ids: `CustomMetricsV1beta2`.
    fn id(self) -> String {
        let v = self.version();
        format!(
            "{}{}{}",
            self.group_id(),
            v[..1].to_ascii_uppercase(),
            &v[1..]
        )
    }

    /// The schema name of `kind` in this group version (its Go package, reversed-DNS style).
    fn schema_name(self, kind: &str) -> String {
        let package = match self {
            Api::Custom(_) => "custom_metrics",
            Api::External => "external_metrics",
        };
        format!(
            "io.k8s.metrics.pkg.apis.{package}.{}.{kind}",
            self.version()
        )
    }

    /// The list kind answered, and the kind of its items.
    fn kinds(self) -> (&'static str, &'static str) {
        match self {
            Api::Custom(_) => ("MetricValueList", "MetricValue"),
            Api::External => ("ExternalMetricValueList", "ExternalMetricValue"),
        }
    }

    /// The discovery path and the metric paths of this group version.
    fn paths(self, d: Dialect) -> Map<String, Value> {
        let root = format!("/apis/{}", self.group_version());
        let tag = self.group_version();
        let (id, (list_kind, item)) = (self.id(), self.kinds());
        let mut paths = Map::new();
        let discovery = Operation::new(
            format!("get{id}APIResources"),
            &tag,
            "The metrics of this group version (also the aggregator's availability probe).",
            JSON,
        );
        let ok = d.response("OK", JSON, d.schema(API_RESOURCE_LIST));
        paths.insert(root.clone(), d.get(discovery, json!({"200": ok})));
        use Param::*;
        let metric_paths = match self {
            Api::Custom(_) => vec![
                (
                    format!("{root}/namespaces/{{namespace}}/metrics/{{metric}}"),
                    format!("read{id}{item}ForNamespace"),
                    "The metric describing the Namespace object `namespace` itself.",
                    vec![Namespace, Metric, MetricLabelSelector],
                ),
                (
                    format!("{root}/namespaces/{{namespace}}/{{resource}}/{{name}}/{{metric}}"),
                    format!("listNamespaced{id}{item}"),
                    "The metric describing a namespaced object.",
                    vec![
                        Namespace,
                        Resource,
                        Name,
                        Metric,
                        LabelSelector,
                        MetricLabelSelector,
                    ],
                ),
                (
                    format!("{root}/{{resource}}/{{name}}/{{metric}}"),
                    format!("list{id}{item}"),
                    "The metric describing a cluster-scoped object.",
                    vec![Resource, Name, Metric, LabelSelector, MetricLabelSelector],
                ),
            ],
            Api::External => vec![(
                format!("{root}/namespaces/{{namespace}}/{{metric}}"),
                format!("listNamespaced{id}{item}"),
                "The series of an external metric.",
                vec![Namespace, Metric, LabelSelector],
            )],
        };
        let list = d.response("OK", JSON, d.schema(&self.schema_name(list_kind)));
        for (path, op_id, description, params) in metric_paths {
            let mut op = Operation::new(op_id, &tag, description, JSON);
            op.params = params.into_iter().map(|p| p.to_json(d, self)).collect();
            paths.insert(path, d.get(op, metric_responses(d, list.clone())));
        }
        paths
    }

    /// Every schema the paths of this group version refer to.
    fn schemas(self, d: Dialect) -> Map<String, Value> {
        let (list_kind, item) = self.kinds();
        let mut s = common_schemas(d);
        let list = kind_schema(
            (self.group(), self.version(), list_kind),
            &format!("The values of one metric ({item}s)."),
            &["items"],
            json!({
                "metadata": d.schema(LIST_META),
                "items": {"type": "array", "items": d.schema(&self.schema_name(item))},
            }),
        );
        s.insert(self.schema_name(list_kind), list);
        let value = match self {
            Api::Custom(v) => {
                s.extend(custom_schemas(d));
                let (name, name_schema, window) = match v {
                    CustomVersion::V1beta1 => {
                        ("metricName", string("The metric's name."), "window")
                    }
                    CustomVersion::V1beta2 => {
                        let id = self.schema_name("MetricIdentifier");
                        let identifier = object(
                            "A metric's name, and the selector its value was narrowed by (null when none).",
                            &["name"],
                            json!({
                                "name": string("The metric's name."),
                                "selector": d.schema(LABEL_SELECTOR),
                            }),
                        );
                        s.insert(id.clone(), identifier);
                        ("metric", d.schema(&id), "windowSeconds")
                    }
                };
                let mut value = object(
                    "The value of a metric for one object.",
                    &["describedObject", name, "timestamp", "value"],
                    json!({
                        "describedObject": d.schema(OBJECT_REFERENCE),
                        name: name_schema,
                        "timestamp": d.schema(TIME),
                        window: window_schema(),
                        "value": d.schema(QUANTITY),
                    }),
                );
                if v == CustomVersion::V1beta1 {
                    // Top-level in v1beta1, under `metric` in v1beta2; null when not narrowed.
                    value["properties"]["selector"] = d.schema(LABEL_SELECTOR);
                }
                value
            }
            Api::External => object(
                "The value of one series of an external metric.",
                &["metricName", "metricLabels", "timestamp", "value"],
                json!({
                    "metricName": string("The metric's name."),
                    "metricLabels": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "The series' labels: `{}` for the whole instance, `{\"queue\": <name>}` for one Flux queue.",
                    },
                    "timestamp": d.schema(TIME),
                    "window": window_schema(),
                    "value": d.schema(QUANTITY),
                }),
            ),
        };
        s.insert(self.schema_name(item), value);
        s
    }

    /// This group version's OpenAPI 3.0 document.
    fn v3(self) -> Value {
        let d = Dialect::OpenApi3;
        json!({
            "openapi": "3.0.0",
            "info": info(),
            "paths": self.paths(d),
            "components": {"schemas": self.schemas(d)},
        })
    }
}

/// The parameters of metric operations.
#[derive(Clone, Copy, Debug)]
enum Param {
    Namespace,
    Resource,
    Name,
    Metric,
    LabelSelector,
    MetricLabelSelector,
}

impl Param {
    fn to_json(self, d: Dialect, api: Api) -> Value {
        match (self, api) {
            (Param::Namespace, Api::Custom(_)) => d.param(
                "namespace",
                "path",
                "The namespace of the described object; in `namespaces/{namespace}/metrics/{metric}`, the Namespace object described.",
                None,
            ),
            (Param::Namespace, Api::External) => d.param(
                "namespace",
                "path",
                "The namespace of the request; not used, since every metric describes the whole Flux instance.",
                None,
            ),
            (Param::Resource, _) => {
                let listed: Vec<String> = DESCRIBED_RESOURCES.iter().map(|(r, _)| format!("`{r}`")).collect();
                let text = format!(
                    "The resource of the described object, group-qualified outside the core group. Any resource is accepted (a Flux metric describes the whole instance); discovery lists {}.",
                    listed.join(", ")
                );
                d.param("resource", "path", &text, None)
            }
            (Param::Name, _) => d.param(
                "name",
                "path",
                "The described object's name. `*` (every object) is answered with 400: a Flux metric has one value for the whole instance.",
                None,
            ),
            (Param::Metric, _) => {
                let help: Vec<String> =
                    CATALOGUE.iter().map(|m| format!("- `{}`: {}", m.name, m.help)).collect();
                let names: Vec<&str> = CATALOGUE.iter().map(|m| m.name).collect();
                let text = format!("The metric's name:\n{}", help.join("\n"));
                d.param("metric", "path", &text, Some(&names))
            }
            (Param::LabelSelector, Api::Custom(_)) => d.param(
                "labelSelector",
                "query",
                "Selects the described objects when `name` is `*`: accepted for compatibility, without effect since `*` is refused.",
                None,
            ),
            (Param::LabelSelector, Api::External) => d.param(
                "labelSelector",
                "query",
                "Selects the series (label selector syntax). Without a requirement on `queue`: one item, the whole instance. With one (`queue=batch`, `queue in (a,b)`, `queue`): one item per matching Flux queue. Only job_* metrics have the `queue` label.",
                None,
            ),
            (Param::MetricLabelSelector, _) => d.param(
                "metricLabelSelector",
                "query",
                "Narrows a job_* metric to one Flux queue: `queue=<name>` (label selector syntax). Flux metrics have no other label.",
                None,
            ),
        }
    }
}

/// `ok` as the 200 answer, and the `Status` answers of a metric request.
fn metric_responses(d: Dialect, ok: Value) -> Value {
    let status = |text: &str| d.response(text, JSON, d.schema(STATUS));
    let mut responses = json!({
        "400": status("BadRequest: malformed path or selector, a label Flux metrics lack, or `*` as the object name."),
        "404": status("NotFound: unknown metric or queue."),
        "500": status("InternalError: the Flux broker answered with an error."),
        "503": status("ServiceUnavailable: the Flux broker cannot be reached."),
    });
    responses["200"] = ok;
    responses
}

/// Paths outside the group versions: `/apis`, the groups, `/version` and health (Swagger 2.0
/// only: v3 documents are per group version).
fn server_paths(d: Dialect) -> Map<String, Value> {
    let json_ok = |name: &str| json!({"200": d.response("OK", JSON, d.schema(name))});
    let text = |description: &str| d.response(description, TEXT, json!({"type": "string"}));
    let mut paths = Map::new();
    let op = Operation::new(
        "getAPIVersions".into(),
        "apis",
        "Both metrics API groups.",
        JSON,
    );
    paths.insert("/apis".into(), d.get(op, json_ok(API_GROUP_LIST)));
    for api in [Api::Custom(CustomVersion::V1beta2), Api::External] {
        let id = format!("get{}APIGroup", api.group_id());
        let op = Operation::new(
            id,
            api.group(),
            "The group and its versions, preferred first.",
            JSON,
        );
        paths.insert(
            format!("/apis/{}", api.group()),
            d.get(op, json_ok(API_GROUP)),
        );
    }
    let op = Operation::new(
        "getCodeVersion".into(),
        "version",
        "This program's version.",
        JSON,
    );
    paths.insert("/version".into(), d.get(op, json_ok(VERSION_INFO)));
    for (path, id) in [("/healthz", "getHealthz"), ("/livez", "getLivez")] {
        let op = Operation::new(id.into(), "health", "`ok` while the server runs.", TEXT);
        paths.insert(path.into(), d.get(op, json!({"200": text("ok")})));
    }
    let op = Operation::new(
        "getReadyz".into(),
        "health",
        "Whether the Flux broker answers.",
        TEXT,
    );
    let responses =
        json!({"200": text("Ready."), "503": text("The Flux broker cannot be reached.")});
    paths.insert("/readyz".into(), d.get(op, responses));
    paths
}

/// The schemas [`server_paths`] refer to.
fn server_schemas(d: Dialect) -> Map<String, Value> {
    let group_version = object(
        "A served version of a group.",
        &["groupVersion", "version"],
        json!({"groupVersion": string("`group/version`."), "version": string("The version.")}),
    );
    let group = kind_schema(
        ("", "v1", "APIGroup"),
        "An API group and its versions.",
        &["name", "versions"],
        json!({
            "name": string("The group's name."),
            "versions": {"type": "array", "items": d.schema(GROUP_VERSION)},
            "preferredVersion": d.schema(GROUP_VERSION),
        }),
    );
    let group_list = kind_schema(
        ("", "v1", "APIGroupList"),
        "The API groups this server serves.",
        &["groups"],
        json!({"groups": {"type": "array", "items": d.schema(API_GROUP)}}),
    );
    let fields = [
        "major",
        "minor",
        "gitVersion",
        "gitCommit",
        "gitTreeState",
        "buildDate",
        "goVersion",
        "compiler",
        "platform",
    ];
    let version = object(
        "This program's version (`goVersion` is empty: it is not a Go program).",
        &fields,
        strings(&fields),
    );
    named([
        (GROUP_VERSION, group_version),
        (API_GROUP, group),
        (API_GROUP_LIST, group_list),
        (VERSION_INFO, version),
    ])
}

/// Schemas every group version refers to: `Status`, discovery, list metadata and scalars.
fn common_schemas(d: Dialect) -> Map<String, Value> {
    let status = kind_schema(
        ("", "v1", "Status"),
        "The body of every error answer (`status` is `Failure`).",
        &[],
        json!({
            "metadata": d.schema(LIST_META),
            "status": string("`Success` or `Failure`."),
            "message": string("What went wrong, for people."),
            "reason": string("Why, for programs: `NotFound`, `BadRequest`..."),
            "code": {"type": "integer", "format": "int32", "description": "The HTTP status code."},
        }),
    );
    let resource_list = kind_schema(
        ("", "v1", "APIResourceList"),
        "The resources of a group version: one per metric (and described resource).",
        &["groupVersion", "resources"],
        json!({
            "groupVersion": string("`group/version`."),
            "resources": {"type": "array", "items": d.schema(API_RESOURCE)},
        }),
    );
    let resource = object(
        "A resource: `<resource>/<metric>` for custom metrics, `<metric>` for external ones.",
        &["name", "singularName", "namespaced", "kind", "verbs"],
        json!({
            "name": string("The resource's name."),
            "singularName": string("Always empty for metrics."),
            "namespaced": {"type": "boolean", "description": "Whether the resource is namespaced."},
            "kind": string("`MetricValueList` or `ExternalMetricValueList`."),
            "verbs": {"type": "array", "items": {"type": "string"}, "description": "`[\"get\"]`."},
        }),
    );
    let list_meta = object(
        "List metadata (always empty here).",
        &[],
        json!({
            "continue": {"type": "string"},
            "remainingItemCount": {"type": "integer", "format": "int64"},
            "resourceVersion": {"type": "string"},
            "selfLink": {"type": "string"},
        }),
    );
    let time = json!({
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339 time in UTC, to the second.",
    });
    let quantity = string("A quantity in Kubernetes' canonical form: `4`, `1500m`, `2k`.");
    named([
        (STATUS, status),
        (API_RESOURCE_LIST, resource_list),
        (API_RESOURCE, resource),
        (LIST_META, list_meta),
        (TIME, time),
        (QUANTITY, quantity),
    ])
}

/// Schemas both custom metrics versions refer to.
fn custom_schemas(d: Dialect) -> Map<String, Value> {
    let reference = object(
        "The object a custom metric describes (a `core/v1` ObjectReference).",
        &[],
        strings(&[
            "kind",
            "namespace",
            "name",
            "uid",
            "apiVersion",
            "resourceVersion",
            "fieldPath",
        ]),
    );
    let mut selector = object(
        "A label selector; its requirements are ANDed. Null when a value was not narrowed.",
        &[],
        json!({
            "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
            "matchExpressions": {"type": "array", "items": d.schema(LABEL_SELECTOR_REQUIREMENT)},
        }),
    );
    // Only the `selector` fields refer to it, and they are `null` when unset (no omitempty
    // upstream). `nullable` beside a `$ref` is ignored, so the schema itself carries it.
    selector[d.nullable()] = json!(true);
    let requirement = object(
        "One requirement of a label selector.",
        &["key", "operator"],
        json!({
            "key": string("The label."),
            "operator": string("`In`, `NotIn`, `Exists` or `DoesNotExist`."),
            "values": {"type": "array", "items": {"type": "string"}},
        }),
    );
    named([
        (OBJECT_REFERENCE, reference),
        (LABEL_SELECTOR, selector),
        (LABEL_SELECTOR_REQUIREMENT, requirement),
    ])
}

/// `window` (v1beta1, external) or `windowSeconds` (v1beta2).
fn window_schema() -> Value {
    json!({
        "type": "integer",
        "format": "int64",
        "description": "Seconds the value was averaged over; absent for instantaneous values (all of Flux's).",
    })
}

fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

/// Properties `fields`, all plain strings.
fn strings(fields: &[&str]) -> Value {
    Value::Object(
        fields
            .iter()
            .map(|f| ((*f).to_owned(), json!({"type": "string"})))
            .collect(),
    )
}

fn named<const N: usize>(schemas: [(&str, Value); N]) -> Map<String, Value> {
    schemas
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// An object schema.
fn object(description: &str, required: &[&str], properties: Value) -> Value {
    let mut o = json!({"description": description, "type": "object"});
    o["properties"] = properties;
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    o
}

/// A top-level kind: [`object`] plus `kind` and `apiVersion`, tagged with its group, version and
/// kind as Kubernetes does.
fn kind_schema(
    (group, version, kind): (&str, &str, &str),
    description: &str,
    required: &[&str],
    properties: Value,
) -> Value {
    let mut s = object(description, required, properties);
    s["properties"]["kind"] = string("The kind of this object.");
    s["properties"]["apiVersion"] = string("The `group/version` of this object's schema.");
    s["x-kubernetes-group-version-kind"] =
        json!([{"group": group, "version": version, "kind": kind}]);
    s
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every `$ref` in `v`, recursively.
    fn refs(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("$ref", Value::String(r)) => {
                            out.insert(r.clone());
                        }
                        _ => refs(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    /// Checks that every `$ref` of `doc` names a schema of `schemas` (under `prefix`), and that
    /// every schema is referred to.
    fn assert_refs_resolve(doc: &Value, prefix: &str, schemas: &Value) {
        let mut found = BTreeSet::new();
        refs(doc, &mut found);
        let schemas = schemas.as_object().expect("schemas object");
        for r in &found {
            let name = r
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("{r} not under {prefix}"));
            assert!(schemas.contains_key(name), "{r} does not resolve");
        }
        for name in schemas.keys() {
            assert!(
                found.contains(&format!("{prefix}{name}")),
                "{name} is never referred to"
            );
        }
    }

    /// Every GET operation of a document, with its path.
    fn operations(doc: &Value) -> Vec<(&String, &Value)> {
        doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(p, item)| (p, &item["get"]))
            .collect()
    }

    fn param<'a>(op: &'a Value, name: &str) -> Option<&'a Value> {
        op["parameters"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)
    }

    fn catalogue_names() -> Value {
        json!(CATALOGUE.iter().map(|m| m.name).collect::<Vec<_>>())
    }

    #[test]
    fn v2_is_swagger_2_with_resolving_refs() {
        let doc = v2();
        assert_eq!(doc["swagger"], "2.0");
        assert_eq!(doc["info"]["title"], "flux-metrics-api");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert_refs_resolve(&doc, "#/definitions/", &doc["definitions"]);
    }

    #[test]
    fn v2_describes_every_served_path() {
        let doc = v2();
        let paths: BTreeSet<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected: BTreeSet<String> = [
            "/apis",
            "/apis/custom.metrics.k8s.io",
            "/apis/external.metrics.k8s.io",
            "/version",
            "/healthz",
            "/livez",
            "/readyz",
        ]
        .map(String::from)
        .into();
        for v in ["v1beta1", "v1beta2"] {
            let root = format!("/apis/custom.metrics.k8s.io/{v}");
            expected.insert(root.clone());
            expected.insert(format!(
                "{root}/namespaces/{{namespace}}/metrics/{{metric}}"
            ));
            expected.insert(format!(
                "{root}/namespaces/{{namespace}}/{{resource}}/{{name}}/{{metric}}"
            ));
            expected.insert(format!("{root}/{{resource}}/{{name}}/{{metric}}"));
        }
        expected.insert("/apis/external.metrics.k8s.io/v1beta1".into());
        expected
            .insert("/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}".into());
        assert_eq!(paths, expected.iter().map(String::as_str).collect());
        for p in ["/healthz", "/livez", "/readyz"] {
            assert_eq!(
                doc["paths"][p]["get"]["produces"],
                json!(["text/plain"]),
                "{p}"
            );
        }
    }

    #[test]
    fn path_parameters_match_the_templates_and_are_required() {
        let v3s: Vec<Value> = APIS.iter().map(|a| a.v3()).collect();
        for doc in std::iter::once(&v2()).chain(&v3s) {
            for (path, op) in operations(doc) {
                let mut in_path: Vec<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                    .collect();
                let mut declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter(|p| p["in"] == "path")
                            .map(|p| p["name"].as_str().unwrap())
                            .collect()
                    })
                    .unwrap_or_default();
                in_path.sort_unstable();
                declared.sort_unstable();
                assert_eq!(in_path, declared, "{path}");
                for p in op["parameters"].as_array().into_iter().flatten() {
                    assert_eq!(p["required"], p["in"] == "path", "{path} {p}");
                }
            }
        }
    }

    #[test]
    fn metric_parameter_enumerates_the_catalogue() {
        let check = |doc: &Value, enum_of: fn(&Value) -> &Value, expected_ops: usize| {
            let mut n = 0;
            for (path, op) in operations(doc) {
                if let Some(p) = param(op, "metric") {
                    assert_eq!(enum_of(p), &catalogue_names(), "{path}");
                    for m in CATALOGUE {
                        assert!(
                            p["description"].as_str().unwrap().contains(m.help),
                            "{path}: {}",
                            m.name
                        );
                    }
                    n += 1;
                }
            }
            assert_eq!(n, expected_ops);
        };
        check(&v2(), |p| &p["enum"], 7);
        for api in APIS {
            check(
                &api.v3(),
                |p| &p["schema"]["enum"],
                if api == Api::External { 1 } else { 3 },
            );
        }
    }

    #[test]
    fn query_parameters_per_group() {
        let doc = v2();
        let custom = &doc["paths"]["/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/{resource}/{name}/{metric}"]
            ["get"];
        assert_eq!(param(custom, "labelSelector").unwrap()["in"], "query");
        assert_eq!(param(custom, "metricLabelSelector").unwrap()["in"], "query");
        let external = &doc["paths"]["/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}"]
            ["get"];
        assert_eq!(param(external, "labelSelector").unwrap()["type"], "string");
        assert!(param(external, "metricLabelSelector").is_none());
    }

    #[test]
    fn metric_operations_answer_lists_and_statuses() {
        let doc = v2();
        for (path, op) in operations(&doc) {
            if param(op, "metric").is_none() {
                continue;
            }
            let ok = op["responses"]["200"]["schema"]["$ref"].as_str().unwrap();
            let kind = if path.contains("external") {
                "ExternalMetricValueList"
            } else {
                "MetricValueList"
            };
            assert!(ok.ends_with(&format!(".{kind}")), "{path}: {ok}");
            for code in ["400", "404", "500", "503"] {
                assert_eq!(
                    op["responses"][code]["schema"]["$ref"],
                    format!("#/definitions/{STATUS}"),
                    "{path} {code}"
                );
            }
        }
        let discovery =
            &doc["paths"]["/apis/custom.metrics.k8s.io/v1beta1"]["get"]["responses"]["200"];
        assert_eq!(
            discovery["schema"]["$ref"],
            format!("#/definitions/{API_RESOURCE_LIST}")
        );
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = v2();
        let ids: Vec<&str> = operations(&doc)
            .iter()
            .map(|(_, op)| op["operationId"].as_str().unwrap())
            .collect();
        let unique: BTreeSet<&&str> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
    }

    #[test]
    fn metric_value_fields_differ_per_version() {
        let doc = v2();
        let defs = &doc["definitions"];
        let props = |name: &str| -> BTreeSet<String> {
            defs[name]["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{name}"))
                .keys()
                .cloned()
                .collect()
        };
        let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        let custom = "io.k8s.metrics.pkg.apis.custom_metrics";
        assert_eq!(
            props(&format!("{custom}.v1beta1.MetricValue")),
            set(&[
                "describedObject",
                "metricName",
                "timestamp",
                "window",
                "value",
                "selector"
            ])
        );
        assert_eq!(
            props(&format!("{custom}.v1beta2.MetricValue")),
            set(&[
                "describedObject",
                "metric",
                "timestamp",
                "windowSeconds",
                "value"
            ])
        );
        assert_eq!(
            props(&format!("{custom}.v1beta2.MetricIdentifier")),
            set(&["name", "selector"])
        );
        assert_eq!(
            props("io.k8s.metrics.pkg.apis.external_metrics.v1beta1.ExternalMetricValue"),
            set(&["metricName", "metricLabels", "timestamp", "window", "value"])
        );
        assert_eq!(defs[LABEL_SELECTOR]["x-nullable"], true);
        let v3 = v3("custom.metrics.k8s.io", "v1beta1").unwrap();
        assert_eq!(
            v3["components"]["schemas"][LABEL_SELECTOR]["nullable"],
            true
        );
        for name in [STATUS, API_RESOURCE_LIST, OBJECT_REFERENCE, LABEL_SELECTOR] {
            assert!(defs[name].is_object(), "{name}");
        }
    }

    #[test]
    fn list_kinds_carry_their_group_version_kind() {
        let doc = v2();
        let gvk = |name: &str| doc["definitions"][name]["x-kubernetes-group-version-kind"].clone();
        let custom = "io.k8s.metrics.pkg.apis.custom_metrics";
        for v in ["v1beta1", "v1beta2"] {
            assert_eq!(
                gvk(&format!("{custom}.{v}.MetricValueList")),
                json!([{"group": "custom.metrics.k8s.io", "version": v, "kind": "MetricValueList"}])
            );
        }
        assert_eq!(
            gvk("io.k8s.metrics.pkg.apis.external_metrics.v1beta1.ExternalMetricValueList"),
            json!([{"group": "external.metrics.k8s.io", "version": "v1beta1", "kind": "ExternalMetricValueList"}])
        );
        assert_eq!(
            gvk(STATUS),
            json!([{"group": "", "version": "v1", "kind": "Status"}])
        );
        assert_eq!(
            gvk(API_RESOURCE_LIST),
            json!([{"group": "", "version": "v1", "kind": "APIResourceList"}])
        );
    }

    #[test]
    fn v3_index_urls_resolve_and_hashes_match() {
        let index = v3_index();
        let paths = index["paths"].as_object().unwrap();
        let keys: Vec<&str> = paths.keys().map(String::as_str).collect();
        assert_eq!(
            keys.iter().copied().collect::<BTreeSet<_>>(),
            BTreeSet::from([
                "apis/custom.metrics.k8s.io/v1beta1",
                "apis/custom.metrics.k8s.io/v1beta2",
                "apis/external.metrics.k8s.io/v1beta1",
            ])
        );
        for (key, entry) in paths {
            let url = entry["serverRelativeURL"].as_str().unwrap();
            let (path, hash) = url.split_once("?hash=").unwrap();
            assert_eq!(path, format!("/openapi/v3/{key}"));
            let gv = key.strip_prefix("apis/").unwrap();
            let (group, version) = gv.split_once('/').unwrap();
            let doc = v3(group, version).unwrap_or_else(|| panic!("{url} does not resolve"));
            assert_eq!(hash, digest(&doc), "{url}");
            assert_eq!(hash.len(), 16);
        }
        assert_eq!(v3_index(), index, "the index is stable");
    }

    #[test]
    fn unserved_group_versions_have_no_v3_document() {
        assert!(v3("custom.metrics.k8s.io", "v1").is_none());
        assert!(v3("external.metrics.k8s.io", "v1beta2").is_none());
        assert!(v3("metrics.k8s.io", "v1beta1").is_none());
    }

    #[test]
    fn v3_documents_refs_resolve_into_components() {
        for api in APIS {
            let doc = v3(api.group(), api.version()).unwrap();
            assert_eq!(doc["openapi"], "3.0.0");
            assert!(doc.get("definitions").is_none());
            assert_refs_resolve(&doc, "#/components/schemas/", &doc["components"]["schemas"]);
            let root = format!("/apis/{}", api.group_version());
            for (path, op) in operations(&doc) {
                assert!(path.starts_with(&root), "{path} outside {root}");
                assert!(op.get("produces").is_none(), "{path}");
                assert!(
                    op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
                        .is_string(),
                    "{path}"
                );
            }
        }
    }

    #[test]
    fn fnv1a64_known_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}

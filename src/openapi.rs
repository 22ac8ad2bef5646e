//! The OpenAPI documents kube-aggregator fetches: Swagger 2.0 at `/openapi/v2`, and OpenAPI 3.0
//! per group version under `/openapi/v3`, generated from the served paths and [`CATALOGUE`].
//! Only GET and JSON are described; the `--api-path` alias is not (it is a deployment choice).
//! Schema names follow Kubernetes' (<https://kubernetes.io/docs/concepts/overview/kubernetes-api/>).

use serde_json::{Map, Value, json};

use crate::k8s::{CUSTOM_GROUP, CustomVersion, EXTERNAL_GROUP, EXTERNAL_VERSION};
use crate::metrics::CATALOGUE;
use crate::routes::discovery::DESCRIBED_RESOURCES;

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

/// The OpenAPI v3 index: {"paths": {"apis/custom.metrics.k8s.io/v1beta2": {"serverRelativeURL": "/openapi/v3/apis/custom.metrics.k8s.io/v1beta2?hash=<hex>"}, ... v1beta1, external v1beta1}} (served at GET /openapi/v3).
pub fn v3_index() -> Value {
    let paths: Map<String, Value> = APIS
        .iter()
        .map(|api| {
            let key = format!("apis/{}/{}", api.group(), api.version());
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
    let hash = doc
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("{hash:016X}")
}

fn info() -> Value {
    json!({"title": "flux-metrics-api", "version": env!("CARGO_PKG_VERSION")})
}

// Schema names, as Kubernetes' OpenAPI documents spell them.
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

    /// A parameter; `schema` is a plain string schema, possibly with an `enum`.
    fn param(self, name: &str, location: &str, description: &str, schema: Value) -> Value {
        let mut p = json!({
            "name": name,
            "in": location,
            "required": location == "path",
            "description": description,
        });
        match (self, schema, &mut p) {
            // Swagger 2.0 puts the schema's fields in the parameter itself.
            (Dialect::Swagger2, Value::Object(fields), Value::Object(p)) => p.extend(fields),
            (_, schema, p) => p["schema"] = schema,
        }
        p
    }

    /// A response whose body is `schema` in `media`.
    fn response(self, description: &str, media: &str, schema: Value) -> Value {
        match self {
            Dialect::Swagger2 => json!({"description": description, "schema": schema}),
            Dialect::OpenApi3 => {
                json!({"description": description, "content": {media: {"schema": schema}}})
            }
        }
    }

    /// A path item with one GET operation.
    fn get(self, op: Operation<'_>, responses: Value) -> Value {
        let mut get = json!({
            "operationId": op.id,
            "tags": [op.tag],
            "description": op.description,
            "responses": responses,
        });
        if !op.params.is_empty() {
            get["parameters"] = Value::Array(op.params);
        }
        if self == Dialect::Swagger2 {
            get["produces"] = json!([op.media]);
        }
        json!({"get": get})
    }
}

/// What one GET operation says besides its responses.
struct Operation<'a> {
    id: String,
    tag: &'a str,
    description: &'a str,
    params: Vec<Value>,
    media: &'a str,
}

/// A served group version.
#[derive(Clone, Copy, Debug)]
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

    /// `group/version`, also the operations' tag.
    fn group_version(self) -> String {
        format!("{}/{}", self.group(), self.version())
    }

    /// Infix of operation ids, Kubernetes-style: `CustomMetricsV1beta2`.
    fn id(self) -> String {
        let group = match self {
            Api::Custom(_) => "CustomMetrics",
            Api::External => "ExternalMetrics",
        };
        let v = self.version();
        format!("{group}{}{}", v[..1].to_ascii_uppercase(), &v[1..])
    }

    /// The Go package of the group version's types, as a schema-name prefix.
    fn package(self) -> String {
        let group = match self {
            Api::Custom(_) => "custom_metrics",
            Api::External => "external_metrics",
        };
        format!("io.k8s.metrics.pkg.apis.{group}.{}", self.version())
    }

    /// Name of the list kind and of its items.
    fn kinds(self) -> (&'static str, &'static str) {
        match self {
            Api::Custom(_) => ("MetricValueList", "MetricValue"),
            Api::External => ("ExternalMetricValueList", "ExternalMetricValue"),
        }
    }

    fn schema_name(self, kind: &str) -> String {
        format!("{}.{kind}", self.package())
    }

    /// The discovery path and the metric paths of this group version.
    fn paths(self, d: Dialect) -> Map<String, Value> {
        let root = format!("/apis/{}", self.group_version());
        let tag = self.group_version();
        let (id, (list_kind, item_kind)) = (self.id(), self.kinds());
        let mut paths = Map::new();
        let discovery = Operation {
            id: format!("get{id}APIResources"),
            tag: &tag,
            description: "The metrics of this group version (the aggregator's availability probe).",
            params: vec![],
            media: JSON,
        };
        paths.insert(
            root.clone(),
            d.get(
                discovery,
                json!({"200": d.response("OK", JSON, d.schema(API_RESOURCE_LIST))}),
            ),
        );
        let p = |name: &str| param(d, self, name);
        let metric_paths = match self {
            Api::Custom(_) => vec![
                (
                    format!("{root}/namespaces/{{namespace}}/metrics/{{metric}}"),
                    format!("read{id}{item_kind}ForNamespace"),
                    "The metric describing the Namespace object `namespace` itself.",
                    vec![p("namespace"), p("metric"), p("metricLabelSelector")],
                ),
                (
                    format!("{root}/namespaces/{{namespace}}/{{resource}}/{{name}}/{{metric}}"),
                    format!("listNamespaced{id}{item_kind}"),
                    "The metric describing a namespaced object.",
                    vec![
                        p("namespace"),
                        p("resource"),
                        p("name"),
                        p("metric"),
                        p("labelSelector"),
                        p("metricLabelSelector"),
                    ],
                ),
                (
                    format!("{root}/{{resource}}/{{name}}/{{metric}}"),
                    format!("list{id}{item_kind}"),
                    "The metric describing a cluster-scoped object.",
                    vec![
                        p("resource"),
                        p("name"),
                        p("metric"),
                        p("labelSelector"),
                        p("metricLabelSelector"),
                    ],
                ),
            ],
            Api::External => vec![(
                format!("{root}/namespaces/{{namespace}}/{{metric}}"),
                format!("listNamespaced{id}{item_kind}"),
                "The series of an external metric (the namespace is not used: every metric describes the whole Flux instance).",
                vec![p("namespace"), p("metric"), p("labelSelector")],
            )],
        };
        let list = d.response("OK", JSON, d.schema(&self.schema_name(list_kind)));
        for (path, id, description, params) in metric_paths {
            let op = Operation {
                id,
                tag: &tag,
                description,
                params,
                media: JSON,
            };
            paths.insert(path, d.get(op, error_responses(d, list.clone())));
        }
        paths
    }

    /// Every schema the paths of this group version refer to.
    fn schemas(self, d: Dialect) -> Map<String, Value> {
        let gv = (self.group(), self.version());
        let (list_kind, item_kind) = self.kinds();
        let list = kind_schema(
            (gv.0, gv.1, list_kind),
            &format!("A list of values of one metric ({item_kind}s)."),
            &["items"],
            json!({
                "metadata": d.schema(LIST_META),
                "items": {"type": "array", "items": d.schema(&self.schema_name(item_kind))},
            }),
        );
        let mut s = common_schemas(d);
        s.insert(self.schema_name(list_kind), list);
        let value = match self {
            Api::Custom(v) => {
                s.extend(custom_schemas(d));
                let mut value = object(
                    "The value of a metric for one object. `selector` is null unless the value was narrowed to a queue by `metricLabelSelector`.",
                    &["describedObject", "timestamp", "value"],
                    json!({
                        "describedObject": d.schema(OBJECT_REFERENCE),
                        "timestamp": d.schema(TIME),
                        "value": d.schema(QUANTITY),
                    }),
                );
                let (fields, window) = match v {
                    CustomVersion::V1beta1 => (
                        json!({"metricName": string("The metric's name."), "selector": d.schema(LABEL_SELECTOR)}),
                        "window",
                    ),
                    CustomVersion::V1beta2 => {
                        let id = self.schema_name("MetricIdentifier");
                        s.insert(id.clone(), object(
                            "A metric's name and the label selector its value was narrowed by (null when none).",
                            &["name"],
                            json!({"name": string("The metric's name."), "selector": d.schema(LABEL_SELECTOR)}),
                        ));
                        (json!({"metric": d.schema(&id)}), "windowSeconds")
                    }
                };
                extend(
                    &mut value,
                    fields,
                    &[if v == CustomVersion::V1beta1 {
                        "metricName"
                    } else {
                        "metric"
                    }],
                );
                extend(&mut value, json!({window: window_schema()}), &[]);
                value
            }
            Api::External => object(
                "The value of one series of an external metric.",
                &["metricName", "metricLabels", "timestamp", "value"],
                json!({
                    "metricName": string("The metric's name."),
                    "metricLabels": {
                        "type": "object",
                        "description": "The labels of the series: `{}` for the whole instance, `{\"queue\": <name>}` for one Flux queue.",
                        "additionalProperties": {"type": "string"},
                    },
                    "timestamp": d.schema(TIME),
                    "window": window_schema(),
                    "value": d.schema(QUANTITY),
                }),
            ),
        };
        s.insert(self.schema_name(item_kind), value);
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

/// The parameter `name` of an operation of `api`.
fn param(d: Dialect, api: Api, name: &str) -> Value {
    let text = json!({"type": "string"});
    match (name, api) {
        ("namespace", _) => d.param(name, "path", "The namespace of the request; for `metrics/{metric}`, the Namespace object described.", text),
        ("resource", _) => d.param(
            name,
            "path",
            &format!(
                "The resource of the described object, group-qualified outside the core group. Any resource is accepted (a Flux metric describes the whole instance); discovery lists {}.",
                DESCRIBED_RESOURCES.map(|(r, _)| format!("`{r}`")).join(", ")
            ),
            text,
        ),
        ("name", _) => d.param(name, "path", "The described object's name. `*` (every object) is answered with 400: a Flux metric has one value for the whole instance.", text),
        ("metric", _) => {
            let help: Vec<String> = CATALOGUE.iter().map(|m| format!("- `{}`: {}", m.name, m.help)).collect();
            let names: Vec<&str> = CATALOGUE.iter().map(|m| m.name).collect();
            d.param(name, "path", &format!("The metric's name:\n{}", help.join("\n")), json!({"type": "string", "enum": names}))
        }
        ("labelSelector", Api::External) => d.param(name, "query", "Selects the series (label selector syntax). Without a requirement on `queue`: one item, the whole instance. With one (`queue=batch`, `queue in (a,b)`, `queue`): one item per matching Flux queue. Only job_* metrics have the `queue` label.", text),
        ("labelSelector", _) => d.param(name, "query", "Selects the described objects when `name` is `*`; accepted for compatibility, without effect here since `*` is refused.", text),
        ("metricLabelSelector", _) => d.param(name, "query", "Narrows a job_* metric to one Flux queue: `queue=<name>` (label selector syntax). Flux metrics have no other label.", text),
        _ => unreachable!("no parameter {name}"),
    }
}

/// `ok` as the 200 answer, and the `Status` answers of a metric request.
fn error_responses(d: Dialect, ok: Value) -> Value {
    let status = |text: &str| d.response(text, JSON, d.schema(STATUS));
    json!({
        "200": ok,
        "400": status("BadRequest: malformed path or selector, a label Flux metrics lack, or `*` as the object name."),
        "404": status("NotFound: unknown metric or queue."),
        "500": status("InternalError: the Flux broker answered with an error."),
        "503": status("ServiceUnavailable: the Flux broker cannot be reached."),
    })
}

/// Paths outside the metrics API groups (Swagger 2.0 only: v3 documents are per group version).
fn server_paths(d: Dialect) -> Map<String, Value> {
    let op = |id: &str, tag, description, media| Operation {
        id: id.to_owned(),
        tag,
        description,
        params: vec![],
        media,
    };
    let text = |description: &str| d.response(description, TEXT, json!({"type": "string"}));
    let mut paths = Map::new();
    paths.insert(
        "/apis".into(),
        d.get(
            op("getAPIVersions", "apis", "Both metrics API groups.", JSON),
            json!({"200": d.response("OK", JSON, d.schema(API_GROUP_LIST))}),
        ),
    );
    for api in [Api::Custom(CustomVersion::V1beta2), Api::External] {
        let group = api.group();
        let id = api.id().replace(
            api.id()
                .trim_start_matches(|c: char| !c.is_ascii_digit() && c != 'V')
                .as_str(),
            "",
        );
        paths.insert(
            format!("/apis/{group}"),
            d.get(
                op(
                    &format!("get{id}APIGroup"),
                    group,
                    "The group and its versions, preferred first.",
                    JSON,
                ),
                json!({"200": d.response("OK", JSON, d.schema(API_GROUP))}),
            ),
        );
    }
    paths.insert(
        "/version".into(),
        d.get(
            op("getCodeVersion", "version", "This program's version.", JSON),
            json!({"200": d.response("OK", JSON, d.schema(VERSION_INFO))}),
        ),
    );
    for (path, id) in [("/healthz", "getHealthz"), ("/livez", "getLivez")] {
        paths.insert(
            path.into(),
            d.get(
                op(id, "health", "`ok` while the server runs.", TEXT),
                json!({"200": text("ok")}),
            ),
        );
    }
    paths.insert(
        "/readyz".into(),
        d.get(
            op(
                "getReadyz",
                "health",
                "Whether the Flux broker answers.",
                TEXT,
            ),
            json!({"200": text("Ready."), "503": text("The Flux broker cannot be reached.")}),
        ),
    );
    paths
}

/// Schemas of [`server_paths`].
fn server_schemas(d: Dialect) -> Map<String, Value> {
    let group_version = || {
        object(
            "A served version of a group.",
            &["groupVersion", "version"],
            json!({"groupVersion": string("`group/version`."), "version": string("The version.")}),
        )
    };
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
        json!({
            "groups": {"type": "array", "items": d.schema(API_GROUP)},
        }),
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
        "Version of this program (`goVersion` is empty: it is not a Go program).",
        &fields,
        fields
            .iter()
            .map(|f| ((*f).to_owned(), json!({"type": "string"})))
            .collect::<Map<_, _>>()
            .into(),
    );
    [
        (GROUP_VERSION, group_version()),
        (API_GROUP, group),
        (API_GROUP_LIST, group_list),
        (VERSION_INFO, version),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Schemas every group version refers to: `Status`, discovery, list metadata and scalars.
fn common_schemas(d: Dialect) -> Map<String, Value> {
    let status = kind_schema(
        ("", "v1", "Status"),
        "The body of every error answer, `status` being `Failure`.",
        &[],
        json!({
            "metadata": d.schema(LIST_META),
            "status": string("`Success` or `Failure`."),
            "message": string("A description of the error, for people."),
            "reason": string("A machine-readable reason, e.g. `NotFound`."),
            "code": {"type": "integer", "format": "int32", "description": "The HTTP status code."},
        }),
    );
    let resource_list = kind_schema(
        ("", "v1", "APIResourceList"),
        "The resources of a group version: one per metric.",
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
            "verbs": {"type": "array", "items": {"type": "string"}, "description": "Always `[\"get\"]`."},
        }),
    );
    let list_meta = object(
        "List metadata; always empty here.",
        &[],
        json!({
            "continue": string("Unused."),
            "remainingItemCount": {"type": "integer", "format": "int64", "description": "Unused."},
            "resourceVersion": string("Unused."),
            "selfLink": string("Unused."),
        }),
    );
    let time = json!({"type": "string", "format": "date-time", "description": "RFC 3339 time in UTC, second precision."});
    let quantity = string("A Kubernetes quantity in canonical form, e.g. `4`, `1500m`, `2k`.");
    [
        (STATUS, status),
        (API_RESOURCE_LIST, resource_list),
        (API_RESOURCE, resource),
        (LIST_META, list_meta),
        (TIME, time),
        (QUANTITY, quantity),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Schemas both custom metrics versions refer to.
fn custom_schemas(d: Dialect) -> Map<String, Value> {
    let reference = object(
        "The object a custom metric describes (`core/v1` ObjectReference).",
        &[],
        [
            "kind",
            "namespace",
            "name",
            "uid",
            "apiVersion",
            "resourceVersion",
            "fieldPath",
        ]
        .iter()
        .map(|f| ((*f).to_owned(), json!({"type": "string"})))
        .collect::<Map<_, _>>()
        .into(),
    );
    let selector = object(
        "A label selector; the requirements are ANDed.",
        &[],
        json!({
            "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Label equalities."},
            "matchExpressions": {"type": "array", "items": d.schema(LABEL_SELECTOR_REQUIREMENT)},
        }),
    );
    let requirement = object(
        "One requirement of a label selector.",
        &["key", "operator"],
        json!({
            "key": string("The label."),
            "operator": string("`In`, `NotIn`, `Exists` or `DoesNotExist`."),
            "values": {"type": "array", "items": {"type": "string"}},
        }),
    );
    [
        (OBJECT_REFERENCE, reference),
        (LABEL_SELECTOR, selector),
        (LABEL_SELECTOR_REQUIREMENT, requirement),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// `{"type": "integer", "format": "int64"}` for `window`/`windowSeconds`.
fn window_schema() -> Value {
    json!({"type": "integer", "format": "int64", "description": "Seconds the value was averaged over; absent for instantaneous values (all of Flux's)."})
}

fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

/// An object schema.
fn object(description: &str, required: &[&str], properties: Value) -> Value {
    let mut o = json!({"description": description, "type": "object", "properties": properties});
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    o
}

/// Adds `properties` and `required` fields to an object schema.
fn extend(schema: &mut Value, properties: Value, required: &[&str]) {
    if let (Some(props), Value::Object(more)) = (schema["properties"].as_object_mut(), properties) {
        props.extend(more);
    }
    if let Some(r) = schema["required"].as_array_mut() {
        r.extend(required.iter().map(|f| json!(f)));
    }
}

/// A top-level kind: [`object`] plus `kind` and `apiVersion`, tagged with its group, version and
/// kind as Kubernetes does.
fn kind_schema(
    gvk: (&str, &str, &str),
    description: &str,
    required: &[&str],
    properties: Value,
) -> Value {
    let mut s = object(description, required, properties);
    extend(
        &mut s,
        json!({
            "kind": string("The kind of this object."),
            "apiVersion": string("The `group/version` of this object's schema."),
        }),
        &[],
    );
    s["x-kubernetes-group-version-kind"] =
        json!([{"group": gvk.0, "version": gvk.1, "kind": gvk.2}]);
    s
}

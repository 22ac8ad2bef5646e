//! Request paths and query strings of the metrics APIs, parsed into what was asked.
//!
//! Pure code, separate from the handlers so that it can be tested (and fuzzed) on its own. It
//! accepts what real clients send: percent-encoded segments (`%2A` from client-go, a literal `*`
//! from the Python client), trailing slashes, repeated slashes are not accepted.

use percent_encoding::percent_decode_str;

use crate::api::error::ApiError;
use crate::api::types::{CUSTOM_GROUP, CustomVersion, EXTERNAL_GROUP, EXTERNAL_VERSION};

/// Which of the two API groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// `custom.metrics.k8s.io`.
    Custom,
    /// `external.metrics.k8s.io`.
    External,
}

/// The object a custom metric is asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// Namespace of the object; `None` for cluster-scoped objects (Namespaces, Nodes).
    pub namespace: Option<String>,
    /// Resource, possibly group-qualified (`services`, `miniclusters.flux-framework.org`).
    pub resource: String,
    /// Object name, or `*` for every object matching `labelSelector`.
    pub name: String,
}

impl Object {
    /// Whether the request names every object (`*`) rather than one.
    pub fn is_wildcard(&self) -> bool {
        self.name == "*"
    }
}

/// What a path under `/apis` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiPath {
    /// `/apis`.
    GroupList,
    /// `/apis/<group>`.
    Group(Group),
    /// `/apis/custom.metrics.k8s.io/<version>`.
    CustomResources(CustomVersion),
    /// `/apis/external.metrics.k8s.io/v1beta1`.
    ExternalResources,
    /// A custom metric of an object.
    Custom {
        /// The API version asked.
        version: CustomVersion,
        /// The object the metric is asked about.
        object: Object,
        /// The metric's name.
        metric: String,
    },
    /// `/apis/external.metrics.k8s.io/v1beta1/namespaces/<ns>/<metric>`.
    External {
        /// The namespace of the request.
        namespace: String,
        /// The metric's name.
        metric: String,
    },
}

/// The path's segments, percent-decoded, with one trailing slash ignored.
fn segments(path: &str) -> Result<Vec<String>, ApiError> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    trimmed
        .split('/')
        .map(|raw| {
            let seg = percent_decode_str(raw).decode_utf8().map_err(|_| {
                ApiError::BadRequest(format!(
                    "path segment {raw:?} is not valid percent-encoded UTF-8"
                ))
            })?;
            if seg.is_empty() || seg.contains('/') || seg == "." || seg == ".." {
                return Err(ApiError::BadRequest(format!(
                    "invalid path segment {raw:?} in {path:?}"
                )));
            }
            Ok(seg.into_owned())
        })
        .collect()
}

/// Checks a namespace name of a path (a DNS-1123 label, as Kubernetes requires). An invalid one
/// is not quoted back: it may hold anything a client put in a URL.
fn namespace(ns: &str) -> Result<String, ApiError> {
    crate::util::dns::label(ns).map_err(|e| {
        ApiError::BadRequest(format!(
            "the namespace in the path is not a valid namespace name: it {e}"
        ))
    })?;
    Ok(ns.to_owned())
}

fn not_found(path: &str, what: &str) -> ApiError {
    ApiError::NotFound(format!(
        "the server could not find the requested resource {path:?}: {what}"
    ))
}

/// Parses a request path. `alias` is the `--api-path` root, an extra mount of the custom metrics
/// v1beta2 API (the Python tool's flag); `None` when it is the standard root.
///
/// # Errors
/// 404 for paths this server does not serve, 400 for malformed ones.
pub fn parse(path: &str, alias: Option<&str>) -> Result<ApiPath, ApiError> {
    let segs = segments(path)?;
    if let Some(alias) = alias {
        let root = segments(alias)?;
        if segs.len() >= root.len() && segs[..root.len()] == root[..] {
            return custom(path, CustomVersion::V1beta2, &segs[root.len()..]);
        }
    }
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["apis"] => Ok(ApiPath::GroupList),
        ["apis", CUSTOM_GROUP] => Ok(ApiPath::Group(Group::Custom)),
        ["apis", EXTERNAL_GROUP] => Ok(ApiPath::Group(Group::External)),
        ["apis", CUSTOM_GROUP, v, rest @ ..] => match CustomVersion::parse(v) {
            Some(version) => custom(path, version, &segs[3..3 + rest.len()]),
            None => Err(not_found(
                path,
                "custom.metrics.k8s.io serves versions v1beta2 and v1beta1",
            )),
        },
        ["apis", EXTERNAL_GROUP, EXTERNAL_VERSION] => Ok(ApiPath::ExternalResources),
        [
            "apis",
            EXTERNAL_GROUP,
            EXTERNAL_VERSION,
            "namespaces",
            ns,
            metric,
        ] => Ok(ApiPath::External {
            namespace: namespace(ns)?,
            metric: (*metric).to_owned(),
        }),
        ["apis", EXTERNAL_GROUP, EXTERNAL_VERSION, ..] => Err(not_found(
            path,
            "external metrics are at /apis/external.metrics.k8s.io/v1beta1/namespaces/<namespace>/<metric>",
        )),
        ["apis", EXTERNAL_GROUP, ..] => Err(not_found(
            path,
            "external.metrics.k8s.io serves version v1beta1",
        )),
        _ => Err(not_found(
            path,
            "this server serves /apis/custom.metrics.k8s.io and /apis/external.metrics.k8s.io",
        )),
    }
}

fn custom(path: &str, version: CustomVersion, rest: &[String]) -> Result<ApiPath, ApiError> {
    let r: Vec<&str> = rest.iter().map(String::as_str).collect();
    let object = |namespace: Option<&str>, resource: &str, name: &str| Object {
        namespace: namespace.map(str::to_owned),
        resource: resource.to_owned(),
        name: name.to_owned(),
    };
    if let ["namespaces", ns, ..] = r.as_slice() {
        namespace(ns)?;
    }
    let (object, metric) = match r.as_slice() {
        [] => return Ok(ApiPath::CustomResources(version)),
        // A metric describing the Namespace object itself (upstream rewrites it the same way).
        ["namespaces", ns, "metrics", metric] => (object(None, "namespaces", ns), metric),
        ["namespaces", ns, resource, name, metric] => (object(Some(ns), resource, name), metric),
        [resource, name, metric] => (object(None, resource, name), metric),
        _ => {
            return Err(not_found(
                path,
                "custom metrics are at namespaces/<ns>/metrics/<metric>, namespaces/<ns>/<resource>/<name>/<metric> or <resource>/<name>/<metric>",
            ));
        }
    };
    Ok(ApiPath::Custom {
        version,
        object,
        metric: (*metric).to_owned(),
    })
}

/// The query parameters this API acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// `labelSelector`: the objects (custom, with `*`) or the series (external) asked for.
    pub label_selector: Option<String>,
    /// `metricLabelSelector`: the series of a custom metric.
    pub metric_label_selector: Option<String>,
}

/// Parses a query string (`application/x-www-form-urlencoded`); the first value of a key wins,
/// as in apimachinery's conversion. Unknown keys (`pretty`, `timeout`...) are ignored.
pub fn parse_query(query: Option<&str>) -> Query {
    let mut q = Query::default();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let slot = match k.as_ref() {
            "labelSelector" => &mut q.label_selector,
            "metricLabelSelector" => &mut q.metric_label_selector,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v.into_owned());
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn custom_path(p: &str) -> (CustomVersion, Object, String) {
        match parse(p, None).unwrap() {
            ApiPath::Custom {
                version,
                object,
                metric,
            } => (version, object, metric),
            other => panic!("{p}: {other:?}"),
        }
    }

    #[test]
    fn discovery_paths() {
        assert_eq!(parse("/apis", None).unwrap(), ApiPath::GroupList);
        assert_eq!(parse("/apis/", None).unwrap(), ApiPath::GroupList);
        assert_eq!(
            parse("/apis/custom.metrics.k8s.io", None).unwrap(),
            ApiPath::Group(Group::Custom)
        );
        assert_eq!(
            parse("/apis/custom.metrics.k8s.io/v1beta1/", None).unwrap(),
            ApiPath::CustomResources(CustomVersion::V1beta1)
        );
        assert_eq!(
            parse("/apis/external.metrics.k8s.io/v1beta1", None).unwrap(),
            ApiPath::ExternalResources
        );
    }

    #[test]
    fn namespace_metric_describes_the_namespace() {
        let (v, o, m) = custom_path(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/flux-operator/metrics/node_up_count",
        );
        assert_eq!(v, CustomVersion::V1beta2);
        assert_eq!(
            o,
            Object {
                namespace: None,
                resource: "namespaces".into(),
                name: "flux-operator".into()
            }
        );
        assert_eq!(m, "node_up_count");
    }

    #[test]
    fn object_paths_namespaced_and_root() {
        let (_, o, m) = custom_path(
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/services/custom-metrics-apiserver/node_free_count",
        );
        assert_eq!(o.namespace.as_deref(), Some("ns"));
        assert_eq!(
            (o.resource.as_str(), o.name.as_str(), m.as_str()),
            ("services", "custom-metrics-apiserver", "node_free_count")
        );
        let (_, o, _) = custom_path("/apis/custom.metrics.k8s.io/v1beta2/nodes/n1/x");
        assert_eq!((o.namespace, o.resource.as_str()), (None, "nodes"));
    }

    #[test]
    fn wildcard_encoded_or_literal() {
        for p in [
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/%2A/m",
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/%2a/m",
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/*/m",
        ] {
            assert!(custom_path(p).1.is_wildcard(), "{p}");
        }
    }

    #[test]
    fn external_path() {
        assert_eq!(
            parse("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/job_queue_state_sched_count", None).unwrap(),
            ApiPath::External { namespace: "default".into(), metric: "job_queue_state_sched_count".into() }
        );
    }

    #[test]
    fn unknown_paths_are_404_and_malformed_ones_400() {
        for p in [
            "/",
            "/apis/metrics.k8s.io",
            "/apis/custom.metrics.k8s.io/v2",
            "/apis/custom.metrics.k8s.io/v1beta2/blah",
            "/apis/custom.metrics.k8s.io/v1beta2/nodes/foo",
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/bar",
            "/apis/external.metrics.k8s.io/v1beta1/nonexistent-metric",
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/foo",
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/foo/group/metric",
            "/apis/external.metrics.k8s.io/v1",
        ] {
            assert!(matches!(parse(p, None), Err(ApiError::NotFound(_))), "{p}");
        }
        for p in [
            "/apis/custom.metrics.k8s.io/v1beta2/nodes/%FF/m",
            "/apis/custom.metrics.k8s.io/v1beta2/nodes/a%2Fb/m",
            "/apis//custom.metrics.k8s.io",
            "/apis/custom.metrics.k8s.io/v1beta2/nodes/../m",
        ] {
            assert!(
                matches!(parse(p, None), Err(ApiError::BadRequest(_))),
                "{p}"
            );
        }
    }

    #[test]
    fn invalid_namespaces_are_400_and_not_quoted_back() {
        for ns in ["Upper", "a_b", "-x", "%3Cscript%3E", &"n".repeat(64)] {
            for p in [
                format!("/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/metrics/m"),
                format!("/apis/custom.metrics.k8s.io/v1beta1/namespaces/{ns}/pods/p/m"),
                format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/m"),
            ] {
                let Err(ApiError::BadRequest(message)) = parse(&p, None) else {
                    panic!("{p}: {:?}", parse(&p, None))
                };
                assert!(
                    message.starts_with("the namespace in the path is not"),
                    "{message}"
                );
                let decoded = percent_decode_str(ns).decode_utf8_lossy();
                assert!(!message.contains(decoded.as_ref()), "{message}");
            }
        }
        assert!(parse("/custom/namespaces/Bad/metrics/m", Some("/custom")).is_err());
        assert!(
            parse(
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/kube-system/m",
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn api_path_alias_mounts_v1beta2() {
        let alias = Some("/custom/api");
        assert_eq!(
            parse("/custom/api/namespaces/ns/metrics/m", alias).unwrap(),
            parse(
                "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/metrics/m",
                None
            )
            .unwrap()
        );
        assert_eq!(
            parse("/custom/api", alias).unwrap(),
            ApiPath::CustomResources(CustomVersion::V1beta2)
        );
        // The standard root still works beside the alias.
        assert!(parse("/apis/custom.metrics.k8s.io/v1beta1/nodes/a/m", alias).is_ok());
    }

    #[test]
    fn query_first_value_wins_and_decodes() {
        let q = parse_query(Some(
            "pretty=true&metricLabelSelector=queue%3Dbatch&labelSelector=a+in+(b)&metricLabelSelector=x",
        ));
        assert_eq!(q.metric_label_selector.as_deref(), Some("queue=batch"));
        assert_eq!(q.label_selector.as_deref(), Some("a in (b)"));
        assert_eq!(parse_query(None), Query::default());
    }

    proptest! {
        #[test]
        fn any_path_parses_or_errors_without_panic(p in "(/[a-zA-Z0-9%*._~-]{0,12}){0,9}/?") {
            let _ = parse(&p, None);
            let _ = parse(&p, Some("/x/y"));
        }

        #[test]
        fn percent_encoded_segments_round_trip(metric in "[a-z_]{1,20}", name in "\\PC{1,20}") {
            let enc = percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC).to_string();
            let p = format!("/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/services/{enc}/{metric}");
            match parse(&p, None) {
                Ok(ApiPath::Custom { object, metric: m, .. }) => {
                    prop_assert_eq!(object.name, name);
                    prop_assert_eq!(m, metric);
                }
                Err(ApiError::BadRequest(_)) => prop_assert!(name.contains('/') || name == "." || name == ".."),
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn any_query_parses(q in "\\PC{0,60}") {
            let _ = parse_query(Some(&q));
        }
    }
}

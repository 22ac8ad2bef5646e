//! The objects a metric describes. A Flux metric describes the whole Flux instance, so any one
//! object may carry it; these are the ones discovery lists and whose kind an answer names.

use crate::api::path::Object;
use crate::api::types::ObjectReference;

/// The objects a custom metric is listed for in discovery, with whether they are namespaced.
/// Any object may be asked about (a Flux metric describes the whole instance); these are the
/// ones an HPA names in practice: the Namespace, the Service of this server, the MiniCluster.
pub const DESCRIBED_RESOURCES: [(&str, bool); 3] = [
    ("namespaces", false),
    ("services", true),
    ("miniclusters.flux-framework.org", true),
];

/// Kinds and API versions of the resources an HPA commonly names; others get a kind derived
/// from the resource name and no apiVersion (the HPA reads only `describedObject.name`).
const KINDS: [(&str, &str, &str); 9] = [
    ("namespaces", "Namespace", "v1"),
    ("services", "Service", "v1"),
    ("pods", "Pod", "v1"),
    ("nodes", "Node", "v1"),
    (
        "miniclusters.flux-framework.org",
        "MiniCluster",
        "flux-framework.org/v1alpha2",
    ),
    ("deployments.apps", "Deployment", "apps/v1"),
    ("statefulsets.apps", "StatefulSet", "apps/v1"),
    ("jobs.batch", "Job", "batch/v1"),
    (
        "ingresses.networking.k8s.io",
        "Ingress",
        "networking.k8s.io/v1",
    ),
];

/// The `describedObject` of a custom metric answer: the object the request named.
pub fn described_object(o: &Object) -> ObjectReference {
    let (kind, api_version) = match KINDS.iter().find(|(r, ..)| *r == o.resource) {
        Some((_, kind, v)) => ((*kind).to_owned(), (*v).to_owned()),
        None => {
            let plural = o.resource.split('.').next().unwrap_or_default();
            let singular = plural.strip_suffix('s').unwrap_or(plural);
            let mut chars = singular.chars();
            let kind = chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str());
            (kind.unwrap_or_default(), String::new())
        }
    };
    ObjectReference {
        kind,
        namespace: o.namespace.clone().unwrap_or_default(),
        name: o.name.clone(),
        api_version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn described_object_kinds() {
        let o = Object {
            namespace: Some("ns".into()),
            resource: "services".into(),
            name: "svc".into(),
        };
        let r = described_object(&o);
        assert_eq!(
            (
                r.kind.as_str(),
                r.api_version.as_str(),
                r.namespace.as_str()
            ),
            ("Service", "v1", "ns")
        );
        let o = Object {
            namespace: None,
            resource: "widgets.example.com".into(),
            name: "w".into(),
        };
        let r = described_object(&o);
        assert_eq!((r.kind.as_str(), r.api_version.as_str()), ("Widget", ""));
    }
}

//! `path::parse` and `path::parse_query` on arbitrary request paths and query strings.
//!
//! Invariants: never panic; errors are only 400 (`BadRequest`) or 404 (`NotFound`); a parsed
//! path, percent-encoded again from its parts, parses to the same thing (so what the handlers
//! see is exactly what was asked); a parsed query re-encoded parses to the same query.
#![no_main]

use flux_metrics::api::error::ApiError;
use flux_metrics::api::types::{CUSTOM_GROUP, CustomVersion, EXTERNAL_GROUP, EXTERNAL_VERSION};
use flux_metrics::api::path::{self, ApiPath, Group};
use libfuzzer_sys::fuzz_target;

const ALIAS: &str = "/a/b";

fuzz_target!(|data: &[u8]| {
    // Request targets arrive as text (hyper rejects non-ASCII bytes, we accept more).
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (p, q) = s.split_once('?').map_or((s, None), |(p, q)| (p, Some(q)));

    for alias in [None, Some(ALIAS)] {
        for input in [s, p] {
            match path::parse(input, alias) {
                Ok(parsed) => round_trip(input, alias, &parsed),
                Err(ApiError::BadRequest(m) | ApiError::NotFound(m)) => assert!(!m.is_empty()),
                Err(other) => panic!("path {input:?} (alias {alias:?}) gave {other:?}"),
            }
        }
    }

    for query in [Some(s), q, None] {
        let parsed = path::parse_query(query);
        let mut enc = form_urlencoded_like(&parsed);
        assert_eq!(path::parse_query(Some(&enc)), parsed, "query {query:?} → {enc:?}");
        enc.insert_str(0, "pretty=true&");
        assert_eq!(path::parse_query(Some(&enc)), parsed);
    }
});

/// Percent-encodes one segment so that `parse` decodes it back (everything but unreserved).
fn enc(seg: &str) -> String {
    let mut out = String::new();
    for b in seg.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn round_trip(input: &str, alias: Option<&str>, parsed: &ApiPath) {
    let rebuilt = match parsed {
        ApiPath::GroupList => "/apis".to_owned(),
        ApiPath::Group(Group::Custom) => format!("/apis/{CUSTOM_GROUP}"),
        ApiPath::Group(Group::External) => format!("/apis/{EXTERNAL_GROUP}"),
        ApiPath::CustomResources(v) => custom_root(alias, *v),
        ApiPath::ExternalResources => format!("/apis/{EXTERNAL_GROUP}/{EXTERNAL_VERSION}"),
        ApiPath::External { namespace, metric } => {
            assert!(!namespace.is_empty() && !metric.is_empty());
            format!(
                "/apis/{EXTERNAL_GROUP}/{EXTERNAL_VERSION}/namespaces/{}/{}",
                enc(namespace),
                enc(metric)
            )
        }
        ApiPath::Custom {
            version,
            object,
            metric,
        } => {
            assert!(!object.resource.is_empty() && !object.name.is_empty() && !metric.is_empty());
            let root = custom_root(alias, *version);
            match &object.namespace {
                Some(ns) => format!(
                    "{root}/namespaces/{}/{}/{}/{}",
                    enc(ns),
                    enc(&object.resource),
                    enc(&object.name),
                    enc(metric)
                ),
                None => format!(
                    "{root}/{}/{}/{}",
                    enc(&object.resource),
                    enc(&object.name),
                    enc(metric)
                ),
            }
        }
    };
    assert_eq!(
        path::parse(&rebuilt, alias).as_ref(),
        Ok(parsed),
        "{input:?} parsed to {parsed:?}, but its re-encoding {rebuilt:?} does not"
    );
}

/// Where `version` of the custom API is mounted: the alias serves v1beta2.
fn custom_root(alias: Option<&str>, v: CustomVersion) -> String {
    match (alias, v) {
        (Some(a), CustomVersion::V1beta2) => a.to_owned(),
        _ => format!("/apis/{CUSTOM_GROUP}/{}", v.as_str()),
    }
}

/// `application/x-www-form-urlencoded` text of the two parameters `parse_query` keeps.
fn form_urlencoded_like(q: &path::Query) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("labelSelector", &q.label_selector),
        ("metricLabelSelector", &q.metric_label_selector),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={}", enc(v)));
        }
    }
    parts.join("&")
}

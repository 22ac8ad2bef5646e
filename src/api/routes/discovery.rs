//! Discovery served by this server itself, never proxied: `/apis`, the group documents, one
//! `APIResourceList` per group version (the aggregator's availability probe), `/version` and
//! the OpenAPI documents.
//!
//! Every list is built from the metric catalogue, so discovery can never disagree with what the
//! metric routes serve.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use crate::api::objects::DESCRIBED_RESOURCES;
use crate::api::openapi;
use crate::api::path::Group;
use crate::api::types::{
    ApiGroup, ApiGroupList, ApiResource, ApiResourceList, CUSTOM_GROUP, CustomVersion,
    EXTERNAL_GROUP, EXTERNAL_GROUP_VERSION, EXTERNAL_VERSION, VersionInfo,
};
use crate::source::catalogue::CATALOGUE;

/// Fixed-path discovery routes (the `/apis` tree is parsed in `routes::apis`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/version", get(version))
        .route("/openapi/v2", get(openapi_v2))
        .route("/openapi/v3", get(openapi_v3))
        .route(
            "/openapi/v3/apis/{group}/{version}",
            get(openapi_v3_group_version),
        )
}

fn custom_group() -> ApiGroup {
    let versions: Vec<&str> = CustomVersion::ALL.iter().map(|v| v.as_str()).collect();
    ApiGroup::new(CUSTOM_GROUP, &versions)
}

fn external_group() -> ApiGroup {
    ApiGroup::new(EXTERNAL_GROUP, &[EXTERNAL_VERSION])
}

/// `GET /apis`: both groups, v1beta2 preferred (plain JSON even when aggregated discovery is
/// asked for: clients then fall back to the per-version documents).
pub fn group_list() -> Response {
    Json(ApiGroupList::new(vec![custom_group(), external_group()])).into_response()
}

/// `GET /apis/<group>`.
pub fn group(g: Group) -> Response {
    let doc = match g {
        Group::Custom => custom_group(),
        Group::External => external_group(),
    };
    Json(doc.standalone()).into_response()
}

/// Every metric name: the catalogue's, then the custom ones.
fn all_names(custom: &[String]) -> impl Iterator<Item = &str> {
    CATALOGUE
        .iter()
        .map(|m| m.name)
        .chain(custom.iter().map(String::as_str))
}

/// The serialized resource lists, rebuilt only when the set of custom metrics changes: the
/// aggregator probes them often and their JSON is the largest this server writes.
#[derive(Default)]
pub struct DiscoveryCache {
    slots: [ArcSwapOption<(Vec<String>, Bytes)>; 3],
}

impl DiscoveryCache {
    fn get(
        &self,
        slot: usize,
        custom: &[String],
        build: impl FnOnce() -> ApiResourceList,
    ) -> Response {
        let cached = self.slots[slot].load();
        let body = match cached.as_deref() {
            Some((names, body)) if names.as_slice() == custom => body.clone(),
            _ => {
                let body = Bytes::from(serde_json::to_vec(&build()).unwrap_or_default());
                self.slots[slot].store(Some(Arc::new((custom.to_vec(), body.clone()))));
                body
            }
        };
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// `GET /apis/custom.metrics.k8s.io/<version>`: every metric, for each described resource.
pub fn custom_resources(v: CustomVersion, custom: &[String], cache: &DiscoveryCache) -> Response {
    let slot = match v {
        CustomVersion::V1beta2 => 0,
        CustomVersion::V1beta1 => 1,
    };
    cache.get(slot, custom, || {
        let resources = all_names(custom)
            .flat_map(|name| {
                DESCRIBED_RESOURCES
                    .iter()
                    .map(move |(resource, namespaced)| ApiResource {
                        name: format!("{resource}/{name}"),
                        singular_name: String::new(),
                        namespaced: *namespaced,
                        kind: "MetricValueList",
                        verbs: vec!["get"],
                    })
            })
            .collect();
        ApiResourceList::new(v.group_version(), resources)
    })
}

/// `GET /apis/external.metrics.k8s.io/v1beta1`: every metric.
pub fn external_resources(custom: &[String], cache: &DiscoveryCache) -> Response {
    cache.get(2, custom, || {
        let resources = all_names(custom)
            .map(|name| ApiResource {
                name: name.to_owned(),
                singular_name: String::new(),
                namespaced: true,
                kind: "ExternalMetricValueList",
                verbs: vec!["get"],
            })
            .collect();
        ApiResourceList::new(EXTERNAL_GROUP_VERSION, resources)
    })
}

/// `GET /version`: this program's version in `version.Info` form (kubectl reads it first).
async fn version() -> Json<VersionInfo> {
    Json(version_info())
}

/// This program's `version.Info`: `gitVersion` is `vMAJOR.MINOR.PATCH`, the semantic version
/// kubectl's version-skew check parses, with the commit and build date of `build.rs` beside it.
pub fn version_info() -> VersionInfo {
    use crate::util::version;
    let mut parts = version::VERSION.split('.');
    VersionInfo {
        major: parts.next().unwrap_or_default().to_owned(),
        minor: parts.next().unwrap_or_default().to_owned(),
        git_version: format!("v{}", version::VERSION),
        git_commit: version::COMMIT.to_owned(),
        git_tree_state: String::new(),
        build_date: version::BUILD_DATE.to_owned(),
        go_version: String::new(), // not a Go program
        compiler: "rustc".to_owned(),
        platform: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }
}

/// `GET /openapi/v2`: a Swagger 2.0 document of our own paths.
async fn openapi_v2() -> Response {
    Json(openapi::v2()).into_response()
}

/// `GET /openapi/v3`: the index of per-group-version OpenAPI 3 documents.
async fn openapi_v3() -> Response {
    Json(openapi::v3_index()).into_response()
}

/// `GET /openapi/v3/apis/<group>/<version>`.
async fn openapi_v3_group_version(
    axum::extract::Path((group, version)): axum::extract::Path<(String, String)>,
) -> Result<Response, crate::api::error::ApiError> {
    openapi::v3(&group, &version)
        .map(|d| Json(d).into_response())
        .ok_or_else(|| {
            crate::api::error::ApiError::NotFound(format!(
                "no OpenAPI document for {group}/{version}"
            ))
        })
}

//! The router without a socket: `flux_metrics::api::routes::router(state)` called through
//! `tower::ServiceExt::oneshot`, its state built by the server's own wiring
//! (`flux_metrics::server::state`) from the configuration a [`super::Server`] starts from.
//! Routes, answers, errors, selectors and headers are tested here, without a TLS handshake per
//! request; what depends on the transport (TLS, HTTP/1.1 and HTTP/2, request framing, limits,
//! shutdown, client certificates) stays with [`super::Server`].

use std::path::Path;

use axum::Router;
use axum::body::Body;
use flux_metrics::api::routes::{self, AppState};
use flux_metrics::server::config::Config;
use http_body_util::BodyExt;
use hyper::Request;
use tower::ServiceExt;

use super::{IO_TIMEOUT, Reply, base_config};

/// A router replaying a scenario; its broker thread stops on drop.
pub(crate) struct App {
    router: Router,
    state: AppState,
}

impl App {
    /// A router replaying `scenario_or_dir` (as [`super::Server::start`]), after `tweak` changed
    /// the configuration. Must be called inside a Tokio runtime.
    pub(crate) fn start(scenario_or_dir: impl AsRef<Path>, tweak: impl FnOnce(&mut Config)) -> App {
        let mut config = base_config(scenario_or_dir.as_ref());
        tweak(&mut config);
        let state = flux_metrics::server::state(&config).expect("the router's state");
        App {
            router: routes::router(state.clone()),
            state,
        }
    }

    /// `GET path`.
    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], Body::empty()).await
    }

    /// `GET path` with extra headers.
    pub(crate) async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send("GET", path, headers, Body::empty()).await
    }

    /// `method path` with `headers` and `body`, through a clone of the router.
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body).expect("building the request");
        let exchange = async {
            let resp = self
                .router
                .clone()
                .oneshot(req)
                .await
                .unwrap_or_else(|e| match e {});
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.expect("reading the body").to_bytes();
            Reply {
                status: parts.status,
                headers: parts.headers,
                version: parts.version,
                body,
            }
        };
        tokio::time::timeout(IO_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: no answer within {IO_TIMEOUT:?}"))
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.state.broker.stop();
    }
}

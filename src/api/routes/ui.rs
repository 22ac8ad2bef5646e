//! `/ui`: the dashboard, one page served from the binary (no CDN: it works offline), and `/`
//! and `/ui/`, which send a browser there. The page holds no data: it is open to anyone, like
//! the health paths, and asks for what the data endpoints it reads need (the API token, or a
//! client certificate, which the browser offers in the TLS handshake).

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

const PAGE: &str = include_str!("ui.html");

/// The paths of the page, open without credentials.
pub const PATHS: [&str; 3] = ["/", "/ui", "/ui/"];

/// The dashboard routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(page))
        // Relative locations, so that a path prefix (kubectl proxy, an ingress) is kept.
        .route("/", get(|| redirect("ui")))
        .route("/ui/", get(|| redirect("../ui")))
}

async fn redirect(to: &'static str) -> impl IntoResponse {
    (StatusCode::FOUND, [(header::LOCATION, to)])
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
            ),
        ],
        PAGE,
    )
}

//! The axum Router every axum peer serves (`axum-tokio`, `axum-tokio-mt`, `axum-percore`
//! include this file), so the comparison is the runtime's alone.

use axum::{Router, http::header, routing::get};

/// `GET /` → `Hello, World!` as `text/plain`, the bytes every peer answers.
pub fn router() -> Router {
    Router::new().route(
        "/",
        get(|| async { ([(header::CONTENT_TYPE, "text/plain")], "Hello, World!") }),
    )
}

//! The demo service of the `percore` command: the routes every benchmark peer serves, plus a
//! health check and an echo.

use crate::{Response, Router};

const TEXT: &[(&str, &str)] = &[("Content-Type", "text/plain")];
const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];
const BYTES: &[(&str, &str)] = &[("Content-Type", "application/octet-stream")];

/// `GET /` → `Hello, World!`; `GET /json`; `GET /healthz`; `POST /echo` echoes the body.
pub fn router() -> Router {
    Router::new()
        .route("GET", "/", |_| Response {
            status: 200,
            headers: TEXT,
            body: b"Hello, World!",
        })
        .route("GET", "/json", |_| Response {
            status: 200,
            headers: JSON,
            body: br#"{"message":"Hello, World!"}"#,
        })
        .route("GET", "/healthz", |_| Response {
            status: 200,
            headers: TEXT,
            body: b"ok\n",
        })
        .route("POST", "/echo", |request| Response {
            status: 200,
            headers: BYTES,
            body: request.body(),
        })
}

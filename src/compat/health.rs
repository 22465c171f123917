//! `/healthz` for hyper and axum apps on percore: the same answer as the HTTP service's and
//! the admin endpoint's (see `percore::metrics::health_check`): `200 ok` while every shard
//! runs, `503` with a JSON body naming the stuck shards once one has been stalled longer than
//! the server's `unhealthy_after`. Any shard that is not stuck answers it, so a balancer's
//! probe sees the truth even while one shard computes.
//!
//! ```ignore
//! let app = axum::Router::new().route("/healthz", axum::routing::get(percore::compat::healthz));
//! ```

use bytes::Bytes;
use http::{Response, header};
use http_body_util::Full;

/// The health answer of this server (call it from a handler running on a shard).
pub async fn healthz() -> Response<Full<Bytes>> {
    let (status, body) = crate::metrics::health_check();
    let content_type = if status == 200 {
        "text/plain"
    } else {
        "application/json"
    };
    let body = if status == 200 {
        "ok\n".to_owned()
    } else {
        body
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a status from health_check and a static header are valid")
}

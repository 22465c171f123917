//! The demo service of the `percore` command: the routes every benchmark peer serves, a
//! health check, an echo, and `/work`, the CPU-heavy request.

use std::time::{Duration, Instant};

use crate::{OwnedRequest, OwnedResponse, Response, Router};

/// The most CPU time one `/work` request may ask for.
const MAX_WORK_MS: u64 = 10_000;

const TEXT: &[(&str, &str)] = &[("Content-Type", "text/plain")];
const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];
const BYTES: &[(&str, &str)] = &[("Content-Type", "application/octet-stream")];

/// `GET /` → `Hello, World!`; `GET /json`; `GET /healthz`; `POST /echo` echoes the body;
/// `GET /work?ms=N` burns N ms of CPU on the shard (Node's `while(true){}` stand-in: it
/// stalls this shard only), `GET /work?ms=N&offload=1` burns it on the blocking pool.
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
        .route_async("GET", "/work", work)
}

async fn work(request: OwnedRequest) -> OwnedResponse {
    let Some(ms) = request
        .query_param("ms")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
        .filter(|ms| *ms <= MAX_WORK_MS)
    else {
        return OwnedResponse::new(400, format!("ms must be an integer in 0..={MAX_WORK_MS}\n"));
    };
    let offload = request.query_param("offload") == Some(b"1");
    let spun = if offload {
        match percore::spawn_blocking(move || burn(ms)).await {
            Ok(spun) => spun,
            Err(e) => return OwnedResponse::new(503, format!("{e}\n")),
        }
    } else {
        burn(ms)
    };
    let place = if offload { "blocking pool" } else { "shard" };
    OwnedResponse::new(200, format!("burned {spun} ms on the {place}\n"))
        .header("Content-Type", "text/plain")
}

/// Spins for `ms` milliseconds of wall time; returns the milliseconds spun.
fn burn(ms: u64) -> u64 {
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(ms) {
        std::hint::spin_loop();
    }
    started.elapsed().as_millis() as u64
}

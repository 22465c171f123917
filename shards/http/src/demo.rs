//! The demo service of the `percore` command: the routes every benchmark peer serves, a
//! health check, an echo, and `/work`, the CPU-heavy request.

use std::{
    rc::Rc,
    time::{Duration, Instant},
};

use crate::{Offload, OffloadStats, OwnedRequest, OwnedResponse, Response, ResponseWriter, Router};

/// The most CPU time one `/work` request may ask for.
const MAX_WORK_MS: u64 = 10_000;

const TEXT: &[(&str, &str)] = &[("Content-Type", "text/plain")];
const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];
const BYTES: &[(&str, &str)] = &[("Content-Type", "application/octet-stream")];

/// `GET /` → `Hello, World!`; `GET /json`; `GET /healthz` (see [`healthz`]); `POST /echo`
/// echoes the body; `GET /hello/{name}` greets `name` (percent-decoded);
/// `GET /work?ms=N` burns N ms of CPU (Node's `while(true){}` stand-in) where the adaptive
/// rule says (see [`work`]), `&offload=1` on the blocking pool, `&inline=1` on the shard,
/// `&block=1` sleeps N ms in a blocking syscall on the shard (a stall that does not compute);
/// `GET /stream?chunks=N&size=S` streams a body in N parts (see [`stream`]).
/// [`Router::offload_budget`] sets `/work`'s budget.
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
        .route_async("GET", "/healthz", healthz)
        .route_ref("POST", "/echo", |request| Response {
            status: 200,
            headers: BYTES,
            body: request.body(),
        })
        // The client's address: the real one behind a trusted PROXY protocol proxy.
        .route("GET", "/ip", |request| match request.client_addr() {
            Some(addr) => format!("{addr}\n"),
            None => "unknown\n".to_string(),
        })
        .route("GET", "/hello/{name}", |request| {
            format!("Hello, {}!\n", request.param("name").unwrap_or_default())
        })
        .route_async("GET", "/work", work)
        .track_offload(&WORK.with(Rc::clone))
        .route_stream("GET", "/stream", stream)
}

/// Most parts and largest part `/stream` sends.
const MAX_CHUNKS: u64 = 1 << 20;
const MAX_CHUNK_SIZE: u64 = 64 * 1024;

/// `GET /stream?chunks=N&size=S[&length=1][&delay_ms=D]`: a body sent in N parts (default
/// 4) of S bytes (default 16), part i filled with the letter `a` + i mod 26, D ms apart (at
/// most 1000); with `length=1` it is announced with `Content-Length`, else chunked (HTTP/1.1)
/// or close-delimited (HTTP/1.0). It stops early if the client goes away.
pub async fn stream(request: OwnedRequest, mut writer: ResponseWriter) {
    let param = |name: &str, default: u64, max: u64| match request.query_param(name) {
        None => Some(default),
        Some(v) => std::str::from_utf8(v)
            .ok()?
            .parse::<u64>()
            .ok()
            .filter(|v| *v <= max),
    };
    let (Some(chunks), Some(size), Some(delay_ms), Some(length)) = (
        param("chunks", 4, MAX_CHUNKS),
        param("size", 16, MAX_CHUNK_SIZE),
        param("delay_ms", 0, 1000),
        param("length", 0, 1),
    ) else {
        writer.status(400).header("Content-Type", "text/plain");
        let _ = writer
            .send(b"chunks, size, delay_ms and length must be small integers\n")
            .await;
        return;
    };
    writer.header("Content-Type", "application/octet-stream");
    if length == 1 {
        writer.content_length(chunks * size);
    }
    let mut part = vec![0u8; size as usize];
    for i in 0..chunks {
        part.fill(b'a' + (i % 26) as u8);
        if writer.send(&part).await.is_err() {
            return;
        }
        if delay_ms > 0 {
            percore::time::sleep(Duration::from_millis(delay_ms)).await;
        }
    }
}

/// The body `/stream?chunks=N&size=S` sends.
pub fn stream_body(chunks: u64, size: u64) -> Vec<u8> {
    (0..chunks)
        .flat_map(|i| std::iter::repeat_n(b'a' + (i % 26) as u8, size as usize))
        .collect()
}

thread_local! {
    /// `/work`'s offload state, one per shard (as a router's routes are); the heavy mark
    /// inside is the server's, shared by its shards.
    static WORK: Rc<Offload> = Rc::new(Offload::adaptive().label("GET /work"));
}

/// `GET /healthz`: `200 ok` while every shard runs; `503` with a JSON body naming the stuck
/// shards once one has been stalled longer than the server's `unhealthy_after` (answered by
/// any shard that is not stuck, from the stall detector's shared state).
pub async fn healthz(_: OwnedRequest) -> OwnedResponse {
    match percore::metrics::health_check() {
        (200, _) => OwnedResponse::new(200, "ok\n").header("Content-Type", "text/plain"),
        (status, body) => {
            OwnedResponse::new(status, body).header("Content-Type", "application/json")
        }
    }
}

/// `GET /work?ms=N`: N ms of CPU where the route's history says ([`Offload`]: inline until a
/// burn overruns the budget, 5 ms unless [`Router::offload_budget`] says otherwise, then on
/// the blocking pool); `&offload=1` forces the pool, `&inline=1` the shard; `&block=1` sleeps
/// in a blocking syscall on the shard.
pub async fn work(request: OwnedRequest) -> OwnedResponse {
    let Some(ms) = request
        .query_param("ms")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
        .filter(|ms| *ms <= MAX_WORK_MS)
    else {
        return OwnedResponse::new(400, format!("ms must be an integer in 0..={MAX_WORK_MS}\n"));
    };
    if request.query_param("block") == Some(b"1") {
        // Deliberately blocks the shard in a syscall: what a handler calling blocking I/O does.
        std::thread::sleep(Duration::from_millis(ms));
        return OwnedResponse::new(200, format!("blocked the shard for {ms} ms\n"))
            .header("Content-Type", "text/plain");
    }
    let offload = WORK.with(Rc::clone);
    let burned = if request.query_param("offload") == Some(b"1") {
        offload.run_on_pool(move || burn(ms)).await
    } else if request.query_param("inline") == Some(b"1") {
        Ok(offload.run_inline(|| burn(ms)))
    } else {
        offload.run(move || burn(ms)).await
    };
    match burned {
        Ok((spun, place)) => OwnedResponse::new(200, format!("burned {spun} ms on the {place}\n"))
            .header("Content-Type", "text/plain"),
        Err(e) => OwnedResponse::new(503, format!("{e}\n")),
    }
}

/// `/work`'s counts on this shard.
pub fn work_stats() -> OffloadStats {
    WORK.with(|offload| offload.stats())
}

/// Burns `ms` and says where: on a shard thread or the blocking pool.
fn burn(ms: u64) -> (u64, &'static str) {
    let spun = spin(ms);
    let on_shard = std::thread::current()
        .name()
        .is_some_and(|name| name.starts_with("percore-shard"));
    (spun, if on_shard { "shard" } else { "blocking pool" })
}

/// Spins for `ms` milliseconds of wall time; returns the milliseconds spun.
fn spin(ms: u64) -> u64 {
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(ms) {
        std::hint::spin_loop();
    }
    started.elapsed().as_millis() as u64
}

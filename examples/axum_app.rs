//! An axum application served by percore: one shard per CPU, each running hyper's HTTP/1
//! on its own io_uring ring, with the extractors and tower layers people use.
//!
//!   cargo run --release --example axum_app -- --listen 127.0.0.1:3000
//!
//! Routes:
//! - `GET /` → `Hello, World!`
//! - `GET /users/{id}` → the user as JSON (`id` must be a number: else `400`)
//! - `GET /search?q=..&limit=..` → the query echoed as JSON (bad query: `400`)
//! - `POST /items` with a JSON item → `201` and the stored item (bad JSON: `400`/`422`)
//! - `GET /counter`, `POST /counter` → a counter in the shared `State`
//! - `POST /upload` → reads the body as a stream, answers its size and checksum
//! - `GET /stream?chunks=N&delay_ms=D` → a streamed (chunked) response
//! - `GET /slow?ms=N` → answers after `N` ms (on the shard's timer wheel)
//! - `GET /big` → 64 KiB of text (gzip when the client accepts it)
//!
//! Layers: `TraceLayer`, `CompressionLayer`, `RequestBodyLimitLayer` (64 KiB) and percore's
//! `TimeoutLayer` (10 s; `tower_http::timeout` needs a tokio runtime, which no shard runs).
//! SIGINT/SIGTERM drain the server: requests in progress finish, idle connections close.

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{Path, Query, State},
    http::StatusCode,
    routing::get,
};
use http_body_util::BodyExt;
use percore::{
    Server,
    compat::{HttpServer, TimeoutLayer},
    time::SendSleep,
};
use serde::{Deserialize, Serialize};
use tower_http::{compression::CompressionLayer, limit::RequestBodyLimitLayer, trace::TraceLayer};

/// Request bodies larger than this get `413`.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every shard shares (the `Router` is cloned onto each shard; its state is one).
#[derive(Default)]
pub struct AppState {
    counter: AtomicU64,
    items: AtomicU64,
}

#[derive(Serialize)]
struct User {
    id: u32,
    name: String,
}

#[derive(Deserialize, Serialize)]
struct Search {
    q: String,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    10
}

#[derive(Deserialize, Serialize)]
struct Item {
    name: String,
    quantity: u32,
    #[serde(default)]
    id: u64,
}

#[derive(Serialize)]
struct Upload {
    bytes: u64,
    checksum: u64,
}

#[derive(Deserialize)]
struct StreamParams {
    chunks: u32,
    #[serde(default)]
    delay_ms: u64,
}

#[derive(Deserialize)]
struct SlowParams {
    ms: u64,
}

/// The application, with a request timeout of `request_timeout`.
pub fn app(request_timeout: Duration) -> Router {
    Router::new()
        .route("/", get(|| async { "Hello, World!" }))
        .route("/users/{id}", get(user))
        .route("/search", get(search))
        .route("/items", axum::routing::post(create_item))
        .route("/counter", get(counter).post(increment))
        .route("/upload", axum::routing::post(upload))
        .route("/stream", get(stream))
        .route("/slow", get(slow))
        .route("/big", get(big))
        .route("/healthz", get(percore::compat::healthz))
        .with_state(Arc::new(AppState::default()))
        .layer(TimeoutLayer::new(request_timeout))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http())
}

async fn user(Path(id): Path<u32>) -> Json<User> {
    Json(User {
        id,
        name: format!("user-{id}"),
    })
}

async fn search(Query(search): Query<Search>) -> Json<Search> {
    Json(search)
}

async fn create_item(
    State(state): State<Arc<AppState>>,
    Json(mut item): Json<Item>,
) -> (StatusCode, Json<Item>) {
    item.id = state.items.fetch_add(1, Ordering::Relaxed) + 1;
    (StatusCode::CREATED, Json(item))
}

async fn counter(State(state): State<Arc<AppState>>) -> String {
    state.counter.load(Ordering::Relaxed).to_string()
}

async fn increment(State(state): State<Arc<AppState>>) -> String {
    (state.counter.fetch_add(1, Ordering::Relaxed) + 1).to_string()
}

/// Reads the body frame by frame as it arrives (never buffered whole).
async fn upload(body: Body) -> Result<Json<Upload>, (StatusCode, String)> {
    let mut body = body;
    let (mut bytes, mut checksum) = (0u64, 0u64);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            // The body limit reports itself through the body error.
            let status = if format!("{e:?}").contains("LengthLimitError") {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            (status, format!("reading the body: {e}"))
        })?;
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
            checksum = data.iter().fold(checksum, |sum, &b| {
                sum.wrapping_mul(31).wrapping_add(u64::from(b))
            });
        }
    }
    Ok(Json(Upload { bytes, checksum }))
}

async fn stream(Query(params): Query<StreamParams>) -> Body {
    Body::new(Ticker {
        left: params.chunks.min(10_000),
        next: 0,
        delay: Duration::from_millis(params.delay_ms.min(1000)),
        sleep: None,
    })
}

async fn slow(Query(params): Query<SlowParams>) -> String {
    SendSleep::after(Duration::from_millis(params.ms.min(60_000))).await;
    format!("slept {} ms", params.ms)
}

async fn big() -> String {
    "percore serves axum on io_uring, one shard per core.\n".repeat(1260)
}

/// A streamed body: `left` chunks `chunk N\n`, `delay` apart, timed on the shard's wheel.
struct Ticker {
    left: u32,
    next: u32,
    delay: Duration,
    sleep: Option<SendSleep>,
}

impl http_body::Body for Ticker {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        if !self.delay.is_zero() && self.next > 0 {
            let delay = self.delay;
            let sleep = self.sleep.get_or_insert_with(|| SendSleep::after(delay));
            if Pin::new(sleep).poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.sleep = None;
        }
        let chunk = Bytes::from(format!("chunk {}\n", self.next));
        self.next += 1;
        self.left -= 1;
        Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }
}

/// Serves [`app`] on `addr` with `shards` shards (0: one per CPU).
pub fn serve(
    addr: SocketAddr,
    shards: usize,
    request_timeout: Duration,
    handle_signals: bool,
) -> Result<percore::ServerHandle, percore::Error> {
    let mut builder = Server::builder().handle_signals(handle_signals);
    if shards > 0 {
        builder = builder.shards(shards);
    }
    serve_on(builder, addr, request_timeout)
}

/// Serves [`app`] on `addr` with the server `builder` describes.
pub fn serve_on(
    builder: percore::ServerBuilder,
    addr: SocketAddr,
    request_timeout: Duration,
) -> Result<percore::ServerHandle, percore::Error> {
    let app = app(request_timeout);
    HttpServer::new(builder).serve(addr, move || app.clone())
}

fn main() {
    // `AXUM_APP_LOG=debug` shows TraceLayer's line per request.
    let level = match std::env::var("AXUM_APP_LOG").as_deref() {
        Ok("debug") => tracing::Level::DEBUG,
        Ok("warn") => tracing::Level::WARN,
        _ => tracing::Level::INFO,
    };
    tracing_subscriber::fmt().with_max_level(level).init();
    let mut listen: SocketAddr = "127.0.0.1:3000".parse().expect("a valid default address");
    let mut shards = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--listen", Some(v)) => {
                listen = v
                    .parse()
                    .unwrap_or_else(|e| fail(&format!("--listen {v}: {e}")))
            }
            ("--shards", Some(v)) => {
                shards = v
                    .parse()
                    .unwrap_or_else(|e| fail(&format!("--shards {v}: {e}")))
            }
            _ => fail("usage: axum_app [--listen ADDR] [--shards N]"),
        }
    }
    let server = serve(listen, shards, Duration::from_secs(10), true)
        .unwrap_or_else(|e| fail(&format!("cannot serve on {listen}: {e}")));
    eprintln!("axum_app: listening on http://{listen} (Ctrl-C drains and stops)");
    server
        .join()
        .unwrap_or_else(|e| fail(&format!("stopped with an error: {e}")));
}

fn fail(message: &str) -> ! {
    eprintln!("axum_app: {message}");
    std::process::exit(2)
}

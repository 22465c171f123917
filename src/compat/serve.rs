//! Serving a hyper service or a tower service (an axum `Router`) on every shard of a
//! percore server: the builder's shard count, placement, steering, drain and metrics, with
//! hyper's HTTP/1 connection state machine on each accepted [`TcpStream`].
//!
//! Per connection: a connection over the shard's cap gets `503` and is closed (admission);
//! otherwise hyper serves it until the client closes it, the header-read timeout ends it
//! (it also bounds idle keep-alive), or the server drains: then hyper's graceful shutdown
//! closes an idle connection at once and lets a request in progress finish, answered with
//! `connection: close`.

use std::{
    cell::Cell,
    error::Error as StdError,
    future::{Future, poll_fn},
    net::SocketAddr,
    pin::pin,
    rc::Rc,
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use hyper::{body::Incoming, server::conn::http1};

use super::{
    rt::ShardTimer,
    service::{Counters, Guard, TowerToHyper},
};
use crate::{
    error::Error,
    net::TcpStream,
    server::{Server, ServerBuilder, ServerHandle, shutdown_signal},
    task::PerShard,
};

type BoxError = Box<dyn StdError + Send + Sync>;

/// HTTP settings of the compat server. Defaults follow hyper's, bounded.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// How long a request head may take from the moment the connection waits for it; hyper
    /// closes the connection when it passes. As hyper starts it when a keep-alive
    /// connection begins to wait for its next request, it is also the idle keep-alive
    /// timeout. Default 30 s.
    pub header_read_timeout: Option<Duration>,
    /// Connections one shard serves at once; the next one is answered `503` and closed.
    /// Default 16,384.
    pub max_connections_per_shard: usize,
    /// hyper's read buffer limit, which bounds a request head. Default 64 KiB.
    pub max_buf_size: usize,
    /// Header fields a request may carry. Default 100.
    pub max_headers: usize,
    /// HTTP/1.1 keep-alive. Default on.
    pub keep_alive: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout: Some(Duration::from_secs(30)),
            max_connections_per_shard: 16_384,
            max_buf_size: 64 * 1024,
            max_headers: 100,
            keep_alive: true,
        }
    }
}

/// Serves a tower service (an axum `Router`, a tower stack) on `addr`, on one shard per
/// CPU with the default settings. `make_service` runs once on each shard; return a clone
/// of one `Router` to share it, or build one per shard (then it need not be `Send`).
///
/// Finish a `Router` with `.with_state(state)` (`.with_state(())` when it has none), as
/// `axum::serve` does for each connection: a `Router` that never had it turns each handler
/// into a route again on every request (a boxed clone and a free per request).
///
/// ```no_run
/// # #[cfg(feature = "examples")] {
/// let app: axum::Router = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "Hello, World!" }))
///     .with_state(());
/// let addr = "127.0.0.1:3000".parse().unwrap();
/// let server = percore::compat::serve(addr, move || app.clone()).expect("start");
/// server.join().expect("clean stop");
/// # }
/// ```
pub fn serve<M, S, B>(addr: SocketAddr, make_service: M) -> Result<ServerHandle, Error>
where
    M: Fn() -> S + Send + Sync + 'static,
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + 'static,
    B::Error: Into<BoxError>,
{
    HttpServer::new(Server::builder()).serve(addr, make_service)
}

/// A hyper/axum server on percore: the [`ServerBuilder`] settings plus [`HttpConfig`].
#[derive(Clone, Debug)]
pub struct HttpServer {
    builder: ServerBuilder,
    config: HttpConfig,
}

impl HttpServer {
    /// Serves with `builder`'s shards, steering, drain timeout, signals and admin listener.
    pub fn new(builder: ServerBuilder) -> Self {
        HttpServer {
            builder,
            config: HttpConfig::default(),
        }
    }

    /// The HTTP settings (see [`HttpConfig`]).
    pub fn config(mut self, config: HttpConfig) -> Self {
        self.config = config;
        self
    }

    /// Serves a tower service; see [`serve`].
    pub fn serve<M, S, B>(self, addr: SocketAddr, make_service: M) -> Result<ServerHandle, Error>
    where
        M: Fn() -> S + Send + Sync + 'static,
        S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + 'static,
        B::Error: Into<BoxError>,
    {
        self.serve_hyper(addr, move || TowerToHyper(make_service()))
    }

    /// Serves a hyper service (`hyper::service::service_fn(...)`); `make_service` runs once
    /// on each shard and the service is cloned for each connection.
    pub fn serve_hyper<M, H, B>(
        self,
        addr: SocketAddr,
        make_service: M,
    ) -> Result<ServerHandle, Error>
    where
        M: Fn() -> H + Send + Sync + 'static,
        H: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + 'static,
        H::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + 'static,
        B::Error: Into<BoxError>,
    {
        // This server's own slot (a process may run several servers): each shard builds its
        // state on its first connection, and drops it when the shard ends.
        let per_shard = std::sync::Arc::new(PerShard::<ShardHttp<H>>::new());
        let make = std::sync::Arc::new(make_service);
        let config = self.config;
        self.builder.serve(addr, move |stream| {
            let shard = per_shard.get_or_init(|| ShardHttp::new(make(), &config));
            serve_connection(stream, shard)
        })
    }
}

/// What one shard keeps for one server: its service, hyper's settings, its counters.
struct ShardHttp<H> {
    service: Guard<H>,
    http: http1::Builder,
    max_connections: usize,
    open: Cell<usize>,
    counters: Rc<Counters>,
}

impl<H: 'static> ShardHttp<H> {
    fn new(service: H, config: &HttpConfig) -> Self {
        let mut http = http1::Builder::new();
        http.timer(ShardTimer)
            .header_read_timeout(config.header_read_timeout)
            .keep_alive(config.keep_alive)
            .max_buf_size(config.max_buf_size.max(8192))
            .max_headers(config.max_headers)
            // Pipelined responses leave together: hyper holds its flush while more requests
            // are buffered (the shard batches sends per iteration anyway).
            .pipeline_flush(true);
        let counters = Rc::new(Counters::register());
        ShardHttp {
            service: Guard {
                inner: service,
                counters: counters.clone(),
            },
            http,
            max_connections: config.max_connections_per_shard.max(1),
            open: Cell::new(0),
            counters,
        }
    }
}

/// Counts a connection as open for as long as it lives.
struct OpenSlot<H: 'static>(Rc<ShardHttp<H>>);

impl<H> Drop for OpenSlot<H> {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get() - 1);
    }
}

const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
content-length: 40\r\nconnection: close\r\n\r\nthis server is at its connection limit\r\n";

async fn serve_connection<H, B>(stream: TcpStream, shard: Rc<ShardHttp<H>>)
where
    H: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + 'static,
    H::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + 'static,
    B::Error: Into<BoxError>,
{
    if shard.open.get() >= shard.max_connections {
        shard.counters.rejected.inc();
        refuse(stream).await;
        return;
    }
    shard.open.set(shard.open.get() + 1);
    let _slot = OpenSlot(shard.clone());
    let conn = shard.http.serve_connection(stream, shard.service.clone());
    let mut conn = pin!(conn);
    let mut drain = pin!(shutdown_signal());
    let mut draining = false;
    let result = poll_fn(|cx| {
        if !draining && drain.as_mut().poll(cx).is_ready() {
            draining = true;
            conn.as_mut().graceful_shutdown();
        }
        conn.as_mut().poll(cx)
    })
    .await;
    if let Err(e) = result {
        tracing::debug!("http connection ended: {e}");
    }
}

/// Answers `503` and closes, reading what the client sent meanwhile for a moment so the
/// answer is not destroyed by a reset.
async fn refuse(mut stream: TcpStream) {
    if stream.write_all(REFUSED).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let _ = crate::time::timeout(Duration::from_millis(500), async {
        while let Ok(Some(())) = stream.read_with(|data| (data.len(), ())).await {}
    })
    .await;
}

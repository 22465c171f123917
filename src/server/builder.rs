//! `ServerBuilder`: every setting with its default, and `start`/`run`/`serve`.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use super::{control::ServerControl, handle::ServerHandle, placement::Placement, shard_thread};
use crate::{
    Error,
    blocking::BlockingConfig,
    net::{NetConfig, TcpListener, TcpStream},
    ring::RingConfig,
    sys,
};

/// Entry point: `Server::builder()`.
pub struct Server;

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

/// Who a shard is, given to the per-shard setup function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    pub id: usize,
    pub count: usize,
    /// The CPU the shard is pinned to (`None` when unpinned).
    pub cpu: Option<usize>,
}

/// Settings of a server. Every field has a documented default.
#[derive(Clone, Debug)]
pub struct ServerBuilder {
    pub(crate) placement: Placement,
    pub(crate) ring: RingConfig,
    pub(crate) net: NetConfig,
    pub(crate) mesh_capacity: usize,
    pub(crate) blocking: Option<BlockingConfig>,
    pub(crate) drain_timeout: Duration,
    pub(crate) handle_signals: bool,
    pub(crate) print_report: bool,
    pub(crate) admin: Option<SocketAddr>,
    pub(crate) stall_threshold: Duration,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            placement: Placement::OnePerCpu,
            ring: RingConfig::default(),
            net: NetConfig::default(),
            mesh_capacity: 1024,
            blocking: None,
            drain_timeout: Duration::from_secs(30),
            handle_signals: false,
            print_report: false,
            admin: None,
            stall_threshold: Duration::from_millis(100),
        }
    }
}

impl ServerBuilder {
    /// `n` shards, pinned to the allowed CPUs in order. Default: one per allowed CPU.
    pub fn shards(mut self, n: usize) -> Self {
        self.placement = Placement::Count(n);
        self
    }

    /// Where shards run (see [`Placement`]).
    pub fn placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }

    /// Ring sizes and flags (see [`RingConfig`]).
    pub fn ring(mut self, ring: RingConfig) -> Self {
        self.ring = ring;
        self
    }

    /// Per-connection limits (see [`NetConfig`]).
    pub fn net(mut self, net: NetConfig) -> Self {
        self.net = net;
        self
    }

    /// Messages each shard's mesh inbox holds before senders wait. Default 1024.
    pub fn mesh_capacity(mut self, capacity: usize) -> Self {
        self.mesh_capacity = capacity;
        self
    }

    /// The blocking pool. Default: 4 threads, or `PERCORE_BLOCKING_THREADS`.
    pub fn blocking(mut self, config: BlockingConfig) -> Self {
        self.blocking = Some(config);
        self
    }

    /// How long a graceful stop waits for open connections before closing them. Default 30 s.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Stop gracefully on SIGINT/SIGTERM (a second signal stops at once). Default off for
    /// embedding; the `percore` command turns it on.
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.handle_signals = on;
        self
    }

    /// Serve `GET /metrics` (Prometheus text, every shard) on `addr`, from shard 0. Default
    /// off.
    pub fn admin(mut self, addr: SocketAddr) -> Self {
        self.admin = Some(addr);
        self
    }

    /// A loop iteration longer than this counts as a stall and is logged. Default 100 ms.
    pub fn stall_threshold(mut self, threshold: Duration) -> Self {
        self.stall_threshold = threshold;
        self
    }

    /// Print the startup report to stderr. Default off.
    pub fn print_report(mut self, on: bool) -> Self {
        self.print_report = on;
        self
    }

    /// Starts the shards. `setup` runs once on each shard, inside it (so it may bind
    /// listeners); it returns the shard's main future, or an error that stops the start.
    /// Returns once every shard is running.
    pub fn start<F, Fut>(self, setup: F) -> Result<ServerHandle, Error>
    where
        F: Fn(ShardInfo) -> Result<Fut, Error> + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let control = Arc::new(ServerControl::new(self.drain_timeout));
        shard_thread::start_all(self, control, Arc::new(setup))
    }

    /// [`start`](Self::start), then wait until the server has stopped.
    pub fn run<F, Fut>(self, setup: F) -> Result<(), Error>
    where
        F: Fn(ShardInfo) -> Result<Fut, Error> + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.start(setup)?.join()
    }

    /// Listens on `addr` on every shard (SO_REUSEPORT) and runs `handler` as a task for each
    /// accepted connection. Returns once every shard is listening. Port 0 picks one free
    /// port for all shards; [`ServerHandle::listen_addr`] tells which.
    pub fn serve<H, Fut>(self, addr: SocketAddr, handler: H) -> Result<ServerHandle, Error>
    where
        H: Fn(TcpStream) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        // Holding the reservation until every shard listens keeps the port ours.
        let (reservation, addr) = if addr.port() == 0 {
            let (fd, bound) =
                sys::socket::reserve_port(addr).map_err(|source| Error::Bind { addr, source })?;
            (Some(fd), bound)
        } else {
            (None, addr)
        };
        let mut handle = self.start(move |_info| {
            let listener =
                TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
            let handler = handler.clone();
            Ok(accept_loop(listener, handler))
        })?;
        drop(reservation);
        handle.set_listen_addr(addr);
        Ok(handle)
    }
}

/// Accepts until the listener stops (graceful stop), spawning one task per connection.
pub(crate) async fn accept_loop<H, Fut>(listener: TcpListener, handler: H)
where
    H: Fn(TcpStream) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    loop {
        match listener.accept().await {
            Ok(stream) => {
                crate::spawn(handler(stream));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => return,
            Err(e) => tracing::warn!("accept failed: {e}"),
        }
    }
}

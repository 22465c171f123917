//! `ServerBuilder`: every setting with its default, and `start`/`run`/`serve`.

use std::{
    future::Future,
    net::SocketAddr,
    os::fd::{AsRawFd, OwnedFd},
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{
    activation::InheritedListeners, control::ServerControl, handle::ServerHandle,
    placement::Placement, shard_thread, upgrade::UpgradeConfig,
};
use crate::{
    blocking::BlockingConfig,
    driver::{DriverChoice, RingConfig},
    error::Error,
    net::{NetConfig, Steering, TcpListener, TcpStream, steer::cpu_program},
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

/// The per-shard init hook (see [`ServerBuilder::on_shard_start`]).
pub(crate) type InitFn = dyn Fn(ShardInfo) -> Result<(), Error> + Send + Sync;

/// The init hook, if any (a newtype so the builder stays `Clone + Debug`).
#[derive(Clone, Default)]
pub(crate) struct InitHook(pub(crate) Option<Arc<InitFn>>);

impl std::fmt::Debug for InitHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Some(<init hook>)"
        } else {
            "None"
        })
    }
}

/// Settings of a server. Every field has a documented default.
#[derive(Clone, Debug)]
pub struct ServerBuilder {
    pub(crate) placement: Placement,
    pub(crate) ring: RingConfig,
    /// `None`: `PERCORE_DRIVER`, else `auto`.
    pub(crate) driver: Option<DriverChoice>,
    pub(crate) net: NetConfig,
    pub(crate) mesh_capacity: usize,
    pub(crate) blocking: Option<BlockingConfig>,
    pub(crate) drain_timeout: Duration,
    pub(crate) handle_signals: bool,
    pub(crate) print_report: bool,
    pub(crate) admin: Option<SocketAddr>,
    pub(crate) stall_threshold: Duration,
    pub(crate) steering: Steering,
    pub(crate) takeover_threshold: Option<Duration>,
    pub(crate) unhealthy_after: Duration,
    pub(crate) mesh_timeout: Duration,
    pub(crate) abort_after: Option<Duration>,
    /// Fallbacks found before the shards start (a refused cBPF program), for the report.
    pub(crate) early_fallbacks: Vec<String>,
    pub(crate) on_shard_start: InitHook,
    /// TLS on the serve address (see `server::tls`).
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<super::tls::TlsListen>,
    /// A second, plaintext listener beside a TLS one.
    #[cfg(feature = "tls")]
    pub(crate) plain_listen: Option<SocketAddr>,
    /// How long listeners stay open after a stop is announced (see `drain_delay`).
    pub(crate) drain_delay: Duration,
    /// Listening sockets to serve instead of binding (see `inherit`); taken once.
    pub(crate) inherited: Option<Arc<Mutex<Option<InheritedListeners>>>>,
    /// An inherited admin listener, served instead of binding `admin`; taken once.
    pub(crate) inherited_admin: Option<Arc<Mutex<Option<OwnedFd>>>>,
    /// Offer the listeners to a successor process (see `upgrade`).
    pub(crate) upgrade: Option<UpgradeConfig>,
    /// Where inherited listeners came from, for the report.
    pub(crate) listeners_note: Option<String>,
    /// The PROXY protocol on accept (see `proxy_protocol`).
    pub(crate) proxy: Option<Arc<super::proxy::ProxyProtocol>>,
    /// The server-wide connection cap (see `max_connections`).
    pub(crate) max_connections: Option<usize>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            placement: Placement::OnePerCpu,
            ring: RingConfig::default(),
            driver: None,
            net: NetConfig::default(),
            mesh_capacity: 1024,
            blocking: None,
            drain_timeout: Duration::from_secs(30),
            handle_signals: false,
            print_report: false,
            admin: None,
            stall_threshold: Duration::from_millis(100),
            steering: Steering::ReusePort,
            takeover_threshold: None,
            unhealthy_after: Duration::from_secs(10),
            mesh_timeout: Duration::from_secs(5),
            abort_after: None,
            early_fallbacks: Vec::new(),
            on_shard_start: InitHook::default(),
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            plain_listen: None,
            drain_delay: Duration::from_secs(5),
            inherited: None,
            inherited_admin: None,
            upgrade: None,
            listeners_note: None,
            proxy: None,
            max_connections: None,
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

    /// The I/O driver (see [`DriverChoice`]). Default: `PERCORE_DRIVER` when set, else
    /// `auto` (io_uring where it works, epoll otherwise, with the reason in the report).
    pub fn driver(mut self, choice: DriverChoice) -> Self {
        self.driver = Some(choice);
        self
    }

    /// The driver choice in effect: the builder's, `PERCORE_DRIVER`'s, or `auto`.
    pub(crate) fn driver_choice(&self) -> Result<DriverChoice, Error> {
        match self.driver {
            Some(choice) => Ok(choice),
            None => Ok(DriverChoice::from_env()?.unwrap_or_default()),
        }
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

    /// Serve `GET /metrics` (Prometheus text, every shard), `GET /healthz` and
    /// `GET /debug/shards` on `addr`, from a thread of its own (so it answers while a shard
    /// is stuck). Default off.
    pub fn admin(mut self, addr: SocketAddr) -> Self {
        self.admin = Some(addr);
        self
    }

    /// How new connections are spread over the shards (see [`Steering`]). Default
    /// `ReusePort`. In every mode a shard whose loop iteration runs past the
    /// [`takeover_threshold`](Self::takeover_threshold) gets no new connections until it
    /// recovers, and connections queued on its listeners meanwhile are taken by a healthy
    /// shard.
    pub fn steering(mut self, steering: Steering) -> Self {
        self.steering = steering;
        self
    }

    /// A loop iteration longer than this counts as a stall: it is counted and logged.
    /// Default 100 ms.
    pub fn stall_threshold(mut self, threshold: Duration) -> Self {
        self.stall_threshold = threshold;
        self
    }

    /// A shard whose loop iteration has run this long gets no new connections until the
    /// iteration ends, and the connections queued on its listeners are handed to other
    /// shards (in every steering mode). Default: a fifth of the stall threshold, at least
    /// 2 ms; never more than the stall threshold. Time the shard waited for a CPU does not
    /// count.
    pub fn takeover_threshold(mut self, threshold: Duration) -> Self {
        self.takeover_threshold = Some(threshold);
        self
    }

    /// A shard whose loop iteration has been stalled this long is *stuck*: health checks
    /// (the admin listener's `/healthz`, [`crate::metrics::health`]) answer 503 naming it
    /// until it recovers, and `percore_shards_stuck` counts it. Default 10 s.
    pub fn unhealthy_after(mut self, after: Duration) -> Self {
        self.unhealthy_after = after;
        self
    }

    /// Calls through the mesh to a shard whose loop iteration has been stalled this long
    /// fail with [`MeshError::Unavailable`](crate::mesh::MeshError::Unavailable) instead of
    /// waiting (also those already waiting). Default 5 s.
    pub fn mesh_timeout(mut self, timeout: Duration) -> Self {
        self.mesh_timeout = timeout;
        self
    }

    /// End the process with exit status [`EXIT_SHARD_STUCK`](crate::server::EXIT_SHARD_STUCK)
    /// (and one error line naming the shard and what it runs) when a shard has been stalled
    /// this long, so that a supervisor (systemd, Kubernetes) restarts it. Default off.
    ///
    /// The process is the unit of restart because a thread cannot be stopped safely: a
    /// shard stuck in a handler's loop or in a blocking syscall is not at an await point, so
    /// nothing can unwind it, and killing the thread alone would leave its ring, its
    /// connections and any lock it holds half-way.
    pub fn abort_after(mut self, after: Option<Duration>) -> Self {
        self.abort_after = after;
        self
    }

    /// Every stall limit in effect.
    pub(crate) fn stall_limits(&self) -> super::watchdog::StallLimits {
        super::watchdog::StallLimits {
            threshold: self.stall_threshold,
            takeover: self.takeover(),
            unhealthy_after: self.unhealthy_after,
            mesh_timeout: self.mesh_timeout,
            abort_after: self.abort_after,
        }
    }

    /// The takeover threshold in effect.
    pub(crate) fn takeover(&self) -> Duration {
        self.takeover_threshold
            .unwrap_or_else(|| (self.stall_threshold / 5).max(Duration::from_millis(2)))
            .min(self.stall_threshold)
    }

    /// The per-shard init hook: runs exactly once on every shard, on the shard's thread,
    /// before the shard serves anything (before `serve`'s listener accepts, before
    /// `start`'s setup). It may build the shard's state ([`PerShard`](crate::PerShard)),
    /// register metrics, and spawn tasks: what it spawns (and what those tasks spawn) are
    /// the shard's **background tasks**, cancelled when the graceful stop begins (see
    /// [`spawn_background`](crate::task::spawn_background)). An error stops the start and
    /// is returned by `serve`/`start`. Works with every steering mode, with
    /// [`serve`](Self::serve) (port 0 and `listen_addr()` included), with
    /// [`start`](Self::start), and with services built on them (`percore_http::service::serve`).
    /// Default: none.
    pub fn on_shard_start<F>(mut self, init: F) -> Self
    where
        F: Fn(ShardInfo) -> Result<(), Error> + Send + Sync + 'static,
    {
        self.on_shard_start = InitHook(Some(Arc::new(init)));
        self
    }

    /// Join a port that a socket outside this server already listens on (`SO_REUSEPORT`
    /// sharing: both then take part of the connections). Default off: binding such a port
    /// fails with [`Error::Bind`] (`AddrInUse`) naming the address. The shards of one
    /// server share their port either way. Same as
    /// [`NetConfig::reuse_port_shared`](crate::NetConfig::reuse_port_shared).
    pub fn reuse_port_shared(mut self, on: bool) -> Self {
        self.net.reuse_port_shared = on;
        self
    }

    /// Accepted connections the whole server holds at most, all shards together (open, or
    /// queued for `accept()`). Default: no server-wide cap (see
    /// [`NetConfig::max_connections_per_shard`](crate::NetConfig::max_connections_per_shard)
    /// for the per-shard one; both may be set). At least the number of shards: the server
    /// fails to start with [`Error::Config`] below it.
    ///
    /// The policy is the per-shard cap's: **stop accepting and let the listen backlog
    /// hold**. The count is one atomic shared by the shards, changed when accepts are armed
    /// or end without a connection and when a connection closes, never per request; a
    /// shard that found no room is told by the shard that frees a slot, so clients waiting
    /// in any shard's backlog are accepted in turn. Accepts waiting on an idle shard hold
    /// at most one slot per shard near the cap.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }

    /// How long the listeners stay open after a stop is *announced* (SIGTERM with
    /// [`handle_signals`](Self::handle_signals), the admin listener's `POST /drain`,
    /// [`ServerHandle::announce_stop`]) before the graceful stop begins. Health checks
    /// answer 503 from the announcement on, so a load balancer takes the instance out
    /// before it stops accepting. Default 5 s; zero stops at once.
    /// [`ServerHandle::stop`] does not wait for it.
    pub fn drain_delay(mut self, delay: Duration) -> Self {
        self.drain_delay = delay;
        self
    }

    /// Serves these listening sockets (systemd socket activation, `--listen-fd`, a hot
    /// restart's predecessor) instead of binding the address given to
    /// [`serve`](Self::serve); see [`activation`](super::activation) for how they are
    /// spread over the shards. An admin socket among them replaces binding the
    /// [`admin`](Self::admin) address.
    pub fn inherit(mut self, mut listeners: InheritedListeners) -> Self {
        if let Some((fd, _)) = listeners.admin.take() {
            self.inherited_admin = Some(Arc::new(Mutex::new(Some(fd))));
        }
        self.inherited = Some(Arc::new(Mutex::new(Some(listeners))));
        self
    }

    /// Offers this server's listening sockets to a successor process over the Unix socket
    /// `config.socket` (hot restart; see [`upgrade`](super::upgrade)). Only
    /// [`serve`](Self::serve) takes part. Default off.
    pub fn upgrade(mut self, config: UpgradeConfig) -> Self {
        self.upgrade = Some(config);
        self
    }

    /// Accept the PROXY protocol (v1 and v2) from the peers in `config.from`, on the
    /// connections [`serve`](Self::serve) accepts; see [`proxy`](super::proxy). Their
    /// handlers see the real client in [`TcpStream::client_addr`]. Default off.
    pub fn proxy_protocol(mut self, config: super::proxy::ProxyProtocol) -> Self {
        self.proxy = Some(Arc::new(config));
        self
    }

    /// The inherited sockets, taken (a second call answers `None`).
    pub(crate) fn take_inherited(&self) -> Option<InheritedListeners> {
        self.inherited
            .as_ref()
            .and_then(|slot| slot.lock().unwrap_or_else(|p| p.into_inner()).take())
    }

    /// The inherited admin listener, taken (a second call answers `None`).
    pub(crate) fn take_inherited_admin(&self) -> Option<OwnedFd> {
        self.inherited_admin
            .as_ref()
            .and_then(|slot| slot.lock().unwrap_or_else(|p| p.into_inner()).take())
    }

    /// Print the startup report to stderr. Default off.
    pub fn print_report(mut self, on: bool) -> Self {
        self.print_report = on;
        self
    }

    /// Starts the shards. `setup` runs once on each shard, inside it (so it may bind
    /// listeners); it returns the shard's main future, or an error that stops the start.
    /// Returns once every shard is running. `setup` is shared by the shard threads: state
    /// that is not `Send` is made inside it or kept in a [`PerShard`](crate::PerShard).
    pub fn start<F, Fut>(self, setup: F) -> Result<ServerHandle, Error>
    where
        F: Fn(ShardInfo) -> Result<Fut, Error> + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let control = Arc::new(ServerControl::new(self.drain_timeout, self.drain_delay));
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let acceptor = tls.acceptor.clone();
            control.on_reload(Box::new(move || match acceptor.reload() {
                Ok(()) => tracing::warn!("SIGHUP: TLS certificates reloaded"),
                Err(e) => {
                    tracing::error!("SIGHUP: TLS reload failed, the old certificates stay: {e}")
                }
            }));
        }
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
    /// accepted connection, steering connections as [`steering`](Self::steering) says.
    /// Returns once every shard is listening. Port 0 picks one free port for all shards;
    /// [`ServerHandle::listen_addr`] tells which. A port another socket already listens on
    /// is refused (see [`reuse_port_shared`](Self::reuse_port_shared)), after waiting up to
    /// 2 s for it to go away: the listener of a process killed a moment ago lives on until
    /// the kernel has freed that process's io_uring.
    ///
    /// `handler` is shared by every shard thread (`Send + Sync`), so an `Rc` or `RefCell`
    /// captured in it "cannot be sent between threads safely": per-shard state belongs in a
    /// [`PerShard`](crate::PerShard), set up by [`on_shard_start`](Self::on_shard_start)
    /// (which may also spawn the shard's periodic tasks). On a graceful
    /// stop, the listeners close, background tasks are cancelled, `shutdown_signal`
    /// completes, and connection tasks are waited for until the drain timeout.
    ///
    /// The listeners are bound here, in shard order, before the shards start: a reuseport
    /// group numbers its sockets in the order they join, and the `cpu` program needs socket
    /// `i` to be shard `i`'s.
    pub fn serve<H, Fut>(mut self, addr: SocketAddr, handler: H) -> Result<ServerHandle, Error>
    where
        H: Fn(TcpStream) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let cpus = super::placement::resolve(&self.placement)?;
        if let Some(inherited) = self.take_inherited() {
            return super::activation::serve_inherited(self, &cpus, inherited, handler);
        }
        let (fds, addr) = crate::net::listener::bind_listeners(
            addr,
            cpus.len(),
            &self.net,
            crate::net::listener::RESTART_PATIENCE,
        )
        .map_err(|source| Error::Bind { addr, source })?;
        if self.steering == Steering::Cpu {
            self.attach_cpu_program(&fds[0], &cpus);
        }
        let handover = self.handover_of(&fds)?;
        // Bound before the shards start, so a bad path stops the start.
        let upgrade_socket = match &self.upgrade {
            Some(config) => Some(super::upgrade::bind_unix(&config.socket)?),
            None => None,
        };
        let fds: Arc<Mutex<Vec<Option<OwnedFd>>>> =
            Arc::new(Mutex::new(fds.into_iter().map(Some).collect()));
        let front = self.front();
        #[cfg(feature = "tls")]
        let plain_front = Front {
            tls: None,
            ..front.clone()
        };
        #[cfg(feature = "tls")]
        let (plain_fds, plain_addr) = match (&front.tls, self.plain_listen) {
            (Some(_), Some(plain)) => {
                let (fds, bound) = crate::net::listener::bind_listeners(
                    plain,
                    cpus.len(),
                    &self.net,
                    crate::net::listener::RESTART_PATIENCE,
                )
                .map_err(|source| Error::Bind {
                    addr: plain,
                    source,
                })?;
                let fds: Vec<Option<OwnedFd>> = fds.into_iter().map(Some).collect();
                (Arc::new(Mutex::new(fds)), Some(bound))
            }
            _ => (Arc::new(Mutex::new(Vec::new())), None),
        };
        let mut handle = self.clone().start(move |info| {
            let fd = fds
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(info.id)
                .and_then(Option::take)
                .ok_or_else(|| Error::Config(format!("no listener bound for shard {}", info.id)))?;
            let listener =
                TcpListener::from_listening(fd).map_err(|source| Error::Bind { addr, source })?;
            let handler = handler.clone();
            #[cfg(feature = "tls")]
            let plain = plain_fds
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(info.id)
                .and_then(Option::take)
                .map(TcpListener::from_listening)
                .transpose()
                .map_err(|source| Error::Bind { addr, source })?
                .map(|l| (l, plain_front.clone()));
            #[cfg(not(feature = "tls"))]
            let plain: Option<(TcpListener, Front)> = None;
            let front = front.clone();
            Ok(async move {
                let plain = plain
                    .map(|(l, front)| crate::task::spawn(accept_loop(l, handler.clone(), front)));
                accept_loop(listener, handler, front).await;
                if let Some(plain) = plain {
                    let _ = plain.await;
                }
            })
        })?;
        handle.set_listen_addr(addr);
        #[cfg(feature = "tls")]
        if let Some(plain) = plain_addr {
            handle.set_plain_listen_addr(plain);
        }
        handle.offer_upgrade(&self, handover, upgrade_socket);
        Ok(handle)
    }

    /// `cpu` steering: attaches the program to the reuseport group of `fd`, or falls back to
    /// `reuseport` with the reason in the report.
    pub(crate) fn attach_cpu_program(&mut self, fd: &OwnedFd, cpus: &[Option<usize>]) {
        let program = cpu_program(cpus);
        if let Err(e) = sys::steer::attach_reuseport_cbpf(fd.as_raw_fd(), &program) {
            self.cpu_fallback(format!(
                "cpu steering: the kernel refused the reuseport cBPF program ({e}); connections are spread by the reuseport hash instead"
            ));
        }
    }

    pub(crate) fn cpu_fallback(&mut self, line: String) {
        tracing::warn!("{line}");
        self.early_fallbacks.push(line);
        self.steering = Steering::ReusePort;
    }

    /// Duplicates of the listening sockets, kept to hand to a successor when
    /// [`upgrade`](Self::upgrade) is set.
    pub(crate) fn handover_of(
        &self,
        fds: &[OwnedFd],
    ) -> Result<Option<super::upgrade::Handover>, Error> {
        if self.upgrade.is_none() {
            return Ok(None);
        }
        let service = fds
            .iter()
            .map(|fd| sys::inherit::dup(std::os::fd::AsFd::as_fd(fd)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::io("keeping the listeners for a hot restart", e))?;
        Ok(Some(super::upgrade::Handover {
            service,
            admin: None,
        }))
    }
}

/// What every accepted connection passes before its handler, in this order: the PROXY
/// protocol check (when configured) and the TLS handshake (when configured). The same for
/// bound and inherited listeners.
#[derive(Clone, Default)]
pub(crate) struct Front {
    pub(crate) proxy: Option<Arc<super::proxy::ProxyProtocol>>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::net::tls::TlsAcceptor>,
}

impl Front {
    fn is_plain(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return false;
        }
        self.proxy.is_none()
    }

    async fn admit<H, Fut>(self, stream: TcpStream, handler: H)
    where
        H: Fn(TcpStream) -> Fut,
        Fut: Future<Output = ()>,
    {
        let stream = match &self.proxy {
            Some(config) => match super::proxy::admit(stream, config).await {
                Some(stream) => stream,
                None => return,
            },
            None => stream,
        };
        #[cfg(feature = "tls")]
        if let Some(acceptor) = self.tls {
            crate::net::tls::serve_connection(stream, acceptor, handler).await;
            return;
        }
        handler(stream).await;
    }
}

impl ServerBuilder {
    /// The front every connection `serve` accepts passes (see [`Front`]).
    pub(crate) fn front(&self) -> Front {
        Front {
            proxy: self.proxy.clone(),
            #[cfg(feature = "tls")]
            tls: self.tls.as_ref().map(|t| t.acceptor.clone()),
        }
    }
}

/// Accepts until the listener stops (graceful stop), spawning one task per connection
/// (which first passes the connection's [`Front`]: PROXY header, TLS handshake).
pub(crate) async fn accept_loop<H, Fut>(listener: TcpListener, handler: H, front: Front)
where
    H: Fn(TcpStream) -> Fut + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    loop {
        match listener.accept().await {
            Ok(stream) if front.is_plain() => {
                crate::task::spawn(handler(stream));
            }
            Ok(stream) => {
                crate::task::spawn(front.clone().admit(stream, handler.clone()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => return,
            Err(e) => tracing::warn!("accept failed: {e}"),
        }
    }
}

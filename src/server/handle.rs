//! `ServerHandle`: stop the server, wait for it, read its per-shard statistics.

use std::{
    os::{fd::OwnedFd, unix::net::UnixListener},
    sync::{Arc, atomic::Ordering, mpsc},
    thread::JoinHandle,
    time::Duration,
};

use super::{control::ServerControl, report::StartupReport};
use crate::{
    blocking::BlockingPool,
    error::Error,
    mesh::MeshShared,
    metrics::ShardStats,
    net::{ShardLoadStats, Steering, steer::SteerShared},
};

/// A running server. Dropping the handle does not stop it; call [`stop`](Self::stop) and
/// [`join`](Self::join).
pub struct ServerHandle {
    control: Arc<ServerControl>,
    threads: Vec<JoinHandle<Result<(), Error>>>,
    blocking: BlockingPool,
    report: StartupReport,
    mesh: Arc<MeshShared>,
    steer: Arc<SteerShared>,
    /// Helper threads (stall detector, signals) that end with the shards.
    helpers: Vec<Option<JoinHandle<()>>>,
    listen_addr: Option<std::net::SocketAddr>,
    plain_listen_addr: Option<std::net::SocketAddr>,
    /// A duplicate of the admin listener, kept to hand to a successor (hot restart).
    admin_dup: Option<OwnedFd>,
}

impl ServerHandle {
    pub(crate) fn new(
        control: Arc<ServerControl>,
        threads: Vec<JoinHandle<Result<(), Error>>>,
        blocking: BlockingPool,
        report: StartupReport,
        mesh: Arc<MeshShared>,
        steer: Arc<SteerShared>,
        helpers: Vec<Option<JoinHandle<()>>>,
    ) -> Self {
        ServerHandle {
            control,
            threads,
            blocking,
            report,
            mesh,
            steer,
            helpers,
            listen_addr: None,
            plain_listen_addr: None,
            admin_dup: None,
        }
    }

    pub(crate) fn set_admin_dup(&mut self, fd: Option<OwnedFd>) {
        self.admin_dup = fd;
    }

    /// Starts offering the listeners to a successor when the builder says so (see
    /// [`upgrade`](super::upgrade)). `bound`: the upgrade socket, bound before the start;
    /// `None` binds it now (a successor binds its predecessor's path once it took over:
    /// a failure then leaves hot restart off, with a warning, while the server serves).
    pub(crate) fn offer_upgrade(
        &mut self,
        builder: &super::ServerBuilder,
        handover: Option<super::upgrade::Handover>,
        bound: Option<UnixListener>,
    ) {
        let (Some(config), Some(mut handover)) = (builder.upgrade.as_ref(), handover) else {
            return;
        };
        handover.admin = self.admin_dup.take();
        let listener = match bound {
            Some(listener) => listener,
            None => match super::upgrade::bind_unix(&config.socket) {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!("hot restart is off: {e}");
                    return;
                }
            },
        };
        match super::upgrade::spawn_listener(config, listener, handover, self.control.clone()) {
            Ok(thread) => self.helpers.push(Some(thread)),
            Err(e) => tracing::warn!("hot restart is off: {e}"),
        }
    }

    pub(crate) fn set_listen_addr(&mut self, addr: std::net::SocketAddr) {
        self.listen_addr = Some(addr);
    }

    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn set_plain_listen_addr(&mut self, addr: std::net::SocketAddr) {
        self.plain_listen_addr = Some(addr);
    }

    /// The plaintext listener beside a TLS one (`ServerBuilder::listen_plain`), bound.
    pub fn plain_listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.plain_listen_addr
    }

    /// The address [`ServerBuilder::serve`](super::ServerBuilder::serve) listens on, with the
    /// real port when it was given port 0.
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen_addr
    }

    /// What the server found and uses: kernel, ring features, fallbacks, shard → CPU map.
    pub fn report(&self) -> &StartupReport {
        &self.report
    }

    /// Graceful stop: listeners stop accepting, open connections get the drain timeout to
    /// finish, then are closed.
    pub fn stop(&self) {
        self.control.request_stop();
    }

    /// Announces a stop, as SIGTERM does: health checks answer 503 at once, the listeners
    /// stay open for the [drain delay](super::ServerBuilder::drain_delay), then the
    /// graceful stop begins. False when a stop was already announced or requested.
    pub fn announce_stop(&self) -> bool {
        self.control.announce_stop()
    }

    /// Where the server is in its life (starting, serving, draining), as health checks
    /// report it.
    pub fn lifecycle(&self) -> crate::metrics::Lifecycle {
        self.control.readiness.get()
    }

    /// Stop with a drain deadline of at most `within` (zero: close everything now).
    pub fn stop_within(&self, within: Duration) {
        self.control.stop_within(within);
    }

    /// True while at least one shard still runs.
    pub fn is_running(&self) -> bool {
        self.control.running_shards.load(Ordering::SeqCst) > 0
    }

    /// A snapshot of every shard's counters, gathered through each shard's inbox (so it
    /// reflects the shard between two loop iterations). Shards that do not answer within
    /// `timeout` are left out.
    pub fn shard_stats(&self, timeout: Duration) -> Vec<ShardStats> {
        let (tx, rx) = mpsc::channel();
        let mut asked = 0;
        for target in 0..self.report.shards {
            let tx = tx.clone();
            if self.mesh.post_from_outside(
                target,
                Box::new(move || {
                    let _ = tx.send(crate::metrics::stats());
                }),
            ) {
                asked += 1;
            }
        }
        drop(tx);
        let deadline = std::time::Instant::now() + timeout;
        let mut stats = Vec::with_capacity(asked);
        while stats.len() < asked {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(s) => stats.push(s),
                Err(_) => break,
            }
        }
        stats.sort_by_key(|s: &ShardStats| s.shard);
        stats
    }

    /// Runs `f` on shard `shard`, in its mesh phase, without waiting for it: for work an
    /// embedding program does on a shard from outside (maintenance, diagnostics). False when
    /// the shard's inbox is full or the shard has stopped. `f` holds the shard while it
    /// runs, like any handler.
    pub fn run_on_shard(&self, shard: usize, f: impl FnOnce() + Send + 'static) -> bool {
        self.mesh.post_from_outside(shard, Box::new(f))
    }

    /// Every shard's steering state: connections placed on it, whether it is stalled now,
    /// its current loop lag, connections taken from it while stalled. Read from shared
    /// atomics, so it answers even while a shard is stalled (unlike
    /// [`shard_stats`](Self::shard_stats)).
    pub fn shard_loads(&self) -> Vec<ShardLoadStats> {
        self.steer.snapshot()
    }

    /// The steering mode in effect (`ReusePort` when `Cpu` fell back).
    pub fn steering(&self) -> Steering {
        self.steer.mode
    }

    /// Waits until every shard has stopped; the first shard error, if any, is returned.
    pub fn join(mut self) -> Result<(), Error> {
        let mut first_error = None;
        for thread in self.threads.drain(..) {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(Error::Config(
                        "a shard thread panicked outside any task".into(),
                    ));
                }
            }
        }
        self.blocking.shutdown(Duration::from_secs(1));
        for helper in self.helpers.drain(..).flatten() {
            let _ = helper.join();
        }
        first_error.map_or(Ok(()), Err)
    }
}

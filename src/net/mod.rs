//! Connections and listeners for async code, built on the ring: bounded accepts, multishot
//! receive into the shard's provided buffers, one batched send per connection per iteration.
//!
//! Reads are cancellation-safe: received bytes wait in the connection's receive queue, so
//! dropping a read future loses nothing. An idle connection holds no receive buffer.

#![forbid(unsafe_code)]

pub(crate) mod caps;
mod conn;
mod connect;
mod dispatch;
pub(crate) mod listener;
pub mod proxy_protocol;
mod state;
pub(crate) mod steer;
mod stream;
mod table;
#[cfg(feature = "tls")]
pub mod tls;
mod tls_stats;

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    rc::Rc,
    sync::Arc,
    time::Duration,
};

pub(crate) use self::dispatch::{
    after_run, close_phase, force_close_all, has_starved, is_quiet, on_accept, on_recv, on_send,
    stop_listening,
};
use self::{conn::Conn, listener::ListenerTable, table::ConnTable};
pub use self::{
    listener::TcpListener,
    steer::{ShardLoadStats, Steering},
    stream::TcpStream,
    tls_stats::{TLS_FAILURE_REASONS, TlsStats},
};
use crate::task::{Core, local::ShardLocal};

/// Per-shard networking limits. Defaults follow nginx/HAProxy practice.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Received bytes a connection may hold unread before its receive is paused (TCP then
    /// pushes back on the peer). Default 64 KiB.
    pub recv_buffered_max: usize,
    /// Output a connection may hold unsent before `write_all` waits. Default 64 KiB.
    pub send_high_watermark: usize,
    /// How long accepting pauses after EMFILE/ENFILE before it is retried. Default 100 ms.
    pub accept_backoff: Duration,
    /// Accepted connections queued for `accept()` at most, a hard bound: accepting pauses
    /// (clients wait in the listen backlog) while accepted plus in-flight accepts reach it.
    /// Connections handed over by another shard (`balanced` steering, a stall takeover) are
    /// queued even beyond it. At least 1. Default 1024.
    pub accept_queue_max: usize,
    /// Accepted connections one shard holds at most (open, or queued for `accept()`), or
    /// `None` (the default) for no cap of its own: then the bound is the open-files limit
    /// (`ulimit -n`, see `accept_backoff`) and the server-wide cap
    /// (`ServerBuilder::max_connections`) if set. At least 1.
    ///
    /// Policy at the cap: **stop accepting and let the listen backlog hold.** Each accept
    /// in flight holds a slot under the cap, so a shard never accepts past it; clients
    /// beyond it wait in the kernel's listen backlog (`listen_backlog`) and are accepted in
    /// turn as connections close, none accepted and then closed or left waiting. Times
    /// accepting paused at a cap are counted (`NetStats::accept_paused_at_cap`). The only
    /// connections counted beyond it are ones accepted already and placed here by another
    /// shard (`balanced` steering, a stall takeover). Outbound connections do not count.
    pub max_connections_per_shard: Option<usize>,
    /// Listen backlog. Default 4096.
    pub listen_backlog: i32,
    /// TCP_NODELAY on accepted and connected sockets. Default true.
    pub nodelay: bool,
    /// Join a port another socket already listens on (`SO_REUSEPORT` sharing with another
    /// process or server, which then takes part of the connections). Default false: binding
    /// such a port fails with `EADDRINUSE` naming the address. The shards of one server
    /// share their port either way.
    pub reuse_port_shared: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            recv_buffered_max: 64 * 1024,
            send_high_watermark: 64 * 1024,
            accept_backoff: Duration::from_millis(100),
            accept_queue_max: 1024,
            max_connections_per_shard: None,
            listen_backlog: 4096,
            nodelay: true,
            reuse_port_shared: false,
        }
    }
}

/// Connection counters of one shard.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetStats {
    /// Connections from a listener this shard served: accepted here, or handed in by
    /// another shard or the stall detector.
    pub accepted: u64,
    pub connected: u64,
    /// Connections released, all reasons together.
    pub closed: u64,
    /// ... after the peer closed its side (EOF).
    pub closed_by_peer: u64,
    /// ... after a receive or send error (reset, broken pipe, ...).
    pub closed_on_error: u64,
    /// ... by a forced stop (drain deadline passed).
    pub closed_forced: u64,
    /// ... because the service dropped the connection on its own.
    pub closed_locally: u64,
    pub open: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Multishot receives that ended with ENOBUFS (the buffer ring ran dry).
    pub enobufs: u64,
    /// Multishot operations re-armed after ending without `IORING_CQE_F_MORE`.
    pub rearms: u64,
    /// Accept errors for lack of file descriptors (EMFILE/ENFILE).
    pub accept_fd_exhausted: u64,
    /// Receives paused because a connection's unread input reached its cap.
    pub recv_paused: u64,
    /// Accepted connections counted against the connection caps now (open or queued for
    /// `accept()`); 0 when no cap is set.
    pub capped: usize,
    /// Times a listener's accepting paused at a connection cap (no accept left in flight).
    pub accept_paused_at_cap: u64,
    /// Accepted connections this shard placed on another shard (`balanced` steering).
    pub handed_out: u64,
    /// Connections another shard, or the stall detector, placed on this shard.
    pub handed_in: u64,
    /// Handshakes, their failures by reason, kernel TLS hand-overs.
    pub tls: TlsStats,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<NetShard>>> = const { RefCell::new(None) };
}

/// The networking state of the shard this thread runs.
pub(crate) static NET: ShardLocal<NetShard> = ShardLocal::new(&CURRENT);

/// One shard's networking: its connections and listeners, the lists the loop phases work
/// through, and the executor core whose driver carries its I/O.
pub(crate) struct NetShard {
    pub(crate) core: Rc<Core>,
    pub(crate) config: NetConfig,
    /// The shard is stopping: listeners made now do not accept.
    pub(crate) draining: Cell<bool>,
    pub(crate) conns: RefCell<ConnTable>,
    pub(crate) listeners: RefCell<ListenerTable>,
    /// Connections holding lent receive buffers or with output to send: the after-run
    /// pass goes through them once per iteration.
    pub(crate) touched: RefCell<Vec<Rc<Conn>>>,
    pub(crate) starved: RefCell<VecDeque<Rc<Conn>>>,
    pub(crate) closing: RefCell<Vec<Rc<Conn>>>,
    pub(crate) stats: RefCell<NetStats>,
    /// Steering state shared with every shard and the stall detector.
    pub(crate) steer: Arc<steer::SteerShared>,
    pub(crate) shard_id: usize,
    /// The connection caps; `None` when none is set (see `caps`).
    pub(crate) caps: Option<caps::ShardCaps>,
    #[cfg(feature = "tls")]
    pub(crate) tls: tls::ShardTls,
}

impl NetShard {
    pub(crate) fn new(core: Rc<Core>, config: NetConfig, steer: Arc<steer::SteerShared>) -> Self {
        let shard_id = core.id;
        let caps = caps::ShardCaps::new(
            config.max_connections_per_shard.map(|n| n.max(1)),
            steer.global_cap.is_some(),
        );
        NetShard {
            core,
            config,
            draining: Cell::new(false),
            conns: RefCell::new(ConnTable::new(steer.clone(), shard_id)),
            listeners: RefCell::default(),
            touched: RefCell::default(),
            starved: RefCell::default(),
            closing: RefCell::default(),
            stats: RefCell::default(),
            steer,
            shard_id,
            caps,
            #[cfg(feature = "tls")]
            tls: tls::ShardTls::default(),
        }
    }

    /// Counts `n` connections placed on this shard (queued, handed in or opened).
    pub(crate) fn count_placed(&self, n: u64) {
        if let Some(load) = self.steer.load(self.shard_id) {
            load.add(n);
        }
    }

    /// Counts `n` placed connections released before they became open connections.
    pub(crate) fn count_unplaced(&self, n: u64) {
        if let Some(load) = self.steer.load(self.shard_id) {
            load.sub(n);
        }
    }

    pub(crate) fn count(&self, f: impl FnOnce(&mut NetStats)) {
        f(&mut self.stats.borrow_mut());
    }

    pub(crate) fn snapshot(&self) -> NetStats {
        let mut stats = *self.stats.borrow();
        stats.open = self.conns.borrow().open();
        stats.capped = self.caps.as_ref().map_or(0, |c| c.live());
        stats
    }
}

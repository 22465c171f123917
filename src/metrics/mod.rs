//! Per-shard counters, kept in shard-local cells (no shared atomics on the hot path) and
//! read as a snapshot; exposed in the Prometheus text format by the admin listener.

mod admin;
pub mod counters;
pub mod histogram;
pub mod prometheus;

pub(crate) use self::admin::serve_admin;
pub use self::{
    counters::{Counter, ServiceSample, counter},
    histogram::Histogram,
};
use crate::{blocking::BlockingStats, net::NetStats, ring::RingStats};

/// What one shard's loop did.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoopStats {
    /// Loop iterations (each ends in one `io_uring_enter`).
    pub iterations: u64,
    /// Task polls.
    pub tasks_polled: u64,
    /// Busy time of each iteration (everything but the wait in the kernel), µs.
    pub iteration_us: Histogram,
    /// How late timed waits ended, µs.
    pub timer_lag_us: Histogram,
    /// Mesh messages run by this shard.
    pub mesh_received: u64,
    /// Mesh messages this shard sent.
    pub mesh_sent: u64,
}

/// A snapshot of one shard's counters.
#[derive(Clone, Debug, Default)]
pub struct ShardStats {
    pub shard: usize,
    pub cpu: Option<usize>,
    pub ring: RingStats,
    pub net: NetStats,
    pub loop_: LoopStats,
    /// Tasks alive on the shard.
    pub tasks: usize,
    /// Generic io_uring operations not yet completed (connects, ...).
    pub ops_in_flight: usize,
    /// Provided receive buffers currently lent to connections (0 when all are back).
    pub recv_buffers_lent: u32,
    /// Provided receive buffers in all.
    pub recv_buffers_total: u32,
    /// Timers armed.
    pub timers: usize,
    /// Messages waiting in the shard's mesh inbox.
    pub mesh_inbox: usize,
    /// Task and mesh-handler panics contained by the shard.
    pub panics: u64,
    /// Loop iterations the stall detector saw run past its threshold.
    pub stalls: u64,
    /// Connections placed on this shard and not yet released, and whether it is stalled
    /// now (the steering state; see [`crate::Steering`]).
    pub load: crate::ShardLoadStats,
    /// The blocking pool (shared by all shards: the same figures on each).
    pub blocking: BlockingStats,
    /// Counters registered by services on this shard.
    pub service: Vec<ServiceSample>,
}

/// The counters of the current shard.
pub fn stats() -> ShardStats {
    let shard = crate::executor::shard::current();
    let ring = shard.ring.borrow();
    ShardStats {
        shard: shard.id,
        cpu: shard.cpu,
        ring: ring.stats,
        net: shard.net.snapshot(),
        loop_: *shard.loop_stats.borrow(),
        tasks: shard.tasks.borrow().live(),
        ops_in_flight: ring.ops.in_flight(),
        recv_buffers_lent: ring.bufs.lent(),
        recv_buffers_total: u32::from(ring.bufs.count()),
        timers: shard.timers.borrow().len(),
        mesh_inbox: shard.mesh.inbox_len(),
        panics: shard.panics.get(),
        stalls: shard.remote.stalls(),
        load: shard
            .net
            .steer
            .snapshot()
            .get(shard.id)
            .copied()
            .unwrap_or_default(),
        blocking: shard.blocking.stats(),
        service: shard.service_metrics.borrow().snapshot(),
    }
}

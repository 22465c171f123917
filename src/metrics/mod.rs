//! Per-shard counters, kept in shard-local cells (no shared atomics on the hot path) and
//! read as a snapshot.

use crate::{net::NetStats, ring::RingStats};

/// A snapshot of one shard's counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShardStats {
    pub shard: usize,
    pub cpu: Option<usize>,
    pub ring: RingStats,
    pub net: NetStats,
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
        tasks: shard.tasks.borrow().live(),
        ops_in_flight: ring.ops.in_flight(),
        recv_buffers_lent: ring.bufs.lent(),
        recv_buffers_total: u32::from(ring.bufs.count()),
        timers: shard.timers.borrow().len(),
        mesh_inbox: shard.mesh.inbox_len(),
        panics: shard.panics.get(),
    }
}

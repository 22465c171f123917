//! Per-shard counters, kept in shard-local cells (no shared atomics on the hot path) and
//! read as a snapshot; exposed in the Prometheus text format by the admin listener.

#![forbid(unsafe_code)]

mod admin;
pub mod counters;
mod health;
pub mod prometheus;

pub(crate) use self::{
    admin::{AdminHooks, spawn_admin},
    counters::REGISTRY,
    health::{READINESS, Readiness},
};
pub use self::{
    counters::{
        Counter, DEFAULT_BUCKETS, Gauge, GaugeSample, HistogramSample, ServiceHistogram,
        ServiceSample, counter, gauge, histogram,
    },
    health::{Lifecycle, ShardHealth, health, health_check, lifecycle},
};
pub use crate::{histogram::Histogram, task::LoopStats};

/// The log2 histogram of the loop's timings.
pub mod histogram {
    pub use crate::histogram::{BUCKETS, Histogram};
}
use crate::{
    blocking::{BlockingStats, POOL},
    driver::{DriverKind, RingStats},
    mesh::MESH,
    net::{NET, NetStats},
    task::CORE,
    time::TIMERS,
};

/// A snapshot of one shard's counters.
#[derive(Clone, Debug, Default)]
pub struct ShardStats {
    pub shard: usize,
    pub cpu: Option<usize>,
    pub ring: RingStats,
    /// The driver this shard runs on.
    pub driver: DriverKind,
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
    pub load: crate::net::ShardLoadStats,
    /// The blocking pool (shared by all shards: the same figures on each).
    pub blocking: BlockingStats,
    /// Counters registered by services on this shard.
    pub service: Vec<ServiceSample>,
    /// Gauges registered by services on this shard.
    pub service_gauges: Vec<GaugeSample>,
    /// Histograms registered by services on this shard.
    pub service_histograms: Vec<HistogramSample>,
}

/// The counters of the current shard.
///
/// # Panics
/// When called from a thread that runs no shard.
#[track_caller]
pub fn stats() -> ShardStats {
    let core = CORE.current();
    let net = NET.current();
    let driver = core.driver.borrow();
    ShardStats {
        shard: core.id,
        cpu: core.cpu,
        ring: *driver.stats(),
        driver: driver.kind(),
        net: net.snapshot(),
        loop_: *core.stats.borrow(),
        tasks: core.tasks.borrow().live(),
        ops_in_flight: driver.ops().in_flight(),
        recv_buffers_lent: driver.bufs().lent(),
        recv_buffers_total: u32::from(driver.bufs().count()),
        timers: TIMERS.current().armed(),
        mesh_inbox: MESH.current().inbox_len(),
        panics: core.panics.get(),
        stalls: core.remote.stalls(),
        load: net
            .steer
            .snapshot()
            .get(core.id)
            .copied()
            .unwrap_or_default(),
        blocking: POOL.current().stats(),
        service: REGISTRY.current().borrow().snapshot(),
        service_gauges: REGISTRY.current().borrow().gauges(),
        service_histograms: REGISTRY.current().borrow().histograms(),
    }
}

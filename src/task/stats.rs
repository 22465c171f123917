//! What a shard's loop did, counted by the executor and read by `metrics`.

use crate::histogram::Histogram;

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
    /// Idle polls: the shard's last iterations ran or sent mesh messages and, with nothing
    /// else to do, it polled for more work (up to 50 µs) before it would sleep.
    pub idle_polls: u64,
    /// Idle polls that found work (so the shard did not sleep, and its peer sent no wake-up).
    pub idle_poll_hits: u64,
}

//! The stall detector: a thread that notices a shard whose loop iteration has run longer
//! than the threshold (default 100 ms), counts it once per iteration, and logs a warning,
//! at most once a second per shard.
//!
//! Each shard publishes when its current iteration began (`ShardRemote::busy_since`, 0 while
//! it waits in the kernel): two relaxed stores per iteration, the only shared writes of the
//! loop. The watchdog reads them; it never touches a shard's state.

use std::{
    sync::{Arc, OnceLock, atomic::Ordering},
    thread,
    time::{Duration, Instant},
};

use super::remote::ShardRemote;
use crate::server::control::ServerControl;

/// Nanoseconds since the process's first call: the clock of `busy_since`.
pub(crate) fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    // +1 so that 0 can mean "not busy".
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

/// Starts the watchdog; it ends once every shard has stopped.
pub(crate) fn spawn(
    remotes: Vec<Arc<ShardRemote>>,
    control: Arc<ServerControl>,
    threshold: Duration,
) -> std::io::Result<thread::JoinHandle<()>> {
    let period = (threshold / 4).clamp(Duration::from_millis(2), Duration::from_millis(50));
    thread::Builder::new().name("percore-watchdog".into()).spawn(move || {
        let threshold_ns = threshold.as_nanos() as u64;
        let mut counted = vec![0u64; remotes.len()];
        let mut last_warning: Vec<Option<Instant>> = vec![None; remotes.len()];
        while control.running_shards.load(Ordering::SeqCst) > 0 {
            thread::sleep(period);
            let now = now_ns();
            for (i, remote) in remotes.iter().enumerate() {
                let since = remote.busy_since();
                if since == 0 || now.saturating_sub(since) < threshold_ns || counted[i] == since {
                    continue;
                }
                counted[i] = since;
                remote.count_stall();
                if last_warning[i].is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    last_warning[i] = Some(Instant::now());
                    tracing::warn!(
                        shard = remote.id,
                        running_ms = (now - since) / 1_000_000,
                        "shard stalled: one loop iteration has run longer than {threshold:?} (a handler that computes or blocks; move such work to spawn_blocking)"
                    );
                }
            }
        }
    })
}

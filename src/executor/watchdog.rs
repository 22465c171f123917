//! The stall detector: a thread that notices a shard whose loop iteration has run longer
//! than the threshold (default 100 ms), counts it once per iteration, and logs a warning,
//! at most once a second per shard.
//!
//! Each shard publishes when its current iteration began (`ShardRemote::busy_since`, 0 while
//! it waits in the kernel): two relaxed stores per iteration, the only shared writes of the
//! loop. The watchdog reads them; it never touches a shard's state.
//!
//! A shard that is merely preempted (another process took its CPU) is not stalled by its own
//! work: the time the shard thread spent waiting for a CPU (its run-queue delay, from
//! `/proc/self/task/<tid>/schedstat`) is subtracted before the threshold is applied. Time
//! blocked in a syscall still counts: a handler that blocks stalls its shard as surely as
//! one that computes.

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
        let mut watches = vec![Watch::default(); remotes.len()];
        let mut last_warning: Vec<Option<Instant>> = vec![None; remotes.len()];
        while control.running_shards.load(Ordering::SeqCst) > 0 {
            thread::sleep(period);
            let now = now_ns();
            for (i, remote) in remotes.iter().enumerate() {
                let watch = &mut watches[i];
                let since = remote.busy_since();
                if since == 0 {
                    watch.since = 0;
                    continue;
                }
                if watch.since != since {
                    *watch = Watch { since, delay_at_start: run_delay_ns(remote.tid()), counted: false };
                }
                let wall_ns = now.saturating_sub(since);
                if watch.counted || wall_ns < threshold_ns {
                    continue;
                }
                let waited_ns = match (watch.delay_at_start, run_delay_ns(remote.tid())) {
                    (Some(start), Some(now)) => now.saturating_sub(start),
                    _ => 0,
                };
                if !is_stall(wall_ns, waited_ns, threshold_ns) {
                    continue;
                }
                watch.counted = true;
                remote.count_stall();
                if last_warning[i].is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    last_warning[i] = Some(Instant::now());
                    tracing::warn!(
                        shard = remote.id,
                        running_ms = wall_ns / 1_000_000,
                        waiting_for_cpu_ms = waited_ns / 1_000_000,
                        "shard stalled: one loop iteration has run longer than {threshold:?} (a handler that computes or blocks; move such work to spawn_blocking)"
                    );
                }
            }
        }
    })
}

/// What the watchdog knows of one shard's current iteration.
#[derive(Clone, Copy, Default)]
struct Watch {
    /// The iteration's `busy_since`; 0 while the shard waits.
    since: u64,
    /// The shard thread's run-queue delay when the watchdog first saw this iteration.
    delay_at_start: Option<u64>,
    /// Already counted as a stall (once per iteration).
    counted: bool,
}

fn run_delay_ns(tid: i32) -> Option<u64> {
    if tid == 0 {
        None
    } else {
        crate::sys::cpu::run_delay_ns(tid)
    }
}

/// An iteration is a stall when the time it ran or blocked on its own, not counting the time
/// it waited for a CPU, reaches the threshold.
fn is_stall(wall_ns: u64, waited_for_cpu_ns: u64, threshold_ns: u64) -> bool {
    wall_ns.saturating_sub(waited_for_cpu_ns) >= threshold_ns
}

#[cfg(test)]
mod tests {
    use super::is_stall;

    const MS: u64 = 1_000_000;

    #[test]
    fn time_waiting_for_a_cpu_is_not_a_stall() {
        assert!(
            is_stall(300 * MS, 0, 100 * MS),
            "computing or blocking 300 ms"
        );
        assert!(
            !is_stall(300 * MS, 250 * MS, 100 * MS),
            "preempted for 250 of 300 ms"
        );
        assert!(
            is_stall(300 * MS, 150 * MS, 100 * MS),
            "150 ms of its own is still a stall"
        );
        assert!(!is_stall(50 * MS, 0, 100 * MS));
    }
}

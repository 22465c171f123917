//! The stall detector: a thread that notices a shard whose loop iteration has run longer
//! than the threshold (default 100 ms), counts it once per iteration, and logs a warning
//! (again at 1 s, 10 s, 60 s and every minute while it lasts).
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
//!
//! Steering acts sooner than the report: a shard whose current iteration has run past the
//! *takeover* threshold (default a fifth of the stall threshold, at least 2 ms) is marked in
//! the shared steering state, so no shard places a new connection on it, and while the mark
//! lasts the watchdog polls its listeners and takes the connections that queue there,
//! handing each to a healthy shard through the mesh. A new connection then waits at most
//! about the takeover threshold behind a computing handler, not the whole computation.
//!
//! While a stall lasts the detector says so, every round, without waiting for the iteration
//! to end: it publishes how long the shard has been stalled (`StallState`, read by the
//! metrics, the health checks and the mesh), marks it *stuck* past `unhealthy_after` (health
//! checks answer 503) and *unavailable* past the mesh timeout (calls to it fail), and logs
//! the stall when it is found and again at 1 s, 10 s, 60 s and each minute after, naming the
//! route or task the shard runs when the service labelled it. Past `abort_after` (off by
//! default) it ends the process with [`EXIT_SHARD_STUCK`]: a thread stuck in user code
//! cannot be stopped safely from outside (nothing unwinds it, and killing it would leave its
//! locks, its ring and its connections half-way), so the process is the unit of restart.

use std::{
    sync::{Arc, atomic::Ordering},
    thread,
    time::{Duration, Instant},
};

use super::control::ServerControl;
use crate::{
    mesh::MeshShared,
    net::{
        listener::deliver_here,
        steer::{SteerShared, Takeover},
    },
    sys::cpu::ThreadSched,
    task::remote::{ShardRemote, now_ns},
};

/// The exit status of a process ended because a shard stayed stuck past `abort_after`
/// (`EX_TEMPFAIL`: a supervisor should start it again).
pub const EXIT_SHARD_STUCK: i32 = 75;

/// How long a stall may last before each consequence.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StallLimits {
    /// Counted and logged past this.
    pub(crate) threshold: Duration,
    /// No new connections past this.
    pub(crate) takeover: Duration,
    /// Health checks fail past this.
    pub(crate) unhealthy_after: Duration,
    /// Mesh calls to the shard fail past this.
    pub(crate) mesh_timeout: Duration,
    /// The process exits past this, when set.
    pub(crate) abort_after: Option<Duration>,
}

/// Starts the watchdog; it ends once every shard has stopped.
pub(crate) fn spawn(
    remotes: Vec<Arc<ShardRemote>>,
    control: Arc<ServerControl>,
    limits: StallLimits,
    steer: Arc<SteerShared>,
    mesh: Arc<MeshShared>,
) -> std::io::Result<thread::JoinHandle<()>> {
    let threshold = limits.threshold;
    let takeover = limits.takeover.min(threshold);
    // At most 10 ms, so the loop lag that balanced placement reads stays fresh.
    let period = (takeover / 4).clamp(Duration::from_millis(1), Duration::from_millis(10));
    thread::Builder::new()
        .name("percore-watchdog".into())
        .spawn(move || {
            let mut detector = Detector {
                threshold_ns: threshold.as_nanos() as u64,
                takeover_ns: takeover.as_nanos() as u64,
                threshold,
                limits,
                watches: vec![Watch::default(); remotes.len()],
                lag_peaks: vec![(0, Instant::now()); remotes.len()],
            };
            let mut takeover = TakeoverState::default();
            while control.running_shards.load(Ordering::SeqCst) > 0 {
                // While a shard is stalled, the wait is a poll on its listeners, so a
                // connection queued there is taken the moment it arrives.
                if !takeover.run(&steer, &mesh, period) {
                    thread::sleep(period);
                }
                for (i, remote) in remotes.iter().enumerate() {
                    detector.check(i, remote, &steer);
                    if detector.became_unavailable(i) {
                        mesh.fail_calls_to(i);
                    }
                }
            }
        })
}

/// The stall detector's view of every shard.
struct Detector {
    threshold_ns: u64,
    /// Iteration age past which the shard gets no new connections (≤ the stall threshold).
    takeover_ns: u64,
    threshold: Duration,
    limits: StallLimits,
    watches: Vec<Watch>,
    /// Each shard's last loop-lag peak (µs) and when it was seen, for the fading lag.
    lag_peaks: Vec<(u64, Instant)>,
}

impl Detector {
    fn check(&mut self, i: usize, remote: &ShardRemote, steer: &SteerShared) {
        let now = now_ns();
        let watch = &mut self.watches[i];
        let since = remote.busy_since();
        let Some(load) = steer.load(i) else { return };
        if since == 0 || watch.since != since {
            if watch.counted {
                let stalled_ms = now.saturating_sub(watch.since) / 1_000_000;
                tracing::warn!(
                    shard = remote.id,
                    stalled_ms,
                    "shard recovered from a stall; it takes new connections again"
                );
                remote.stall.publish(0, false, false);
            }
            load.set_stalled(false);
        }
        if since == 0 {
            *watch = Watch::default();
            self.publish_lag(i, load, 0);
            return;
        }
        if watch.since != since {
            *watch = Watch {
                since,
                sched_at_start: thread_sched(remote.tid()),
                ..Watch::default()
            };
        }
        let wall_ns = now.saturating_sub(since);
        self.publish_lag(i, load, wall_ns / 1000);
        let watch = &mut self.watches[i];
        if watch.counted {
            self.publish(i, remote, wall_ns);
            return;
        }
        if wall_ns < self.takeover_ns || (watch.skipped && wall_ns < self.threshold_ns) {
            return;
        }
        let waited_ns = match (watch.sched_at_start, thread_sched(remote.tid())) {
            (Some(start), Some(now)) => not_its_own_ns(wall_ns, start, now),
            _ => 0,
        };
        if !watch.skipped && is_stall(wall_ns, waited_ns, self.takeover_ns) {
            // Past the takeover threshold: no new connections, queued ones are taken.
            watch.skipped = true;
            load.set_stalled(true);
        }
        if is_stall(wall_ns, waited_ns, self.threshold_ns) {
            watch.counted = true;
            remote.count_stall();
            self.warn(remote, wall_ns, waited_ns);
            self.watches[i].next_report = next_report_after(Duration::from_nanos(wall_ns));
            self.publish(i, remote, wall_ns);
        }
    }

    /// Publishes a counted stall's state while it lasts, logs it at each report time, and
    /// ends the process past `abort_after`.
    fn publish(&mut self, i: usize, remote: &ShardRemote, wall_ns: u64) {
        let stalled = Duration::from_nanos(wall_ns);
        let stuck = stalled >= self.limits.unhealthy_after;
        let unavailable = stalled >= self.limits.mesh_timeout;
        remote
            .stall
            .publish(stalled.as_millis().max(1) as u64, stuck, unavailable);
        let watch = &mut self.watches[i];
        watch.unavailable_now = unavailable && !watch.unavailable;
        watch.unavailable = unavailable;
        if stalled >= watch.next_report {
            watch.next_report = next_report_after(stalled);
            self.warn(remote, wall_ns, 0);
        }
        if let Some(abort_after) = self.limits.abort_after
            && stalled >= abort_after
        {
            tracing::error!(
                shard = remote.id,
                task = remote.label().unwrap_or("unknown"),
                stalled_ms = stalled.as_millis() as u64,
                exit_code = EXIT_SHARD_STUCK,
                "shard stuck past --abort-after {abort_after:?}: exiting so that a supervisor restarts the process (a stuck thread cannot be stopped safely)"
            );
            std::process::exit(EXIT_SHARD_STUCK);
        }
    }

    /// Whether shard `i` became unavailable in this round (its callers are failed once).
    fn became_unavailable(&mut self, i: usize) -> bool {
        std::mem::take(&mut self.watches[i].unavailable_now)
    }

    /// Publishes the shard's recent loop lag: the current iteration's age, or the last peak
    /// fading to zero over [`LAG_FADE`] (so a shard busy in long iterations separated by
    /// short waits still looks busy to placement, and one that recovered soon does not).
    fn publish_lag(&mut self, i: usize, load: &crate::net::steer::ShardLoad, current_us: u64) {
        let (peak_us, at) = self.lag_peaks[i];
        let fade_us = LAG_FADE.as_micros() as u64;
        let elapsed_us = (at.elapsed().as_micros() as u64).min(fade_us);
        let faded_us = peak_us - peak_us * elapsed_us / fade_us;
        if current_us >= faded_us {
            self.lag_peaks[i] = (current_us, Instant::now());
        }
        load.set_lag_us(current_us.max(faded_us));
    }

    /// Reports a stalled shard: what it runs and for how long.
    fn warn(&self, remote: &ShardRemote, wall_ns: u64, waited_ns: u64) {
        tracing::warn!(
            shard = remote.id,
            task = remote.label().unwrap_or("unknown"),
            running_ms = wall_ns / 1_000_000,
            waiting_for_cpu_ms = waited_ns / 1_000_000,
            "shard stalled: one loop iteration has run longer than {:?} (a handler that computes or blocks; move such work to spawn_blocking); new connections go to other shards until it recovers",
            self.threshold
        );
    }
}

/// When a stall of `stalled` is next logged: at 1 s, 10 s, 60 s, then every minute.
fn next_report_after(stalled: Duration) -> Duration {
    const STEPS: [Duration; 3] = [
        Duration::from_secs(1),
        Duration::from_secs(10),
        Duration::from_secs(60),
    ];
    STEPS
        .into_iter()
        .find(|step| *step > stalled)
        .unwrap_or_else(|| Duration::from_secs((stalled.as_secs() / 60 + 1) * 60))
}

/// How long a loop-lag peak keeps counting in a shard's load after its iteration ended.
const LAG_FADE: Duration = Duration::from_millis(100);

/// Connections accepted from one stalled listener per round, at most.
const TAKEOVER_BATCH: usize = 64;

/// Takes connections queued on stalled shards' listeners and hands each to a healthy shard
/// listening on the same address (the stalled shard's own accept, an io_uring operation of
/// its ring, cannot complete until its loop runs again).
#[derive(Default)]
struct TakeoverState {
    listeners: Vec<Takeover>,
    fds: Vec<std::os::fd::RawFd>,
    ready: Vec<bool>,
}

impl TakeoverState {
    /// One round; false when no shard is stalled (nothing waited).
    fn run(&mut self, steer: &SteerShared, mesh: &MeshShared, period: Duration) -> bool {
        steer.takeovers(&mut self.listeners);
        if self.listeners.is_empty() {
            return false;
        }
        self.fds.clear();
        self.fds.extend(self.listeners.iter().map(Takeover::raw_fd));
        let timeout_ms = period.as_millis().max(1) as i32;
        if let Err(e) = crate::sys::steer::poll_readable(&self.fds, timeout_ms, &mut self.ready) {
            tracing::warn!("stall takeover: poll failed: {e}");
            thread::sleep(period);
            return true;
        }
        for (listener, ready) in self.listeners.iter().zip(&self.ready) {
            if *ready && !take_queued(listener, steer, mesh) {
                // An accept error (out of fds...): do not spin on it.
                thread::sleep(period);
            }
        }
        true
    }
}

/// Accepts what is queued on `listener` and hands it over; false on an accept error.
fn take_queued(listener: &Takeover, steer: &SteerShared, mesh: &MeshShared) -> bool {
    let mut ready = Vec::with_capacity(1);
    for _ in 0..TAKEOVER_BATCH {
        // The listener is in blocking mode (it is the shard's; its flags are shared with
        // this duplicate), so accept only what poll says is there; the accept timeout set
        // at registration bounds the wait if the shard took it first.
        match crate::sys::steer::poll_readable(&[listener.raw_fd()], 0, &mut ready) {
            Ok(()) if ready.first() == Some(&true) => {}
            _ => return true,
        }
        // Without a healthy shard with room in its inbox to hand it to, the connection stays
        // queued where it is: the stalled shard serves it when it recovers (accepting it here
        // and closing it would lose it).
        let Some(target) = steer.healthy_target(listener.addr, listener.stalled_shard) else {
            return true;
        };
        if !mesh.has_room(target) {
            return true;
        }
        let fd = match crate::sys::steer::accept_now(listener.raw_fd()) {
            Ok(Some(fd)) => fd,
            Ok(None) => return true,
            Err(e) => {
                tracing::warn!(
                    shard = listener.stalled_shard,
                    "stall takeover: accept failed: {e}"
                );
                return false;
            }
        };
        if let Some(load) = steer.load(target) {
            load.add(1);
        }
        let addr = listener.addr;
        if mesh.post_from_outside(target, Box::new(move || deliver_here(addr, fd, false))) {
            if let Some(load) = steer.load(listener.stalled_shard) {
                load.count_taken_over();
            }
        } else {
            // The target's inbox filled up since the check above (other shards post there
            // too): the connection closes (its client retries); rare, and logged.
            if let Some(load) = steer.load(target) {
                load.sub(1);
            }
            tracing::warn!(
                shard = target,
                "stall takeover: inbox full; connection closed"
            );
        }
    }
    true
}

/// What the watchdog knows of one shard's current iteration.
#[derive(Clone, Copy, Default)]
struct Watch {
    /// The iteration's `busy_since`; 0 while the shard waits.
    since: u64,
    /// The shard thread's run-queue delay when the watchdog first saw this iteration.
    sched_at_start: Option<ThreadSched>,
    /// Past the takeover threshold: marked for steering (once per iteration).
    skipped: bool,
    /// Already counted as a stall (once per iteration).
    counted: bool,
    /// When the stall is logged next.
    next_report: Duration,
    /// Stalled past the mesh timeout.
    unavailable: bool,
    /// Became unavailable in the last round.
    unavailable_now: bool,
}

fn thread_sched(tid: i32) -> Option<ThreadSched> {
    if tid == 0 {
        None
    } else {
        crate::sys::cpu::thread_sched(tid)
    }
}

/// Of an iteration's `wall_ns` so far, the time that was not the shard's own doing: waiting
/// for a CPU. Completed waits are in the run-queue delay; a wait still going on is not (the
/// kernel adds it when the thread next runs), so while the thread is runnable only the CPU
/// time it actually ran counts as its own: under CPU contention a shard that merely waits
/// to be scheduled is not stalled (it would otherwise lose its new connections for nothing).
fn not_its_own_ns(wall_ns: u64, start: ThreadSched, now: ThreadSched) -> u64 {
    let waited = now.waited_ns.saturating_sub(start.waited_ns);
    let own = wall_ns.saturating_sub(waited);
    let own = if now.runnable {
        own.min(now.ran_ns.saturating_sub(start.ran_ns))
    } else {
        own
    };
    wall_ns - own
}

/// An iteration is a stall when the time it ran or blocked on its own, not counting the time
/// it waited for a CPU, reaches the threshold.
fn is_stall(wall_ns: u64, waited_for_cpu_ns: u64, threshold_ns: u64) -> bool {
    wall_ns.saturating_sub(waited_for_cpu_ns) >= threshold_ns
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{ThreadSched, is_stall, next_report_after, not_its_own_ns};

    #[test]
    fn a_stall_is_logged_again_at_growing_intervals() {
        let s = Duration::from_secs;
        assert_eq!(next_report_after(Duration::from_millis(100)), s(1));
        assert_eq!(next_report_after(s(1)), s(10));
        assert_eq!(next_report_after(s(10)), s(60));
        assert_eq!(next_report_after(s(60)), s(120));
        assert_eq!(next_report_after(s(150)), s(180));
    }

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

    fn sched(ran_ms: u64, waited_ms: u64, runnable: bool) -> ThreadSched {
        ThreadSched {
            ran_ns: ran_ms * MS,
            waited_ns: waited_ms * MS,
            runnable,
        }
    }

    #[test]
    fn a_wait_for_a_cpu_still_going_on_is_not_the_shards_own_time() {
        let start = sched(1000, 500, true);
        // Ran 5 ms, then runnable for 295 ms without a CPU: the wait is not yet in schedstat.
        let waiting = not_its_own_ns(300 * MS, start, sched(1005, 500, true));
        assert!(!is_stall(300 * MS, waiting, 100 * MS));
        // Spinning for 300 ms on a CPU: its own.
        let spinning = not_its_own_ns(300 * MS, start, sched(1296, 500, true));
        assert!(is_stall(300 * MS, spinning, 100 * MS));
        // Blocked in a syscall for 300 ms (sleeping, not runnable): its own too.
        let blocked = not_its_own_ns(300 * MS, start, sched(1001, 500, false));
        assert!(is_stall(300 * MS, blocked, 100 * MS));
        // A completed 250 ms wait is in the run-queue delay.
        let preempted = not_its_own_ns(300 * MS, start, sched(1050, 750, false));
        assert!(!is_stall(300 * MS, preempted, 100 * MS));
    }
}

//! `percore-bench echo`: a closed-loop echo load generator. Each connection sends a message,
//! waits for all of its echo (verifying every byte against the connection's own pattern),
//! then sends the next; with `pipeline > 1` that many messages are in flight per connection.
//! One request is one message echoed in full.

mod conn;
mod counts;

use std::{
    cell::{Cell, RefCell},
    net::SocketAddr,
    rc::Rc,
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use percore::{RingStats, Server};

pub use self::counts::{Counts, ErrorKind};
use crate::{
    measure::{self, Phase, PhaseClock},
    report::EchoReport,
};

/// Settings of one echo run.
#[derive(Clone, Debug)]
pub struct EchoConfig {
    pub target: SocketAddr,
    pub connections: usize,
    pub message_size: usize,
    pub pipeline: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Client shards, pinned to the CPUs of the process's affinity mask in order.
    pub shards: usize,
    /// How long a connect, or a wait for echo bytes, may take before it is an error.
    pub timeout: Duration,
    /// The server's PID, to charge it its CPU time over the measured window.
    pub server_pid: Option<u32>,
    /// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`).
    pub clk_tck: u64,
}

impl Default for EchoConfig {
    fn default() -> Self {
        EchoConfig {
            target: SocketAddr::from(([127, 0, 0, 1], 7000)),
            connections: 100,
            message_size: 64,
            pipeline: 1,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            shards: 1,
            timeout: Duration::from_secs(2),
            server_pid: None,
            clk_tck: 100,
        }
    }
}

/// What one client shard measured.
pub struct ShardResult {
    /// Counts by the phase in which requests were sent: `[warm-up, measured]`.
    pub counts: [Counts; 2],
    /// Latency of measured requests that succeeded, in nanoseconds.
    pub latency_ns: Histogram<u64>,
    /// The shard's ring counters when it first saw the window open and close.
    pub ring_at_measure: Option<RingStats>,
    pub ring_at_done: Option<RingStats>,
}

/// Per-shard state shared by the connection tasks of that shard.
pub(crate) struct ShardState {
    pub(crate) cfg: Arc<EchoConfig>,
    clock: PhaseClock,
    seen: Cell<Phase>,
    counts: RefCell<[Counts; 2]>,
    latency: RefCell<Histogram<u64>>,
    ring_at: RefCell<[Option<RingStats>; 2]>,
}

impl ShardState {
    /// The current phase; the first time a shard sees the window open or close it snapshots
    /// its ring counters, so the report can give client-side enters per request.
    pub(crate) fn phase(&self) -> Phase {
        let phase = self.clock.get();
        if phase != self.seen.get() {
            self.seen.set(phase);
            let slot = if phase == Phase::Measure { 0 } else { 1 };
            self.ring_at.borrow_mut()[slot].get_or_insert(percore::stats().ring);
        }
        phase
    }

    fn counts_for(&self, phase: Phase) -> std::cell::RefMut<'_, Counts> {
        // Nothing is sent once done; events of the final drain belong to the window.
        let i = if phase == Phase::Warmup { 0 } else { 1 };
        std::cell::RefMut::map(self.counts.borrow_mut(), |c| &mut c[i])
    }

    pub(crate) fn sent(&self, phase: Phase) {
        self.counts_for(phase).sent += 1;
    }

    pub(crate) fn ok(&self, phase: Phase, latency: Duration) {
        self.counts_for(phase).ok += 1;
        if phase == Phase::Measure {
            let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
            self.latency.borrow_mut().saturating_record(ns.max(1));
        }
    }

    pub(crate) fn error(&self, phase: Phase, kind: ErrorKind) {
        self.counts_for(phase).add_error(kind);
    }

    fn into_result(self) -> ShardResult {
        let [ring_at_measure, ring_at_done] = self.ring_at.into_inner();
        ShardResult {
            counts: self.counts.into_inner(),
            latency_ns: self.latency.into_inner(),
            ring_at_measure,
            ring_at_done,
        }
    }
}

/// Histogram for latencies from 1 ns to 100 s at 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// Runs the load and returns its report. Always bounded: warm-up + duration + timeout +
/// a few seconds, whatever the server does.
pub fn run(cfg: EchoConfig) -> Result<EchoReport, String> {
    if cfg.connections == 0 || cfg.message_size == 0 || cfg.pipeline == 0 || cfg.shards == 0 {
        return Err("connections, message size, pipeline and shards must be at least 1".into());
    }
    let cfg = Arc::new(cfg);
    let clock = PhaseClock::default();
    let (tx, rx) = mpsc::channel::<ShardResult>();
    let setup_cfg = cfg.clone();
    let setup_clock = clock.clone();
    let handle = Server::builder()
        .shards(cfg.shards)
        .start(move |info| {
            let state = Rc::new(ShardState {
                cfg: setup_cfg.clone(),
                clock: setup_clock.clone(),
                seen: Cell::new(Phase::Warmup),
                counts: RefCell::default(),
                latency: RefCell::new(latency_histogram()),
                ring_at: RefCell::default(),
            });
            Ok(shard_main(info.id, info.count, state, tx.clone()))
        })
        .map_err(|e| format!("starting the client shards: {e}"))?;
    let window = measure::run_window(&clock, cfg.warmup, cfg.duration, cfg.server_pid);
    // In-flight requests finish or time out after the window closes.
    let deadline = Instant::now() + cfg.timeout * 2 + Duration::from_secs(2);
    let results = measure::collect(&rx, cfg.shards, deadline);
    let mut notes = Vec::new();
    if results.len() < cfg.shards {
        notes.push(format!(
            "only {} of {} client shards reported before the deadline",
            results.len(),
            cfg.shards
        ));
    }
    if let Err(e) = measure::stop(handle, Duration::from_secs(5)) {
        notes.push(e);
    }
    if cfg.server_pid.is_some() && window.server_cpu_ticks.is_none() {
        notes.push("could not read the server's /proc/PID/stat at both ends".into());
    }
    Ok(EchoReport::new(&cfg, window, results, notes))
}

/// One client shard: its share of the connections, then its result to the main thread.
async fn shard_main(
    shard: usize,
    shards: usize,
    state: Rc<ShardState>,
    tx: mpsc::Sender<ShardResult>,
) {
    let handles: Vec<_> = (shard..state.cfg.connections)
        .step_by(shards)
        .map(|id| percore::spawn(conn::run_connection(id, state.clone())))
        .collect();
    for handle in handles {
        let _ = handle.await;
    }
    // Every task has finished, so this is the last reference.
    if let Ok(state) = Rc::try_unwrap(state) {
        let _ = tx.send(state.into_result());
    }
}

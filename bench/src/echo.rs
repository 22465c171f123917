//! `percore-bench echo`: a closed-loop echo load generator. Each connection sends a message,
//! waits for all of its echo (verifying every byte against the connection's own pattern),
//! then sends the next; with `pipeline > 1` that many messages are in flight per connection.
//! One request is one message echoed in full.

mod conn;
mod counts;

use std::{
    net::SocketAddr,
    rc::Rc,
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use percore::Server;

pub use self::counts::{Counts, ErrorKind};
use crate::{
    books::ShardBooks,
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
pub type ShardResult = crate::books::ShardResult<Counts>;

/// Per-shard state shared by the connection tasks of that shard.
pub(crate) struct ShardState {
    pub(crate) cfg: Arc<EchoConfig>,
    books: ShardBooks<Counts>,
}

impl ShardState {
    pub(crate) fn phase(&self) -> Phase {
        self.books.phase().0
    }

    pub(crate) fn sent(&self, phase: Phase) {
        self.books.counts(phase).sent += 1;
    }

    pub(crate) fn ok(&self, phase: Phase, latency: Duration) {
        self.books.counts(phase).ok += 1;
        if phase == Phase::Measure {
            self.books
                .record_latency_ns(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
        }
    }

    pub(crate) fn error(&self, phase: Phase, kind: ErrorKind) {
        self.books.counts(phase).add_error(kind);
    }
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
                books: ShardBooks::new(setup_clock.clone()),
            });
            Ok(shard_main(info.id, info.count, state, tx.clone()))
        })
        .map_err(|e| format!("starting the client shards: {e}"))?;
    let window = measure::run_window(&clock, cfg.warmup, cfg.duration, cfg.server_pid);
    // In-flight requests finish or time out after the window closes.
    let deadline = Instant::now() + cfg.timeout * 2 + Duration::from_secs(2);
    let (results, notes) =
        measure::finish(&rx, cfg.shards, deadline, handle, &window, cfg.server_pid);
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
        let _ = tx.send(state.books.into_result());
    }
}

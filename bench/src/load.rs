//! The request-response load engine shared by the `http` and `resp` modes.
//!
//! A protocol (`Protocol`) says how to write one request and how to cut the response
//! stream into responses; the engine does the rest: C connections spread over the client
//! shards, pipelining, closed loop or open loop at a fixed rate (`schedule`), the phases
//! (warm-up, measured, drain), the books (`counts`), latency histograms and live progress.
//!
//! Bounds: the main thread ends the measured window on time; connections then send nothing
//! new and their in-flight requests have until the drain deadline (`drain_grace` after the
//! window) to be answered, after which they are counted as in flight at the end. The shards
//! are then stopped whatever they do, so a run lasts at most warm-up + duration + drain
//! grace + timeout (a connect begun just before the close) + a few seconds.

mod conn;
pub mod counts;
pub mod report;
pub mod schedule;

use std::{
    cell::Cell,
    net::{SocketAddr, TcpStream as StdTcpStream},
    rc::Rc,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use percore::Server;

pub use self::counts::{Counts, ErrorKind};
use crate::{
    books::ShardBooks,
    measure::{self, Phase, PhaseClock, Window},
    procfs,
};

/// What a protocol parser made of the bytes it was shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole response yet (the consumed bytes, if any, belong to it).
    More,
    /// One whole response: `ok` when it is the expected kind, `close` when the server said
    /// it will close the connection after it.
    Response { ok: bool, close: bool },
    /// The bytes do not parse.
    Invalid,
}

/// What the end of the stream means for the response being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtEof {
    /// The response was delimited by the close (an HTTP body without a length).
    Complete { ok: bool },
    /// Part of the response had come.
    Truncated,
    /// Nothing of it had come.
    Closed,
}

/// A request-response protocol, as the engine needs it.
pub trait Protocol: Send + Sync + 'static {
    /// Per-connection state (parser state, random keys).
    type Conn: 'static;
    /// Short name for reports (`http`, `resp`).
    fn name(&self) -> &'static str;
    /// ALPN protocols a TLS connection offers (none by default).
    fn alpn(&self) -> &'static [&'static [u8]] {
        &[]
    }
    /// A fresh state for connection `id` (also after each reconnect).
    fn conn(&self, id: usize) -> Self::Conn;
    /// Appends one request to `out`.
    fn write_request(&self, conn: &mut Self::Conn, out: &mut Vec<u8>);
    /// Reads at most one response from the front of `data`: how many bytes it consumed, and
    /// what they were. Must consume at least one byte unless it returns `More`.
    fn parse(&self, conn: &mut Self::Conn, data: &[u8]) -> (usize, Parsed);
    /// The stream ended; `unconsumed` bytes of it were left over.
    fn at_eof(&self, conn: &mut Self::Conn, unconsumed: usize) -> AtEof;
}

/// Settings of a load run (the protocol is separate).
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub target: SocketAddr,
    /// TLS on every connection (an `https://` target).
    pub tls: Option<crate::tls::TlsClient>,
    /// One request per connection (measures connection setup; with TLS, handshakes).
    pub new_conn: bool,
    pub connections: usize,
    /// Requests in flight per connection at most.
    pub pipeline: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub shards: usize,
    /// How long a connect, or a wait for response bytes, may take before it is an error.
    pub timeout: Duration,
    /// Open loop: requests per second offered across all connections. `None`: closed loop.
    pub rate: Option<f64>,
    /// How long in-flight requests may still be answered after the window closes.
    pub drain_grace: Duration,
    pub server_pid: Option<u32>,
    pub clk_tck: u64,
    /// How often the main thread reports progress (`None`: never).
    pub progress_every: Option<Duration>,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            target: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls: None,
            new_conn: false,
            connections: 100,
            pipeline: 1,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            shards: 1,
            timeout: Duration::from_secs(2),
            rate: None,
            drain_grace: Duration::from_secs(1),
            server_pid: None,
            clk_tck: 100,
            progress_every: None,
        }
    }
}

/// Counters the main thread reads while the run goes (relaxed: they are only for display).
#[derive(Debug, Default)]
pub struct Live {
    pub ok: AtomicU64,
    pub errors: AtomicU64,
}

/// A snapshot of progress, given to the progress callback.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub phase: Phase,
    /// Seconds into the current phase, and its length.
    pub elapsed_secs: f64,
    pub phase_secs: f64,
    pub ok: u64,
    pub errors: u64,
    /// Successes per second since the last snapshot.
    pub rate: f64,
}

/// What one client shard measured (latency from the intended send time in open loop).
pub type ShardResult = crate::books::ShardResult<Counts>;

/// Per-shard state shared by the connection tasks of that shard.
pub(crate) struct ShardState<P: Protocol> {
    pub(crate) cfg: Arc<LoadConfig>,
    pub(crate) proto: Arc<P>,
    /// When the schedule of the open loop starts (the same for every shard).
    pub(crate) start: Instant,
    books: ShardBooks<Counts>,
    drain_deadline: Cell<Option<Instant>>,
    live: Arc<Live>,
}

impl<P: Protocol> ShardState<P> {
    /// The current phase; at the shard's first look at the closed window it fixes its drain
    /// deadline.
    pub(crate) fn phase(&self) -> Phase {
        let (phase, first_look) = self.books.phase();
        if first_look && phase == Phase::Done {
            self.drain_deadline
                .set(Some(Instant::now() + self.cfg.drain_grace));
        }
        phase
    }

    /// After the window: when the answers stop counting.
    pub(crate) fn drain_deadline(&self) -> Option<Instant> {
        self.drain_deadline.get()
    }

    pub(crate) fn counts(&self, phase: Phase) -> std::cell::RefMut<'_, Counts> {
        self.books.counts(phase)
    }

    pub(crate) fn record_latency_ns(&self, ns: u64) {
        self.books.record_latency_ns(ns);
    }

    pub(crate) fn error(&self, phase: Phase, kind: ErrorKind) {
        self.counts(phase).add_error(kind);
        self.live.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn live(&self) -> &Live {
        &self.live
    }
}

/// What a run returns: the results of the shards that reported, the window, and notes.
pub struct RunOutcome {
    pub window: Window,
    pub results: Vec<ShardResult>,
    pub notes: Vec<String>,
}

/// Checks the settings and that the target accepts a connection, so a wrong address ends
/// at once in one clear line instead of a run full of connect errors.
pub fn preflight(cfg: &LoadConfig) -> Result<(), String> {
    if cfg.connections == 0 || cfg.pipeline == 0 || cfg.shards == 0 {
        return Err("connections, pipeline and shards must be at least 1".into());
    }
    if cfg.duration.is_zero() {
        return Err("duration must be above 0".into());
    }
    // A floor keeps the schedule's times (connection id / rate) well inside `Instant`'s range.
    if let Some(rate) = cfg.rate
        && !(rate.is_finite() && rate >= 0.1)
    {
        return Err(format!(
            "--rate must be at least 0.1 requests/s, not {rate}"
        ));
    }
    match StdTcpStream::connect_timeout(&cfg.target, cfg.timeout) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "cannot connect to {}: {e} (is the server running and listening there?)",
            cfg.target
        )),
    }
}

/// Runs the load and returns what the shards measured. `progress` is called from the main
/// thread every `cfg.progress_every` while the run goes.
pub fn run<P: Protocol>(
    cfg: LoadConfig,
    proto: P,
    mut progress: impl FnMut(Progress),
) -> Result<RunOutcome, String> {
    preflight(&cfg)?;
    let cfg = Arc::new(cfg);
    let proto = Arc::new(proto);
    let clock = PhaseClock::default();
    let lives: Vec<Arc<Live>> = (0..cfg.shards).map(|_| Arc::default()).collect();
    let start = Instant::now();
    let (tx, rx) = mpsc::channel::<ShardResult>();
    let (setup_cfg, setup_clock, setup_lives) = (cfg.clone(), clock.clone(), lives.clone());
    let handle = Server::builder()
        .shards(cfg.shards)
        .start(move |info| {
            let state = Rc::new(ShardState {
                cfg: setup_cfg.clone(),
                proto: proto.clone(),
                start,
                books: ShardBooks::new(setup_clock.clone()),
                drain_deadline: Cell::new(None),
                live: setup_lives[info.id].clone(),
            });
            Ok(shard_main(info.id, info.count, state, tx.clone()))
        })
        .map_err(|e| format!("starting the client shards: {e}"))?;
    let window = run_window(&cfg, &clock, &lives, &mut progress);
    // Every connection stops by the drain deadline, or when a connect begun before it ends
    // (within the timeout); the margin covers a busy shard.
    let deadline = Instant::now() + cfg.drain_grace + cfg.timeout + Duration::from_secs(3);
    let (results, notes) =
        measure::finish(&rx, cfg.shards, deadline, handle, &window, cfg.server_pid);
    Ok(RunOutcome {
        window,
        results,
        notes,
    })
}

/// Warm-up then the measured window, on the calling thread, with progress callbacks.
fn run_window(
    cfg: &LoadConfig,
    clock: &PhaseClock,
    lives: &[Arc<Live>],
    progress: &mut impl FnMut(Progress),
) -> Window {
    let totals = || {
        lives.iter().fold((0, 0), |(ok, err), l| {
            (
                ok + l.ok.load(Ordering::Relaxed),
                err + l.errors.load(Ordering::Relaxed),
            )
        })
    };
    let mut last = (Instant::now(), 0u64);
    let mut wait_phase = |phase: Phase, length: Duration| {
        let begin = Instant::now();
        let end = begin + length;
        loop {
            let now = Instant::now();
            if now >= end {
                return;
            }
            let step = cfg.progress_every.unwrap_or(length).min(end - now);
            thread::sleep(step);
            if cfg.progress_every.is_some() {
                let now = Instant::now();
                let (ok, errors) = totals();
                let secs = (now - last.0).as_secs_f64().max(f64::EPSILON);
                let rate = ok.saturating_sub(last.1) as f64 / secs;
                last = (now, ok);
                progress(Progress {
                    phase,
                    elapsed_secs: (now - begin).as_secs_f64().min(length.as_secs_f64()),
                    phase_secs: length.as_secs_f64(),
                    ok,
                    errors,
                    rate,
                });
            }
        }
    };
    wait_phase(Phase::Warmup, cfg.warmup);
    let me = std::process::id();
    let cpu_start = cfg.server_pid.and_then(|pid| procfs::cpu_ticks(pid).ok());
    let own_start = procfs::cpu_ticks(me).ok();
    clock.set(Phase::Measure);
    let start = Instant::now();
    wait_phase(Phase::Measure, cfg.duration);
    clock.set(Phase::Done);
    let secs = start.elapsed().as_secs_f64();
    let cpu_end = cfg.server_pid.and_then(|pid| procfs::cpu_ticks(pid).ok());
    let own_end = procfs::cpu_ticks(me).ok();
    let between = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    Window {
        secs,
        server_cpu_ticks: between(cpu_start, cpu_end),
        client_cpu_ticks: between(own_start, own_end),
    }
}

/// One client shard: its share of the connections, then its result to the main thread.
async fn shard_main<P: Protocol>(
    shard: usize,
    shards: usize,
    state: Rc<ShardState<P>>,
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

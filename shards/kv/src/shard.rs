//! What each shard holds for the service: its store, its pub/sub subscribers, its client
//! figures, and the active expiry sweep. All of it lives in a thread-local of the shard
//! thread and is reached only by code running on that shard: connection tasks and mesh
//! handlers. It is made on first use, from either (a shard can own keys before any client
//! connects to it).

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
    sync::OnceLock,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use percore::{future::select, mesh::CallBatcher, shutdown_signal, spawn, time::interval};

use crate::{
    Config,
    pubsub::Registry,
    route::{self, Batch, BatchReply},
    store::Databases,
};

/// Keys the active sweep looks at per tick (bounded work per loop iteration).
pub const SWEEP_BUDGET: usize = 1_000;

/// One shard's service state.
pub struct ShardState {
    /// The shard's part of every database.
    pub dbs: RefCell<Databases>,
    pub pubsub: RefCell<Registry>,
    pub clients: Cell<usize>,
    /// Connections waiting in a blocking command.
    pub blocked_clients: Cell<usize>,
    pub total_connections: Cell<u64>,
    pub commands: Cell<u64>,
    pub next_client: Cell<u64>,
    pub config: Config,
    /// Calls to the shards that own keys, one message per shard per loop iteration.
    pub batcher: CallBatcher<Batch, BatchReply>,
}

thread_local! {
    static STATE: RefCell<Option<Rc<ShardState>>> = const { RefCell::new(None) };
}

/// The current shard's state, made (and its sweep started) on first use. Must run on a
/// shard thread, outside of a `respond_with` closure the first time.
pub fn init(config: &Config) -> Rc<ShardState> {
    if let Some(state) = STATE.with(|s| s.borrow().clone()) {
        return state;
    }
    let shards = percore::mesh::shard_count().max(1);
    let state = Rc::new(ShardState {
        dbs: RefCell::new(Databases::with_live(config.live.clone(), shards)),
        pubsub: RefCell::new(Registry::default()),
        clients: Cell::new(0),
        blocked_clients: Cell::new(0),
        total_connections: Cell::new(0),
        commands: Cell::new(0),
        next_client: Cell::new(0),
        config: config.clone(),
        batcher: route::batcher(config),
    });
    STATE.with(|s| *s.borrow_mut() = Some(state.clone()));
    crate::notify::init(&config.live);
    // The log (or snapshot) is loaded before anything reads the store.
    crate::persist::start(&state, &mut state.dbs.borrow_mut());
    spawn(sweep(state.clone(), config.sweep_interval));
    state
}

/// The current shard's state, when it has been made.
pub fn current() -> Option<Rc<ShardState>> {
    STATE.with(|s| s.borrow().clone())
}

/// Runs `f` on the current shard's databases (made on first use with the server's config).
pub fn with_dbs<R>(config: &Config, f: impl FnOnce(&mut Databases) -> R) -> R {
    let state = init(config);
    let mut dbs = state.dbs.borrow_mut();
    f(&mut dbs)
}

/// Unix time in milliseconds, the clock of expiry times: the wall clock read once, at the
/// first call, plus the monotonic time since. A step of the wall clock (NTP, a VM resumed)
/// then neither expires keys early nor keeps them late.
pub fn now_ms() -> u64 {
    // Microseconds on both sides, so the two truncations do not put the clock up to 2 ms
    // behind the wall clock a client computes absolute times with (PXAT, EXPIREAT).
    static ANCHOR: OnceLock<(Instant, u64)> = OnceLock::new();
    let (at, unix_us) = *ANCHOR.get_or_init(|| {
        let unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        (Instant::now(), unix_us)
    });
    (unix_us + at.elapsed().as_micros() as u64) / 1000
}

/// The active expiry sweep: every `period`, up to [`SWEEP_BUDGET`] keys are examined
/// (resuming where the last tick stopped) and the expired ones removed. Stops with the
/// server's graceful stop, so it never holds a drain up.
async fn sweep(state: Rc<ShardState>, period: Duration) {
    let ticks = async {
        let mut ticks = interval(period);
        loop {
            ticks.tick().await;
            if !crate::params::active_expire() {
                continue;
            }
            let now = now_ms();
            for db in state.dbs.borrow_mut().iter_mut() {
                db.sweep(now, SWEEP_BUDGET);
            }
        }
    };
    let _ = select(ticks, shutdown_signal()).await;
}

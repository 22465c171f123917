//! Adaptive offload: CPU-heavy synchronous work moved to the blocking pool by the route's own
//! history, without the handler saying so.
//!
//! Each [`Offload`] (one per route, per shard) follows the route's state, which the shards
//! of one server share (a route is "heavy" for all of them or for none):
//!
//! - **Light** (the start): the work runs inline, on the shard, and is timed. A run over the
//!   budget (default 5 ms; [`Router::offload_budget`](crate::Router::offload_budget) sets
//!   the router's, [`Offload::budget`] a route's own) counts as an overrun and marks the
//!   route heavy **on every shard**: the mark is one atomic flag per route and server,
//!   read with a relaxed load on each call and written only when the state changes. That
//!   first overrun is paid in full by its shard's other connections: a running sync function
//!   cannot be preempted. The other shards need not wait for it to end: each inline run
//!   notes its start in its shard's slot of the route's state (one relaxed store on a cache
//!   line of its own, cleared when the run ends), and a call that would run inline first
//!   looks at the other shards' slots (one relaxed load each): a run there already past the
//!   budget marks the route heavy, and the call goes to the pool instead of starting a
//!   second inline burn. (Two first calls that start within one budget of each other on two
//!   shards still both run inline: neither has overrun yet.)
//! - **Heavy**: the work runs on `percore::spawn_blocking`; its result comes back to the
//!   shard that asked, and the shard serves its other connections meanwhile. Each pool run
//!   is timed too: after [`RETRY_AFTER`] pool runs in a row (counted over all shards) under
//!   half the budget, the route is light again everywhere and its next call runs inline
//!   (work whose cost fell is not kept paying the hand-off); a pool run at or over half the
//!   budget starts the count again.
//!
//! The state is shared by the routes of one [`service::serve`](crate::service::serve) call
//! that have the same label (the router labels each `METHOD /path`); an `Offload` without a
//! label, or run outside `serve`, keeps its state to itself (its shard learns alone).
//!
//! [`Offload::heavy`] and [`Offload::inline_only`] fix the choice up front. Per-route
//! counters (registered on first use, labelled `route`, per shard):
//! `percore_http_offload_inline_runs_total`, `percore_http_offload_pool_runs_total`,
//! `percore_http_offload_overruns_total` and `percore_http_offload_pool_time_us_total`.

use std::{
    cell::{Cell, OnceCell, RefCell},
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use percore::metrics::{Counter, counter};

/// The default budget of an inline run.
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(5);

/// Pool runs in a row under half the budget after which a heavy route is tried inline again.
pub const RETRY_AFTER: u32 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    Adaptive,
    Heavy,
    InlineOnly,
}

/// One route's offload state and policy (see the module docs).
#[derive(Debug)]
pub struct Offload {
    policy: Policy,
    budget: Cell<Duration>,
    /// Whether [`budget`](Self::budget) set this route's own, which the router's default
    /// ([`Router::offload_budget`](crate::Router::offload_budget)) leaves alone.
    own_budget: bool,
    label: String,
    /// The route's state, shared with the other shards' `Offload` of the same route (found
    /// on first use: see [`RouteStates`]).
    state: OnceCell<Shared>,
    counters: OnceCell<Counters>,
}

/// An `Offload`'s view of its route's state: the state and this shard's slot in it.
#[derive(Debug)]
struct Shared {
    route: Arc<RouteState>,
    /// The index of this shard's slot in `route.inline_since` (`None`: the state is this
    /// `Offload`'s own, with no slots, as outside `serve`).
    slot: Option<usize>,
}

/// What the shards of a server know of one route (see the module docs).
#[derive(Debug)]
struct RouteState {
    /// The next call goes to the pool.
    heavy: AtomicBool,
    /// Pool runs in a row under half the budget, since the route was marked heavy.
    fast_pool_runs: AtomicU32,
    /// One slot per shard: when the inline run in progress there started ([`stamp`]), 0 when
    /// none. Each on a cache line of its own, so a shard's stores do not slow the others'
    /// reads of the flags above.
    inline_since: Box<[InlineSlot]>,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct InlineSlot(AtomicU64);

impl RouteState {
    fn new(shards: usize) -> Self {
        RouteState {
            heavy: AtomicBool::new(false),
            fast_pool_runs: AtomicU32::new(0),
            inline_since: (0..shards).map(|_| InlineSlot::default()).collect(),
        }
    }

    fn mark_heavy(&self) {
        self.fast_pool_runs.store(0, Ordering::Relaxed);
        self.heavy.store(true, Ordering::Relaxed);
    }

    /// Whether an inline run on another shard than `own`'s started more than `budget` before
    /// `now` and is still running.
    fn overrunning_elsewhere(&self, own: Option<usize>, now: Instant, budget: Duration) -> bool {
        let now = stamp(now);
        let budget = u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX);
        self.inline_since.iter().enumerate().any(|(shard, slot)| {
            let since = slot.0.load(Ordering::Relaxed);
            Some(shard) != own && since != 0 && now.saturating_sub(since) > budget
        })
    }
}

/// The origin of the slots' times.
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// `at` as a slot holds it: nanoseconds since [`EPOCH`], plus one (0 means "no run").
fn stamp(at: Instant) -> u64 {
    let since = at.saturating_duration_since(*EPOCH.get_or_init(Instant::now));
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX - 1) + 1
}

/// Clears a shard's slot when its inline run ends, by return or by panic (a slot left set
/// would make the route look forever overrunning to the other shards).
struct InlineRun<'a>(Option<&'a InlineSlot>);

impl Drop for InlineRun<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.0 {
            slot.0.store(0, Ordering::Relaxed);
        }
    }
}

/// The route states of one server, by label: made by [`service::serve`](crate::service::serve)
/// and handed to each of its shards before the shard builds its router.
#[derive(Debug, Default)]
pub(crate) struct RouteStates(Mutex<HashMap<String, Arc<RouteState>>>);

/// A shard thread's server: its route states, the shard's index and the server's shards.
struct ServerShard {
    states: Arc<RouteStates>,
    shard: usize,
    shards: usize,
}

thread_local! {
    /// The route states of the server this shard thread serves (`None` outside `serve`).
    static SERVER_STATES: RefCell<Option<ServerShard>> = const { RefCell::new(None) };
}

impl RouteStates {
    /// Makes `states` the current shard thread's: its routes share their state through it.
    /// Called on a shard of the server.
    pub(crate) fn enter(states: &Arc<RouteStates>) {
        let shard = ServerShard {
            states: states.clone(),
            shard: percore::mesh::shard_id(),
            shards: percore::mesh::shard_count(),
        };
        EPOCH.get_or_init(Instant::now);
        SERVER_STATES.with(|current| *current.borrow_mut() = Some(shard));
    }

    /// The state of the route labelled `label`: the server's when this thread serves one and
    /// the route has a label, else one of its own. Takes a lock: once per route and shard.
    fn of(label: &str) -> Shared {
        SERVER_STATES.with(|current| match &*current.borrow() {
            Some(server) if !label.is_empty() => Shared {
                route: server
                    .states
                    .0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(label.to_owned())
                    .or_insert_with(|| Arc::new(RouteState::new(server.shards)))
                    .clone(),
                slot: (server.shard < server.shards).then_some(server.shard),
            },
            _ => Shared {
                route: Arc::new(RouteState::new(0)),
                slot: None,
            },
        })
    }
}

/// A route's counts so far (this shard's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OffloadStats {
    pub inline_runs: u64,
    pub offloaded_runs: u64,
    pub overruns: u64,
    pub pool_time_us: u64,
    /// Whether the next call goes to the pool.
    pub heavy: bool,
}

#[derive(Debug)]
struct Counters {
    inline_runs: Counter,
    offloaded_runs: Counter,
    overruns: Counter,
    pool_time_us: Counter,
}

impl Offload {
    /// Decided by the route's history, with the default budget.
    pub fn adaptive() -> Self {
        Self::with(Policy::Adaptive)
    }

    /// Always on the blocking pool.
    pub fn heavy() -> Self {
        Self::with(Policy::Heavy)
    }

    /// Always inline, on the shard (overruns are still counted).
    pub fn inline_only() -> Self {
        Self::with(Policy::InlineOnly)
    }

    fn with(policy: Policy) -> Self {
        Offload {
            policy,
            budget: Cell::new(DEFAULT_BUDGET),
            own_budget: false,
            label: String::new(),
            state: OnceCell::new(),
            counters: OnceCell::new(),
        }
    }

    /// This route's own budget: the inline run time over which a run is an overrun (the
    /// router's default does not replace it).
    pub fn budget(mut self, budget: Duration) -> Self {
        self.budget.set(budget);
        self.own_budget = true;
        self
    }

    /// The budget in force.
    pub fn current_budget(&self) -> Duration {
        self.budget.get()
    }

    /// The router's default budget, taken unless the route has its own.
    pub(crate) fn default_budget(&self, budget: Duration) {
        if !self.own_budget {
            self.budget.set(budget);
        }
    }

    /// The `route` label of the counters (the router sets `METHOD /path`).
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Whether the next call goes to the pool.
    pub fn is_heavy(&self) -> bool {
        match self.policy {
            Policy::Heavy => true,
            Policy::InlineOnly => false,
            Policy::Adaptive => self.state().heavy.load(Ordering::Relaxed),
        }
    }

    fn shared(&self) -> &Shared {
        self.state.get_or_init(|| RouteStates::of(&self.label))
    }

    fn state(&self) -> &RouteState {
        &self.shared().route
    }

    /// This shard's counts (zero before the first run).
    pub fn stats(&self) -> OffloadStats {
        let get = |c: fn(&Counters) -> &Counter| self.counters.get().map_or(0, |cs| c(cs).get());
        OffloadStats {
            inline_runs: get(|c| &c.inline_runs),
            offloaded_runs: get(|c| &c.offloaded_runs),
            overruns: get(|c| &c.overruns),
            pool_time_us: get(|c| &c.pool_time_us),
            heavy: self.is_heavy(),
        }
    }

    /// Runs `work` where the route's state says: inline, or on the blocking pool (the error
    /// is the pool's: the work panicked there, or the pool is shut down).
    pub async fn run<F, T>(&self, work: F) -> Result<T, String>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.policy {
            Policy::Heavy => return self.run_on_pool(work).await,
            Policy::InlineOnly => return Ok(self.run_inline(work)),
            Policy::Adaptive => {}
        }
        let shared = self.shared();
        if shared.route.heavy.load(Ordering::Relaxed) {
            return self.run_on_pool(work).await;
        }
        let now = Instant::now();
        if shared
            .route
            .overrunning_elsewhere(shared.slot, now, self.budget.get())
        {
            // Another shard is inside an overrunning first burn of this route: the mark its
            // end would set, set now, and this call does not start a second burn.
            shared.route.mark_heavy();
            return self.run_on_pool(work).await;
        }
        Ok(self.run_inline_from(now, work))
    }

    /// Runs `work` on the shard now, timed; an overrun marks an adaptive route heavy (on every
    /// shard of the server).
    pub fn run_inline<T>(&self, work: impl FnOnce() -> T) -> T {
        self.run_inline_from(Instant::now(), work)
    }

    fn run_inline_from<T>(&self, started: Instant, work: impl FnOnce() -> T) -> T {
        let slot = match self.policy {
            Policy::Adaptive => {
                let shared = self.shared();
                shared.slot.and_then(|i| shared.route.inline_since.get(i))
            }
            Policy::Heavy | Policy::InlineOnly => None,
        };
        if let Some(slot) = slot {
            slot.0.store(stamp(started), Ordering::Relaxed);
        }
        let running = InlineRun(slot);
        let value = work();
        drop(running);
        let took = started.elapsed();
        let counters = self.counters();
        counters.inline_runs.inc();
        if took > self.budget.get() {
            counters.overruns.inc();
            if self.policy == Policy::Adaptive {
                self.state().mark_heavy();
            }
        }
        value
    }

    /// Runs `work` on the blocking pool, timed there; the result comes back to this shard.
    pub async fn run_on_pool<F, T>(&self, work: F) -> Result<T, String>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let timed = move || {
            let started = Instant::now();
            let value = work();
            (value, started.elapsed())
        };
        let result = percore::spawn_blocking(timed).await;
        let counters = self.counters();
        counters.offloaded_runs.inc();
        let (value, took) = result.map_err(|error| error.to_string())?;
        counters
            .pool_time_us
            .add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        if self.policy == Policy::Adaptive {
            let state = self.state();
            if state.heavy.load(Ordering::Relaxed) {
                if took < self.budget.get() / 2 {
                    let fast = state.fast_pool_runs.fetch_add(1, Ordering::Relaxed) + 1;
                    if fast >= RETRY_AFTER {
                        state.heavy.store(false, Ordering::Relaxed);
                        state.fast_pool_runs.store(0, Ordering::Relaxed);
                    }
                } else {
                    state.fast_pool_runs.store(0, Ordering::Relaxed);
                }
            }
        }
        Ok(value)
    }

    fn counters(&self) -> &Counters {
        self.counters.get_or_init(|| {
            let labels = [("route", self.label.as_str())];
            Counters {
                inline_runs: counter(
                    "percore_http_offload_inline_runs_total",
                    "Sync handler runs on the shard, by route.",
                    &labels,
                ),
                offloaded_runs: counter(
                    "percore_http_offload_pool_runs_total",
                    "Sync handler runs on the blocking pool, by route.",
                    &labels,
                ),
                overruns: counter(
                    "percore_http_offload_overruns_total",
                    "Inline runs over the route's budget, by route.",
                    &labels,
                ),
                pool_time_us: counter(
                    "percore_http_offload_pool_time_us_total",
                    "Microseconds sync handlers ran on the blocking pool, by route.",
                    &labels,
                ),
            }
        })
    }
}

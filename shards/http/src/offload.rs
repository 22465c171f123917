//! Adaptive offload: CPU-heavy synchronous work moved to the blocking pool by the route's own
//! history, without the handler saying so.
//!
//! Each [`Offload`] (one per route, per shard) keeps the route's state:
//!
//! - **Light** (the start): the work runs inline, on the shard, and is timed. A run over the
//!   budget (default 5 ms; [`Router::offload_budget`](crate::Router::offload_budget) sets
//!   the router's, [`Offload::budget`] a route's own) counts as an overrun and marks the
//!   route heavy. That first overrun is paid in full by the shard's other connections: a
//!   running sync function cannot be preempted.
//! - **Heavy**: the work runs on `percore::spawn_blocking`; its result comes back to the
//!   shard that asked, and the shard serves its other connections meanwhile. Each pool run
//!   is timed too: after [`RETRY_AFTER`] pool runs in a row under half the budget, the route
//!   is light again and its next call runs inline (work whose cost fell is not kept paying
//!   the hand-off).
//!
//! [`Offload::heavy`] and [`Offload::inline_only`] fix the choice up front. Per-route
//! counters (registered on first use, labelled `route`): inline runs, offloaded runs,
//! overruns, and microseconds on the pool.

use std::{
    cell::{Cell, OnceCell},
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
    heavy: Cell<bool>,
    fast_pool_runs: Cell<u32>,
    counters: OnceCell<Counters>,
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
            heavy: Cell::new(policy == Policy::Heavy),
            fast_pool_runs: Cell::new(0),
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
        self.heavy.get()
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
        if self.policy == Policy::InlineOnly || !self.heavy.get() {
            Ok(self.run_inline(work))
        } else {
            self.run_on_pool(work).await
        }
    }

    /// Runs `work` on the shard now, timed; an overrun marks an adaptive route heavy.
    pub fn run_inline<T>(&self, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let value = work();
        let took = started.elapsed();
        let counters = self.counters();
        counters.inline_runs.inc();
        if took > self.budget.get() {
            counters.overruns.inc();
            if self.policy == Policy::Adaptive {
                self.heavy.set(true);
                self.fast_pool_runs.set(0);
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
        if self.policy == Policy::Adaptive && self.heavy.get() {
            let fast = self.fast_pool_runs.get() + 1;
            if took < self.budget.get() / 2 {
                self.fast_pool_runs.set(fast);
                if fast >= RETRY_AFTER {
                    self.heavy.set(false);
                    self.fast_pool_runs.set(0);
                }
            } else {
                self.fast_pool_runs.set(0);
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

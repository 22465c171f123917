//! Fault injection in the driver, for tests only: compiled with the cargo feature
//! `fault-injection` (off by default, never in a release binary); without it neither this
//! module nor any hook that calls it exists.
//!
//! Every shard's driver gets a [`FaultInjector`] when it is built; a test takes it from the
//! shard's thread with [`current`] (in the shard's setup function, say) and may then change
//! its plan from any thread. The faults, on both drivers (io_uring and epoll) alike:
//!
//! - **failed submissions** ([`FaultInjector::fail_next`]): the next N submissions of the
//!   chosen operations are not handed to the kernel and complete at once with `-errno`,
//!   as an SQE the kernel cannot issue does. `EMFILE` on accepts is out-of-descriptors, and
//!   `ENOBUFS` on receives a provided-buffer ring found dry when the receive was armed.
//! - **a small SQ and CQ** ([`FaultInjector::shrink_queues`]): the submission queue counts
//!   as full once it holds that many entries (it is submitted early, as a full SQ is), and at
//!   most that many completions are taken per loop iteration; on io_uring the rest stay in
//!   the kernel's CQ, which then overflows into the kernel's backlog.
//! - **multishot operations ending early** ([`FaultInjector::end_multishot_early`]): after
//!   every Nth completion that carries `IORING_CQE_F_MORE`, the op is cancelled in the
//!   kernel; its end shows as the kernel's `-ECANCELED`, as `-ENOBUFS` (what a dry buffer
//!   ring gives), or as its last data completion without `F_MORE`.
//! - **cancelled submissions** ([`FaultInjector::cancel_every`]): every Nth submission of
//!   the chosen operations is cancelled right after it (a pending accept ends `-ECANCELED`).
//! - **delayed completions** ([`FaultInjector::delay`]): completions of the chosen
//!   operations reach the shard that much later, in their order.
//! - **failed kernel entries** ([`FaultInjector::fail_enters`]): the next N entries
//!   (`io_uring_enter`, `epoll_wait`) fail with `errno` without entering the kernel.
//!
//! What was injected is counted ([`FaultInjector::counts`]), so a test can check that its
//! fault happened before it checks that nothing was lost.

use std::{
    cell::RefCell,
    collections::{HashMap, VecDeque},
    ops::BitOr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use super::{Completion, Kind, Token, Wait, uring::lifecycle::Route};

/// Which operations a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ops(u8);

impl Ops {
    pub const NONE: Ops = Ops(0);
    /// A listener's accept.
    pub const ACCEPT: Ops = Ops(1);
    /// A connection's (multishot) receive.
    pub const RECV: Ops = Ops(2);
    /// A connection's send.
    pub const SEND: Ops = Ops(4);
    /// Awaited operations: outgoing connects, timeouts.
    pub const OTHER: Ops = Ops(8);

    fn meets(self, other: Ops) -> bool {
        self.0 & other.0 != 0
    }
}

impl BitOr for Ops {
    type Output = Ops;

    fn bitor(self, other: Ops) -> Ops {
        Ops(self.0 | other.0)
    }
}

/// How a multishot operation ended by [`FaultInjector::end_multishot_early`] shows its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndAs {
    /// The kernel's own end of a cancelled op: `-ECANCELED`, without `F_MORE`.
    Cancelled,
    /// `-ENOBUFS` without `F_MORE`: what a provided-buffer ring that ran dry gives.
    NoBuffers,
    /// The op's last data completion carries no `F_MORE` (the kernel ends a multishot op
    /// so when it cannot post more, e.g. into an overflowing CQ).
    LastData,
}

/// What was injected so far, all shards' faults counted where they happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Submissions failed by [`FaultInjector::fail_next`].
    pub failed: u64,
    /// Multishot ops ended by [`FaultInjector::end_multishot_early`].
    pub ended_early: u64,
    /// Submissions cancelled by [`FaultInjector::cancel_every`].
    pub cancelled: u64,
    /// Completions held back by [`FaultInjector::delay`].
    pub delayed: u64,
    /// Times completions were left waiting because of the small CQ.
    pub cq_held: u64,
    /// Times the small SQ was submitted early.
    pub sq_flushed: u64,
    /// Kernel entries failed by [`FaultInjector::fail_enters`].
    pub enters_failed: u64,
}

#[derive(Clone, Copy, Debug)]
struct Fail {
    ops: Ops,
    errno: i32,
    remaining: u64,
}

#[derive(Clone, Copy, Debug)]
struct EndEarly {
    ops: Ops,
    every: u64,
    how: EndAs,
}

#[derive(Clone, Copy, Debug, Default)]
struct Plan {
    fail: Option<Fail>,
    sq_cap: Option<usize>,
    cq_cap: Option<usize>,
    end_early: Option<EndEarly>,
    cancel: Option<(Ops, u64)>,
    delay: Option<(Ops, Duration)>,
    /// `errno` and how many entries are left to fail.
    fail_enter: Option<(i32, u64)>,
}

#[derive(Default)]
struct Shared {
    plan: Mutex<Plan>,
    counts: Mutex<FaultCounts>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One shard's fault plan, shared between its driver and the test that steers it.
#[derive(Clone, Default)]
pub struct FaultInjector {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FaultInjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultInjector")
            .field("plan", &*lock(&self.shared.plan))
            .field("counts", &self.counts())
            .finish()
    }
}

impl FaultInjector {
    /// The next `n` submissions of `ops` fail with `errno` (`u64::MAX`: until
    /// [`clear`](Self::clear)).
    pub fn fail_next(&self, ops: Ops, errno: i32, n: u64) {
        lock(&self.shared.plan).fail = Some(Fail {
            ops,
            errno,
            remaining: n,
        });
    }

    /// Submissions still to fail from the last [`fail_next`](Self::fail_next).
    pub fn failures_left(&self) -> u64 {
        lock(&self.shared.plan).fail.map_or(0, |f| f.remaining)
    }

    /// The SQ counts as full at `sq` entries and at most `cq` completions are taken per loop
    /// iteration (each at least 1).
    pub fn shrink_queues(&self, sq: usize, cq: usize) {
        let mut plan = lock(&self.shared.plan);
        plan.sq_cap = Some(sq.max(1));
        plan.cq_cap = Some(cq.max(1));
    }

    /// Every `every`th completion with `F_MORE` of a multishot op in `ops` ends the op.
    pub fn end_multishot_early(&self, ops: Ops, every: u64, how: EndAs) {
        lock(&self.shared.plan).end_early = Some(EndEarly {
            ops,
            every: every.max(1),
            how,
        });
    }

    /// Every `every`th submission of `ops` is cancelled right after it.
    pub fn cancel_every(&self, ops: Ops, every: u64) {
        lock(&self.shared.plan).cancel = Some((ops, every.max(1)));
    }

    /// Completions of `ops` reach the shard `by` later.
    pub fn delay(&self, ops: Ops, by: Duration) {
        lock(&self.shared.plan).delay = Some((ops, by));
    }

    /// The next `n` kernel entries of the shard's loop fail with `errno`.
    pub fn fail_enters(&self, errno: i32, n: u64) {
        lock(&self.shared.plan).fail_enter = Some((errno, n));
    }

    /// Stops every fault (completions already delayed still arrive at their time).
    pub fn clear(&self) {
        *lock(&self.shared.plan) = Plan::default();
    }

    pub fn counts(&self) -> FaultCounts {
        *lock(&self.shared.counts)
    }

    fn plan(&self) -> Plan {
        *lock(&self.shared.plan)
    }

    fn count(&self, f: impl FnOnce(&mut FaultCounts)) {
        f(&mut lock(&self.shared.counts));
    }
}

thread_local! {
    static CURRENT: RefCell<Option<FaultInjector>> = const { RefCell::new(None) };
}

/// The fault injector of the driver built last on this thread: on a shard's thread, the
/// shard's own. `None` on a thread that built no driver.
pub fn current() -> Option<FaultInjector> {
    CURRENT.with(|c| c.borrow().clone())
}

/// An op whose kernel end is awaited after an injected cancel.
struct Ending {
    how: EndAs,
    /// `EndAs::LastData`: the latest data completion, held until the next one shows it
    /// was not the last.
    held: Option<Completion>,
}

/// The driver's side of the injector: what it holds back and what it must still do.
pub(crate) struct ShardFaults {
    injector: FaultInjector,
    /// Completions of failed submissions, delivered with the next batch.
    failed: Vec<Completion>,
    delayed: VecDeque<(Instant, Completion)>,
    /// Ops to cancel at the next kernel entry.
    cancels: Vec<Token>,
    ending: HashMap<u64, Ending>,
    /// What each owned op in flight is (its completion carries only a table token).
    owned: HashMap<u64, Ops>,
    more_seen: u64,
    submitted: u64,
    /// The small CQ is ignored while the kernel needs room to take submissions.
    uncapped: bool,
}

impl ShardFaults {
    /// A fresh injector, made this thread's [`current`] one.
    pub(crate) fn new() -> Self {
        let injector = FaultInjector::default();
        CURRENT.with(|c| *c.borrow_mut() = Some(injector.clone()));
        ShardFaults {
            injector,
            failed: Vec::new(),
            delayed: VecDeque::new(),
            cancels: Vec::new(),
            ending: HashMap::new(),
            owned: HashMap::new(),
            more_seen: 0,
            submitted: 0,
            uncapped: false,
        }
    }

    fn class_of_token(token: Token) -> Ops {
        match token.kind() {
            Some(Kind::Accept) => Ops::ACCEPT,
            Some(Kind::Recv) => Ops::RECV,
            _ => Ops::NONE,
        }
    }

    /// What an owned op routed by `route` is.
    pub(crate) fn class_of_route(route: Route) -> Ops {
        match route {
            Route::Await => Ops::OTHER,
            Route::To(owner) if owner.kind() == Some(Kind::Send) => Ops::SEND,
            // The shard's eventfd read: never a target.
            Route::To(_) => Ops::NONE,
        }
    }

    /// A submission of `class`: true when it must fail (the caller submits nothing; its
    /// completion is queued here once [`failed`](Self::failed) names its token).
    pub(crate) fn should_fail(&mut self, class: Ops) -> Option<i32> {
        if class == Ops::NONE {
            return None;
        }
        let mut plan = lock(&self.injector.shared.plan);
        let fail = plan.fail.as_mut()?;
        if !fail.ops.meets(class) || fail.remaining == 0 {
            return None;
        }
        fail.remaining = fail.remaining.saturating_sub(1);
        let errno = fail.errno;
        drop(plan);
        self.injector.count(|c| c.failed += 1);
        Some(errno)
    }

    /// The submission of `token` failed with `errno`: its completion comes next batch.
    pub(crate) fn failed(&mut self, token: Token, errno: i32) {
        self.failed
            .push(Completion::new(token, -errno, false, None));
    }

    /// A submission that went to the kernel: remembered for classifying its completion,
    /// and cancelled when the plan says so.
    pub(crate) fn submitted(&mut self, token: Token, class: Ops) {
        if class == Ops::NONE {
            return;
        }
        if token.kind() == Some(Kind::Lifecycle) {
            self.owned.insert(token.user_data(), class);
        }
        if let Some((ops, every)) = self.injector.plan().cancel
            && ops.meets(class)
        {
            self.submitted += 1;
            if self.submitted % every == 0 {
                self.cancels.push(token);
                self.injector.count(|c| c.cancelled += 1);
            }
        }
    }

    /// A submission of a pointerless op (accept, receive) with `token`: fails it, or notes
    /// it. True when it failed and must not be submitted.
    pub(crate) fn on_submit(&mut self, token: Token) -> bool {
        let class = Self::class_of_token(token);
        if let Some(errno) = self.should_fail(class) {
            self.failed(token, errno);
            return true;
        }
        self.submitted(token, class);
        false
    }

    /// A kernel entry: the errno it must fail with, if it must.
    pub(crate) fn fail_enter(&self) -> Option<i32> {
        let mut plan = lock(&self.injector.shared.plan);
        let (errno, left) = plan.fail_enter.as_mut()?;
        if *left == 0 {
            return None;
        }
        *left -= 1;
        let errno = *errno;
        drop(plan);
        self.injector.count(|c| c.enters_failed += 1);
        Some(errno)
    }

    /// The SQ holds `queued` entries: true when it counts as full.
    #[inline]
    pub(crate) fn sq_full(&self, queued: usize) -> bool {
        match self.injector.plan().sq_cap {
            Some(cap) if queued >= cap => {
                self.injector.count(|c| c.sq_flushed += 1);
                true
            }
            _ => false,
        }
    }

    /// Completions already taken this iteration: true when no more may be.
    #[inline]
    pub(crate) fn cq_full(&self, taken: usize) -> bool {
        if self.uncapped {
            return false;
        }
        match self.injector.plan().cq_cap {
            Some(cap) if taken >= cap => {
                self.injector.count(|c| c.cq_held += 1);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn uncapped(&mut self, on: bool) {
        self.uncapped = on;
    }

    /// The most completions one iteration may take.
    pub(crate) fn cq_cap(&self) -> Option<usize> {
        self.injector.plan().cq_cap
    }

    /// Counts completions left waiting by the small CQ (the readiness driver's overflow).
    pub(crate) fn count_cq_held(&self) {
        self.injector.count(|c| c.cq_held += 1);
    }

    /// Cancels to submit before the next kernel entry.
    pub(crate) fn take_cancels(&mut self) -> Vec<Token> {
        std::mem::take(&mut self.cancels)
    }

    /// Completions waiting here that are due: the loop must not sleep.
    pub(crate) fn has_ready(&self, now: Instant) -> bool {
        !self.failed.is_empty() || self.delayed.front().is_some_and(|(at, _)| *at <= now)
    }

    /// The wait the loop asked for, shortened so that held completions arrive on time.
    pub(crate) fn limit_wait(&self, wait: Wait, now: Instant) -> Wait {
        if self.has_ready(now) {
            return Wait::No;
        }
        let Some(due) = self.delayed.iter().map(|(at, _)| *at).min() else {
            return wait;
        };
        let left = due.saturating_duration_since(now);
        match wait {
            Wait::No => Wait::No,
            Wait::Forever => Wait::Timeout(left),
            Wait::Timeout(limit) => Wait::Timeout(limit.min(left)),
        }
    }

    /// Applies the plan to a batch of completions the driver reaped: what is due now stays
    /// in `batch` (failed submissions first, then delayed ones, then the rest in order).
    pub(crate) fn filter(&mut self, batch: &mut Vec<Completion>, now: Instant) {
        if self.failed.is_empty()
            && self.delayed.is_empty()
            && self.ending.is_empty()
            && self.owned.is_empty()
            && batch.is_empty()
        {
            return;
        }
        let plan = self.injector.plan();
        let incoming = std::mem::take(batch);
        batch.append(&mut self.failed);
        while let Some((at, _)) = self.delayed.front() {
            if *at > now {
                break;
            }
            if let Some((_, c)) = self.delayed.pop_front() {
                batch.push(c);
            }
        }
        for completion in incoming {
            self.one(completion, &plan, batch, now);
        }
    }

    fn one(
        &mut self,
        completion: Completion,
        plan: &Plan,
        out: &mut Vec<Completion>,
        now: Instant,
    ) {
        let token = completion.token;
        let class = match token.kind() {
            Some(Kind::Lifecycle) => self.owned.remove(&token.user_data()).unwrap_or(Ops::NONE),
            _ => Self::class_of_token(token),
        };
        if completion.more
            && let Some(end) = plan.end_early
            && end.ops.meets(class)
            && !self.ending.contains_key(&token.user_data())
        {
            self.more_seen += 1;
            if self.more_seen % end.every == 0 {
                self.cancels.push(token);
                self.ending.insert(
                    token.user_data(),
                    Ending {
                        how: end.how,
                        held: None,
                    },
                );
                self.injector.count(|c| c.ended_early += 1);
            }
        }
        let Some(ending) = self.ending.get_mut(&token.user_data()) else {
            self.emit(completion, class, plan, out, now);
            return;
        };
        if completion.more {
            if ending.how == EndAs::LastData {
                if let Some(previous) = ending.held.replace(completion) {
                    self.emit(previous, class, plan, out, now);
                }
            } else {
                self.emit(completion, class, plan, out, now);
            }
            return;
        }
        // The op's end, from our cancel or its own.
        let Some(ending) = self.ending.remove(&token.user_data()) else {
            return;
        };
        self.cancels.retain(|t| *t != token);
        let cancelled = completion.result == -libc::ECANCELED;
        match (ending.how, ending.held) {
            (EndAs::LastData, Some(mut last)) if cancelled => {
                last.more = false;
                self.emit(last, class, plan, out, now);
            }
            (_, held) => {
                if let Some(held) = held {
                    self.emit(held, class, plan, out, now);
                }
                let mut end = completion;
                if ending.how == EndAs::NoBuffers && cancelled {
                    end.result = -libc::ENOBUFS;
                }
                self.emit(end, class, plan, out, now);
            }
        }
    }

    fn emit(
        &mut self,
        completion: Completion,
        class: Ops,
        plan: &Plan,
        out: &mut Vec<Completion>,
        now: Instant,
    ) {
        match plan.delay {
            Some((ops, by)) if ops.meets(class) => {
                self.delayed.push_back((now + by, completion));
                self.injector.count(|c| c.delayed += 1);
            }
            // Behind delayed ones of the same op, to keep each op's completions in order.
            _ if self
                .delayed
                .iter()
                .any(|(_, c)| c.token == completion.token) =>
            {
                let at = self.delayed.back().map_or(now, |(at, _)| *at);
                self.delayed.push_back((at, completion));
            }
            _ => out.push(completion),
        }
    }
}

impl Drop for ShardFaults {
    fn drop(&mut self) {
        // Sockets of accepts held back here belong to nobody else: close them.
        for (_, completion) in self.delayed.drain(..) {
            drop(completion.accepted_fd());
        }
        for ending in self.ending.drain().map(|(_, e)| e) {
            if let Some(held) = ending.held {
                drop(held.accepted_fd());
            }
        }
    }
}

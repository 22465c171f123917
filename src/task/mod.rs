//! The per-shard executor: `!Send` tasks, wakers that work from any thread, a poll budget,
//! and the engine of the shard loop (its phases are described in the crate docs).

#![forbid(unsafe_code)]

pub(crate) mod coop;
pub(crate) mod core;
pub(crate) mod join;
pub mod label;
pub(crate) mod local;
pub(crate) mod op;
mod per_shard;
pub(crate) mod remote;
pub(crate) mod run_loop;
pub(crate) mod stats;
pub(crate) mod tasks;

use std::{
    future::{Future, poll_fn},
    task::Poll,
};

pub(crate) use self::core::{CORE, Core};
pub use self::{
    join::{JoinError, JoinHandle},
    per_shard::PerShard,
    stats::LoopStats,
};

/// Spawns a task on the current shard. The task may hold `!Send` values; it runs only here.
///
/// A task spawned by a background task (or by the init hook) is a background task too (see
/// [`spawn_background`]); any other is waited for by a graceful stop, until the drain
/// deadline.
///
/// # Panics
/// Off a shard (the panic names the caller's line).
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    CORE.with_current(|core| core.spawn(future))
}

/// Spawns a **background task** on the current shard: a periodic flush, a cache refresher,
/// a metrics sampler. When the server's graceful stop begins (the drain start), the shard
/// **cancels** its background tasks: each is dropped at the await point it waits at (its
/// destructors run; its `JoinHandle` answers [`JoinError::Cancelled`]), so a loop that
/// never looks at [`shutdown_signal`](crate::shutdown_signal) does not hold the stop.
/// Tasks they spawn, and tasks spawned by the init hook
/// ([`ServerBuilder::on_shard_start`](crate::ServerBuilder::on_shard_start)), are
/// background tasks too.
///
/// Work that must finish before the process exits (flushing a write-back buffer) belongs
/// in a plain [`spawn`]ed task that selects on `shutdown_signal`: plain tasks are waited
/// for until the drain deadline.
///
/// # Panics
/// Off a shard.
#[track_caller]
pub fn spawn_background<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    CORE.with_current(|core| core.spawn_as(future, true))
}

/// Lets the other ready tasks of the shard (and its I/O) run before this one continues.
pub async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// Panics, naming the caller's line, when this thread runs no shard: the eager check of
/// the shard-only functions that return a future (an `async fn` cannot carry
/// `#[track_caller]`).
#[track_caller]
pub(crate) fn expect_shard() {
    CORE.with_current(|_| ());
}

/// The id of the shard this thread runs, if any.
pub(crate) fn current_shard_id() -> Option<usize> {
    CORE.with(|core| core.id)
}

/// The clock reading of the current loop iteration, if this thread runs a shard.
pub(crate) fn iteration_now() -> Option<std::time::Instant> {
    CORE.with(Core::iteration_now).flatten()
}

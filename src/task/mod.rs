//! The per-shard executor: `!Send` tasks, wakers that work from any thread, a poll budget,
//! and the engine of the shard loop (its phases are described in the crate docs).

#![forbid(unsafe_code)]

pub(crate) mod coop;
pub(crate) mod core;
pub(crate) mod join;
pub mod label;
pub(crate) mod local;
pub(crate) mod op;
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
    stats::LoopStats,
};

/// Spawns a task on the current shard. The task may hold `!Send` values; it runs only here.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    CORE.with_current(|core| core.spawn(future))
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

/// The id of the shard this thread runs, if any.
pub(crate) fn current_shard_id() -> Option<usize> {
    CORE.with(|core| core.id)
}

/// The clock reading of the current loop iteration, if this thread runs a shard.
pub(crate) fn iteration_now() -> Option<std::time::Instant> {
    CORE.with(Core::iteration_now).flatten()
}

//! The blocking/CPU pool: a small, bounded set of OS threads for work that
//! must not run on a shard.
//!
//! A shard runs one single-threaded executor over one io_uring. Anything that
//! blocks the thread (a synchronous file or DNS call, a C library without an
//! async API) or burns CPU for long (hashing a password, compressing a body,
//! parsing a large document) stalls *every* connection on that shard for as
//! long as it runs. Such work goes to this pool instead: the shard task
//! awaits a [`Blocking`] future, the job runs on a pool thread, and the
//! result travels back through a one-shot channel whose waker re-queues the
//! task on its own shard. This is the role of libuv's threadpool and of
//! FastAPI's `run_in_threadpool`.
//!
//! # Why bounded
//!
//! Both the thread count and the job queue are bounded. A fixed number of
//! threads caps how many cores blocking work can take away from the shards;
//! the bounded queue gives backpressure instead of unbounded memory growth
//! when jobs arrive faster than they finish:
//!
//! * [`BlockingPool::try_submit`] fails fast with [`SubmitError::Full`];
//! * [`BlockingPool::submit`] and [`BlockingPool::spawn_blocking`] wait
//!   asynchronously for room, suspending only the submitting task, never the
//!   shard.
//!
//! # Configuration
//!
//! The default is 4 threads, mirroring libuv's `UV_THREADPOOL_SIZE`, and a
//! queue of 1024 jobs. Set the fields of [`BlockingConfig`] directly, or read
//! the thread count from the `PERCORE_BLOCKING_THREADS` environment variable
//! with [`BlockingConfig::from_env`]. All threads are started eagerly by
//! [`BlockingPool::new`], so a failure to spawn them surfaces at start-up
//! rather than on the first request.
//!
//! # Priority
//!
//! Pool threads run at a lower scheduling priority than the shards: each worker adds
//! [`BlockingConfig::nice_increment`] (default [`DEFAULT_NICE_INCREMENT`], 10) to its own
//! nice value when it starts. A CPU burn moved to the pool (adaptive offload, `?offload=1`)
//! then does not take a CPU away from a shard when the machine has no spare one: at +10 the
//! fair scheduler gives a pool thread about a tenth of the weight of a shard, and a waking
//! shard preempts it. Nice rather than `SCHED_IDLE`: an idle-class thread may starve for as
//! long as the shards are busy, while a niced one keeps a small share, so a pool job under
//! load is slowed, not stuck. Nice rather than `SCHED_BATCH`: batch keeps the full weight
//! and only gives up wake-up preemption, which does not free the CPU for a shard. Set
//! `nice_increment: 0` to run the pool at the process's priority. If the kernel refuses,
//! the thread logs a warning and runs at the process's priority.
//!
//! # Shutdown
//!
//! [`BlockingPool::shutdown`] stops accepting jobs, lets the queued ones
//! finish and joins the threads up to a deadline. Dropping the last handle
//! stops accepting jobs without waiting: the threads drain the queue and exit
//! on their own.

#![forbid(unsafe_code)]

mod config;
mod error;
mod pool;
#[cfg(test)]
mod tests;

use std::{cell::RefCell, rc::Rc};

pub use config::{
    BlockingConfig, DEFAULT_NICE_INCREMENT, DEFAULT_QUEUE_CAPACITY, DEFAULT_THREADS, MAX_THREADS,
    THREADS_ENV,
};
pub use error::{BlockingError, SubmitError};
pub use pool::{Blocking, BlockingPool, BlockingStats, Job};

use crate::task::local::ShardLocal;

thread_local! {
    static CURRENT: RefCell<Option<Rc<BlockingPool>>> = const { RefCell::new(None) };
}

/// The pool the shard this thread runs hands its blocking work to.
pub(crate) static POOL: ShardLocal<BlockingPool> = ShardLocal::new(&CURRENT);

/// Runs `f` on the blocking pool and resumes this task on its shard with the result; the
/// way to run CPU-heavy or blocking code without stalling the shard.
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> Blocking<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    POOL.current().spawn_blocking(f)
}

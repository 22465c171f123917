//! The per-shard executor: `!Send` tasks, wakers that work from any thread, a poll budget,
//! and the loop that runs the phases described in the crate docs.

pub(crate) mod coop;
pub(crate) mod join;
pub(crate) mod remote;
pub(crate) mod run_loop;
pub(crate) mod shard;
pub(crate) mod task;
pub(crate) mod watchdog;

use std::{
    future::{Future, poll_fn},
    task::Poll,
};

pub use self::join::{JoinError, JoinHandle};

/// Spawns a task on the current shard. The task may hold `!Send` values; it runs only here.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    shard::current().spawn(future)
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

/// True once the server has begun a graceful stop.
pub fn shutdown_requested() -> bool {
    shard::current().is_draining()
}

/// Completes when the server begins a graceful stop; long-lived connection handlers select
/// on it to finish their current work and close.
pub async fn shutdown_signal() {
    /// Unregisters the waiter however the future ends.
    struct Waiter {
        shard: std::rc::Rc<shard::Shard>,
        key: Option<usize>,
    }
    impl Drop for Waiter {
        fn drop(&mut self) {
            self.shard.drain.unregister(&mut self.key);
        }
    }
    let mut waiter = Waiter {
        shard: shard::current(),
        key: None,
    };
    poll_fn(|cx| {
        if waiter.shard.is_draining() {
            return Poll::Ready(());
        }
        waiter.shard.drain.register(&mut waiter.key, cx.waker());
        Poll::Pending
    })
    .await
}

/// Asks the whole server to stop gracefully (from inside any shard).
pub fn stop_server() {
    shard::current().control.request_stop();
}

/// Runs `f` on the blocking pool and resumes this task on its shard with the result; the
/// way to run CPU-heavy or blocking code without stalling the shard.
pub fn spawn_blocking<F, R>(f: F) -> crate::blocking::Blocking<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    shard::current().blocking.spawn_blocking(f)
}

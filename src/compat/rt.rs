//! hyper's runtime hooks on a shard: an executor that spawns on the current shard and a
//! timer on the shard's timer wheel.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use hyper::rt::{Executor, Sleep, Timer};

use crate::time::SendSleep;

/// Spawns hyper's background futures (an HTTP/1 client connection, HTTP/2 streams) as tasks
/// of the current shard. They need not be `Send`: they never leave the shard.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShardExecutor;

impl<F> Executor<F> for ShardExecutor
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, future: F) {
        // Detached: the task runs to its end on this shard.
        drop(crate::task::spawn(future));
    }
}

/// hyper's [`Timer`] on the shard's timer wheel (1 ms resolution, no tick): what makes
/// hyper's header-read timeout work on a shard. Its sleeps must be polled on a shard.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShardTimer;

/// The sleep [`ShardTimer`] hands to hyper.
pub struct ShardSleep(SendSleep);

impl Future for ShardSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl Sleep for ShardSleep {}

impl Timer for ShardTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(ShardSleep(SendSleep::after(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(ShardSleep(SendSleep::until(deadline)))
    }

    /// The iteration's clock reading: no `clock_gettime` per request. A deadline computed
    /// from it errs early by at most the time the iteration has run.
    fn now(&self) -> Instant {
        crate::time::now()
    }

    /// Moves the wheel entry instead of allocating a new sleep (hyper resets its header
    /// timer once per request).
    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<ShardSleep>() {
            Some(mut ours) => ours.0.reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

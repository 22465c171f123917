//! `SendSleep`: a sleep on the shard's timer wheel that is `Send + Sync`.
//!
//! Some APIs demand `Send + Sync` timers even when they only ever run on one thread: hyper's
//! `rt::Sleep`, and the futures of tower layers inside an axum `Router`. [`Sleep`] holds the
//! shard (`Rc`), so it cannot be one. A `SendSleep` holds only its deadline and, once
//! polled, the key of its wheel entry and the thread that armed it; each poll reaches the
//! wheel through the current shard.
//!
//! States: unarmed (never polled, or polled on another thread than the one that armed it)
//! → armed (an entry in the arming shard's wheel) → fired (deadline reached, entry gone).
//! Only the arming thread touches the entry; a `SendSleep` dropped or polled elsewhere
//! leaves it to fire harmlessly (a stale waker wakes a task once for nothing).
//!
//! [`Sleep`]: super::Sleep

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    thread::{self, ThreadId},
    time::{Duration, Instant},
};

use super::{TIMERS, Timers, clock::Clock, wheel::TimerKey};
use crate::task;

thread_local! {
    /// This thread's id, read without `thread::current()`'s reference count.
    static HERE: ThreadId = thread::current().id();
}

fn here() -> ThreadId {
    HERE.with(|id| *id)
}

/// A sleep until an [`Instant`] that may cross threads; it must be polled on a shard.
#[derive(Debug)]
pub struct SendSleep {
    deadline: Instant,
    armed: Option<Armed>,
}

#[derive(Debug, Clone, Copy)]
struct Armed {
    thread: ThreadId,
    deadline_ms: u64,
    key: Option<TimerKey>,
}

impl SendSleep {
    /// Completes at `deadline` (rounded up to the next millisecond of the shard's clock).
    pub fn until(deadline: Instant) -> Self {
        SendSleep {
            deadline,
            armed: None,
        }
    }

    /// Completes after `duration`.
    pub fn after(duration: Duration) -> Self {
        Self::until(Instant::now() + duration)
    }

    /// The deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline (reuses the wheel entry when the arming thread resets it).
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        let Some(armed) = self.armed.as_mut() else {
            return;
        };
        let Some(shard) = TIMERS.try_current().filter(|_| armed.thread == here()) else {
            self.armed = None;
            return;
        };
        armed.deadline_ms = deadline_ms(&shard, deadline);
        if let Some(key) = armed.key
            && !shard.wheel.borrow_mut().reset(key, armed.deadline_ms)
        {
            armed.key = None;
        }
    }
}

/// `deadline` on the shard's clock, rounded up; no clock read for the system clock.
fn deadline_ms(timers: &Timers, deadline: Instant) -> u64 {
    match &timers.clock {
        Clock::System { origin } => ceil_ms(deadline.saturating_duration_since(*origin)),
        Clock::Manual(_) => timers
            .clock
            .deadline_ms_after(deadline.saturating_duration_since(Instant::now())),
    }
}

fn ceil_ms(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

impl Future for SendSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let shard = TIMERS.try_current().expect(
            "percore: a SendSleep must be polled on a percore shard (no shard runs this thread)",
        );
        let this = &mut *self;
        let here = here();
        let armed = match this.armed {
            Some(armed) if armed.thread == here => this.armed.insert(armed),
            _ => this.armed.insert(Armed {
                thread: here,
                deadline_ms: deadline_ms(&shard, this.deadline),
                key: None,
            }),
        };
        let mut timers = shard.wheel.borrow_mut();
        // The iteration's clock reading: no clock read per poll. It may trail the real time;
        // the wheel, which fires on the real time, covers that case below.
        let now = task::iteration_now().unwrap_or_else(Instant::now);
        if shard.clock.ms_at(now) >= armed.deadline_ms {
            if let Some(key) = armed.key.take() {
                timers.remove(key);
            }
            return Poll::Ready(());
        }
        if let Some(key) = armed.key {
            let Some(waker) = timers.get_mut(key) else {
                // The wheel fired the entry (it only fires due ones; `reset` forgets the key
                // it could not move): the deadline has passed.
                armed.key = None;
                return Poll::Ready(());
            };
            if !waker.will_wake(cx.waker()) {
                *waker = cx.waker().clone();
            }
            return Poll::Pending;
        }
        armed.key = Some(timers.insert(armed.deadline_ms, cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for SendSleep {
    fn drop(&mut self) {
        let Some(Armed {
            thread,
            key: Some(key),
            ..
        }) = self.armed
        else {
            return;
        };
        if thread != here() {
            return;
        }
        if let Some(shard) = TIMERS.try_current()
            && let Ok(mut timers) = shard.wheel.try_borrow_mut()
        {
            timers.remove(key);
        }
    }
}

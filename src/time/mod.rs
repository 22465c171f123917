//! Time on a shard: `sleep`, `timeout` and `interval` on the shard's timer wheel.
//!
//! The wheel has 1 ms resolution but no tick: the loop's wait in `io_uring_enter` ends at the
//! next deadline (EXT_ARG timeout), so an idle shard sleeps until something is due.

#![forbid(unsafe_code)]

pub mod clock;
mod send_sleep;
#[allow(dead_code)] // `now_ms`/`is_empty` serve tests and diagnostics.
pub(crate) mod wheel;

use std::{
    cell::RefCell,
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

pub use self::send_sleep::SendSleep;
use self::{
    clock::Clock,
    wheel::{TimerKey, TimerWheel},
};
use crate::task::{self, local::ShardLocal};

/// One shard's timers: the wheel of wakers and the clock that reads it.
pub(crate) struct Timers {
    pub(crate) wheel: RefCell<TimerWheel<Waker>>,
    pub(crate) clock: Clock,
}

impl Timers {
    pub(crate) fn new(clock: Clock) -> Self {
        Timers {
            wheel: RefCell::new(TimerWheel::new()),
            clock,
        }
    }

    /// The timers phase: wakes the tasks whose deadline is at or before `now`. `fired` is
    /// the caller's scratch vector (kept to reuse its capacity).
    pub(crate) fn fire(&self, now: Instant, fired: &mut Vec<Waker>) {
        let now_ms = self.clock.ms_at(now);
        self.wheel.borrow_mut().advance(now_ms, fired);
        for waker in fired.drain(..) {
            waker.wake();
        }
    }

    /// How long from `now` until the next timer is due.
    pub(crate) fn until_next(&self, now: Instant) -> Option<Duration> {
        let next = self.wheel.borrow().next_deadline_ms()?;
        Some(self.clock.until_ms_from(next, now))
    }

    pub(crate) fn armed(&self) -> usize {
        self.wheel.borrow().len()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Timers>>> = const { RefCell::new(None) };
}

/// The timers of the shard this thread runs.
pub(crate) static TIMERS: ShardLocal<Timers> = ShardLocal::new(&CURRENT);

/// When the current shard's loop last woke from its wait, which begins the iteration that
/// runs now: the loop reads the clock then, and everything that runs in the iteration may
/// share that reading instead of reading the clock itself (a hot path saves a
/// `clock_gettime` per request). Every completion the iteration handles arrived before it.
///
/// It trails the real time by at most what the iteration has run so far, so use it for
/// timestamps and for deadlines that may only err early, not to time work done within one
/// iteration. Off a shard it reads the clock.
pub fn now() -> Instant {
    task::iteration_now().unwrap_or_else(Instant::now)
}

/// Completes after `duration` (rounded up to the next millisecond).
#[track_caller]
pub fn sleep(duration: Duration) -> Sleep {
    let timers = TIMERS.current();
    let deadline_ms = timers.clock.deadline_ms_after(duration);
    Sleep {
        timers,
        deadline_ms,
        key: None,
    }
}

/// The future of [`sleep`].
pub struct Sleep {
    timers: Rc<Timers>,
    deadline_ms: u64,
    key: Option<TimerKey>,
}

impl Sleep {
    /// Moves the deadline to `duration` from now (reuses the timer).
    pub fn reset(&mut self, duration: Duration) {
        self.deadline_ms = self.timers.clock.deadline_ms_after(duration);
        if let Some(key) = self.key
            && !self.timers.wheel.borrow_mut().reset(key, self.deadline_ms)
        {
            self.key = None;
        }
    }

    /// True once the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        self.timers.clock.now_ms() >= self.deadline_ms
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.timers.clock.now_ms() >= this.deadline_ms {
            if let Some(key) = this.key.take() {
                this.timers.wheel.borrow_mut().remove(key);
            }
            return Poll::Ready(());
        }
        let mut timers = this.timers.wheel.borrow_mut();
        if let Some(key) = this.key
            && let Some(waker) = timers.get_mut(key)
        {
            if !waker.will_wake(cx.waker()) {
                *waker = cx.waker().clone();
            }
            return Poll::Pending;
        }
        this.key = Some(timers.insert(this.deadline_ms, cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take()
            && let Ok(mut timers) = self.timers.wheel.try_borrow_mut()
        {
            timers.remove(key);
        }
    }
}

/// The error of a [`timeout`] that expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Runs `future` for at most `duration` from this call; the future is dropped if the time
/// runs out.
///
/// # Panics
/// Off a shard (at the call, naming the caller's line).
#[track_caller]
pub fn timeout<F: Future>(
    duration: Duration,
    future: F,
) -> impl Future<Output = Result<F::Output, Elapsed>> {
    let mut sleep = sleep(duration);
    async move {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(value) = future.as_mut().poll(cx) {
                return Poll::Ready(Ok(value));
            }
            match Pin::new(&mut sleep).poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}

/// Ticks every `period`, without drift: each deadline is the previous one plus `period`.
/// Missed ticks (a stalled shard) are skipped, not bunched.
#[track_caller]
pub fn interval(period: Duration) -> Interval {
    assert!(!period.is_zero(), "interval period must be > 0");
    let timers = TIMERS.current();
    let next_ms = timers.clock.deadline_ms_after(Duration::ZERO);
    Interval {
        timers,
        period_ms: period.as_millis().max(1) as u64,
        next_ms,
    }
}

/// The stream of [`interval`] ticks.
pub struct Interval {
    timers: Rc<Timers>,
    period_ms: u64,
    next_ms: u64,
}

impl Interval {
    /// Waits for the next tick (the first completes at once).
    pub async fn tick(&mut self) {
        let now_ms = self.timers.clock.now_ms();
        if self.next_ms > now_ms {
            Sleep {
                timers: self.timers.clone(),
                deadline_ms: self.next_ms,
                key: None,
            }
            .await;
        }
        let now_ms = self.timers.clock.now_ms();
        self.next_ms += self.period_ms;
        if self.next_ms <= now_ms {
            let behind = (now_ms - self.next_ms) / self.period_ms + 1;
            self.next_ms += behind * self.period_ms;
        }
    }
}

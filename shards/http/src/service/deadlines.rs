//! The connection's two deadlines (R12, R18) on one timer that is moved rarely.
//!
//! The real deadline is the header deadline while a request is in progress, else the idle
//! deadline; it moves later with every request. Re-arming a timer per request costs a clock
//! read and a wheel update, so the timer stays armed at or *before* the real deadline: when it
//! fires early, it is re-armed for what is left; when a request starts (the header deadline
//! may be earlier), it is pulled in. Nothing fires late.

use std::time::{Duration, Instant};

use percore::time::{Sleep, sleep};

use crate::Limits;

pub(super) struct Deadlines {
    limits_header: Duration,
    limits_idle: Duration,
    pub(super) last_activity: Instant,
    head_started: Option<Instant>,
    pub(super) timer: Sleep,
    /// When the timer fires (to the millisecond it rounds up to).
    pub(super) armed: Instant,
    /// Whether the timer has been polled with this task's waker since it was last armed.
    pub(super) registered: bool,
}

/// What a fired timer means.
pub(super) enum Expired {
    /// Nothing yet: the timer fired early (there was activity since) and is re-armed.
    Early,
    /// The header deadline: a request head is still incomplete (408).
    Head,
    /// The idle deadline: no request on a keep-alive connection.
    Idle,
}

impl Deadlines {
    pub(super) fn new(limits: &Limits, now: Instant) -> Self {
        let first = limits.idle_timeout.min(limits.header_timeout);
        Self {
            limits_header: limits.header_timeout,
            limits_idle: limits.idle_timeout,
            last_activity: now,
            head_started: None,
            timer: sleep(first),
            armed: now + first,
            registered: false,
        }
    }

    fn real(&self) -> Instant {
        match self.head_started {
            Some(started) => started + self.limits_header,
            None => self.last_activity + self.limits_idle,
        }
    }

    fn arm(&mut self, now: Instant, at: Instant) {
        let wait = at.saturating_duration_since(now);
        self.timer.reset(wait);
        self.armed = now + wait;
        self.registered = false;
    }

    /// After a pass over the input at `now`: whether a request is now in progress.
    #[inline]
    pub(super) fn passed(&mut self, now: Instant, in_request: bool) {
        self.head_started = match (in_request, self.head_started) {
            (true, None) => Some(now),
            (true, started) => started,
            (false, _) => None,
        };
    }

    /// Pulls the timer in if the real deadline is now before it.
    #[inline]
    pub(super) fn pull_in(&mut self) {
        let real = self.real();
        if real < self.armed {
            self.arm(Instant::now(), real);
        }
    }

    /// The timer fired at `now`: which deadline passed, if any.
    pub(super) fn expired(&mut self, now: Instant) -> Expired {
        let real = self.real();
        if now < real {
            self.arm(now, real);
            Expired::Early
        } else if self.head_started.is_some() {
            Expired::Head
        } else {
            Expired::Idle
        }
    }
}

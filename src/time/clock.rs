//! Millisecond clocks that feed the timer wheel.
//!
//! Shards read time as whole milliseconds since an origin, the unit of the
//! timer wheel. [`Clock::System`] reads the monotonic [`Instant`] clock;
//! [`Clock::Manual`] reads a shared counter that only moves when a test moves
//! it through its [`ManualClockHandle`], so tests drive time
//! deterministically instead of sleeping.
//!
//! Rounding: `now_ms` rounds down and [`Clock::deadline_ms_after`] rounds
//! the timeout up, so a timer armed for a duration never fires early.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Source of "now" in milliseconds; cheap to clone, `Send + Sync`.
#[derive(Clone, Debug)]
pub enum Clock {
    /// Monotonic wall time: milliseconds elapsed since `origin`.
    System {
        /// The instant that reads as 0 ms.
        origin: Instant,
    },
    /// Test time: the counter's value, moved only by a [`ManualClockHandle`].
    Manual(Arc<AtomicU64>),
}

/// Moves the time of the [`Clock::Manual`] it was created with (and of all
/// clones of that clock); `Clone + Send + Sync`, so a test thread can hold it
/// while shards read the clock.
#[derive(Clone, Debug)]
pub struct ManualClockHandle {
    now_ms: Arc<AtomicU64>,
}

impl Clock {
    /// A monotonic clock whose 0 ms is now.
    pub fn system() -> Self {
        Clock::System {
            origin: Instant::now(),
        }
    }

    /// A test clock at 0 ms and the handle that moves it.
    pub fn manual() -> (Self, ManualClockHandle) {
        let now_ms = Arc::new(AtomicU64::new(0));
        (
            Clock::Manual(Arc::clone(&now_ms)),
            ManualClockHandle { now_ms },
        )
    }

    /// Whole milliseconds since the origin (rounded down).
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System { origin } => duration_to_ms_floor(origin.elapsed()),
            // Acquire pairs with the handle's Release so a shard that sees a
            // new time also sees what the test wrote before moving it.
            Clock::Manual(now_ms) => now_ms.load(Ordering::Acquire),
        }
    }

    /// Whole milliseconds since the origin at `at` (rounded down), for a reading the caller
    /// already took; a manual clock ignores `at` and reads its counter.
    pub fn ms_at(&self, at: Instant) -> u64 {
        match self {
            Clock::System { origin } => duration_to_ms_floor(at.saturating_duration_since(*origin)),
            Clock::Manual(now_ms) => now_ms.load(Ordering::Acquire),
        }
    }

    /// The current [`Instant`], for the system clock only: manual time has
    /// no relation to real instants, so it returns `None`.
    pub fn now_instant(&self) -> Option<Instant> {
        match self {
            Clock::System { .. } => Some(Instant::now()),
            Clock::Manual(_) => None,
        }
    }

    /// True for a [`Clock::Manual`].
    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }

    /// How long from now until `deadline_ms` (zero if it has passed). A system clock
    /// measures against the real `Instant`, so a wait ends at the deadline, not a tick.
    pub fn until_ms(&self, deadline_ms: u64) -> Duration {
        self.until_ms_from(deadline_ms, Instant::now())
    }

    /// [`Clock::until_ms`] measured from `now`, a reading the caller already took.
    pub fn until_ms_from(&self, deadline_ms: u64, now: Instant) -> Duration {
        match self {
            Clock::System { origin } => {
                (*origin + Duration::from_millis(deadline_ms)).saturating_duration_since(now)
            }
            Clock::Manual(_) => Duration::from_millis(deadline_ms.saturating_sub(self.now_ms())),
        }
    }

    /// Deadline, in this clock's milliseconds, of a timer armed now for
    /// `timeout`: the timeout is rounded up to whole ms and the sum
    /// saturates, so the timer never fires before `timeout` has passed.
    pub fn deadline_ms_after(&self, timeout: Duration) -> u64 {
        match self {
            Clock::System { origin } => {
                duration_to_ms_ceil(origin.elapsed().saturating_add(timeout))
            }
            Clock::Manual(_) => self.now_ms().saturating_add(duration_to_ms_ceil(timeout)),
        }
    }
}

impl ManualClockHandle {
    /// Moves the clock forward by `by`, in whole milliseconds (a
    /// sub-millisecond remainder is dropped); saturates at `u64::MAX`.
    pub fn advance(&self, by: Duration) {
        let by_ms = duration_to_ms_floor(by);
        // The closure always returns Some, so fetch_update cannot fail.
        let _ = self
            .now_ms
            .fetch_update(Ordering::Release, Ordering::Relaxed, |now_ms| {
                Some(now_ms.saturating_add(by_ms))
            });
    }

    /// Sets the clock to `now_ms`. This may move it backwards, which lets
    /// tests check that consumers tolerate it (the timer wheel ignores it).
    pub fn set_ms(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::Release);
    }

    /// The clock's current time in milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::Acquire)
    }
}

/// Whole milliseconds in `d`, rounded down, saturating at `u64::MAX`.
fn duration_to_ms_floor(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds in `d`, rounded up, saturating at `u64::MAX`.
fn duration_to_ms_ceil(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

    #[test]
    fn clock_and_handle_are_send_sync_clone() {
        assert_send_sync_clone::<Clock>();
        assert_send_sync_clone::<ManualClockHandle>();
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let (clock, handle) = Clock::manual();
        let copy = clock.clone();
        assert!(clock.is_manual());
        assert_eq!(clock.now_ms(), 0);
        assert_eq!(clock.now_instant(), None);
        handle.advance(Duration::from_millis(1500));
        assert_eq!(clock.now_ms(), 1500);
        assert_eq!(copy.now_ms(), 1500, "clones share the counter");
        handle.advance(Duration::from_micros(999));
        assert_eq!(handle.now_ms(), 1500, "sub-ms remainder dropped");
        handle.set_ms(10);
        assert_eq!(clock.now_ms(), 10);
        handle.set_ms(u64::MAX - 1);
        handle.advance(Duration::from_secs(1));
        assert_eq!(clock.now_ms(), u64::MAX);
    }

    #[test]
    fn manual_clock_is_shared_across_threads() {
        let (clock, handle) = Clock::manual();
        std::thread::spawn(move || handle.set_ms(42))
            .join()
            .expect("setter thread panicked");
        assert_eq!(clock.now_ms(), 42);
    }

    #[test]
    fn deadlines_round_the_timeout_up() {
        let (clock, handle) = Clock::manual();
        handle.set_ms(100);
        assert_eq!(clock.deadline_ms_after(Duration::ZERO), 100);
        assert_eq!(clock.deadline_ms_after(Duration::from_millis(5)), 105);
        assert_eq!(clock.deadline_ms_after(Duration::from_micros(5001)), 106);
        assert_eq!(clock.deadline_ms_after(Duration::from_nanos(1)), 101);
        assert_eq!(clock.deadline_ms_after(Duration::MAX), u64::MAX);
    }

    #[test]
    fn system_clock_is_monotonic_from_zero() {
        let clock = Clock::system();
        assert!(!clock.is_manual());
        let first_ms = clock.now_ms();
        assert!(first_ms < 1000, "starts near 0, got {first_ms}");
        std::thread::sleep(Duration::from_millis(5));
        let second_ms = clock.now_ms();
        assert!(second_ms >= first_ms + 5, "{first_ms} -> {second_ms}");
        let Clock::System { origin } = &clock else {
            unreachable!("Clock::system builds System")
        };
        let instant = clock.now_instant().expect("system clock has instants");
        assert!(instant >= *origin);
    }
}

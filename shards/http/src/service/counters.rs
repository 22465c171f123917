//! Shard-local state the connections of a shard share: the response counters and the `Date`
//! cache.

use std::{cell::RefCell, rc::Rc, time::Instant};

use percore::metrics::{Counter, counter};

use crate::DateCache;

/// Requests answered, by status class, as shard-local counters (one set per shard, shared
/// by its connections: registering them per connection would format label strings each time).
pub(super) struct StatusCounters([Counter; 5]);

thread_local! {
    static STATUS_COUNTERS: RefCell<Option<Rc<StatusCounters>>> = const { RefCell::new(None) };
    static DATE: RefCell<DateCache> = RefCell::new(DateCache::default());
}

impl StatusCounters {
    /// This shard's counters.
    pub(super) fn shard() -> Rc<Self> {
        STATUS_COUNTERS.with(|cell| {
            cell.borrow_mut()
                .get_or_insert_with(|| Rc::new(Self::register()))
                .clone()
        })
    }

    fn register() -> Self {
        let class = |c: &'static str| {
            counter(
                "percore_http_responses_total",
                "HTTP responses by status class.",
                &[("class", c)],
            )
        };
        StatusCounters([
            class("1xx"),
            class("2xx"),
            class("3xx"),
            class("4xx"),
            class("5xx"),
        ])
    }

    #[inline]
    pub(super) fn count(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.0[class].inc();
    }
}

/// The current `Date` value for a monotonic reading taken by the caller.
#[inline]
pub(super) fn date_at(now: Instant) -> [u8; 29] {
    DATE.with(|d| *d.borrow_mut().at(now))
}

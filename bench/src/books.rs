//! One client shard's books over a run, the same for every load mode: its counters by the
//! phase in which requests were sent, the latency of measured successes, and its ring
//! counters at the edges of the measured window. `C` is the mode's counters.

use std::cell::{Cell, RefCell, RefMut};

use hdrhistogram::Histogram;
use percore::RingStats;

use crate::measure::{Phase, PhaseClock};

/// Histogram for latencies from 1 ns to 100 s at 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// What one client shard measured.
pub struct ShardResult<C> {
    /// Counts by the phase in which requests were sent: `[warm-up, measured]`.
    pub counts: [C; 2],
    /// Latency of measured requests that succeeded, in nanoseconds.
    pub latency_ns: Histogram<u64>,
    /// The shard's ring counters when it first saw the window open and close.
    pub ring_at_measure: Option<RingStats>,
    pub ring_at_done: Option<RingStats>,
}

/// The books, kept by the shard's connection tasks.
pub(crate) struct ShardBooks<C> {
    clock: PhaseClock,
    seen: Cell<Phase>,
    counts: RefCell<[C; 2]>,
    latency: RefCell<Histogram<u64>>,
    ring_at: RefCell<[Option<RingStats>; 2]>,
}

impl<C: Default> ShardBooks<C> {
    pub(crate) fn new(clock: PhaseClock) -> Self {
        ShardBooks {
            clock,
            seen: Cell::new(Phase::Warmup),
            counts: RefCell::default(),
            latency: RefCell::new(latency_histogram()),
            ring_at: RefCell::default(),
        }
    }

    /// The current phase, and whether this is the shard's first look at it. The first time
    /// the shard sees the window open or close it snapshots its ring counters, so the report
    /// can give client-side enters per request.
    pub(crate) fn phase(&self) -> (Phase, bool) {
        let phase = self.clock.get();
        let first_look = phase != self.seen.get();
        if first_look {
            self.seen.set(phase);
            let slot = if phase == Phase::Measure { 0 } else { 1 };
            self.ring_at.borrow_mut()[slot].get_or_insert(percore::stats().ring);
        }
        (phase, first_look)
    }

    /// The counters of requests sent in `phase`. Nothing is sent once done: events of the
    /// final drain belong to the window.
    pub(crate) fn counts(&self, phase: Phase) -> RefMut<'_, C> {
        let slot = if phase == Phase::Warmup { 0 } else { 1 };
        RefMut::map(self.counts.borrow_mut(), |c| &mut c[slot])
    }

    /// Records a measured success's latency.
    pub(crate) fn record_latency_ns(&self, ns: u64) {
        self.latency.borrow_mut().saturating_record(ns.max(1));
    }

    pub(crate) fn into_result(self) -> ShardResult<C> {
        let [ring_at_measure, ring_at_done] = self.ring_at.into_inner();
        ShardResult {
            counts: self.counts.into_inner(),
            latency_ns: self.latency.into_inner(),
            ring_at_measure,
            ring_at_done,
        }
    }
}

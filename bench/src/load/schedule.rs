//! The open-loop schedule: with `--rate R` over `C` connections, connection `i` intends to
//! send request `k` at `start + (i + k·C) / R` seconds. The connections interleave evenly,
//! so the whole client offers R requests/s however the server answers; a request sent late
//! (the connection was still waiting, or the shard was busy) is timed from its intended
//! time, which is the coordinated-omission correction.

use std::time::{Duration, Instant};

/// The intended send times of one connection.
#[derive(Clone, Debug)]
pub struct Schedule {
    start: Instant,
    /// Offset of this connection's first request from `start`, in seconds.
    first_secs: f64,
    /// Seconds between two requests of this connection.
    interval_secs: f64,
    next_k: u64,
}

impl Schedule {
    /// The schedule of connection `id` of `connections`, offering `rate` requests/s in all.
    pub fn new(start: Instant, id: usize, connections: usize, rate: f64) -> Self {
        Schedule {
            start,
            first_secs: id as f64 / rate,
            interval_secs: connections as f64 / rate,
            next_k: 0,
        }
    }

    /// When the next request is due.
    pub fn next(&self) -> Instant {
        let secs = self.first_secs + self.next_k as f64 * self.interval_secs;
        self.start + Duration::from_secs_f64(secs)
    }

    /// Takes the next request's slot if it is due at `now`, returning its intended time.
    pub fn take_due(&mut self, now: Instant) -> Option<Instant> {
        let due = self.next();
        if due <= now {
            self.next_k += 1;
            Some(due)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_interleave_and_offer_the_rate() {
        let start = Instant::now();
        let rate = 1000.0;
        let mut all: Vec<Instant> = Vec::new();
        for id in 0..4 {
            let mut s = Schedule::new(start, id, 4, rate);
            let end = start + Duration::from_millis(100);
            while let Some(t) = s.take_due(end) {
                all.push(t);
            }
        }
        // [0, 100 ms] at 1000/s: 101 slots (both ends included).
        assert_eq!(all.len(), 101);
        all.sort();
        for pair in all.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap.abs_diff(Duration::from_millis(1)) < Duration::from_micros(1));
        }
    }

    #[test]
    fn nothing_is_due_before_its_time() {
        let start = Instant::now();
        let mut s = Schedule::new(start, 1, 2, 10.0);
        assert_eq!(s.take_due(start), None);
        assert_eq!(
            s.take_due(start + Duration::from_millis(100)),
            Some(start + Duration::from_millis(100))
        );
        assert_eq!(s.next(), start + Duration::from_millis(300));
    }
}

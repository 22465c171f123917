//! A fixed log2 histogram of microseconds: 32 buckets, no allocation, one shift and an
//! increment per record. Shard-local; precise enough to tell 100 µs from 100 ms.

#![forbid(unsafe_code)]

/// Bucket `i` counts values in `[2^(i-1), 2^i)` µs (bucket 0: below 1 µs); the last bucket
/// takes everything larger (≥ 2^30 µs ≈ 18 minutes).
pub const BUCKETS: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Histogram {
    counts: [u64; BUCKETS],
    count: u64,
    sum_us: u64,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: [0; BUCKETS],
            count: 0,
            sum_us: 0,
            max_us: 0,
        }
    }
}

impl Histogram {
    pub fn record_us(&mut self, value_us: u64) {
        let bucket = (u64::BITS - value_us.leading_zeros()) as usize;
        self.counts[bucket.min(BUCKETS - 1)] += 1;
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(value_us);
        self.max_us = self.max_us.max(value_us);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum_us(&self) -> u64 {
        self.sum_us
    }

    pub fn max_us(&self) -> u64 {
        self.max_us
    }

    /// `(upper bound in µs, cumulative count)` per bucket, as Prometheus `le` buckets want;
    /// the last bound is `None` (+Inf).
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        let mut running = 0;
        self.counts.iter().enumerate().map(move |(i, c)| {
            running += c;
            let bound = (i < BUCKETS - 1).then(|| 1u64 << i);
            (bound, running)
        })
    }

    /// The smallest bucket bound below which at least `q` (0..=1) of the values fall.
    pub fn quantile_upper_us(&self, q: f64) -> u64 {
        let target = (self.count as f64 * q).ceil() as u64;
        for (bound, running) in self.cumulative() {
            if running >= target.max(1) {
                return bound.unwrap_or(self.max_us);
            }
        }
        self.max_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_their_power_of_two_bucket() {
        let mut h = Histogram::default();
        for v in [0, 1, 2, 3, 4, 1000, 1023, 1024] {
            h.record_us(v);
        }
        let buckets: Vec<(Option<u64>, u64)> = h.cumulative().take(12).collect();
        // < 1 µs: {0}; < 2: {1}; < 4: {2, 3}; < 8: {4}; < 1024: {1000, 1023}; < 2048: {1024}.
        assert_eq!(buckets[0], (Some(1), 1));
        assert_eq!(buckets[1], (Some(2), 2));
        assert_eq!(buckets[2], (Some(4), 4));
        assert_eq!(buckets[3], (Some(8), 5));
        assert_eq!(buckets[10], (Some(1024), 7));
        assert_eq!(buckets[11], (Some(2048), 8));
        assert_eq!(h.count(), 8);
        assert_eq!(h.max_us(), 1024);
    }

    #[test]
    fn huge_values_go_to_the_last_bucket() {
        let mut h = Histogram::default();
        h.record_us(u64::MAX);
        let last = h.cumulative().last().unwrap();
        assert_eq!(last, (None, 1));
    }

    #[test]
    fn quantiles_are_bucket_upper_bounds() {
        let mut h = Histogram::default();
        for _ in 0..99 {
            h.record_us(10);
        }
        h.record_us(300_000);
        assert_eq!(h.quantile_upper_us(0.5), 16);
        assert_eq!(h.quantile_upper_us(1.0), 1 << 19);
    }
}

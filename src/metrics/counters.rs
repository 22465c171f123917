//! Metrics a service registers on its shard: counters (HTTP requests by status class, RESP
//! commands by name...), gauges (items in a cache, connections to a backend) and
//! histograms (a latency, a size). Each is a plain shard-local cell: updating costs an add
//! or a store (a bucket search for a histogram), and the registry is read only when
//! metrics are gathered.
//!
//! A metric appears in `/metrics` from its registration on, at 0. To have it there before
//! the first request on every shard, register it in the init hook
//! ([`ServerBuilder::on_shard_start`](crate::ServerBuilder::on_shard_start)) and keep the
//! handle in a [`PerShard`](crate::PerShard), or register it again where it is used
//! (registering the same name and labels returns the same metric).

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
};

use crate::task::local::ShardLocal;

thread_local! {
    static CURRENT: RefCell<Option<Rc<RefCell<Registry>>>> = const { RefCell::new(None) };
}

/// The service counters of the shard this thread runs.
pub(crate) static REGISTRY: ShardLocal<RefCell<Registry>> = ShardLocal::new(&CURRENT);

/// A shard-local counter; cloning shares the same count.
#[derive(Clone, Debug)]
pub struct Counter(Rc<Cell<u64>>);

impl Counter {
    pub fn inc(&self) {
        self.0.set(self.0.get() + 1);
    }

    pub fn add(&self, n: u64) {
        self.0.set(self.0.get() + n);
    }

    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// One registered counter of the current shard.
pub(crate) struct Registered {
    name: &'static str,
    help: &'static str,
    labels: String,
    value: Counter,
}

/// A counter's value at a snapshot, with its Prometheus name, help and rendered labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSample {
    pub name: &'static str,
    pub help: &'static str,
    /// `key="value"` pairs joined by commas (already escaped).
    pub labels: String,
    pub value: u64,
}

#[derive(Default)]
pub(crate) struct Registry {
    counters: Vec<Registered>,
    gauges: Vec<(Meta, Gauge)>,
    histograms: Vec<(Meta, ServiceHistogram)>,
}

/// A registered metric's name, help and rendered labels.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Meta {
    name: &'static str,
    help: &'static str,
    labels: String,
}

impl Registry {
    pub(crate) fn gauges(&self) -> Vec<GaugeSample> {
        self.gauges
            .iter()
            .map(|(meta, gauge)| GaugeSample {
                name: meta.name,
                help: meta.help,
                labels: meta.labels.clone(),
                value: gauge.get(),
            })
            .collect()
    }

    pub(crate) fn histograms(&self) -> Vec<HistogramSample> {
        self.histograms
            .iter()
            .map(|(meta, histogram)| {
                let state = histogram.state.borrow();
                HistogramSample {
                    name: meta.name,
                    help: meta.help,
                    labels: meta.labels.clone(),
                    bounds: histogram.bounds.to_vec(),
                    counts: state.counts.clone(),
                    sum: state.sum,
                    count: state.count,
                }
            })
            .collect()
    }

    pub(crate) fn snapshot(&self) -> Vec<ServiceSample> {
        self.counters
            .iter()
            .map(|c| ServiceSample {
                name: c.name,
                help: c.help,
                labels: c.labels.clone(),
                value: c.value.get(),
            })
            .collect()
    }
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Registers a counter on the current shard, exported as `name{labels..., shard="N"}`.
/// Registering the same name and labels again returns the existing counter.
///
/// # Panics
/// Off a shard.
#[track_caller]
pub fn counter(name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> Counter {
    let rendered = render_labels(labels);
    let registry = REGISTRY.current();
    let mut registry = registry.borrow_mut();
    if let Some(existing) = registry
        .counters
        .iter()
        .find(|c| c.name == name && c.labels == rendered)
    {
        return existing.value.clone();
    }
    let value = Counter(Rc::new(Cell::new(0)));
    registry.counters.push(Registered {
        name,
        help,
        labels: rendered,
        value: value.clone(),
    });
    value
}

/// A shard-local gauge: a value that goes up and down (items cached, jobs in flight);
/// cloning shares the same value.
#[derive(Clone, Debug, Default)]
pub struct Gauge(Rc<Cell<i64>>);

impl Gauge {
    pub fn set(&self, value: i64) {
        self.0.set(value);
    }

    pub fn add(&self, n: i64) {
        self.0.set(self.0.get().saturating_add(n));
    }

    pub fn sub(&self, n: i64) {
        self.0.set(self.0.get().saturating_sub(n));
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn dec(&self) {
        self.sub(1);
    }

    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

/// One registered gauge of a shard at a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GaugeSample {
    pub name: &'static str,
    pub help: &'static str,
    /// `key="value"` pairs joined by commas (already escaped).
    pub labels: String,
    pub value: i64,
}

/// Registers a gauge on the current shard, exported as `name{labels..., shard="N"}` with
/// `# TYPE name gauge`. Registering the same name and labels again returns the existing
/// gauge.
///
/// # Panics
/// Off a shard.
#[track_caller]
pub fn gauge(name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> Gauge {
    let rendered = render_labels(labels);
    let registry = REGISTRY.current();
    let mut registry = registry.borrow_mut();
    if let Some((_, existing)) = registry
        .gauges
        .iter()
        .find(|(m, _)| m.name == name && m.labels == rendered)
    {
        return existing.clone();
    }
    let gauge = Gauge::default();
    registry.gauges.push((
        Meta {
            name,
            help,
            labels: rendered,
        },
        gauge.clone(),
    ));
    gauge
}

/// Prometheus's default buckets (seconds): 5 ms to 10 s.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug)]
struct HistogramState {
    /// Per bucket (not cumulative); the last one is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// A shard-local histogram of observed values (a latency in seconds, a size in bytes)
/// over fixed bucket bounds; cloning shares the same histogram. Not
/// [`Histogram`](crate::metrics::Histogram), the kernel's log2 histogram of loop timings.
#[derive(Clone, Debug)]
pub struct ServiceHistogram {
    bounds: Rc<[f64]>,
    state: Rc<RefCell<HistogramState>>,
}

impl ServiceHistogram {
    fn new(bounds: &[f64]) -> Self {
        let mut bounds: Vec<f64> = bounds.iter().copied().filter(|b| b.is_finite()).collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        let counts = vec![0; bounds.len() + 1];
        ServiceHistogram {
            bounds: bounds.into(),
            state: Rc::new(RefCell::new(HistogramState {
                counts,
                sum: 0.0,
                count: 0,
            })),
        }
    }

    /// Records one value (a NaN is ignored).
    pub fn observe(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        // The first bucket whose upper bound is >= value (`le` is inclusive).
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        let mut state = self.state.borrow_mut();
        state.counts[bucket] += 1;
        state.sum += value;
        state.count += 1;
    }

    /// Records a duration, in seconds.
    pub fn observe_duration(&self, duration: std::time::Duration) {
        self.observe(duration.as_secs_f64());
    }

    /// Values observed so far.
    pub fn count(&self) -> u64 {
        self.state.borrow().count
    }

    /// Sum of the values observed so far.
    pub fn sum(&self) -> f64 {
        self.state.borrow().sum
    }
}

/// One registered histogram of a shard at a snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSample {
    pub name: &'static str,
    pub help: &'static str,
    /// `key="value"` pairs joined by commas (already escaped).
    pub labels: String,
    /// Upper bounds of the finite buckets, ascending.
    pub bounds: Vec<f64>,
    /// Values per bucket (not cumulative): one per bound, then the `+Inf` bucket.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

/// Registers a histogram on the current shard with the given bucket upper bounds
/// (ascending; non-finite bounds are dropped, `+Inf` is always added; [`DEFAULT_BUCKETS`]
/// suits latencies in seconds). Exported as `name_bucket{labels..., shard="N", le="..."}`,
/// `name_sum` and `name_count` with `# TYPE name histogram`. Registering the same name and
/// labels again returns the existing histogram (with its first buckets).
///
/// # Panics
/// Off a shard.
#[track_caller]
pub fn histogram(
    name: &'static str,
    help: &'static str,
    labels: &[(&str, &str)],
    buckets: &[f64],
) -> ServiceHistogram {
    let rendered = render_labels(labels);
    let registry = REGISTRY.current();
    let mut registry = registry.borrow_mut();
    if let Some((_, existing)) = registry
        .histograms
        .iter()
        .find(|(m, _)| m.name == name && m.labels == rendered)
    {
        return existing.clone();
    }
    let histogram = ServiceHistogram::new(buckets);
    registry.histograms.push((
        Meta {
            name,
            help,
            labels: rendered,
        },
        histogram.clone(),
    ));
    histogram
}

/// Escapes a label value as the Prometheus text format requires.
pub(crate) fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{ServiceHistogram, escape_label};

    #[test]
    fn histogram_buckets_are_inclusive_upper_bounds() {
        let h = ServiceHistogram::new(&[1.0, 0.5, f64::INFINITY, 0.5, 2.0]);
        assert_eq!(&*h.bounds, &[0.5, 1.0, 2.0]);
        for v in [0.1, 0.5, 0.7, 1.0, 3.0, f64::NAN] {
            h.observe(v);
        }
        assert_eq!(h.state.borrow().counts, vec![2, 2, 0, 1]);
        assert_eq!(h.count(), 5);
        assert!((h.sum() - 5.3).abs() < 1e-9);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

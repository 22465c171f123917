//! The report of an `http` or `resp` run: the books of both phases, requests/s, latency
//! percentiles (from the intended send time in open loop), server CPU, as a text table or
//! one JSON object.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::{Counts, LoadConfig, RunOutcome};
use crate::books::latency_histogram;
use crate::report::JsonObject;

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
    pub samples: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
            samples: h.len(),
        }
    }
}

/// The result of a load run.
pub struct LoadReport {
    pub mode: &'static str,
    /// One line saying what was sent (method and path, or the command mix).
    pub what: String,
    pub cfg: LoadConfig,
    pub window_secs: f64,
    /// Requests sent in the window that succeeded.
    pub requests: u64,
    pub requests_per_sec: f64,
    pub latency_us: Latency,
    /// The merged histogram (ns), for plots.
    pub histogram: Histogram<u64>,
    pub measured: Counts,
    pub warmup: Counts,
    pub server_cpu_secs: Option<f64>,
    pub server_cpu_us_per_request: Option<f64>,
    /// The load generator's own CPU (all its threads) over the window, per request.
    pub client_cpu_us_per_request: Option<f64>,
    pub client_enters_per_request: Option<f64>,
    pub notes: Vec<String>,
}

impl LoadReport {
    pub fn new(mode: &'static str, what: String, cfg: &LoadConfig, outcome: RunOutcome) -> Self {
        let mut histogram = latency_histogram();
        let (mut measured, mut warmup) = (Counts::default(), Counts::default());
        let mut enters = Some(0u64);
        for r in &outcome.results {
            warmup.merge(&r.counts[0]);
            measured.merge(&r.counts[1]);
            let _ = histogram.add(&r.latency_ns);
            enters = match (enters, r.ring_at_measure, r.ring_at_done) {
                (Some(sum), Some(a), Some(b)) => Some(sum + (b.enters - a.enters)),
                _ => None,
            };
        }
        let requests = measured.ok;
        let per_request = |total: f64| (requests > 0).then(|| total / requests as f64);
        let server_cpu_secs = outcome
            .window
            .server_cpu_ticks
            .map(|t| t as f64 / cfg.clk_tck.max(1) as f64);
        LoadReport {
            mode,
            what,
            cfg: cfg.clone(),
            window_secs: outcome.window.secs,
            requests,
            requests_per_sec: requests as f64 / outcome.window.secs.max(f64::EPSILON),
            latency_us: Latency::of(&histogram),
            histogram,
            measured,
            warmup,
            server_cpu_us_per_request: server_cpu_secs.and_then(|s| per_request(s * 1e6)),
            server_cpu_secs,
            client_cpu_us_per_request: outcome
                .window
                .client_cpu_ticks
                .and_then(|t| per_request(t as f64 / cfg.clk_tck.max(1) as f64 * 1e6)),
            client_enters_per_request: enters.and_then(|e| per_request(e as f64)),
            notes: outcome.notes,
        }
    }

    /// Every error of the run, warm-up included.
    pub fn errors(&self) -> u64 {
        self.measured.errors() + self.warmup.errors()
    }

    /// The counts of the whole run, warm-up included.
    pub fn whole_run(&self) -> Counts {
        let mut counts = self.warmup;
        counts.merge(&self.measured);
        counts
    }

    /// Successes over the whole run, warm-up included.
    pub fn total_ok(&self) -> u64 {
        self.measured.ok + self.warmup.ok
    }

    fn load_shape(&self) -> String {
        match self.cfg.rate {
            Some(rate) => format!("open loop at {rate:.0} req/s"),
            None => "closed loop".into(),
        }
    }

    pub fn to_json(&self) -> String {
        let c = &self.cfg;
        let l = &self.latency_us;
        let latency = JsonObject::default()
            .num("p50", l.p50)
            .num("p90", l.p90)
            .num("p99", l.p99)
            .num("p99_9", l.p999)
            .num("max", l.max)
            .num("mean", l.mean)
            .num("samples", l.samples as f64);
        let mut o = JsonObject::default()
            .str("mode", self.mode)
            .str("request", &self.what)
            .str("target", &c.target.to_string())
            .num("connections", c.connections as f64)
            .num("pipeline", c.pipeline as f64)
            .num("shards", c.shards as f64)
            .opt("rate", c.rate)
            .num("window_secs", self.window_secs)
            .num("requests", self.requests as f64)
            .num("requests_per_sec", self.requests_per_sec)
            .obj("latency_us", latency)
            .num("errors", self.errors() as f64)
            .obj("measured", counts_json(&self.measured))
            .obj("warmup", counts_json(&self.warmup))
            .opt("server_cpu_secs", self.server_cpu_secs)
            .opt("server_cpu_us_per_request", self.server_cpu_us_per_request)
            .opt("client_cpu_us_per_request", self.client_cpu_us_per_request)
            .opt("client_enters_per_request", self.client_enters_per_request);
        for (i, note) in self.notes.iter().enumerate() {
            o = o.str(&format!("note{i}"), note);
        }
        o.finish()
    }

    pub fn to_text(&self) -> String {
        let c = &self.cfg;
        let l = &self.latency_us;
        let mut t = format!(
            "{} {} · {} · {} connections × pipeline {} · {} client shard(s) · {}\n",
            self.mode,
            c.target,
            self.what,
            c.connections,
            c.pipeline,
            c.shards,
            self.load_shape()
        );
        let _ = writeln!(
            t,
            "window      {:.2} s\nrequests    {} ({:.0} req/s)",
            self.window_secs, self.requests, self.requests_per_sec
        );
        let from = if c.rate.is_some() {
            "from intended send time"
        } else {
            "from send time"
        };
        let _ = writeln!(
            t,
            "latency µs  ({from}, {} samples)\n  p50 {:>10.1}  p90 {:>10.1}  p99 {:>10.1}  p99.9 {:>10.1}  max {:>10.1}  mean {:.1}",
            l.samples, l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        );
        let _ = writeln!(t, "{}", counts_table(&self.warmup, &self.measured));
        if let (Some(secs), Some(us)) = (self.server_cpu_secs, self.server_cpu_us_per_request) {
            let _ = writeln!(t, "server CPU  {secs:.2} s, {us:.2} µs/request");
        }
        if let Some(us) = self.client_cpu_us_per_request {
            let _ = writeln!(t, "client CPU  {us:.2} µs/request");
        }
        if let Some(e) = self.client_enters_per_request {
            let _ = writeln!(t, "client      {e:.3} io_uring_enter/request");
        }
        for note in &self.notes {
            let _ = writeln!(t, "note        {note}");
        }
        t
    }
}

fn counts_json(c: &Counts) -> JsonObject {
    let mut o = JsonObject::default()
        .num("sent", c.sent as f64)
        .num("ok", c.ok as f64)
        .num("errors", c.errors() as f64)
        .num("in_flight_at_end", c.in_flight_at_end as f64)
        .num("connects", c.connects as f64);
    for (name, n) in c.error_fields() {
        o = o.num(name, n as f64);
    }
    o
}

/// The books of both phases side by side, every error kind on its own row (zeros too:
/// nothing is hidden), and the check that they balance.
fn counts_table(warmup: &Counts, measured: &Counts) -> String {
    let mut t = format!("{:<18}{:>14}{:>14}\n", "", "warm-up", "measured");
    let mut row = |name: &str, a: u64, b: u64| {
        let _ = writeln!(t, "{name:<18}{a:>14}{b:>14}");
    };
    row("sent", warmup.sent, measured.sent);
    row("ok", warmup.ok, measured.ok);
    row("errors", warmup.errors(), measured.errors());
    for ((name, a), (_, b)) in warmup.error_fields().iter().zip(measured.error_fields()) {
        row(&format!("  {name}"), *a, b);
    }
    row(
        "in flight at end",
        warmup.in_flight_at_end,
        measured.in_flight_at_end,
    );
    row("connections", warmup.connects, measured.connects);
    let verdict = |c: &Counts| if c.reconciles() { "yes" } else { "NO" };
    let _ = write!(
        t,
        "{:<18}{:>14}{:>14}",
        "books balance",
        verdict(warmup),
        verdict(measured)
    );
    t
}

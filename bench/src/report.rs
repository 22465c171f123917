//! Reports: one struct per mode, printed as text for people or JSON (`--json`) for scripts.
//! JSON is written by hand (flat objects of numbers and strings) to keep the bench free of a
//! serialization dependency.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::{
    books::latency_histogram,
    echo::{Counts, EchoConfig, ShardResult},
    measure::Window,
};

/// A JSON object under construction.
#[derive(Default)]
pub struct JsonObject {
    body: String,
}

impl JsonObject {
    fn key(&mut self, key: &str) {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        let _ = write!(self.body, "\"{key}\":");
    }

    pub fn num(mut self, key: &str, value: impl Into<f64>) -> Self {
        self.key(key);
        let v: f64 = value.into();
        if v.is_finite() {
            let _ = write!(self.body, "{v}");
        } else {
            self.body.push_str("null");
        }
        self
    }

    pub fn opt(self, key: &str, value: Option<f64>) -> Self {
        match value {
            Some(v) => self.num(key, v),
            None => self.raw(key, "null"),
        }
    }

    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        self.body.push('"');
        for c in value.chars() {
            match c {
                '"' => self.body.push_str("\\\""),
                '\\' => self.body.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.body, "\\u{:04x}", c as u32);
                }
                c => self.body.push(c),
            }
        }
        self.body.push('"');
        self
    }

    pub fn obj(self, key: &str, value: JsonObject) -> Self {
        let text = value.finish();
        self.raw(key, &text)
    }

    fn raw(mut self, key: &str, text: &str) -> Self {
        self.key(key);
        self.body.push_str(text);
        self
    }

    pub fn finish(self) -> String {
        format!("{{{}}}", self.body)
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// From a histogram in nanoseconds, in microseconds.
    pub fn from_ns(h: &Histogram<u64>) -> Self {
        Self::scaled(h, 1000.0)
    }

    /// From a histogram, each value divided by `unit`.
    pub fn scaled(h: &Histogram<u64>, unit: f64) -> Self {
        let v = |x: u64| x as f64 / unit;
        Percentiles {
            p50: v(h.value_at_quantile(0.50)),
            p99: v(h.value_at_quantile(0.99)),
            p999: v(h.value_at_quantile(0.999)),
            max: v(h.max()),
            mean: h.mean() / unit,
        }
    }

    fn json(&self) -> JsonObject {
        JsonObject::default()
            .num("p50", self.p50)
            .num("p99", self.p99)
            .num("p99_9", self.p999)
            .num("max", self.max)
            .num("mean", self.mean)
    }
}

fn counts_json(c: &Counts) -> JsonObject {
    let mut o = JsonObject::default()
        .num("sent", c.sent as f64)
        .num("ok", c.ok as f64)
        .num("errors", c.errors() as f64);
    for (name, n) in c.error_fields() {
        o = o.num(name, n as f64);
    }
    o
}

fn counts_text(c: &Counts) -> String {
    let mut text = format!(
        "sent {} ok {} errors {} (requests {}, connects {})",
        c.sent,
        c.ok,
        c.errors(),
        c.request_errors(),
        c.connect_errors()
    );
    let nonzero: Vec<String> = c
        .error_fields()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    if !nonzero.is_empty() {
        let _ = write!(text, ": {}", nonzero.join(", "));
    }
    text
}

/// The result of an echo run.
pub struct EchoReport {
    pub cfg: EchoConfig,
    pub window_secs: f64,
    /// Requests that succeeded among those sent in the window.
    pub requests: u64,
    pub requests_per_sec: f64,
    pub latency_us: Percentiles,
    pub measured: Counts,
    pub warmup: Counts,
    pub server_cpu_secs: Option<f64>,
    pub server_cpu_us_per_request: Option<f64>,
    /// The client's own `io_uring_enter` calls per request over the window.
    pub client_enters_per_request: Option<f64>,
    pub notes: Vec<String>,
}

impl EchoReport {
    pub fn new(
        cfg: &EchoConfig,
        window: Window,
        results: Vec<ShardResult>,
        notes: Vec<String>,
    ) -> Self {
        let mut latency = latency_histogram();
        let (mut measured, mut warmup) = (Counts::default(), Counts::default());
        let mut enters = Some(0u64);
        for r in &results {
            warmup.merge(&r.counts[0]);
            measured.merge(&r.counts[1]);
            let _ = latency.add(&r.latency_ns);
            enters = match (enters, r.ring_at_measure, r.ring_at_done) {
                (Some(sum), Some(a), Some(b)) => Some(sum + (b.enters - a.enters)),
                _ => None,
            };
        }
        let requests = measured.ok;
        let per_request = |total: f64| (requests > 0).then(|| total / requests as f64);
        let server_cpu_secs = window
            .server_cpu_ticks
            .map(|t| t as f64 / cfg.clk_tck.max(1) as f64);
        EchoReport {
            cfg: cfg.clone(),
            window_secs: window.secs,
            requests,
            requests_per_sec: requests as f64 / window.secs.max(f64::EPSILON),
            latency_us: Percentiles::from_ns(&latency),
            measured,
            warmup,
            server_cpu_us_per_request: server_cpu_secs.and_then(|s| per_request(s * 1e6)),
            server_cpu_secs,
            client_enters_per_request: enters.and_then(|e| per_request(e as f64)),
            notes,
        }
    }

    /// Every error of the run, warm-up included.
    pub fn errors(&self) -> u64 {
        self.measured.errors() + self.warmup.errors()
    }

    pub fn to_json(&self) -> String {
        let c = &self.cfg;
        let mut o = JsonObject::default()
            .str("mode", "echo")
            .str("target", &c.target.to_string())
            .num("connections", c.connections as f64)
            .num("message_size", c.message_size as f64)
            .num("pipeline", c.pipeline as f64)
            .num("shards", c.shards as f64)
            .num("window_secs", self.window_secs)
            .num("requests", self.requests as f64)
            .num("requests_per_sec", self.requests_per_sec)
            .obj("latency_us", self.latency_us.json())
            .num("errors", self.errors() as f64)
            .obj("measured", counts_json(&self.measured))
            .obj("warmup", counts_json(&self.warmup))
            .opt("server_cpu_secs", self.server_cpu_secs)
            .opt("server_cpu_us_per_request", self.server_cpu_us_per_request)
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
            "echo {} · {} connections × pipeline {} · {} B messages · {} client shard(s)\n\
             window      {:.2} s\n\
             requests    {} ({:.0} req/s)\n\
             latency µs  p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  mean {:.1}\n\
             errors      {}\n\
             measured    {}\n\
             warm-up     {}\n",
            c.target,
            c.connections,
            c.pipeline,
            c.message_size,
            c.shards,
            self.window_secs,
            self.requests,
            self.requests_per_sec,
            l.p50,
            l.p99,
            l.p999,
            l.max,
            l.mean,
            self.errors(),
            counts_text(&self.measured),
            counts_text(&self.warmup),
        );
        if let (Some(secs), Some(us)) = (self.server_cpu_secs, self.server_cpu_us_per_request) {
            let _ = writeln!(t, "server CPU  {secs:.2} s, {us:.2} µs/request");
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

//! The command-line side of the request-response modes (`http`, `resp`): the options they
//! share, duration parsing, and what happens after a run (print, plot, exit status).

use std::{path::PathBuf, time::Duration};

use clap::Args;

use crate::{
    load::{self, LoadConfig, Protocol, report::LoadReport},
    plot,
    progress::Reporter,
    tls::{Target, TlsClient, parse_target},
};

/// Options shared by `http` and `resp`.
#[derive(Args, Clone, Debug)]
pub struct LoadArgs {
    /// Server address: `IP:PORT`, or `https://HOST:PORT` for TLS (with --tls-ca).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_target)]
    pub target: Target,
    /// PEM CA bundle that signed the server's certificate (https:// targets).
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// TLS session resumption (tickets, in-memory cache): `on`, or `off` so that every
    /// connection is a full handshake.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub tls_resume: String,
    /// One request per connection: every request opens a new connection (with TLS, a
    /// handshake), so requests/s measures connection setup (handshakes/s).
    #[arg(long)]
    pub new_conn: bool,
    /// Connections, spread over the client shards.
    #[arg(short = 'c', long, default_value_t = 100)]
    pub connections: usize,
    /// Requests in flight per connection (written together when the loop is closed).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Measured window: seconds, or with a unit (`500ms`, `10s`, `1m`).
    #[arg(short = 'd', long, default_value = "10", value_parser = parse_duration)]
    pub duration: Duration,
    /// Warm-up before the window (not measured).
    #[arg(short = 'w', long, default_value = "2", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Client shards, pinned to the CPUs this process may use (`taskset -c 0` → CPU 0).
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
    /// Open loop: requests per second across all connections, evenly scheduled per
    /// connection; latency is then timed from each request's intended send time.
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long a connect, or a wait for response bytes, may take before it is an error.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How long in-flight requests may still be answered after the window closes; what is
    /// left then is reported as in flight at the end.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub drain: Duration,
    /// PID of the server: its utime+stime over the window gives CPU per request.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    pub clk_tck: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write the latency percentile curve to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// No live progress on stderr.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Seconds between progress updates.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub progress_every: Duration,
}

impl LoadArgs {
    /// The TLS client of an `https://` target (`alpn`: the protocols to offer).
    pub fn tls_client(&self, alpn: &[&[u8]]) -> Result<Option<TlsClient>, String> {
        let Some(name) = &self.target.tls_name else {
            if self.tls_ca.is_some() {
                return Err("--tls-ca needs an https:// --target".into());
            }
            return Ok(None);
        };
        let Some(ca) = &self.tls_ca else {
            return Err("an https:// --target needs --tls-ca PEM (the CA to trust)".into());
        };
        TlsClient::new(name, ca, alpn, self.tls_resume == "on").map(Some)
    }

    pub fn config(&self) -> LoadConfig {
        LoadConfig {
            target: self.target.addr,
            tls: None,
            new_conn: self.new_conn,
            connections: self.connections,
            pipeline: self.pipeline,
            duration: self.duration,
            warmup: self.warmup,
            shards: self.shards,
            timeout: self.timeout,
            rate: self.rate,
            drain_grace: self.drain,
            server_pid: self.server_pid,
            clk_tck: self.clk_tck,
            progress_every: (!self.quiet)
                .then_some(self.progress_every.max(Duration::from_millis(100))),
        }
    }
}

/// `5` (seconds), `500ms`, `10s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("bad duration `{s}` (e.g. 10, 10s, 500ms, 1m)"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("bad unit in `{s}` (ms, s or m)")),
    };
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!("bad duration `{s}`"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Runs one load with live progress on stderr and returns its report.
pub fn run<P: Protocol>(args: &LoadArgs, proto: P, what: String) -> Result<LoadReport, String> {
    let mut cfg = args.config();
    cfg.tls = args.tls_client(proto.alpn())?;
    let reporter = Reporter::for_stderr(args.quiet || cfg.progress_every.is_none());
    let mode = proto.name();
    let outcome = load::run(cfg.clone(), proto, |p| reporter.update(p));
    reporter.finish();
    Ok(LoadReport::new(mode, what, &cfg, outcome?))
}

/// Prints the report (and writes the plot); an error when nothing succeeded, so scripts see
/// a failed run in the exit status.
pub fn finish(args: &LoadArgs, report: &LoadReport) -> Result<(), String> {
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "{} {} · {} conns × {} · {}",
            report.mode,
            report.cfg.target,
            report.cfg.connections,
            report.cfg.pipeline,
            match report.cfg.rate {
                Some(r) => format!("{r:.0} req/s offered"),
                None => "closed loop".into(),
            }
        );
        std::fs::write(path, plot::svg(&report.histogram, &title))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if report.total_ok() == 0 {
        let c = report.whole_run();
        return Err(format!(
            "no request succeeded against {}: {} connections opened, {} connect errors \
             ({} refused, {} timed out), {} request errors",
            report.cfg.target,
            c.connects,
            c.connect_errors(),
            c.connect_refused,
            c.connect_timeout,
            c.request_errors()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("-1").is_err());
    }
}

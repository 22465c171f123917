//! `percore-bench`: load generators and micro-benchmarks for percore. One subcommand per
//! mode; each prints a text report, or one JSON object with `--json`.

#![forbid(unsafe_code)]

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};
use percore_bench::{
    cli::{self, LoadArgs},
    echo,
    http::{Http, HttpRequest, parse::StatusSet},
    idle, mesh,
    resp::{Resp, RespWorkload},
};

#[derive(Parser)]
#[command(name = "percore-bench", version, about = "Load generators for percore")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// HTTP/1.1 load: closed loop, or open loop with --rate (latency corrected for
    /// coordinated omission); wrong statuses, truncated bodies, garbage, resets and timeouts
    /// are counted apart.
    Http(HttpArgs),
    /// RESP (Redis protocol) load: a GET/SET mix over a key space.
    Resp(RespArgs),
    /// Closed-loop TCP echo load: each connection sends a message and waits for its full,
    /// verified echo before the next (or keeps --pipeline messages in flight).
    Echo(EchoArgs),
    /// Shard-to-shard round-trip latency (submit_to) and Channel<u64> throughput.
    Mesh(MeshArgs),
    /// Opens many connections and holds them idle (for memory measurements).
    Idle(IdleArgs),
}

#[derive(Args)]
struct HttpArgs {
    #[command(flatten)]
    load: LoadArgs,
    #[arg(long, short = 'm', default_value = "GET")]
    method: String,
    #[arg(long, default_value = "/")]
    path: String,
    /// Extra request header `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Request body (sent with its Content-Length).
    #[arg(long)]
    body: Option<String>,
    /// Host header (default: the target address).
    #[arg(long)]
    host: Option<String>,
    /// Statuses that count as success: `2xx`, `200`, `200-399`, or a list.
    #[arg(long, default_value = "2xx")]
    expect_status: String,
}

#[derive(Args)]
struct RespArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Share of SET requests (the rest are GET).
    #[arg(long, default_value_t = 0.1)]
    set_ratio: f64,
    /// Keys key:0 … key:N-1.
    #[arg(long, default_value_t = 10_000)]
    keyspace: u64,
    /// Bytes per SET value.
    #[arg(long, default_value_t = 64)]
    value_size: usize,
    /// Seed of the key and command choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
struct EchoArgs {
    #[arg(long, default_value = "127.0.0.1:7000")]
    target: SocketAddr,
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Bytes per message (one request = one message echoed in full).
    #[arg(long, default_value_t = 64)]
    message_size: usize,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Client shards, pinned to the CPUs this process may use (`taskset -c 0` → CPU 0).
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Milliseconds a connect, or a wait for echo bytes, may take before it is an error.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// PID of the server: its utime+stime over the measured window gives CPU per request.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct MeshArgs {
    #[arg(long, default_value_t = 200_000)]
    round_trips: usize,
    #[arg(long, default_value_t = 20_000)]
    warmup_round_trips: usize,
    /// Seconds shard 0 streams messages to shard 1 for the throughput figure.
    #[arg(long, default_value_t = 3)]
    duration_secs: u64,
    #[arg(long, default_value_t = 1024)]
    capacity: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct IdleArgs {
    #[arg(long, default_value = "127.0.0.1:7000")]
    target: SocketAddr,
    #[arg(long, default_value_t = 15_000)]
    connections: usize,
    /// Seconds to hold the connections once they are all open.
    #[arg(long, default_value_t = 10)]
    hold_secs: u64,
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Connects in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Echo one byte on each connection before it goes idle.
    #[arg(long)]
    ping: bool,
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Http(a) => run_http(a),
        Command::Resp(a) => run_resp(a),
        Command::Echo(a) => run_echo(a),
        Command::Mesh(a) => run_mesh(a),
        Command::Idle(a) => run_idle(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("percore-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_http(a: HttpArgs) -> Result<(), String> {
    let request = HttpRequest {
        method: a.method,
        path: a.path,
        host: a.host,
        headers: a.headers,
        body: a.body.unwrap_or_default().into_bytes(),
        expect: StatusSet::parse(&a.expect_status)?,
    };
    let mut request = request;
    if request.host.is_none()
        && let Some(name) = &a.load.target.tls_name
    {
        request.host = Some(format!("{name}:{}", a.load.target.addr.port()));
    }
    let http = Http::new(a.load.target.addr, &request)?;
    let what = format!("{} {}", request.method, request.path);
    let report = cli::run(&a.load, http, what)?;
    cli::finish(&a.load, &report)
}

fn run_resp(a: RespArgs) -> Result<(), String> {
    let resp = Resp::new(RespWorkload {
        set_ratio: a.set_ratio,
        keyspace: a.keyspace,
        value_size: a.value_size,
        seed: a.seed,
    })?;
    let what = resp.describe();
    let report = cli::run(&a.load, resp, what)?;
    cli::finish(&a.load, &report)
}

fn run_echo(a: EchoArgs) -> Result<(), String> {
    let report = echo::run(echo::EchoConfig {
        target: a.target,
        connections: a.connections,
        message_size: a.message_size,
        pipeline: a.pipeline,
        duration: Duration::from_secs(a.duration_secs),
        warmup: Duration::from_secs(a.warmup_secs),
        shards: a.shards,
        timeout: Duration::from_millis(a.timeout_ms),
        server_pid: a.server_pid,
        clk_tck: a.clk_tck,
    })?;
    if a.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

fn run_mesh(a: MeshArgs) -> Result<(), String> {
    let report = mesh::run(mesh::MeshConfig {
        round_trips: a.round_trips,
        warmup_round_trips: a.warmup_round_trips,
        duration: Duration::from_secs(a.duration_secs),
        capacity: a.capacity,
    })?;
    if a.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

fn run_idle(a: IdleArgs) -> Result<(), String> {
    let json = a.json;
    let cfg = idle::IdleConfig {
        target: a.target,
        connections: a.connections,
        hold: Duration::from_secs(a.hold_secs),
        shards: a.shards,
        concurrency: a.concurrency,
        ping: a.ping,
        timeout: Duration::from_millis(a.timeout_ms),
    };
    // Printed (and flushed: stdout may be a file a script polls) as soon as the
    // connections are open, before the hold starts.
    idle::run(cfg, |report| {
        if json {
            println!("{}", report.to_json());
        } else {
            println!("{}", report.to_text());
        }
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    })?;
    Ok(())
}

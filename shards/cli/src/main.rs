//! `percore`: runs percore's services from the command line.

#![forbid(unsafe_code)]

mod deploy;
mod doctor;
mod kv;
mod tls;

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};
use percore::{DriverChoice, NetConfig, Placement, RingConfig, Server, ServerBuilder, Steering};

#[derive(Parser)]
#[command(
    name = "percore",
    version,
    about = "io_uring thread-per-core server kernel: run its services"
)]
struct Cli {
    /// What to run; without one, `serve` with its defaults.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The HTTP/1.1 demo server (the default): GET / → Hello, World!, GET /json,
    /// GET /healthz, POST /echo, GET /ip (the client's address), GET /hello/{name}, GET /stream?chunks=N&size=S, and
    /// GET /work?ms=N, N ms of CPU: on the shard until a run overruns --offload-after-ms,
    /// then on the blocking pool (inline again after 8 fast runs there); &offload=1 forces
    /// the pool, &inline=1 the shard.
    Serve {
        /// Address to listen on (every shard binds it with SO_REUSEPORT; a port another
        /// socket listens on is refused unless --reuse-port-shared).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[command(flatten)]
        http: HttpArgs,
        #[command(flatten)]
        tls: tls::TlsArgs,
        #[command(flatten)]
        shards: ShardArgs,
    },
    /// TCP echo: every byte sent comes back.
    Echo {
        /// Address to listen on (every shard binds it with SO_REUSEPORT; a port another
        /// socket listens on is refused unless --reuse-port-shared).
        #[arg(long, default_value = "127.0.0.1:7000")]
        listen: SocketAddr,
        #[command(flatten)]
        tls: tls::TlsArgs,
        #[command(flatten)]
        shards: ShardArgs,
    },
    /// The key-value service speaking RESP (the Redis protocol): use it with redis-cli.
    Kv {
        /// Address to listen on (every shard binds it with SO_REUSEPORT; a port another
        /// socket listens on is refused unless --reuse-port-shared).
        #[arg(long, default_value = "127.0.0.1:6380")]
        listen: SocketAddr,
        #[command(flatten)]
        kv: kv::KvArgs,
        #[command(flatten)]
        tls: tls::TlsArgs,
        #[command(flatten)]
        shards: ShardArgs,
    },
    /// Check this host for percore: kernel, io_uring, limits, sysctls, CPUs (OK/WARN/FAIL,
    /// each with its fix); exit status 3 when percore cannot run.
    Doctor(doctor::DoctorArgs),
}

/// HTTP limits (defaults from nginx/h2o/HAProxy practice).
#[derive(Args)]
struct HttpArgs {
    /// Seconds from a request head's first byte to its end before 408 and close.
    #[arg(long, default_value_t = 10)]
    header_timeout_secs: u64,
    /// Seconds a keep-alive connection may sit idle between requests.
    #[arg(long, default_value_t = 30)]
    idle_timeout_secs: u64,
    /// Requests served on one connection before it closes.
    #[arg(long, default_value_t = 1000)]
    max_requests: u64,
    /// Largest request body in bytes (larger → 413).
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body: u64,
    /// A CPU-heavy route (GET /work) whose run on the shard takes longer than this many
    /// milliseconds runs on the blocking pool from its next call on.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    offload_after_ms: u64,
    /// Write an access log to standard output: one line per response, `client - - [date]
    /// "request line" status bytes µs shard` (client: the PROXY protocol's when a trusted
    /// proxy sends one). Off by default.
    #[arg(long)]
    access_log: bool,
}

impl HttpArgs {
    fn limits(&self) -> percore_http::Limits {
        percore_http::Limits {
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_requests: self.max_requests.max(1),
            max_body: self.max_body,
            ..percore_http::Limits::default()
        }
    }

    fn offload_budget(&self) -> Duration {
        Duration::from_millis(self.offload_after_ms)
    }
}

/// Shard placement and ring settings shared by every service.
#[derive(Args)]
struct ShardArgs {
    /// Number of shards, pinned to the CPUs this process may use (default: one per CPU;
    /// `taskset -c 1 percore echo --shards 1` runs one shard on CPU 1).
    #[arg(long, conflicts_with_all = ["cores", "unpinned"])]
    shards: Option<usize>,
    /// Explicit CPU list, one shard per CPU (e.g. `--cores 0,1`).
    #[arg(long, value_delimiter = ',')]
    cores: Option<Vec<usize>>,
    /// Run N shards without pinning them.
    #[arg(long, value_name = "N")]
    unpinned: Option<usize>,
    /// Provided receive buffers per shard (power of two).
    #[arg(long, default_value_t = 1024)]
    recv_buffers: u16,
    /// Size of each receive buffer in bytes.
    #[arg(long, default_value_t = 4096)]
    recv_buffer_size: u32,
    /// Submission queue entries per shard.
    #[arg(long, default_value_t = 1024)]
    sq_entries: u32,
    /// Completion queue entries per shard.
    #[arg(long, default_value_t = 4096)]
    cq_entries: u32,
    /// Seconds a graceful stop (SIGINT/SIGTERM) waits for open connections.
    #[arg(long, default_value_t = 30)]
    drain_timeout_secs: u64,
    /// Serve Prometheus metrics of every shard at http://ADDR/metrics (e.g. 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// A loop iteration longer than this many milliseconds counts as a stall and is logged.
    #[arg(long, default_value_t = 100)]
    stall_ms: u64,
    /// A shard whose loop iteration has run this many milliseconds gets no new connections,
    /// and those queued on its listeners go to other shards (default: stall-ms / 5, ≥ 2).
    #[arg(long)]
    takeover_ms: Option<u64>,
    /// Seconds a shard may stay stalled in one loop iteration before health checks
    /// (`/healthz` of the HTTP service and of the admin listener) answer 503 naming it.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    unhealthy_after: Duration,
    /// Seconds a shard may stay stalled before calls to it from other shards (kv commands
    /// for keys it owns) fail with an error instead of waiting.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    mesh_timeout: Duration,
    /// Exit with status 75 (and one error line naming the shard and its route) when a shard
    /// has been stalled this many seconds, so that a supervisor restarts the process.
    /// Default: off.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    abort_after: Option<Duration>,
    /// Connection steering: `reuseport` (kernel 4-tuple hash), `cpu` (the listener of the
    /// CPU that took the connection, a cBPF program) or `balanced` (the least-loaded shard).
    #[arg(long, default_value = "reuseport", value_parser = parse_steering)]
    steer: Steering,
    /// The I/O driver: `auto` (io_uring where it works, else epoll, saying why in the
    /// startup report), `io_uring` (io_uring or exit 3) or `epoll`. Default: the
    /// `PERCORE_DRIVER` environment variable, else `auto`.
    #[arg(long, value_parser = parse_driver)]
    driver: Option<DriverChoice>,
    /// Join the listen port even when another socket (another process, an old instance)
    /// already listens on it: both then share the connections through SO_REUSEPORT.
    /// Default: off, such a port is refused with "address ... already in use" (exit 4).
    #[arg(long)]
    reuse_port_shared: bool,
    /// Accepted connections the whole server holds at most (all shards together; at least
    /// the number of shards). At the cap the server stops accepting and clients wait in the
    /// listen backlog until a connection closes. Default: no cap (the open-files limit).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
    /// Accepted connections one shard holds at most; same policy. Default: no cap.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections_per_shard: Option<u64>,
    /// Do not print the startup report.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    deploy: deploy::DeployArgs,
}

impl ShardArgs {
    /// The builder with every setting, the deployment ones included (inherited sockets are
    /// taken here).
    fn builder(&self) -> Result<ServerBuilder, percore::Error> {
        self.deploy.apply(self.base_builder())
    }

    fn base_builder(&self) -> ServerBuilder {
        let placement = match (&self.cores, self.unpinned, self.shards) {
            (Some(cores), _, _) => Placement::Cores(cores.clone()),
            (None, Some(n), _) => Placement::Unpinned(n),
            (None, None, Some(n)) => Placement::Count(n),
            (None, None, None) => Placement::OnePerCpu,
        };
        let builder = Server::builder()
            .placement(placement)
            .ring(RingConfig {
                sq_entries: self.sq_entries,
                cq_entries: self.cq_entries,
                recv_buffers: self.recv_buffers,
                recv_buffer_size: self.recv_buffer_size,
                ..RingConfig::default()
            })
            .drain_timeout(Duration::from_secs(self.drain_timeout_secs))
            .stall_threshold(Duration::from_millis(self.stall_ms.max(1)))
            .unhealthy_after(self.unhealthy_after)
            .mesh_timeout(self.mesh_timeout)
            .abort_after(self.abort_after)
            .steering(self.steer);
        let builder = match self.takeover_ms {
            Some(ms) => builder.takeover_threshold(Duration::from_millis(ms.max(1))),
            None => builder,
        };
        let builder = match self.admin {
            Some(addr) => builder.admin(addr),
            None => builder,
        };
        let builder = match self.driver {
            Some(choice) => builder.driver(choice),
            None => builder,
        };
        let builder = match self.max_connections {
            Some(n) => builder.max_connections(usize::try_from(n).unwrap_or(usize::MAX)),
            None => builder,
        };
        let builder = match self.max_connections_per_shard {
            Some(n) => builder.net(NetConfig {
                max_connections_per_shard: Some(usize::try_from(n).unwrap_or(usize::MAX)),
                ..NetConfig::default()
            }),
            None => builder,
        };
        builder
            .reuse_port_shared(self.reuse_port_shared)
            .handle_signals(true)
            .print_report(!self.quiet)
    }
}

fn parse_steering(s: &str) -> Result<Steering, String> {
    s.parse()
}

/// Seconds, whole or fractional (`10`, `0.5`), more than zero and at most a day.
fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!("`{s}` is not a number of seconds in (0, 86400]")),
    }
}

fn parse_driver(s: &str) -> Result<DriverChoice, String> {
    s.parse()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let command =
        cli.command
            .unwrap_or_else(|| match Cli::parse_from(["percore", "serve"]).command {
                Some(serve) => serve,
                None => unreachable!("`percore serve` always parses to the serve command"),
            });
    let result = match command {
        Command::Serve {
            listen,
            http,
            tls,
            shards,
        } => {
            let budget = http.offload_budget();
            let mut limits = http.limits();
            if http.access_log {
                limits.access_log = Some(percore_http::AccessLog::stdout());
            }
            let access_log = limits.access_log.clone();
            let result = shards
                .builder()
                .and_then(|builder| tls.apply(builder, true))
                .and_then(|builder| {
                    percore_http::service::serve(builder, listen, limits, move || {
                        percore_http::demo::router().offload_budget(budget)
                    })
                })
                .and_then(|server| {
                    if !shards.quiet {
                        eprintln!(
                            "{}",
                            tls.describe("http", "http://", server.listen_addr().unwrap_or(listen))
                        );
                    }
                    server.join()
                });
            // The shards handed what they held over as they ended: write it out.
            if let Some(log) = access_log {
                log.flush(Duration::from_secs(5));
            }
            result
        }
        Command::Echo {
            listen,
            tls,
            shards,
        } => shards
            .builder()
            .and_then(|builder| tls.apply(builder, false))
            .and_then(|builder| percore_echo::serve(builder, listen))
            .and_then(|server| {
                if !shards.quiet {
                    eprintln!(
                        "{}",
                        tls.describe("echo", "", server.listen_addr().unwrap_or(listen))
                    );
                }
                server.join()
            }),
        Command::Kv {
            listen,
            kv,
            tls,
            shards,
        } => shards
            .builder()
            .and_then(|builder| tls.apply(builder, false))
            .and_then(|builder| kv::run(builder, listen, &kv, &tls, shards.quiet)),
        Command::Doctor(args) => return doctor::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("percore: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

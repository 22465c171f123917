//! `percore kv`: the RESP key-value service.

use std::net::SocketAddr;

use clap::Args;

/// Settings of `percore kv`.
#[derive(Args)]
pub struct KvArgs {
    /// Bytes of keys and values the process may hold, split evenly across shards; past it,
    /// writes get `-OOM`. Default: no limit.
    #[arg(long, value_name = "BYTES")]
    pub maxmemory: Option<u64>,
    /// What a shard past its share of --maxmemory does: refuse writes (noeviction) or evict
    /// sampled keys (Redis's policies). CONFIG SET maxmemory-policy changes it live.
    #[arg(long, default_value = "noeviction", value_parser = [
        "noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
        "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
    ])]
    pub maxmemory_policy: String,
    /// Largest bulk string a client may send, in bytes (Redis: proto-max-bulk-len).
    #[arg(long, default_value_t = 512 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_bulk_len: u64,
    /// Most arguments in one multibulk command.
    #[arg(long, default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_multibulk_len: u64,
    /// Bytes of pub/sub messages a subscriber may have waiting before it is disconnected.
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    pub pubsub_output_limit: u64,
    /// Seconds a client's unsent replies may stay above 64 KiB without progress before it is
    /// disconnected (a client that pipelines and never reads).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub write_timeout_secs: u64,
    /// Log every write to an append-only file per shard, replayed at start (yes|no).
    #[arg(long, default_value = "no", value_parser = ["yes", "no"])]
    pub appendonly: String,
    /// When the append-only files are fsynced: always (before a write's reply), everysec
    /// (at most ~1 s of writes lost in a crash) or no (the kernel decides).
    #[arg(long, default_value = "everysec", value_parser = ["always", "everysec", "no"])]
    pub appendfsync: String,
    /// The directory of the append-only files and snapshots.
    #[arg(long, default_value = ".")]
    pub dir: std::path::PathBuf,
}

impl KvArgs {
    pub fn config(&self) -> percore_kv::Config {
        percore_kv::Config {
            limits: percore_kv::resp::Limits {
                max_bulk_len: self.max_bulk_len as usize,
                max_multibulk_len: self.max_multibulk_len as usize,
                ..percore_kv::resp::Limits::default()
            },
            max_memory: self.maxmemory.map(|m| m as usize),
            maxmemory_policy: percore_kv::evict::Policy::parse(&self.maxmemory_policy)
                .unwrap_or(percore_kv::evict::Policy::NoEviction),
            pubsub_output_limit: self.pubsub_output_limit as usize,
            write_timeout: std::time::Duration::from_secs(self.write_timeout_secs),
            appendonly: self.appendonly == "yes",
            appendfsync: percore_kv::persist::AppendFsync::parse(&self.appendfsync)
                .unwrap_or(percore_kv::persist::AppendFsync::EverySec),
            dir: self.dir.clone(),
            ..percore_kv::Config::default()
        }
    }
}

/// Runs the service until it stops.
pub fn run(
    builder: percore::ServerBuilder,
    listen: SocketAddr,
    args: &KvArgs,
    tls: &crate::tls::TlsArgs,
    quiet: bool,
) -> Result<(), percore::Error> {
    let server = percore_kv::serve(builder, listen, args.config())?;
    if !quiet {
        eprintln!(
            "{}",
            tls.describe("kv (RESP)", "", server.listen_addr().unwrap_or(listen))
        );
    }
    server.join()
}

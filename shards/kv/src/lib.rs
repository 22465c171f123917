//! # percore-kv
//!
//! A shared-nothing key-value service on percore that speaks RESP2 and RESP3, the Redis protocol,
//! so redis-cli, redis-benchmark and every Redis client library talk to it.
//!
//! - **Ownership.** Each key belongs to one shard: FxHash of the key (fixed, no random
//!   seed) modulo the shard count. A command runs on its key's owner: in place when that is
//!   the connection's own shard, otherwise through the mesh (one message per shard per read,
//!   however many commands it carries). Replies go back in command order, also when a
//!   pipeline mixes shards (see `route`).
//! - **Protocol.** [`resp`] is sans-IO: a stateful parser (multibulk and inline, with
//!   Redis's limits and protocol errors) and reply encoders. Every command found in one
//!   read is answered in one send.
//! - **Expiry.** Lazy on access, plus an active sweep per shard on the kernel's `interval`.
//! - **Pub/sub.** PUBLISH runs on the channel's owner shard and fans out through the mesh,
//!   which keeps a channel's messages in publish order on every shard; a subscriber's
//!   output is bounded (see [`pubsub`]).
//! - **Memory.** `maxmemory` (live: CONFIG SET) is split evenly across shards; a shard past
//!   its share evicts by `maxmemory-policy` (sampled LRU/LFU/TTL/random, see [`evict`]) or,
//!   under `noeviction`, refuses writes that may grow memory with Redis's OOM error.
//! - **Operations.** CONFIG GET/SET of the live settings (see [`settings`]), keyspace
//!   notifications ([`notify`]), SLOWLOG, INFO server, clients, memory (per shard),
//!   persistence, stats, replication, cpu, commandstats, errorstats, keyspace.
//!
//! - **Hash tags.** A key with a `{tag}` is owned by its tag's shard (Redis Cluster's rule),
//!   so related keys can share a shard.
//! - **Commands over several keys** (MSET, MGET, DEL, RENAME, LMOVE, SMOVE, SINTERSTORE,
//!   ZUNIONSTORE, ...) run on the keys' owner when they share one; otherwise they are
//!   **atomic across shards**: the keys are locked on their owners in shard order, the
//!   command runs (MSET/MGET/DEL: each shard's part; the others: the entries are copied
//!   into a scratch store, the command runs there and what it changed is written back),
//!   and the locks are released. Commands on locked keys wait (see [`txn`]).
//! - **Blocking pops** wait in a first-come queue on each key's owner shard (see `blocking`).
//! - **Transactions** (MULTI/EXEC/DISCARD/WATCH/UNWATCH) are atomic whatever shards their
//!   keys live on: one shard runs a one-shard transaction as one batch; a cross-shard one
//!   locks every key it names (and its watched keys) in shard order first (see [`txn`]).
//!   WATCH keeps a dirty flag on the keys' owners (see `watch`).
//! - **Databases.** SELECT 0..15; each shard holds its part of every database in use.
//! - **RESP3** after HELLO 3: nulls, maps, sets, doubles and score pairs as Redis 7.0 sends
//!   them (pub/sub messages stay RESP2 arrays).
//!
//! - **Persistence**: an append-only file per shard, written through io_uring file ops,
//!   replayed at start; snapshots and rewrites in the background (see [`persist`]).
//!
//! Not (yet) like Redis: no scripting or streams; a cross-shard MSET
//! whose one shard is past its memory share is refused there and applied on the others;
//! KEYS, SCAN, DBSIZE and RANDOMKEY outside a transaction read the shards without locks;
//! SCAN examines whole segments of a shard's keys (at most 512 keys each), so a
//! call may return more keys than COUNT (Redis treats COUNT as a hint too), and a key
//! present for a whole scan is returned exactly once; HSCAN, SSCAN and ZSCAN answer the
//! whole collection in one call; OBJECT ENCODING reports the encoding Redis 7.0 would use
//! for the value under the current thresholds, while the store keeps one representation per
//! type; PUBLISH keeps per-channel order except when a shard's mesh inbox is full (the
//! message then waits in a task); commands from different connections are not ordered
//! with one another across shards (a PUBLISH may reach a shard before an UNSUBSCRIBE sent
//! earlier on another connection is handled there); replies of a read's local commands
//! that come before its first command for another shard are sent in one send, the rest in
//! a second.

#![forbid(unsafe_code)]

mod admin;
mod blocking;
mod clients;
pub mod commands;
mod conn;
pub mod evict;
mod fanout;
pub mod glob;
pub mod hash;
pub mod notify;
mod params;
pub mod persist;
pub mod pubsub;
pub mod resp;
mod route;
pub mod settings;
mod shard;
mod stats;
pub mod store;
pub mod txn;
mod watch;

use std::{net::SocketAddr, time::Duration};

use percore::{Error, ServerBuilder, ServerHandle};

/// The service's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Protocol limits (bulk length, multibulk count, inline length).
    pub limits: resp::Limits,
    /// Bytes of keys and values the process may hold, split evenly across shards; past its
    /// share a shard evicts by [`Config::maxmemory_policy`] or (noeviction) refuses writes
    /// with `-OOM`. `None`: no limit. The start value of the live `maxmemory` (CONFIG SET).
    pub max_memory: Option<usize>,
    /// Bytes of pub/sub messages a subscriber may have waiting before it is disconnected
    /// (Redis: `client-output-buffer-limit pubsub 32mb`).
    pub pubsub_output_limit: usize,
    /// Period of the active expiry sweep.
    pub sweep_interval: Duration,
    /// How long unsent replies may stay above the output watermark (64 KiB) without
    /// progress before the connection is dropped: a client that pipelines and never reads.
    pub write_timeout: Duration,
    /// Log every write to a file per shard, replayed at start (see [`persist`]).
    pub appendonly: bool,
    /// When the log is fsynced.
    pub appendfsync: persist::AppendFsync,
    /// Where the logs and snapshots live.
    pub dir: std::path::PathBuf,
    /// What a shard past its memory share does (see [`evict`]).
    pub maxmemory_policy: evict::Policy,
    /// The persistence settings CONFIG SET changes live (made by `serve` from the above).
    pub live: std::sync::Arc<settings::Live>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: resp::Limits::default(),
            max_memory: None,
            pubsub_output_limit: 32 * 1024 * 1024,
            sweep_interval: Duration::from_millis(100),
            write_timeout: Duration::from_secs(30),
            appendonly: false,
            appendfsync: persist::AppendFsync::EverySec,
            dir: std::path::PathBuf::from("."),
            live: std::sync::Arc::default(),
            maxmemory_policy: evict::Policy::NoEviction,
        }
    }
}

/// Serves RESP on `addr` on every shard of `builder`.
pub fn serve(
    builder: ServerBuilder,
    addr: SocketAddr,
    config: Config,
) -> Result<ServerHandle, Error> {
    // This server's own live settings (a config cloned from another server's shares them).
    let config = Config {
        live: std::sync::Arc::default(),
        ..config
    };
    persist::configure(&config);
    config.live.maxmemory.store(
        config.max_memory.unwrap_or(0) as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    config.live.policy.store(
        config.maxmemory_policy as u8,
        std::sync::atomic::Ordering::Relaxed,
    );
    builder.serve(addr, move |stream| conn::handle(stream, config.clone()))
}

//! INFO: every shard's figures, gathered through the mesh.

use std::fmt::Write as _;

use percore::mesh::submit_to;

use crate::{
    commands::table::COMMANDS, conn::Conn, resp, route::join_all, shard, store::DATABASES,
};

/// One shard's figures for INFO.
struct ShardFigures {
    blocked: usize,
    keys: usize,
    expires: usize,
    /// Keys and keys with an expiry time per database.
    per_db: [(usize, usize); DATABASES],
    used_bytes: usize,
    clients: usize,
    connections: u64,
    commands: u64,
    hits: u64,
    misses: u64,
    expired: u64,
    channels: usize,
    patterns: usize,
    kernel: percore::ShardStats,
    persist: crate::persist::Figures,
    evicted: u64,
    max_bytes: usize,
    cmdstats: crate::stats::CommandStats,
}

/// INFO [section ...]: server, clients, memory, stats, keyspace and shards (one line per
/// shard with the kernel's figures).
pub async fn info(conn: &Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let wanted: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| matches!(w.as_str(), "all" | "everything" | "default"));
    let want = |s: &str| all || wanted.iter().any(|w| w == s);
    let calls = (0..conn.shards)
        .map(|target| {
            let config = conn.state.config.clone();
            Box::pin(submit_to(target, move || {
                let state = shard::init(&config);
                let dbs = state.dbs.borrow();
                let (channels, patterns) = state.pubsub.borrow().counts();
                let mut per_db = [(0, 0); DATABASES];
                for (i, db) in dbs.iter() {
                    per_db[i] = (db.len(), db.expires());
                }
                let total = |f: &dyn Fn(&crate::store::Store) -> u64| {
                    dbs.iter().map(|(_, db)| f(db)).sum::<u64>()
                };
                ShardFigures {
                    blocked: state.blocked_clients.get(),
                    keys: per_db.iter().map(|d| d.0).sum(),
                    expires: per_db.iter().map(|d| d.1).sum(),
                    per_db,
                    used_bytes: total(&|db| db.used_bytes() as u64) as usize,
                    clients: state.clients.get(),
                    connections: state.total_connections.get(),
                    commands: state.commands.get() + total(&|db| db.stats.commands),
                    hits: total(&|db| db.stats.keyspace_hits),
                    misses: total(&|db| db.stats.keyspace_misses),
                    expired: total(&|db| db.stats.expired_keys),
                    channels,
                    patterns,
                    kernel: percore::stats(),
                    persist: crate::persist::figures(),
                    evicted: total(&|db| db.stats.evicted_keys),
                    max_bytes: dbs.max_bytes().unwrap_or(0),
                    cmdstats: crate::stats::snapshot(),
                }
            })) as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>
        })
        .collect();
    let figures: Vec<ShardFigures> = join_all(calls).await.into_iter().flatten().collect();
    let sum = |f: &dyn Fn(&ShardFigures) -> u64| figures.iter().map(f).sum::<u64>();
    let mut text = String::new();
    if want("server") {
        let _ = write!(
            text,
            "# Server\r\nredis_version:7.0.0\r\npercore_kv_version:{}\r\nredis_mode:standalone\r\nos:Linux\r\narch_bits:64\r\nmultiplexing_api:io_uring\r\nprocess_id:{}\r\nshards:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            conn.shards
        );
    }
    if want("clients") {
        let _ = write!(
            text,
            "# Clients\r\nconnected_clients:{}\r\nblocked_clients:{}\r\npubsub_clients_shard_local:{}\r\n\r\n",
            sum(&|f| f.clients as u64),
            sum(&|f| f.blocked as u64),
            conn.state.pubsub.borrow().counts().0
        );
    }
    if want("memory") {
        use std::sync::atomic::Ordering::Relaxed;
        let used = sum(&|f| f.used_bytes as u64);
        let live = &conn.state.config.live;
        let _ = write!(
            text,
            "# Memory\r\nused_memory:{used}\r\nused_memory_human:{:.2}K\r\nmaxmemory:{}\r\nmaxmemory_human:{:.2}K\r\nmaxmemory_policy:{}\r\nmaxmemory_samples:{}\r\n",
            used as f64 / 1024.0,
            live.maxmemory(),
            live.maxmemory() as f64 / 1024.0,
            crate::evict::Policy::from_u8(live.policy.load(Relaxed)).name(),
            live.samples.load(Relaxed),
        );
        for (i, f) in figures.iter().enumerate() {
            let _ = write!(
                text,
                "used_memory_shard{i}:{}\r\nmaxmemory_shard{i}:{}\r\n",
                f.used_bytes, f.max_bytes
            );
        }
        text.push_str("\r\n");
    }
    if want("replication") {
        text.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_repl_offset:0\r\nrepl_backlog_active:0\r\n\r\n");
    }
    if want("cpu") {
        let (user, system) = cpu_seconds();
        let _ = write!(
            text,
            "# CPU\r\nused_cpu_sys:{system:.6}\r\nused_cpu_user:{user:.6}\r\n\r\n"
        );
    }
    if want("commandstats") {
        text.push_str("# Commandstats\r\n");
        for (i, spec) in COMMANDS.iter().enumerate() {
            let get = |v: &Vec<u64>| v.get(i).copied().unwrap_or(0);
            let calls = sum(&|f| get(&f.cmdstats.calls));
            if calls == 0 {
                continue;
            }
            let usec = sum(&|f| get(&f.cmdstats.usec));
            let _ = write!(
                text,
                "cmdstat_{}:calls={calls},usec={usec},usec_per_call={:.2},rejected_calls=0,failed_calls={}\r\n",
                spec.name,
                usec as f64 / calls as f64,
                sum(&|f| get(&f.cmdstats.failed)),
            );
        }
        text.push_str("\r\n");
    }
    if want("errorstats") {
        text.push_str("# Errorstats\r\n");
        let mut errors: Vec<(String, u64)> = Vec::new();
        for f in &figures {
            for (word, n) in &f.cmdstats.errors {
                match errors.iter_mut().find(|(w, _)| w == word) {
                    Some((_, total)) => *total += n,
                    None => errors.push((word.clone(), *n)),
                }
            }
        }
        errors.sort();
        for (word, n) in errors {
            let _ = write!(text, "errorstat_{word}:count={n}\r\n");
        }
        text.push_str("\r\n");
    }
    if want("persistence") {
        let any =
            |f: &dyn Fn(&crate::persist::Figures) -> bool| figures.iter().any(|s| f(&s.persist));
        let ok = |b: bool| if b { "ok" } else { "err" };
        let _ = write!(
            text,
            "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\naof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrites:{}\r\naof_last_bgrewrite_status:ok\r\naof_last_write_status:{}\r\naof_current_size:{}\r\naof_fsync:{}\r\n\r\n",
            sum(&|f| f.persist.changes),
            u8::from(any(&|p| p.bgsave_running)),
            crate::persist::last_save(),
            ok(!any(&|p| !p.last_bgsave_ok)),
            u8::from(crate::persist::append_only()),
            u8::from(any(&|p| p.rewrite_running)),
            sum(&|f| f.persist.rewrites),
            ok(!any(&|p| !p.last_write_ok)),
            sum(&|f| f.persist.aof_size),
            crate::persist::fsync_policy().name(),
        );
    }
    if want("stats") {
        let _ = write!(
            text,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\n\r\n",
            sum(&|f| f.connections),
            sum(&|f| f.commands),
            sum(&|f| f.hits),
            sum(&|f| f.misses),
            sum(&|f| f.expired),
            sum(&|f| f.evicted),
            sum(&|f| f.channels as u64),
            sum(&|f| f.patterns as u64),
        );
    }
    if want("keyspace") {
        text.push_str("# Keyspace\r\n");
        for db in 0..DATABASES {
            let keys = sum(&|f| f.per_db[db].0 as u64);
            if keys > 0 {
                let _ = write!(
                    text,
                    "db{db}:keys={keys},expires={},avg_ttl=0\r\n",
                    sum(&|f| f.per_db[db].1 as u64)
                );
            }
        }
        text.push_str("\r\n");
    }
    if want("shards") {
        text.push_str("# Shards\r\n");
        for f in &figures {
            let k = &f.kernel;
            let _ = write!(
                text,
                "shard{}:cpu={},keys={},expires={},used_memory={},clients={},connections_open={},bytes_in={},bytes_out={},loop_iterations={},mesh_sent={},mesh_received={},mesh_inbox={},tasks={},stalls={},panics={}\r\n",
                k.shard,
                k.cpu.map_or_else(|| "-".to_string(), |c| c.to_string()),
                f.keys,
                f.expires,
                f.used_bytes,
                f.clients,
                k.net.open,
                k.net.bytes_in,
                k.net.bytes_out,
                k.loop_.iterations,
                k.loop_.mesh_sent,
                k.loop_.mesh_received,
                k.mesh_inbox,
                k.tasks,
                k.stalls,
                k.panics,
            );
        }
        text.push_str("\r\n");
    }
    resp::bulk(out, text.trim_end().as_bytes());
}

/// The process's user and system CPU seconds (from /proc/self/stat; 0 where unreadable).
fn cpu_seconds() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the command name (which may hold spaces, inside parentheses).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Linux reports them in clock ticks, 100 per second on every common configuration.
    (ticks(11) / 100.0, ticks(12) / 100.0)
}

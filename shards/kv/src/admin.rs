//! Connection and server commands: PING, ECHO, QUIT, SELECT, CLIENT, COMMAND, CONFIG and
//! INFO (which gathers every shard's figures through the mesh).

use std::fmt::Write as _;

use percore::mesh::submit_to;

use crate::{
    commands::table::{COMMANDS, Cmd, NOT_INTEGER, Spec, lookup, wrong_arity},
    conn::{Conn, ping},
    resp,
    route::join_all,
    shard,
};

/// A command about the connection or the server, answered on this shard.
pub fn connection_command(conn: &mut Conn, spec: &Spec, args: &[Vec<u8>], out: &mut Vec<u8>) {
    conn.count_command();
    match spec.cmd {
        Cmd::Ping if args.len() > 2 => resp::error(out, &wrong_arity("ping")),
        Cmd::Ping => ping(conn, args, out),
        Cmd::Echo => resp::bulk(out, &args[1]),
        Cmd::Quit => {
            resp::ok(out);
            conn.closing = true;
        }
        Cmd::Select => match crate::resp::parse_int(&args[1]) {
            Some(0) => resp::ok(out),
            Some(_) => resp::error(out, "ERR DB index is out of range"),
            None => resp::error(out, NOT_INTEGER),
        },
        Cmd::Client => client(conn, args, out),
        Cmd::Command => command(args, out),
        Cmd::Config => config(conn, args, out),
        _ => resp::error(out, "ERR internal: not a connection command"),
    }
}

fn unknown_subcommand(out: &mut Vec<u8>, sub: &[u8], command: &str) {
    resp::error(
        out,
        &format!(
            "ERR unknown subcommand '{}'. Try {command} HELP.",
            String::from_utf8_lossy(sub)
        ),
    );
}

fn client(conn: &mut Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let sub = args[1].to_ascii_uppercase();
    match (sub.as_slice(), args.len()) {
        (b"ID", 2) => resp::integer(out, conn.id as i64),
        (b"GETNAME", 2) => match &conn.name {
            Some(name) => resp::bulk(out, name),
            None => resp::null(out),
        },
        (b"SETNAME", 3) => {
            let name = &args[2];
            if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
                return resp::error(
                    out,
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            conn.name = (!name.is_empty()).then(|| name.clone());
            resp::ok(out);
        }
        (b"INFO", 2) => resp::bulk(out, client_line(conn).as_bytes()),
        // redis-cli 7.2+ and client libraries announce themselves; accepted and ignored.
        (b"SETINFO", 4) => resp::ok(out),
        (b"ID" | b"GETNAME" | b"SETNAME" | b"INFO" | b"SETINFO", _) => {
            let name = format!(
                "client|{}",
                String::from_utf8_lossy(&args[1]).to_lowercase()
            );
            resp::error(out, &wrong_arity(&name))
        }
        _ => unknown_subcommand(out, &args[1], "CLIENT"),
    }
}

/// CLIENT INFO's line (Redis's fields that apply here, plus the shard).
fn client_line(conn: &Conn) -> String {
    let name = conn
        .name
        .as_ref()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default();
    format!(
        "id={} addr={} name={} db=0 sub={} psub={} shard={}\n",
        conn.id,
        conn.addr,
        name,
        conn.subs.channels.len(),
        conn.subs.patterns.len(),
        conn.shard
    )
}

/// One COMMAND entry, in Redis 7's 10-field shape.
fn command_entry(spec: &Spec, out: &mut Vec<u8>) {
    resp::array(out, 10);
    resp::bulk(out, spec.name.as_bytes());
    resp::integer(out, i64::from(spec.arity));
    resp::array(out, spec.flags.len());
    for flag in spec.flags {
        resp::simple(out, flag);
    }
    resp::integer(out, i64::from(spec.first_key));
    resp::integer(out, i64::from(spec.last_key));
    resp::integer(out, i64::from(spec.step));
    for _ in 0..4 {
        resp::array(out, 0); // ACL categories, tips, key specs, subcommands.
    }
}

fn command(args: &[Vec<u8>], out: &mut Vec<u8>) {
    let Some(sub) = args.get(1) else {
        resp::array(out, COMMANDS.len());
        for spec in COMMANDS {
            command_entry(spec, out);
        }
        return;
    };
    match sub.to_ascii_uppercase().as_slice() {
        b"COUNT" => resp::integer(out, COMMANDS.len() as i64),
        // No documentation: an empty map (as a flat RESP2 array), which redis-cli accepts.
        b"DOCS" => resp::array(out, 0),
        b"INFO" => {
            resp::array(out, args.len() - 2);
            for name in &args[2..] {
                match lookup(name) {
                    Some(spec) => command_entry(spec, out),
                    None => resp::null_array(out),
                }
            }
        }
        b"LIST" => {
            resp::array(out, COMMANDS.len());
            for spec in COMMANDS {
                resp::bulk(out, spec.name.as_bytes());
            }
        }
        _ => unknown_subcommand(out, sub, "COMMAND"),
    }
}

/// CONFIG GET: the few parameters clients ask about (redis-benchmark reads `save` and
/// `appendonly`); other subcommands are not supported.
fn config(conn: &Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
    if !args[1].eq_ignore_ascii_case(b"GET") {
        if args[1].eq_ignore_ascii_case(b"RESETSTAT") {
            return resp::ok(out);
        }
        return unknown_subcommand(out, &args[1], "CONFIG");
    }
    if args.len() < 3 {
        return resp::error(out, &wrong_arity("config|get"));
    }
    let limits = &conn.state.config.limits;
    let max_memory = conn.state.config.max_memory.unwrap_or(0).to_string();
    let params: [(&str, String); 8] = [
        ("save", String::new()),
        ("appendonly", "no".into()),
        ("maxmemory", max_memory),
        ("maxmemory-policy", "noeviction".into()),
        ("databases", "1".into()),
        ("proto-max-bulk-len", limits.max_bulk_len.to_string()),
        ("timeout", "0".into()),
        ("io-threads", "1".into()),
    ];
    let mut found = Vec::new();
    for pattern in &args[2..] {
        for (name, value) in &params {
            if crate::glob::matches(&pattern.to_ascii_lowercase(), name.as_bytes())
                && !found.iter().any(|(n, _)| n == name)
            {
                found.push((*name, value.clone()));
            }
        }
    }
    resp::array(out, found.len() * 2);
    for (name, value) in found {
        resp::bulk(out, name.as_bytes());
        resp::bulk(out, value.as_bytes());
    }
}

/// One shard's figures for INFO.
struct ShardFigures {
    keys: usize,
    expires: usize,
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
                let store = state.store.borrow();
                let (channels, patterns) = state.pubsub.borrow().counts();
                ShardFigures {
                    keys: store.len(),
                    expires: store.expires(),
                    used_bytes: store.used_bytes(),
                    clients: state.clients.get(),
                    connections: state.total_connections.get(),
                    commands: state.commands.get() + store.stats.commands,
                    hits: store.stats.keyspace_hits,
                    misses: store.stats.keyspace_misses,
                    expired: store.stats.expired_keys,
                    channels,
                    patterns,
                    kernel: percore::stats(),
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
            "# Clients\r\nconnected_clients:{}\r\npubsub_clients_shard_local:{}\r\n\r\n",
            sum(&|f| f.clients as u64),
            conn.state.pubsub.borrow().counts().0
        );
    }
    if want("memory") {
        let used = sum(&|f| f.used_bytes as u64);
        let _ = write!(
            text,
            "# Memory\r\nused_memory:{used}\r\nused_memory_human:{:.2}K\r\nmaxmemory:{}\r\nmaxmemory_policy:noeviction\r\n\r\n",
            used as f64 / 1024.0,
            conn.state.config.max_memory.unwrap_or(0)
        );
    }
    if want("stats") {
        let _ = write!(
            text,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\nexpired_keys:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\n\r\n",
            sum(&|f| f.connections),
            sum(&|f| f.commands),
            sum(&|f| f.hits),
            sum(&|f| f.misses),
            sum(&|f| f.expired),
            sum(&|f| f.channels as u64),
            sum(&|f| f.patterns as u64),
        );
    }
    if want("keyspace") {
        text.push_str("# Keyspace\r\n");
        let keys = sum(&|f| f.keys as u64);
        if keys > 0 {
            let _ = write!(
                text,
                "db0:keys={keys},expires={},avg_ttl=0\r\n",
                sum(&|f| f.expires as u64)
            );
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

//! Connection and server commands: PING, ECHO, QUIT, SELECT, CLIENT, COMMAND, CONFIG and
//! INFO (which gathers every shard's figures through the mesh).

use std::fmt::Write as _;

use percore::mesh::submit_to;

use crate::{
    clients,
    commands::table::{COMMANDS, Cmd, NOT_INTEGER, SYNTAX, Spec, lookup, wrong_arity},
    conn::{Conn, ping},
    params, resp,
    route::join_all,
    shard,
    store::DATABASES,
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
            Some(db) if (0..DATABASES as i64).contains(&db) => {
                conn.db = db as usize;
                resp::ok(out)
            }
            Some(_) => resp::error(out, "ERR DB index is out of range"),
            None => resp::error(out, NOT_INTEGER),
        },
        Cmd::Client => client(conn, args, out),
        Cmd::Command => command(args, out),
        Cmd::Config => config(conn, args, out),
        Cmd::Hello => hello(conn, args, out),
        Cmd::Time => time(out),
        Cmd::Debug => debug(args, out),
        Cmd::Function => function(args, out),
        Cmd::Multi if conn.multi.is_some() => resp::error(out, "ERR MULTI calls can not be nested"),
        Cmd::Multi => {
            conn.multi = Some(crate::conn::Multi::default());
            resp::ok(out)
        }
        Cmd::Discard => match conn.multi.take() {
            Some(_) => {
                unwatch(conn);
                resp::ok(out)
            }
            None => resp::error(out, "ERR DISCARD without MULTI"),
        },
        Cmd::Unwatch => {
            unwatch(conn);
            resp::ok(out)
        }
        Cmd::Reset => {
            unwatch(conn);
            conn.multi = None;
            conn.db = 0;
            conn.name = None;
            conn.resp = 2;
            resp::simple(out, "RESET");
        }
        _ => resp::error(out, "ERR internal: not a connection command"),
    }
    if matches!(
        spec.cmd,
        Cmd::Select | Cmd::Client | Cmd::Hello | Cmd::Reset
    ) {
        conn.publish_state();
    }
}

/// Drops the connection's watch, if any.
fn unwatch(conn: &mut Conn) {
    if let Some(watching) = conn.watching.take() {
        crate::watch::forget(conn, watching);
    }
}

/// CLIENT LIST [TYPE t] [ID id ...], CLIENT KILL (the old `addr` form, or filters ID, ADDR,
/// LADDR, TYPE, SKIPME), CLIENT UNBLOCK id [TIMEOUT|ERROR]: over every shard's connections.
pub async fn client_fanout(conn: &Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let sub = args[1].to_ascii_uppercase();
    match sub.as_slice() {
        b"LIST" => client_list(conn, args, out).await,
        b"KILL" => client_kill(conn, args, out).await,
        _ => client_unblock(conn, args, out).await,
    }
}

fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

async fn client_list(conn: &Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let (mut ids, mut pubsub): (Option<Vec<u64>>, Option<bool>) = (None, None);
    let mut i = 2;
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"TYPE" if i + 1 < args.len() => {
                pubsub = match args[i + 1].to_ascii_lowercase().as_slice() {
                    b"normal" => Some(false),
                    b"pubsub" => Some(true),
                    b"master" | b"replica" | b"slave" => {
                        resp::bulk(out, b"");
                        return;
                    }
                    _ => {
                        return resp::error(
                            out,
                            &format!("ERR Unknown client type '{}'", text(&args[i + 1])),
                        );
                    }
                };
                i += 2;
            }
            b"ID" if i + 1 < args.len() => {
                let mut wanted = Vec::new();
                for arg in &args[i + 1..] {
                    match crate::resp::parse_int(arg) {
                        Some(id) if id > 0 => wanted.push(id as u64),
                        _ => return resp::error(out, "ERR Invalid client ID"),
                    }
                }
                ids = Some(wanted);
                i = args.len();
            }
            _ => return resp::error(out, SYNTAX),
        }
    }
    let calls = (0..conn.shards)
        .map(|target| {
            let (ids, config) = (ids.clone(), conn.state.config.clone());
            Box::pin(submit_to(target, move || {
                let _ = shard::init(&config);
                clients::lines(target, |id, e| {
                    ids.as_ref().is_none_or(|ids| ids.contains(&id))
                        && pubsub.is_none_or(|p| p == (e.subscriptions.0 + e.subscriptions.1 > 0))
                })
            })) as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>
        })
        .collect();
    let mut lines: Vec<(u64, String)> = join_all(calls)
        .await
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    lines.sort();
    let mut listing = String::new();
    for (_, line) in lines {
        listing.push_str(&line);
        listing.push('\n');
    }
    conn.speak();
    resp::bulk(out, listing.as_bytes());
}

async fn client_kill(conn: &Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let mut filter = clients::KillFilter {
        skip: Some(conn.id),
        ..clients::KillFilter::default()
    };
    let old_form = args.len() == 3;
    if old_form {
        filter = clients::KillFilter {
            addr: Some(text(&args[2])),
            ..clients::KillFilter::default()
        };
    } else {
        if args.len() < 4 || !args.len().is_multiple_of(2) {
            return resp::error(out, SYNTAX);
        }
        for pair in args[2..].chunks_exact(2) {
            let value = text(&pair[1]);
            match pair[0].to_ascii_uppercase().as_slice() {
                b"ID" => match value.parse::<u64>() {
                    Ok(id) if id > 0 => filter.id = Some(id),
                    _ => {
                        return resp::error(out, "ERR client-id should be greater than 0");
                    }
                },
                b"ADDR" => filter.addr = Some(value),
                b"LADDR" => filter.laddr = Some(value),
                b"TYPE" => {
                    filter.pubsub = match value.to_lowercase().as_str() {
                        "normal" => Some(false),
                        "pubsub" => Some(true),
                        _ => {
                            return resp::error(out, &format!("ERR Unknown client type '{value}'"));
                        }
                    }
                }
                b"SKIPME" => match value.to_lowercase().as_str() {
                    "yes" => filter.skip = Some(conn.id),
                    "no" => filter.skip = None,
                    _ => return resp::error(out, SYNTAX),
                },
                b"USER" => {}
                _ => return resp::error(out, SYNTAX),
            }
        }
    }
    let calls = (0..conn.shards)
        .map(|target| {
            let (filter, config) = (filter.clone(), conn.state.config.clone());
            Box::pin(submit_to(target, move || {
                let _ = shard::init(&config);
                clients::kill(&filter)
            })) as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>
        })
        .collect();
    let killed: usize = join_all(calls).await.into_iter().flatten().sum();
    conn.speak();
    match (old_form, killed) {
        (true, 0) => resp::error(out, "ERR No such client"),
        (true, _) => resp::ok(out),
        (false, n) => resp::integer(out, n as i64),
    }
}

async fn client_unblock(conn: &Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let Some(id) = crate::resp::parse_int(&args[2]).filter(|&id| id > 0) else {
        return resp::error(out, NOT_INTEGER);
    };
    let how = match args.get(3).map(|a| a.to_ascii_uppercase()) {
        None => clients::Unblock::Timeout,
        Some(a) if a == b"TIMEOUT" => clients::Unblock::Timeout,
        Some(a) if a == b"ERROR" => clients::Unblock::Error,
        Some(_) => {
            return resp::error(out, "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
        }
    };
    if args.len() > 4 {
        return resp::error(out, &wrong_arity("client|unblock"));
    }
    // A connection's id names its shard: id = sequence × shards + shard + 1.
    let target = ((id as u64 - 1) % conn.shards as u64) as usize;
    let config = conn.state.config.clone();
    let done = submit_to(target, move || {
        let _ = shard::init(&config);
        clients::unblock(id as u64, how)
    })
    .await;
    conn.speak();
    resp::integer(out, i64::from(done.unwrap_or(false)));
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
        (b"REPLY", 3) => {
            conn.reply = match args[2].to_ascii_uppercase().as_slice() {
                b"ON" => crate::conn::ReplyMode::On,
                b"OFF" => crate::conn::ReplyMode::Off,
                b"SKIP" => crate::conn::ReplyMode::Skip,
                _ => return resp::error(out, SYNTAX),
            };
            resp::ok(out);
        }
        // redis-cli 7.2+ and client libraries announce themselves; accepted and ignored.
        (b"SETINFO", 4) => resp::ok(out),
        (b"ID" | b"GETNAME" | b"SETNAME" | b"INFO" | b"SETINFO" | b"REPLY", _) => {
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

/// CONFIG GET, SET, RESETSTAT (see [`params`]).
/// The parameters the server reads live (see `settings`): their current values.
fn live_value(conn: &Conn, name: &str) -> Option<String> {
    use std::sync::atomic::Ordering::Relaxed;
    let live = &conn.state.config.live;
    Some(match name {
        "maxmemory" => live.maxmemory().to_string(),
        "maxmemory-policy" => crate::evict::Policy::from_u8(live.policy.load(Relaxed))
            .name()
            .to_string(),
        "maxmemory-samples" => live.samples.load(Relaxed).to_string(),
        "appendonly" => if live.appendonly.load(Relaxed) {
            "yes"
        } else {
            "no"
        }
        .to_string(),
        "appendfsync" => crate::persist::fsync_policy().name().to_string(),
        "notify-keyspace-events" => crate::notify::render(live.notify.load(Relaxed)),
        "slowlog-log-slower-than" => live.slowlog_us.load(Relaxed).to_string(),
        "slowlog-max-len" => live.slowlog_max.load(Relaxed).to_string(),
        _ => return None,
    })
}

/// CONFIG SET of a parameter the server reads live; `None`: not one of those.
fn set_live(conn: &Conn, name: &str, value: &[u8]) -> Option<Result<(), String>> {
    use std::sync::atomic::Ordering::Relaxed;
    let live = &conn.state.config.live;
    let text = String::from_utf8_lossy(value).into_owned();
    let invalid = || {
        Err(format!(
            "ERR CONFIG SET failed (possibly related to argument '{name}') - argument(s) must be one of the accepted values"
        ))
    };
    Some(match name {
        "maxmemory" => match params::parse_memory(&text) {
            Some(n) if n >= 0 => {
                live.maxmemory.store(n as u64, Relaxed);
                Ok(())
            }
            _ => Err(format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - argument couldn't be parsed into an integer"
            )),
        },
        "maxmemory-policy" => match crate::evict::Policy::parse(&text) {
            Some(p) => {
                live.policy.store(p as u8, Relaxed);
                Ok(())
            }
            None => invalid(),
        },
        "maxmemory-samples" => match text.parse::<u8>() {
            Ok(n @ 1..=64) => {
                live.samples.store(n, Relaxed);
                Ok(())
            }
            _ => Err(format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - argument must be between 1 and 64 inclusive"
            )),
        },
        "appendfsync" => match crate::persist::AppendFsync::parse(&text) {
            Some(p) => {
                live.fsync.store(p as u8, Relaxed);
                Ok(())
            }
            None => invalid(),
        },
        "appendonly" => match text.to_ascii_lowercase().as_str() {
            "yes" | "no" => {
                crate::persist::switch(conn, text.eq_ignore_ascii_case("yes"));
                Ok(())
            }
            _ => invalid(),
        },
        "notify-keyspace-events" => match crate::notify::parse(&text) {
            Some(flags) => {
                live.notify.store(flags, Relaxed);
                Ok(())
            }
            None => Err(format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - Invalid event class character. Use 'Ag$lshzxeKEtmd'."
            )),
        },
        "slowlog-log-slower-than" | "slowlog-max-len" => match text.parse::<i64>() {
            Ok(n) if name == "slowlog-log-slower-than" => {
                live.slowlog_us.store(n, Relaxed);
                Ok(())
            }
            Ok(n) if (0..=i64::from(u32::MAX)).contains(&n) => {
                live.slowlog_max.store(n as u32, Relaxed);
                Ok(())
            }
            _ => Err(format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - argument couldn't be parsed into an integer"
            )),
        },
        _ => return None,
    })
}

fn config(conn: &Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let sub = args[1].to_ascii_uppercase();
    match sub.as_slice() {
        b"GET" if args.len() >= 3 => {
            let mut found = params::get(&args[2..]);
            for (name, value) in &mut found {
                if let Some(live) = live_value(conn, name) {
                    *value = live;
                }
            }
            resp::map(out, found.len());
            for (name, value) in found {
                resp::bulk(out, name.as_bytes());
                resp::bulk(out, value.as_bytes());
            }
        }
        b"SET" if args.len() >= 4 && args.len().is_multiple_of(2) => {
            for pair in args[2..].chunks_exact(2) {
                let name = String::from_utf8_lossy(&pair[0]).to_lowercase();
                if let Some(result) = set_live(conn, &name, &pair[1]) {
                    if let Err(e) = result {
                        return resp::error(out, &e);
                    }
                    continue;
                }
                if let Err(e) = params::set(&pair[0], &pair[1]) {
                    return resp::error(out, &e);
                }
            }
            resp::ok(out);
        }
        b"RESETSTAT" if args.len() == 2 => {
            let (shards, config) = (conn.shards, conn.state.config.clone());
            percore::spawn(async move {
                for shard in 0..shards {
                    let config = config.clone();
                    let _ = submit_to(shard, move || {
                        let _ = shard::init(&config);
                        crate::stats::reset();
                    })
                    .await;
                }
            });
            resp::ok(out)
        }
        b"GET" | b"SET" | b"RESETSTAT" => {
            let name = format!(
                "config|{}",
                String::from_utf8_lossy(&args[1]).to_lowercase()
            );
            resp::error(out, &wrong_arity(&name))
        }
        _ => unknown_subcommand(out, &args[1], "CONFIG"),
    }
}

/// HELLO [protover [AUTH user pass] [SETNAME name]]: switches the connection to RESP2 or
/// RESP3 and answers the server's description (a map).
fn hello(conn: &mut Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let mut version = conn.resp;
    if let Some(arg) = args.get(1) {
        match crate::resp::parse_int(arg) {
            Some(v @ (2 | 3)) => version = v as u8,
            Some(_) => return resp::error(out, "NOPROTO unsupported protocol version"),
            None => {
                return resp::error(
                    out,
                    "ERR Protocol version is not an integer or out of range",
                );
            }
        }
    }
    let mut i = 2;
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"SETNAME" if i + 1 < args.len() => {
                conn.name = (!args[i + 1].is_empty()).then(|| args[i + 1].clone());
                i += 2;
            }
            b"AUTH" if i + 2 < args.len() => {
                return resp::error(
                    out,
                    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                );
            }
            _ => {
                return resp::error(
                    out,
                    &format!(
                        "ERR Syntax error in HELLO option '{}'",
                        String::from_utf8_lossy(&args[i])
                    ),
                );
            }
        }
    }
    conn.resp = version;
    conn.speak();
    resp::map(out, 7);
    for (field, value) in [("server", "redis"), ("version", "7.0.0")] {
        resp::bulk(out, field.as_bytes());
        resp::bulk(out, value.as_bytes());
    }
    resp::bulk(out, b"proto");
    resp::integer(out, i64::from(version));
    resp::bulk(out, b"id");
    resp::integer(out, conn.id as i64);
    for (field, value) in [("mode", "standalone"), ("role", "master")] {
        resp::bulk(out, field.as_bytes());
        resp::bulk(out, value.as_bytes());
    }
    resp::bulk(out, b"modules");
    resp::array(out, 0);
}

/// TIME: Unix seconds and microseconds.
fn time(out: &mut Vec<u8>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    resp::array(out, 2);
    resp::bulk_int(out, now.as_secs() as i64);
    resp::bulk_int(out, i64::from(now.subsec_micros()));
}

/// DEBUG: the subcommands clients and test suites use that mean something here.
/// RELOAD saves and loads nothing (there is no persistence, so the data after it is the
/// data before); SET-ACTIVE-EXPIRE turns the active expiry sweep off and on.
fn debug(args: &[Vec<u8>], out: &mut Vec<u8>) {
    let sub = args[1].to_ascii_uppercase();
    match (sub.as_slice(), args.len()) {
        (b"SET-ACTIVE-EXPIRE", 3) => match args[2].as_slice() {
            b"0" | b"1" => {
                params::set_active_expire(args[2] == b"1");
                resp::ok(out)
            }
            _ => resp::error(out, NOT_INTEGER),
        },
        (b"RELOAD", _) | (b"QUICKLIST-PACKED-THRESHOLD", 3) | (b"CHANGE-REPL-ID", 2) => {
            resp::ok(out)
        }
        (b"SLEEP", 3) if args[2] == b"0" => resp::ok(out),
        _ => resp::error(
            out,
            &format!(
                "ERR unknown subcommand '{}'. Try DEBUG HELP.",
                String::from_utf8_lossy(&args[1])
            ),
        ),
    }
}

/// FUNCTION FLUSH (there are no functions: nothing to flush).
fn function(args: &[Vec<u8>], out: &mut Vec<u8>) {
    match args[1].to_ascii_uppercase().as_slice() {
        b"FLUSH" if args.len() <= 3 => resp::ok(out),
        _ => unknown_subcommand(out, &args[1], "FUNCTION"),
    }
}

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

/// SLOWLOG GET [count] | LEN | RESET | HELP, over every shard's log (an entry's id is
/// its shard's sequence × shards + shard; GET merges newest first). Entries name no
/// client (commands are timed on their key's shard, which does not know it).
pub async fn slowlog(conn: &Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let sub = args[1].to_ascii_uppercase();
    let count = match (sub.as_slice(), args.get(2)) {
        (b"GET", None) => 10,
        (b"GET", Some(n)) => match crate::resp::parse_int(n) {
            Some(-1) => usize::MAX,
            Some(n) if n >= 0 && args.len() == 3 => n as usize,
            _ => return resp::error(out, "ERR count should be greater than or equal to -1"),
        },
        (b"LEN" | b"RESET", None) => 0,
        (b"HELP", None) => {
            let lines = [
                "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
            ];
            resp::array(out, lines.len());
            for line in lines {
                resp::simple(out, line);
            }
            return;
        }
        _ => return unknown_subcommand(out, &args[1], "SLOWLOG"),
    };
    let shards = conn.shards;
    type Answer = Result<(Vec<crate::stats::Slow>, usize), percore::mesh::MeshError>;
    let calls: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = Answer>>>> = (0..shards)
        .map(|target| {
            let (sub, config) = (sub.clone(), conn.state.config.clone());
            Box::pin(submit_to(target, move || {
                let _ = shard::init(&config);
                match sub.as_slice() {
                    b"GET" => (crate::stats::slow(count), 0),
                    b"LEN" => (Vec::new(), crate::stats::slow_len()),
                    _ => {
                        crate::stats::slow_reset();
                        (Vec::new(), 0)
                    }
                }
            })) as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>
        })
        .collect();
    let mut entries = Vec::new();
    let mut len = 0;
    for (shard, result) in join_all(calls).await.into_iter().enumerate() {
        if let Ok((slow, n)) = result {
            len += n;
            entries.extend(slow.into_iter().map(|s| (s, shard)));
        }
    }
    conn.speak();
    match sub.as_slice() {
        b"GET" => {
            entries.sort_by(|(a, _), (b, _)| b.at.cmp(&a.at).then(b.id.cmp(&a.id)));
            entries.truncate(count);
            resp::array(out, entries.len());
            for (slow, shard) in entries {
                resp::array(out, 6);
                resp::integer(out, (slow.id * shards as u64 + shard as u64) as i64);
                resp::integer(out, slow.at as i64);
                resp::integer(out, slow.usec as i64);
                resp::array(out, slow.args.len());
                for arg in &slow.args {
                    resp::bulk(out, arg);
                }
                resp::bulk(out, b"");
                resp::bulk(out, b"");
            }
        }
        b"LEN" => resp::integer(out, len as i64),
        _ => resp::ok(out),
    }
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

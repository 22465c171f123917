//! CLIENT: its subcommands about this connection (ID, GETNAME, SETNAME, INFO, REPLY,
//! SETINFO) and those over every shard's connections (LIST, KILL, UNBLOCK).

use percore::mesh::submit_to;

use crate::{
    clients,
    commands::table::{NOT_INTEGER, SYNTAX, wrong_arity},
    conn::Conn,
    resp,
    route::join_all,
    shard,
};

use super::unknown_subcommand;

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

pub(super) fn client(conn: &mut Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
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

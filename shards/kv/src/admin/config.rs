//! CONFIG GET, SET, RESETSTAT, and the parameters the server reads live.

use percore::mesh::submit_to;

use crate::{commands::table::wrong_arity, conn::Conn, params, resp, shard};

use super::unknown_subcommand;

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

pub(super) fn config(conn: &Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
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

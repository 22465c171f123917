//! SLOWLOG: every shard's slow log, merged.

use percore::mesh::submit_to;

use crate::{conn::Conn, resp, route::join_all, shard};

use super::unknown_subcommand;

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

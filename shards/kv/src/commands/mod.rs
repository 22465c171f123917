//! Commands on one shard's store: each takes the command's arguments (name first) and
//! appends its reply, in Redis's shape and wording, to the output. Nothing here knows about
//! shards or sockets: routing is `route`'s, connection state is `conn`'s.

mod bits;
mod hashes;
pub mod keys;
mod lcs;
pub mod lists;
mod sets;
pub mod strings;
mod zpops;
mod zsetops;
mod zsets;

pub use self::strings::{mget, mset};
pub mod table;

use self::table::{Cmd, OOM, Spec};
use crate::{
    resp::{self, parse_int},
    store::{Databases, Store},
};

/// Runs a keyed command in database `db` of a shard's databases.
pub fn run_in(
    dbs: &mut Databases,
    db: usize,
    spec: &Spec,
    args: &[Vec<u8>],
    now_ms: u64,
    out: &mut Vec<u8>,
) {
    // The limit first: without one (the common case) no flag is looked at.
    if let Some(max) = dbs.max_bytes() {
        // Keeps the stores' use tracking in step with the policy.
        crate::evict::policy(dbs);
        if dbs.used_bytes() > max && spec.deny_oom() && !crate::evict::make_room(dbs, now_ms) {
            dbs.db(db).stats.commands += 1;
            return resp::error(out, OOM);
        }
    }
    let start = out.len();
    let began = std::time::Instant::now();
    match spec.cmd {
        Cmd::Move => keys::move_key(dbs, db, args, now_ms, out),
        Cmd::Copy => keys::copy(dbs, db, args, now_ms, out),
        _ => run(dbs.db(db), spec, args, now_ms, out),
    }
    let error = out[start..].starts_with(b"-").then(|| {
        let reply = &out[start + 1..];
        let end = reply
            .iter()
            .position(|&b| b == b' ' || b == b'\r')
            .unwrap_or(reply.len());
        &reply[..end]
    });
    crate::stats::ran(spec, args, began.elapsed(), error, dbs.live());
    if (crate::blocking::any_waiters()
        || crate::watch::any()
        || crate::persist::noting()
        || crate::notify::on())
        && spec.flags.contains(&"write")
    {
        // An error wrote nothing; nor did a blocking pop that found nothing.
        let reply = &out[start..];
        // An error wrote nothing; nor did a blocking pop that found nothing, nor a
        // command that counts what it changed and answers 0 (SREM of a missing member,
        // DEL of a missing key, EXPIRE of one, ...), those whose 0 says otherwise excepted.
        let wrote = !(reply.starts_with(b"-")
            || spec.route == table::Route::Blocking
                && matches!(reply, b"*-1\r\n" | b"$-1\r\n" | b"_\r\n")
            || reply == b":0\r\n"
                && !matches!(
                    spec.name,
                    "incr"
                        | "decr"
                        | "incrby"
                        | "decrby"
                        | "hincrby"
                        | "setrange"
                        | "setbit"
                        | "append"
                        // 0 new fields or members, but updated ones.
                        | "hset"
                        | "zadd"
                        // An empty result deletes the destination.
                        | "sinterstore"
                        | "sunionstore"
                        | "sdiffstore"
                        | "zunionstore"
                        | "zinterstore"
                        | "zdiffstore"
                        | "zrangestore"
                ));
        for i in table::key_positions(spec, args).unwrap_or_default() {
            crate::blocking::note_written(db, &args[i]);
            if wrote {
                crate::watch::touch(db, &args[i]);
                if crate::notify::on() {
                    let class = crate::notify::class_of(
                        dbs.existing(db)
                            .and_then(|s| s.peek(&args[i], now_ms))
                            .map(|e| &e.value),
                    );
                    let event = match spec.name {
                        "rename" | "renamenx" if i == 1 => "rename_from",
                        "rename" | "renamenx" => "rename_to",
                        name => crate::notify::event_of(name),
                    };
                    let class =
                        if event.starts_with("rename") || event == "expire" || event == "del" {
                            crate::notify::GENERIC
                        } else {
                            class
                        };
                    crate::notify::keyspace(db, event.as_bytes(), &args[i], class);
                }
                if crate::persist::noting() {
                    if matches!(spec.cmd, Cmd::Move | Cmd::Copy) {
                        // The key may have landed in another database.
                        (0..crate::store::DATABASES)
                            .for_each(|d| crate::persist::note(d, &args[i]));
                    } else {
                        crate::persist::note(db, &args[i]);
                    }
                }
            }
        }
    }
}

/// Runs a keyed command (one key, or several keys that all live on this shard) on `store`.
pub fn run(store: &mut Store, spec: &Spec, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    store.stats.commands += 1;
    if store.over_limit() && spec.deny_oom() {
        return resp::error(out, OOM);
    }
    match spec.cmd {
        Cmd::Get => strings::get(store, args, now_ms, out),
        Cmd::Set => strings::set(store, args, now_ms, out),
        Cmd::Incr => strings::incr_by(store, &args[1], 1, now_ms, out),
        Cmd::Decr => strings::incr_by(store, &args[1], -1, now_ms, out),
        Cmd::IncrBy | Cmd::DecrBy => match parse_int(&args[2]) {
            None => resp::error(out, table::NOT_INTEGER),
            Some(n) if spec.cmd == Cmd::IncrBy => strings::incr_by(store, &args[1], n, now_ms, out),
            Some(n) => match n.checked_neg() {
                Some(neg) => strings::incr_by(store, &args[1], neg, now_ms, out),
                None => resp::error(out, "ERR decrement would overflow"),
            },
        },
        Cmd::Append => strings::append(store, args, now_ms, out),
        Cmd::Strlen => strings::strlen(store, args, now_ms, out),
        Cmd::GetDel => strings::getdel(store, args, now_ms, out),
        Cmd::Mget => {
            resp::array(out, args.len() - 1);
            for value in strings::mget(store, &args[1..], now_ms) {
                match value {
                    Some(v) => resp::bulk(out, &v),
                    None => resp::null(out),
                }
            }
        }
        Cmd::Mset => {
            if args.len().is_multiple_of(2) {
                return resp::error(out, &table::wrong_arity(spec.name));
            }
            strings::mset(store, &args[1..]);
            resp::ok(out);
        }
        Cmd::Del => resp::integer(out, keys::del(store, &args[1..], now_ms)),
        Cmd::Exists => resp::integer(out, keys::exists(store, &args[1..], now_ms)),
        Cmd::Expire => keys::expire(store, args, 1000, now_ms, out),
        Cmd::PExpire => keys::expire(store, args, 1, now_ms, out),
        Cmd::Ttl => keys::ttl(store, args, 1000, now_ms, out),
        Cmd::PTtl => keys::ttl(store, args, 1, now_ms, out),
        Cmd::Persist => keys::persist(store, args, now_ms, out),
        Cmd::Type => keys::type_of(store, args, now_ms, out),
        Cmd::HSet => hashes::hset(store, args, now_ms, out),
        Cmd::HGet => hashes::hget(store, args, now_ms, out),
        Cmd::HDel => hashes::hdel(store, args, now_ms, out),
        Cmd::HGetAll => hashes::hgetall(store, args, now_ms, out),
        Cmd::HIncrBy => hashes::hincrby(store, args, now_ms, out),
        Cmd::LPush => lists::push(store, args, true, now_ms, out),
        Cmd::RPush => lists::push(store, args, false, now_ms, out),
        Cmd::LPop => lists::pop(store, args, true, now_ms, out),
        Cmd::RPop => lists::pop(store, args, false, now_ms, out),
        Cmd::LRange => lists::lrange(store, args, now_ms, out),
        Cmd::LLen => lists::llen(store, args, now_ms, out),
        Cmd::Run => match spec.run {
            Some(run) => run(store, args, now_ms, out),
            None => resp::error(out, "ERR internal: a command without its function"),
        },
        // Routed elsewhere (connection, fan-out, pub/sub); never sent here.
        _ => resp::error(out, "ERR command not runnable on a shard store"),
    }
}

/// The most elements SRANDMEMBER, HRANDFIELD and ZRANDMEMBER return with a negative count
/// (repeats allowed): the reply is built in memory, so it is bounded; past it the count is
/// refused as out of range.
pub const MAX_RANDOM_PICKS: u64 = 10_000_000;

/// Random indices below `len` as SRANDMEMBER, HRANDFIELD and ZRANDMEMBER pick them:
/// `None` one index; `Some(n)`, n ≥ 0, up to n distinct ones; `Some(-n)` n, repeats allowed.
/// `len` must be at least 1 unless `count` is `Some(_)`.
pub fn random_picks(len: usize, count: Option<i64>) -> Vec<usize> {
    debug_assert!(count.is_none_or(|c| c >= 0 || c.unsigned_abs() <= MAX_RANDOM_PICKS));
    let mut rng = Rng::new();
    match count {
        _ if len == 0 => Vec::new(),
        None => vec![rng.below(len)],
        Some(n) if n < 0 => (0..n.unsigned_abs() as usize)
            .map(|_| rng.below(len))
            .collect(),
        Some(n) => {
            let n = (n as usize).min(len);
            // A partial Fisher-Yates shuffle: n distinct indices, uniformly.
            let mut all: Vec<usize> = (0..len).collect();
            for i in 0..n {
                let j = i + rng.below(len - i);
                all.swap(i, j);
            }
            all.truncate(n);
            all
        }
    }
}

/// A small per-thread random source (xorshift64*), seeded from the clock once per thread.
struct Rng;

thread_local! {
    static RNG_STATE: std::cell::Cell<u64> = std::cell::Cell::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x2545_f491, |d| d.as_nanos() as u64)
            | 1,
    );
}

impl Rng {
    fn new() -> Self {
        Rng
    }

    fn below(&mut self, n: usize) -> usize {
        RNG_STATE.with(|state| {
            let mut x = state.get();
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            state.set(x);
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as usize % n.max(1)
        })
    }
}

/// A random index below `n` (RANDOMKEY's pick of a shard and a key).
pub fn random_below(n: usize) -> usize {
    Rng::new().below(n)
}

/// HSCAN/SSCAN/ZSCAN `key cursor [MATCH p] [COUNT n]`: the pattern. The whole collection
/// is answered in one call with cursor 0 (as Redis does for its small encodings), which a
/// client iterating to cursor 0 handles the same way.
pub fn collection_scan_options(args: &[Vec<u8>]) -> Result<Option<Vec<u8>>, String> {
    let (_, opts) = keys::scan_options(&args[1..])?;
    Ok(opts.pattern)
}

#[cfg(test)]
mod tests;

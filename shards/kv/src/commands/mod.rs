//! Commands on one shard's store: each takes the command's arguments (name first) and
//! appends its reply, in Redis's shape and wording, to the output. Nothing here knows about
//! shards or sockets: routing is `route`'s, connection state is `conn`'s.

mod hashes;
pub mod keys;
mod lists;
mod strings;

pub use self::strings::{mget, mset};
pub mod table;

use self::table::{Cmd, OOM, Spec};
use crate::{
    resp::{self, parse_int},
    store::Store,
};

/// Runs a keyed command (one key, or several keys that all live on this shard) on `store`.
pub fn run(store: &mut Store, spec: &Spec, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    store.stats.commands += 1;
    if spec.deny_oom() && store.over_limit() {
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
        // Routed elsewhere (connection, fan-out, pub/sub); never sent here.
        _ => resp::error(out, "ERR command not runnable on a shard store"),
    }
}

#[cfg(test)]
mod tests;

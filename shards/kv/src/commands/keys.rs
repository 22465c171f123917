//! Key commands: DEL, EXISTS, EXPIRE/PEXPIRE, TTL/PTTL, PERSIST, TYPE, and the per-shard
//! halves of KEYS, SCAN, DBSIZE and FLUSHALL (the fan-out and merge are `route`'s).

use super::table::NOT_INTEGER;
use crate::{
    glob, params,
    resp::{self, parse_int},
    store::{DATABASES, Databases, Store, Value},
};

/// How many of `keys` existed and were removed.
pub fn del(store: &mut Store, keys: &[Vec<u8>], now_ms: u64) -> i64 {
    keys.iter()
        .filter(|key| store.get(key, now_ms).is_some() && store.remove(key).is_some())
        .count() as i64
}

/// How many of `keys` exist (a key named twice counts twice).
pub fn exists(store: &mut Store, keys: &[Vec<u8>], now_ms: u64) -> i64 {
    keys.iter()
        .filter(|key| store.get(key, now_ms).is_some())
        .count() as i64
}

/// EXPIRE (`unit_ms` 1000) and PEXPIRE (1), with NX/XX/GT/LT.
pub fn expire(store: &mut Store, args: &[Vec<u8>], unit_ms: i64, now_ms: u64, out: &mut Vec<u8>) {
    let name = if unit_ms == 1 { "pexpire" } else { "expire" };
    expire_generic(store, args, unit_ms, now_ms as i64, name, now_ms, out);
}

pub fn expireat(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    expire_generic(store, args, 1000, 0, "expireat", now_ms, out);
}

pub fn pexpireat(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    expire_generic(store, args, 1, 0, "pexpireat", now_ms, out);
}

/// The EXPIRE family: the time is `args[2]` × `unit_ms` + `base_ms`.
fn expire_generic(
    store: &mut Store,
    args: &[Vec<u8>],
    unit_ms: i64,
    base_ms: i64,
    name: &str,
    now_ms: u64,
    out: &mut Vec<u8>,
) {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for option in &args[3..] {
        match option.to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            _ => {
                let other = String::from_utf8_lossy(option);
                return resp::error(out, &format!("ERR Unsupported option {other}"));
            }
        }
    }
    if nx && (xx || gt || lt) {
        return resp::error(
            out,
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        );
    }
    if gt && lt {
        return resp::error(
            out,
            "ERR GT and LT options at the same time are not compatible",
        );
    }
    let Some(ttl) = parse_int(&args[2]) else {
        return resp::error(out, NOT_INTEGER);
    };
    let at = ttl
        .checked_mul(unit_ms)
        .and_then(|ms| ms.checked_add(base_ms));
    let Some(at) = at else {
        return resp::error(out, &format!("ERR invalid expire time in '{name}' command"));
    };
    let Some(entry) = store.get(&args[1], now_ms) else {
        return resp::integer(out, 0);
    };
    // No expiry counts as an infinite time to live for GT and LT.
    let allowed = match entry.expires_at_ms {
        None => !xx && !gt,
        Some(cur) => !nx && (!gt || at > cur as i64) && (!lt || at < cur as i64),
    };
    if !allowed {
        return resp::integer(out, 0);
    }
    if at <= now_ms as i64 {
        store.remove(&args[1]);
    } else {
        store.set_expiry(&args[1], Some(at as u64), now_ms);
    }
    resp::integer(out, 1)
}

/// EXPIRETIME and PEXPIRETIME: the absolute expiry time, -1 none, -2 no key.
fn expire_time(store: &mut Store, args: &[Vec<u8>], unit_ms: u64, now_ms: u64, out: &mut Vec<u8>) {
    let reply = match store.get(&args[1], now_ms) {
        None => -2,
        Some(entry) => entry.expires_at_ms.map_or(-1, |at| (at / unit_ms) as i64),
    };
    resp::integer(out, reply);
}

pub fn expiretime(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    expire_time(store, args, 1000, now_ms, out);
}

pub fn pexpiretime(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    expire_time(store, args, 1, now_ms, out);
}

const SAME_OBJECT: &str = "ERR source and destination objects are the same";
const DB_RANGE: &str = "ERR DB index is out of range";

fn rename_generic(store: &mut Store, args: &[Vec<u8>], nx: bool, now_ms: u64, out: &mut Vec<u8>) {
    if store.get(&args[1], now_ms).is_none() {
        return resp::error(out, "ERR no such key");
    }
    if args[1] == args[2] {
        return if nx {
            resp::integer(out, 0)
        } else {
            resp::ok(out)
        };
    }
    if nx && store.get(&args[2], now_ms).is_some() {
        return resp::integer(out, 0);
    }
    if let Some(entry) = store.remove(&args[1]) {
        store.insert(&args[2], entry);
    }
    if nx {
        resp::integer(out, 1)
    } else {
        resp::ok(out)
    }
}

pub fn rename(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    rename_generic(store, args, false, now_ms, out);
}

pub fn renamenx(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    rename_generic(store, args, true, now_ms, out);
}

fn db_index(arg: &[u8]) -> Result<usize, &'static str> {
    match parse_int(arg) {
        None => Err(NOT_INTEGER),
        Some(n) if (0..DATABASES as i64).contains(&n) => Ok(n as usize),
        Some(_) => Err(DB_RANGE),
    }
}

/// MOVE key db.
pub fn move_key(dbs: &mut Databases, db: usize, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    dbs.db(db).stats.commands += 1;
    let target = match db_index(&args[2]) {
        Ok(t) => t,
        Err(e) => return resp::error(out, e),
    };
    if target == db {
        return resp::error(out, SAME_OBJECT);
    }
    let (src, dst) = dbs.pair(db, target);
    if src.get(&args[1], now_ms).is_none() || dst.get(&args[1], now_ms).is_some() {
        return resp::integer(out, 0);
    }
    if let Some(entry) = src.remove(&args[1]) {
        dst.insert(&args[1], entry);
    }
    resp::integer(out, 1);
}

/// COPY source destination [DB db] [REPLACE].
pub fn copy(dbs: &mut Databases, db: usize, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    dbs.db(db).stats.commands += 1;
    let (mut target, mut replace) = (db, false);
    let mut i = 3;
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"REPLACE" => replace = true,
            b"DB" if i + 1 < args.len() => {
                target = match db_index(&args[i + 1]) {
                    Ok(t) => t,
                    Err(e) => return resp::error(out, e),
                };
                i += 1;
            }
            _ => return resp::error(out, super::table::SYNTAX),
        }
        i += 1;
    }
    if target == db && args[1] == args[2] {
        return resp::error(out, SAME_OBJECT);
    }
    let Some(entry) = dbs.db(db).get(&args[1], now_ms).cloned() else {
        return resp::integer(out, 0);
    };
    let dst = dbs.db(target);
    if dst.get(&args[2], now_ms).is_some() {
        if !replace {
            return resp::integer(out, 0);
        }
        dst.remove(&args[2]);
    }
    dst.insert(&args[2], entry);
    resp::integer(out, 1);
}

/// OBJECT ENCODING | REFCOUNT | IDLETIME | FREQ | HELP.
pub fn object(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let sub = args[1].to_ascii_uppercase();
    if sub == b"HELP" && args.len() == 2 {
        resp::array(out, 1);
        return resp::simple(out, "OBJECT <subcommand> [<arg> [value] [opt] ...]");
    }
    if args.len() != 3
        || !matches!(
            sub.as_slice(),
            b"ENCODING" | b"REFCOUNT" | b"IDLETIME" | b"FREQ"
        )
    {
        return resp::error(
            out,
            &format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try OBJECT HELP.",
                String::from_utf8_lossy(&args[1])
            ),
        );
    }
    let Some(entry) = store.get(&args[2], now_ms) else {
        return resp::null(out);
    };
    match sub.as_slice() {
        b"ENCODING" => resp::bulk(out, encoding(&entry.value).as_bytes()),
        // Redis shares the objects of the integers 0..10000 and reports them so.
        b"REFCOUNT" => match &entry.value {
            Value::Str(s)
                if parse_int(s).is_some_and(|n| (0..10_000).contains(&n))
                    && encoding(&entry.value) == "int" =>
            {
                resp::integer(out, i64::from(i32::MAX))
            }
            _ => resp::integer(out, 1),
        },
        b"IDLETIME" => resp::integer(out, 0),
        _ => resp::error(
            out,
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ),
    }
}

/// MEMORY USAGE key [SAMPLES n]: the bytes the key counts for (see `store::memory`).
pub fn memory(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let usage = args[1].eq_ignore_ascii_case(b"USAGE");
    let samples_ok = match &args[2.min(args.len())..] {
        [_] => true,
        [_, opt, n] => opt.eq_ignore_ascii_case(b"SAMPLES") && parse_int(n).is_some(),
        _ => false,
    };
    if !usage || !samples_ok {
        return resp::error(
            out,
            &format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try MEMORY HELP.",
                String::from_utf8_lossy(&args[1])
            ),
        );
    }
    match store.get(&args[2], now_ms) {
        Some(entry) => resp::integer(out, crate::store::entry_size(&args[2], entry) as i64),
        None => resp::null(out),
    }
}

/// The encoding Redis 7.0 would use for `value` under the current thresholds (percore
/// keeps one representation per type; this is what a Redis client expects to read).
pub fn encoding(value: &Value) -> &'static str {
    let small = |len: usize, longest: usize, entries: &str, bytes: &str| {
        len as i64 <= params::number(entries) && longest as i64 <= params::number(bytes)
    };
    match value {
        Value::Str(s) => {
            if s.len() <= 20 && parse_int(s).is_some_and(|n| resp_int_text(n) == s[..]) {
                "int"
            } else if s.len() <= 44 {
                "embstr"
            } else {
                "raw"
            }
        }
        Value::List(_) => "quicklist",
        Value::Hash(h) => {
            let longest = h
                .iter()
                .map(|(f, v)| f.len().max(v.len()))
                .max()
                .unwrap_or(0);
            if small(
                h.len(),
                longest,
                "hash-max-listpack-entries",
                "hash-max-listpack-value",
            ) {
                "listpack"
            } else {
                "hashtable"
            }
        }
        Value::Set(set) => {
            let ints = set
                .iter()
                .all(|m| parse_int(m).is_some_and(|n| resp_int_text(n) == m[..]));
            if ints && set.len() as i64 <= params::number("set-max-intset-entries") {
                "intset"
            } else {
                "hashtable"
            }
        }
        Value::ZSet(z) => {
            let longest = z.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
            if small(
                z.len(),
                longest,
                "zset-max-listpack-entries",
                "zset-max-listpack-value",
            ) {
                "listpack"
            } else {
                "skiplist"
            }
        }
    }
}

fn resp_int_text(n: i64) -> Vec<u8> {
    let mut digits = Vec::with_capacity(20);
    resp::push_int(&mut digits, n);
    digits
}

/// TTL (`unit_ms` 1000, rounded) and PTTL (1): -2 no key, -1 no expiry.
pub fn ttl(store: &mut Store, args: &[Vec<u8>], unit_ms: u64, now_ms: u64, out: &mut Vec<u8>) {
    let reply = match store.get(&args[1], now_ms) {
        None => -2,
        Some(entry) => match entry.expires_at_ms {
            None => -1,
            Some(at) => {
                let left = at.saturating_sub(now_ms);
                ((left + unit_ms / 2) / unit_ms) as i64
            }
        },
    };
    resp::integer(out, reply);
}

pub fn persist(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let had = store
        .get(&args[1], now_ms)
        .is_some_and(|e| e.expires_at_ms.is_some());
    if had {
        store.set_expiry(&args[1], None, now_ms);
    }
    resp::integer(out, i64::from(had));
}

pub fn type_of(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let name = store
        .get(&args[1], now_ms)
        .map_or("none", |e| e.value.type_name());
    resp::simple(out, name);
}

/// The live keys of this shard matching `pattern`.
pub fn keys(store: &Store, pattern: &[u8], now_ms: u64) -> Vec<Vec<u8>> {
    let all = pattern == b"*";
    store
        .scan(0, usize::MAX, now_ms, |key, _| {
            all || glob::matches(pattern, key)
        })
        .0
}

/// SCAN's options.
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    pub pattern: Option<Vec<u8>>,
    pub count: usize,
    pub type_name: Option<String>,
}

/// Parses `SCAN cursor [MATCH p] [COUNT n] [TYPE t]` (the cursor is `args[1]`).
pub fn scan_options(args: &[Vec<u8>]) -> Result<(u64, ScanOptions), String> {
    let cursor = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or("ERR invalid cursor")?;
    let mut opts = ScanOptions {
        count: 10,
        ..ScanOptions::default()
    };
    let mut i = 2;
    while i < args.len() {
        let value = args.get(i + 1).ok_or(super::table::SYNTAX)?;
        match args[i].to_ascii_uppercase().as_slice() {
            b"MATCH" => opts.pattern = Some(value.clone()),
            b"COUNT" => match parse_int(value) {
                Some(n) if n >= 1 => opts.count = n as usize,
                Some(_) => return Err(super::table::SYNTAX.to_string()),
                None => return Err(NOT_INTEGER.to_string()),
            },
            b"TYPE" => opts.type_name = Some(String::from_utf8_lossy(value).to_lowercase()),
            _ => return Err(super::table::SYNTAX.to_string()),
        }
        i += 2;
    }
    Ok((cursor, opts))
}

/// One step of SCAN on this shard from `cursor`: the matching keys and the next cursor
/// within this shard (0: this shard is done).
pub fn scan(
    store: &Store,
    cursor: usize,
    opts: &ScanOptions,
    now_ms: u64,
) -> (Vec<Vec<u8>>, usize) {
    store.scan(cursor, opts.count, now_ms, |key, entry| {
        opts.pattern.as_ref().is_none_or(|p| glob::matches(p, key))
            && opts
                .type_name
                .as_ref()
                .is_none_or(|t| t == entry.value.type_name())
    })
}

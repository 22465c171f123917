//! Key commands: DEL, EXISTS, EXPIRE/PEXPIRE, TTL/PTTL, PERSIST, TYPE, and the per-shard
//! halves of KEYS, SCAN, DBSIZE and FLUSHALL (the fan-out and merge are `route`'s).

use super::table::NOT_INTEGER;
use crate::{
    glob,
    resp::{self, parse_int},
    store::Store,
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
    let Some(ttl) = parse_int(&args[2]) else {
        return resp::error(out, NOT_INTEGER);
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for option in &args[3..] {
        match option.to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            other => {
                let other = String::from_utf8_lossy(other);
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
    let at = ttl
        .checked_mul(unit_ms)
        .and_then(|ms| ms.checked_add(now_ms as i64));
    let Some(at) = at else {
        return resp::error(out, &format!("ERR invalid expire time in '{name}' command"));
    };
    let Some(entry) = store.get(&args[1], now_ms) else {
        return resp::integer(out, 0);
    };
    let current = entry.expires_at_ms;
    let allowed = match current {
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

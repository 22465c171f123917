//! String commands: GET, SET (EX/PX/EXAT/PXAT/NX/XX/KEEPTTL/GET), GETDEL, INCR family,
//! APPEND, STRLEN, and the per-shard halves of MGET and MSET.

use super::table::{NOT_INTEGER, OVERFLOW, SYNTAX, WRONGTYPE};
use crate::{
    resp::{self, parse_int},
    store::{Entry, Store, Value},
};

pub fn get(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let found = store.get(&args[1], now_ms);
    let hit = found.is_some();
    match found.map(|e| &e.value) {
        None => resp::null(out),
        Some(Value::Str(s)) => resp::bulk(out, s),
        Some(_) => resp::error(out, WRONGTYPE),
    }
    store.count_lookup(hit);
}

pub fn getdel(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match store.get(&args[1], now_ms).map(|e| &e.value) {
        None => resp::null(out),
        Some(Value::Str(_)) => {
            if let Some(Entry {
                value: Value::Str(s),
                ..
            }) = store.remove(&args[1])
            {
                resp::bulk(out, &s);
            }
        }
        Some(_) => resp::error(out, WRONGTYPE),
    }
}

/// SET's options, parsed.
#[derive(Default)]
struct SetOptions {
    nx: bool,
    xx: bool,
    get: bool,
    keep_ttl: bool,
    expires_at_ms: Option<u64>,
}

fn set_options(args: &[Vec<u8>], now_ms: u64) -> Result<SetOptions, &'static str> {
    let mut opts = SetOptions::default();
    let mut expiry_given = false;
    let mut i = 3;
    while i < args.len() {
        let arg = args[i].to_ascii_uppercase();
        match arg.as_slice() {
            b"NX" if !opts.xx => opts.nx = true,
            b"XX" if !opts.nx => opts.xx = true,
            b"GET" => opts.get = true,
            b"KEEPTTL" if !expiry_given => opts.keep_ttl = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if !expiry_given && !opts.keep_ttl => {
                let Some(value) = args.get(i + 1) else {
                    return Err(SYNTAX);
                };
                let n = parse_int(value).ok_or(NOT_INTEGER)?;
                if n <= 0 {
                    return Err("ERR invalid expire time in 'set' command");
                }
                let n = n as u64;
                let at = match arg.as_slice() {
                    b"EX" => n.checked_mul(1000).and_then(|ms| ms.checked_add(now_ms)),
                    b"PX" => n.checked_add(now_ms),
                    b"EXAT" => n.checked_mul(1000),
                    _ => Some(n),
                };
                opts.expires_at_ms = Some(at.ok_or("ERR invalid expire time in 'set' command")?);
                expiry_given = true;
                i += 1;
            }
            _ => return Err(SYNTAX),
        }
        i += 1;
    }
    Ok(opts)
}

pub fn set(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let opts = match set_options(args, now_ms) {
        Ok(opts) => opts,
        Err(e) => return resp::error(out, e),
    };
    let key = &args[1];
    let old = store.get(key, now_ms);
    let exists = old.is_some();
    let old_ttl = old.and_then(|e| e.expires_at_ms);
    let old_value = match old.map(|e| &e.value) {
        Some(Value::Str(s)) if opts.get => Some(s.to_vec()),
        Some(_) if opts.get => return resp::error(out, WRONGTYPE),
        _ => None,
    };
    let write = !(opts.nx && exists || opts.xx && !exists);
    if write {
        let expires_at_ms = if opts.keep_ttl {
            old_ttl
        } else {
            opts.expires_at_ms
        };
        store.insert(
            key,
            Entry {
                value: Value::Str(args[2].as_slice().into()),
                expires_at_ms,
            },
        );
    }
    match (opts.get, write) {
        (true, _) => match old_value {
            Some(v) => resp::bulk(out, &v),
            None => resp::null(out),
        },
        (false, true) => resp::ok(out),
        (false, false) => resp::null(out),
    }
}

pub fn incr_by(store: &mut Store, key: &[u8], by: i64, now_ms: u64, out: &mut Vec<u8>) {
    let (current, ttl) = match store.get(key, now_ms) {
        None => (0, None),
        Some(Entry {
            value: Value::Str(s),
            expires_at_ms,
        }) => match parse_int(s) {
            Some(n) => (n, *expires_at_ms),
            None => return resp::error(out, NOT_INTEGER),
        },
        Some(_) => return resp::error(out, WRONGTYPE),
    };
    let Some(next) = current.checked_add(by) else {
        return resp::error(out, OVERFLOW);
    };
    let mut digits = Vec::with_capacity(20);
    resp::push_int(&mut digits, next);
    // A counter keeps its time to live, as in Redis.
    store.insert(
        key,
        Entry {
            value: Value::Str(digits.into()),
            expires_at_ms: ttl,
        },
    );
    resp::integer(out, next);
}

pub fn append(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let len = match store.get_mut(&args[1], now_ms).map(|e| &mut e.value) {
        Some(Value::Str(s)) => {
            s.extend_from_slice(&args[2]);
            s.len()
        }
        Some(_) => return resp::error(out, WRONGTYPE),
        None => {
            store.insert(
                &args[1],
                Entry {
                    value: Value::Str(args[2].as_slice().into()),
                    expires_at_ms: None,
                },
            );
            return resp::integer(out, args[2].len() as i64);
        }
    };
    store.charge(args[2].len());
    resp::integer(out, len as i64);
}

pub fn strlen(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match store.get(&args[1], now_ms).map(|e| &e.value) {
        None => resp::integer(out, 0),
        Some(Value::Str(s)) => resp::integer(out, s.len() as i64),
        Some(_) => resp::error(out, WRONGTYPE),
    }
}

/// The string values of `keys` (`None` for a missing key or one of another type).
pub fn mget(store: &mut Store, keys: &[Vec<u8>], now_ms: u64) -> Vec<Option<Vec<u8>>> {
    keys.iter()
        .map(|key| {
            let value = match store.get(key, now_ms).map(|e| &e.value) {
                Some(Value::Str(s)) => Some(s.to_vec()),
                _ => None,
            };
            store.count_lookup(value.is_some());
            value
        })
        .collect()
}

/// Sets each key of `pairs` (key, value, key, value, ...), clearing any time to live.
pub fn mset(store: &mut Store, pairs: &[Vec<u8>]) {
    for pair in pairs.chunks_exact(2) {
        store.insert(
            &pair[0],
            Entry {
                value: Value::Str(pair[1].as_slice().into()),
                expires_at_ms: None,
            },
        );
    }
}

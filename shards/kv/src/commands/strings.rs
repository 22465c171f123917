//! String commands: GET, SET (EX/PX/EXAT/PXAT/NX/XX/KEEPTTL/GET), SETNX, SETEX, PSETEX,
//! GETSET, GETEX, GETDEL, GETRANGE, SETRANGE, the INCR family and INCRBYFLOAT, APPEND,
//! STRLEN, MSETNX, and the per-shard halves of MGET and MSET. Bits are in `bits`, LCS in
//! `lcs`.

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

fn set_options(args: &[Vec<u8>], now_ms: u64) -> Result<SetOptions, String> {
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
                    return Err(SYNTAX.into());
                };
                opts.expires_at_ms = Some(expiry_at(&arg, value, now_ms, "set")?);
                expiry_given = true;
                i += 1;
            }
            _ => return Err(SYNTAX.into()),
        }
        i += 1;
    }
    Ok(opts)
}

/// The expiry time (Unix ms) an `EX`/`PX`/`EXAT`/`PXAT` option sets, with Redis's checks:
/// a positive integer whose time in ms, absolute, fits an i64.
pub fn expiry_at(unit: &[u8], value: &[u8], now_ms: u64, command: &str) -> Result<u64, String> {
    let n = parse_int(value).ok_or(NOT_INTEGER)?;
    let invalid = || format!("ERR invalid expire time in '{command}' command");
    if n <= 0 {
        return Err(invalid());
    }
    let at = match unit {
        b"EX" => n
            .checked_mul(1000)
            .and_then(|ms| ms.checked_add(now_ms as i64)),
        b"PX" => n.checked_add(now_ms as i64),
        b"EXAT" => n.checked_mul(1000),
        _ => Some(n),
    };
    at.map(|at| at as u64).ok_or_else(invalid)
}

pub fn set(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let opts = match set_options(args, now_ms) {
        Ok(opts) => opts,
        Err(e) => return resp::error(out, &e),
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

/// The string at `key`: `Ok(None)` when missing, `Err` when another type.
pub(super) fn string_of<'a>(
    store: &'a mut Store,
    key: &[u8],
    now_ms: u64,
) -> Result<Option<&'a [u8]>, ()> {
    match store.get(key, now_ms).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(_) => Err(()),
    }
}

/// Stores `value` at `key` as a string with expiry `expires_at_ms`.
pub(super) fn put(store: &mut Store, key: &[u8], value: &[u8], expires_at_ms: Option<u64>) {
    store.insert(
        key,
        Entry {
            value: Value::Str(value.into()),
            expires_at_ms,
        },
    );
}

pub fn setnx(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    if store.get(&args[1], now_ms).is_some() {
        return resp::integer(out, 0);
    }
    put(store, &args[1], &args[2], None);
    resp::integer(out, 1);
}

fn set_with_expiry(
    store: &mut Store,
    args: &[Vec<u8>],
    unit: &[u8],
    name: &str,
    now_ms: u64,
    out: &mut Vec<u8>,
) {
    match expiry_at(unit, &args[2], now_ms, name) {
        Ok(at) => {
            put(store, &args[1], &args[3], Some(at));
            resp::ok(out);
        }
        Err(e) => resp::error(out, &e),
    }
}

pub fn setex(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    set_with_expiry(store, args, b"EX", "setex", now_ms, out);
}

pub fn psetex(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    set_with_expiry(store, args, b"PX", "psetex", now_ms, out);
}

pub fn getset(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match string_of(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) => resp::null(out),
        Ok(Some(old)) => resp::bulk(out, old),
    }
    put(store, &args[1], &args[2], None);
}

pub fn getex(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    // None: leave the expiry; Some(None): PERSIST; Some(Some(at)): a new time.
    let mut change: Option<Option<u64>> = None;
    let mut i = 2;
    while i < args.len() {
        let arg = args[i].to_ascii_uppercase();
        match arg.as_slice() {
            b"PERSIST" if change.is_none() => change = Some(None),
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if change.is_none() && i + 1 < args.len() => {
                match expiry_at(&arg, &args[i + 1], now_ms, "getex") {
                    Ok(at) => change = Some(Some(at)),
                    Err(e) => return resp::error(out, &e),
                }
                i += 1;
            }
            _ => return resp::error(out, SYNTAX),
        }
        i += 1;
    }
    match string_of(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) => return resp::null(out),
        Ok(Some(value)) => resp::bulk(out, value),
    }
    match change {
        Some(Some(at)) if at <= now_ms => {
            store.remove(&args[1]);
        }
        Some(at) => {
            store.set_expiry(&args[1], at, now_ms);
        }
        None => {}
    }
}

/// Redis's range arithmetic for GETRANGE/LRANGE-like commands: negative indices count from
/// the end; `None` when the range is empty.
pub fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    if len == 0 {
        return None;
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 {
        (len + end).max(0)
    } else {
        end.min(len - 1)
    };
    (start <= end && start < len).then_some((start as usize, end as usize))
}

/// Redis's range arithmetic for lists and sorted sets (LRANGE, LTRIM, ZRANGE): negative
/// indices count from the end, a start before the first element is the first, and an end
/// still negative after that makes the range empty.
pub fn list_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 { len + end } else { end.min(len - 1) };
    (start <= end && start < len && end >= 0).then_some((start as usize, end as usize))
}

pub fn getrange(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let (Some(start), Some(end)) = (parse_int(&args[2]), parse_int(&args[3])) else {
        return resp::error(out, NOT_INTEGER);
    };
    match string_of(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(None) => resp::bulk(out, b""),
        Ok(Some(s)) => {
            if start < 0 && end < 0 && start > end {
                return resp::bulk(out, b"");
            }
            match clamp_range(start, end, s.len()) {
                Some((a, b)) => resp::bulk(out, &s[a..=b]),
                None => resp::bulk(out, b""),
            }
        }
    }
}

/// The largest string SETRANGE, SETBIT and APPEND may make (Redis's proto-max-bulk-len).
pub(super) const MAX_STRING: usize = 512 * 1024 * 1024;

pub fn setrange(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let Some(offset) = parse_int(&args[2]) else {
        return resp::error(out, NOT_INTEGER);
    };
    if offset < 0 {
        return resp::error(out, "ERR offset is out of range");
    }
    let offset = offset as usize;
    let value = &args[3];
    let (mut current, ttl) = match store.get(&args[1], now_ms) {
        None => (Vec::new(), None),
        Some(Entry {
            value: Value::Str(s),
            expires_at_ms,
        }) => (s.to_vec(), *expires_at_ms),
        Some(_) => return resp::error(out, WRONGTYPE),
    };
    if value.is_empty() {
        return resp::integer(out, current.len() as i64);
    }
    if offset + value.len() > MAX_STRING {
        return resp::error(
            out,
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        );
    }
    if current.len() < offset + value.len() {
        current.resize(offset + value.len(), 0);
    }
    current[offset..offset + value.len()].copy_from_slice(value);
    put(store, &args[1], &current, ttl);
    resp::integer(out, current.len() as i64);
}

/// Parses a Redis float argument: decimal or exponent notation, `inf`; never NaN.
pub fn parse_float(arg: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty()
        || text.len() > 5000
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
    {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let value = match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ if lower.contains("inf") || lower.contains("nan") => return None,
        _ => lower.parse::<f64>().ok()?,
    };
    (!value.is_nan()).then_some(value)
}

pub fn incrbyfloat(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let (current, ttl) = match store.get(&args[1], now_ms) {
        None => (0.0, None),
        Some(Entry {
            value: Value::Str(s),
            expires_at_ms,
        }) => match parse_float(s) {
            Some(n) => (n, *expires_at_ms),
            None => return resp::error(out, super::table::NOT_FLOAT),
        },
        Some(_) => return resp::error(out, WRONGTYPE),
    };
    let Some(by) = parse_float(&args[2]) else {
        return resp::error(out, super::table::NOT_FLOAT);
    };
    let next = current + by;
    if !next.is_finite() {
        return resp::error(out, "ERR increment would produce NaN or Infinity");
    }
    let text = format!("{next}");
    put(store, &args[1], text.as_bytes(), ttl);
    resp::bulk(out, text.as_bytes());
}

/// MSETNX: sets every pair only when none of the keys exists.
pub fn msetnx(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    if args.len().is_multiple_of(2) {
        return resp::error(out, &super::table::wrong_arity("msetnx"));
    }
    if args[1..]
        .iter()
        .step_by(2)
        .any(|key| store.get(key, now_ms).is_some())
    {
        return resp::integer(out, 0);
    }
    mset(store, &args[1..]);
    resp::integer(out, 1);
}

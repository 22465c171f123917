//! Hash commands: HSET, HMSET, HSETNX, HGET, HMGET, HDEL, HLEN, HEXISTS, HSTRLEN, HKEYS,
//! HVALS, HGETALL, HINCRBY, HINCRBYFLOAT, HRANDFIELD, HSCAN.

use super::{
    random_picks,
    strings::parse_float,
    table::{NOT_FLOAT, NOT_INTEGER, OVERFLOW, SYNTAX, WRONGTYPE, wrong_arity},
};
use crate::{
    glob,
    hash::FxHashMap,
    resp::{self, parse_int},
    store::{Entry, Store, Value, memory::ELEMENT_OVERHEAD},
};

/// The hash at `key`, created empty when missing; `Err` when the key holds another type.
fn hash_mut<'a>(
    store: &'a mut Store,
    key: &[u8],
    now_ms: u64,
) -> Result<&'a mut FxHashMap<Vec<u8>, Vec<u8>>, ()> {
    if store.get(key, now_ms).is_none() {
        store.insert(
            key,
            Entry {
                value: Value::Hash(FxHashMap::default()),
                expires_at_ms: None,
            },
        );
    }
    match store.get_mut(key, now_ms).map(|e| &mut e.value) {
        Some(Value::Hash(h)) => Ok(h),
        _ => Err(()),
    }
}

pub fn hset(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    if !args.len().is_multiple_of(2) {
        return resp::error(out, &wrong_arity("hset"));
    }
    if matches!(store.get(&args[1], now_ms).map(|e| &e.value), Some(v) if !matches!(v, Value::Hash(_)))
    {
        return resp::error(out, WRONGTYPE);
    }
    let Ok(hash) = hash_mut(store, &args[1], now_ms) else {
        return resp::error(out, WRONGTYPE);
    };
    let (mut added, mut grown, mut shrunk) = (0, 0, 0);
    for pair in args[2..].chunks_exact(2) {
        grown += pair[1].len();
        match hash.insert(pair[0].clone(), pair[1].clone()) {
            Some(old) => shrunk += old.len(),
            None => {
                added += 1;
                grown += pair[0].len() + ELEMENT_OVERHEAD;
            }
        }
    }
    store.charge(grown);
    store.refund(shrunk);
    resp::integer(out, added);
}

pub fn hget(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match store.get(&args[1], now_ms).map(|e| &e.value) {
        None => resp::null(out),
        Some(Value::Hash(h)) => match h.get(&args[2]) {
            Some(v) => resp::bulk(out, v),
            None => resp::null(out),
        },
        Some(_) => resp::error(out, WRONGTYPE),
    }
}

pub fn hdel(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let (removed, freed, empty) = match store.get_mut(&args[1], now_ms).map(|e| &mut e.value) {
        None => return resp::integer(out, 0),
        Some(Value::Hash(h)) => {
            let (mut removed, mut freed) = (0, 0);
            for field in &args[2..] {
                if let Some(v) = h.remove(field) {
                    removed += 1;
                    freed += field.len() + v.len() + ELEMENT_OVERHEAD;
                }
            }
            (removed, freed, h.is_empty())
        }
        Some(_) => return resp::error(out, WRONGTYPE),
    };
    store.refund(freed);
    if empty {
        store.remove(&args[1]);
    }
    resp::integer(out, removed);
}

pub fn hgetall(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match store.get(&args[1], now_ms).map(|e| &e.value) {
        None => resp::array(out, 0),
        Some(Value::Hash(h)) => {
            resp::map(out, h.len());
            for (field, value) in h {
                resp::bulk(out, field);
                resp::bulk(out, value);
            }
        }
        Some(_) => resp::error(out, WRONGTYPE),
    }
}

pub fn hincrby(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let Some(by) = parse_int(&args[3]) else {
        return resp::error(out, NOT_INTEGER);
    };
    if matches!(store.get(&args[1], now_ms).map(|e| &e.value), Some(v) if !matches!(v, Value::Hash(_)))
    {
        return resp::error(out, WRONGTYPE);
    }
    let Ok(hash) = hash_mut(store, &args[1], now_ms) else {
        return resp::error(out, WRONGTYPE);
    };
    let current = match hash.get(&args[2]) {
        None => 0,
        Some(v) => match parse_int(v) {
            Some(n) => n,
            None => return resp::error(out, "ERR hash value is not an integer"),
        },
    };
    let Some(next) = current.checked_add(by) else {
        return resp::error(out, OVERFLOW);
    };
    let mut digits = Vec::with_capacity(20);
    resp::push_int(&mut digits, next);
    let grown = digits.len() + args[2].len() + ELEMENT_OVERHEAD;
    let old = hash.insert(args[2].clone(), digits);
    store.charge(grown);
    if let Some(old) = old {
        store.refund(old.len() + args[2].len() + ELEMENT_OVERHEAD);
    }
    resp::integer(out, next);
}

type Fields = FxHashMap<Vec<u8>, Vec<u8>>;

/// The hash at `key` for reading: `Ok(None)` when missing, `Err` when another type.
fn hash_ref<'a>(store: &'a mut Store, key: &[u8], now_ms: u64) -> Result<Option<&'a Fields>, ()> {
    match store.get(key, now_ms).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(()),
    }
}

pub fn hmset(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    if !args.len().is_multiple_of(2) {
        return resp::error(out, &wrong_arity("hmset"));
    }
    let mut reply = Vec::new();
    hset(store, args, now_ms, &mut reply);
    if reply.starts_with(b"-") {
        out.extend_from_slice(&reply);
    } else {
        resp::ok(out);
    }
}

pub fn hsetnx(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match hash_ref(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(Some(h)) if h.contains_key(&args[2]) => return resp::integer(out, 0),
        Ok(_) => {}
    }
    let mut ignored = Vec::new();
    hset(store, &args[..4], now_ms, &mut ignored);
    resp::integer(out, 1);
}

pub fn hmget(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match hash_ref(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(h) => {
            resp::array(out, args.len() - 2);
            for field in &args[2..] {
                match h.and_then(|h| h.get(field)) {
                    Some(v) => resp::bulk(out, v),
                    None => resp::null(out),
                }
            }
        }
    }
}

pub fn hlen(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match hash_ref(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(h) => resp::integer(out, h.map_or(0, |h| h.len() as i64)),
    }
}

pub fn hexists(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match hash_ref(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(h) => resp::integer(out, i64::from(h.is_some_and(|h| h.contains_key(&args[2])))),
    }
}

pub fn hstrlen(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match hash_ref(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(h) => resp::integer(
            out,
            h.and_then(|h| h.get(&args[2]))
                .map_or(0, |v| v.len() as i64),
        ),
    }
}

fn keys_or_values(store: &mut Store, args: &[Vec<u8>], keys: bool, now_ms: u64, out: &mut Vec<u8>) {
    match hash_ref(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(None) => resp::array(out, 0),
        Ok(Some(h)) => {
            resp::array(out, h.len());
            for (field, value) in h {
                resp::bulk(out, if keys { field } else { value });
            }
        }
    }
}

pub fn hkeys(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    keys_or_values(store, args, true, now_ms, out);
}

pub fn hvals(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    keys_or_values(store, args, false, now_ms, out);
}

pub fn hincrbyfloat(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let Some(by) = parse_float(&args[3]) else {
        return resp::error(out, NOT_FLOAT);
    };
    if by.is_infinite() {
        return resp::error(out, "ERR value is NaN or Infinity");
    }
    let current = match hash_ref(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(h) => match h.and_then(|h| h.get(&args[2])) {
            None => 0.0,
            Some(v) => match parse_float(v) {
                Some(n) => n,
                None => return resp::error(out, "ERR hash value is not a float"),
            },
        },
    };
    let next = current + by;
    if !next.is_finite() {
        return resp::error(out, "ERR increment would produce NaN or Infinity");
    }
    let text = format!("{next}");
    let mut ignored = Vec::new();
    hset(
        store,
        &[
            args[0].clone(),
            args[1].clone(),
            args[2].clone(),
            text.clone().into_bytes(),
        ],
        now_ms,
        &mut ignored,
    );
    resp::bulk(out, text.as_bytes());
}

pub fn hrandfield(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let with_values = match args.len() {
        2 | 3 => false,
        4 if args[3].eq_ignore_ascii_case(b"WITHVALUES") => true,
        _ => return resp::error(out, SYNTAX),
    };
    let count = match args.get(2).map(|c| parse_int(c)) {
        None => None,
        Some(None) => return resp::error(out, NOT_INTEGER),
        Some(Some(n)) if n < 0 && n.unsigned_abs() > super::MAX_RANDOM_PICKS => {
            return resp::error(out, "ERR value is out of range");
        }
        Some(Some(n)) => Some(n),
    };
    let hash = match hash_ref(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) if count.is_some() => return resp::array(out, 0),
        Ok(None) => return resp::null(out),
        Ok(Some(h)) => h,
    };
    let pairs: Vec<(&Vec<u8>, &Vec<u8>)> = hash.iter().collect();
    let picks = random_picks(pairs.len(), count);
    if count.is_none() {
        return resp::bulk(out, pairs[picks[0]].0);
    }
    let nested = with_values && resp::resp3();
    resp::array(
        out,
        picks.len() * if with_values && !nested { 2 } else { 1 },
    );
    for i in picks {
        if nested {
            resp::array(out, 2);
        }
        resp::bulk(out, pairs[i].0);
        if with_values {
            resp::bulk(out, pairs[i].1);
        }
    }
}

pub fn hscan(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let pattern = match super::collection_scan_options(args) {
        Ok(p) => p,
        Err(e) => return resp::error(out, &e),
    };
    let hash = match hash_ref(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(h) => h,
    };
    let found: Vec<(&Vec<u8>, &Vec<u8>)> = hash
        .into_iter()
        .flatten()
        .filter(|(f, _)| pattern.as_ref().is_none_or(|p| glob::matches(p, f)))
        .collect();
    resp::array(out, 2);
    resp::bulk(out, b"0");
    resp::array(out, found.len() * 2);
    for (field, value) in found {
        resp::bulk(out, field);
        resp::bulk(out, value);
    }
}

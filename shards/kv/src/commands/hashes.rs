//! Hash commands: HSET, HGET, HDEL, HGETALL, HINCRBY.

use super::table::{NOT_INTEGER, OVERFLOW, WRONGTYPE, wrong_arity};
use crate::{
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
            resp::array(out, h.len() * 2);
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

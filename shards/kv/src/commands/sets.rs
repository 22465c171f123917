//! Set commands: SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER, SCARD, SPOP, SRANDMEMBER,
//! SSCAN, SMOVE, SINTER/SUNION/SDIFF and their STORE forms, SINTERCARD. The commands over
//! several keys run on one store: the keys' owner, or a store the keys were gathered into
//! (see `fanout::gathered`).

use super::{
    random_picks,
    table::{NOT_INTEGER, SYNTAX, WRONGTYPE},
};
use crate::{
    glob,
    hash::FxHashSet,
    resp::{self, parse_int},
    store::{Entry, Store, Value, memory::ELEMENT_OVERHEAD},
};

type Set = FxHashSet<Vec<u8>>;

/// The set at `key`: `Ok(None)` when missing, `Err` when another type.
fn set_mut<'a>(store: &'a mut Store, key: &[u8], now_ms: u64) -> Result<Option<&'a mut Set>, ()> {
    match store.get_mut(key, now_ms).map(|e| &mut e.value) {
        None => Ok(None),
        Some(Value::Set(s)) => Ok(Some(s)),
        Some(_) => Err(()),
    }
}

fn drop_if_empty(store: &mut Store, key: &[u8], now_ms: u64) {
    if matches!(set_mut(store, key, now_ms), Ok(Some(s)) if s.is_empty()) {
        store.remove(key);
    }
}

/// Adds `members` to the set at `key` (made when missing); how many were new.
fn add(store: &mut Store, key: &[u8], members: &[Vec<u8>], now_ms: u64) -> Result<i64, ()> {
    if set_mut(store, key, now_ms)?.is_none() {
        store.insert(
            key,
            Entry {
                value: Value::Set(Set::default()),
                expires_at_ms: None,
            },
        );
    }
    let set = set_mut(store, key, now_ms)?.ok_or(())?;
    let (mut added, mut grown) = (0, 0);
    for member in members {
        if set.insert(member.clone()) {
            added += 1;
            grown += member.len() + ELEMENT_OVERHEAD;
        }
    }
    store.charge(grown);
    drop_if_empty(store, key, now_ms);
    Ok(added)
}

pub fn sadd(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match add(store, &args[1], &args[2..], now_ms) {
        Ok(n) => resp::integer(out, n),
        Err(()) => resp::error(out, WRONGTYPE),
    }
}

pub fn srem(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let (removed, freed) = match set_mut(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) => return resp::integer(out, 0),
        Ok(Some(set)) => {
            let (mut removed, mut freed) = (0, 0);
            for member in &args[2..] {
                if set.remove(member) {
                    removed += 1;
                    freed += member.len() + ELEMENT_OVERHEAD;
                }
            }
            (removed, freed)
        }
    };
    store.refund(freed);
    drop_if_empty(store, &args[1], now_ms);
    resp::integer(out, removed);
}

fn write_members<'a>(out: &mut Vec<u8>, members: impl ExactSizeIterator<Item = &'a Vec<u8>>) {
    resp::array(out, members.len());
    for m in members {
        resp::bulk(out, m);
    }
}

/// A whole set's members: a RESP3 set (SMEMBERS, SINTER, SUNION, SDIFF).
fn write_set<'a>(out: &mut Vec<u8>, members: impl ExactSizeIterator<Item = &'a Vec<u8>>) {
    resp::set(out, members.len());
    for m in members {
        resp::bulk(out, m);
    }
}

pub fn smembers(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match set_mut(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(None) => resp::set(out, 0),
        Ok(Some(set)) => write_set(out, set.iter()),
    }
}

pub fn sismember(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match set_mut(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(set) => resp::integer(out, i64::from(set.is_some_and(|s| s.contains(&args[2])))),
    }
}

pub fn smismember(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match set_mut(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(set) => {
            resp::array(out, args.len() - 2);
            for member in &args[2..] {
                let here = set.as_ref().is_some_and(|s| s.contains(member));
                resp::integer(out, i64::from(here));
            }
        }
    }
}

pub fn scard(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match set_mut(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(set) => resp::integer(out, set.map_or(0, |s| s.len() as i64)),
    }
}

pub fn spop(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let count = match args.len() {
        2 => None,
        3 => match parse_int(&args[2]) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return resp::error(out, "ERR value is out of range, must be positive"),
        },
        _ => return resp::error(out, SYNTAX),
    };
    let popped: Vec<Vec<u8>> = match set_mut(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) if count.is_some() => return resp::array(out, 0),
        Ok(None) => return resp::null(out),
        Ok(Some(set)) => {
            let members: Vec<&Vec<u8>> = set.iter().collect();
            let picks = random_picks(members.len(), Some(count.unwrap_or(1) as i64));
            let chosen: Vec<Vec<u8>> = picks.into_iter().map(|i| members[i].clone()).collect();
            for m in &chosen {
                set.remove(m);
            }
            chosen
        }
    };
    store.refund(popped.iter().map(|m| m.len() + ELEMENT_OVERHEAD).sum());
    drop_if_empty(store, &args[1], now_ms);
    match count {
        None => resp::bulk(out, &popped[0]),
        Some(_) => write_members(out, popped.iter()),
    }
}

pub fn srandmember(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let count = match args.len() {
        2 => None,
        3 => match parse_int(&args[2]) {
            Some(n) if n >= 0 || n.unsigned_abs() <= super::MAX_RANDOM_PICKS => Some(n),
            Some(_) => return resp::error(out, "ERR value is out of range"),
            None => return resp::error(out, NOT_INTEGER),
        },
        _ => return resp::error(out, SYNTAX),
    };
    match set_mut(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(None) if count.is_some() => resp::array(out, 0),
        Ok(None) => resp::null(out),
        Ok(Some(set)) => {
            let members: Vec<&Vec<u8>> = set.iter().collect();
            let picks = random_picks(members.len(), count);
            match count {
                None => resp::bulk(out, members[picks[0]]),
                Some(_) => write_members(out, picks.iter().map(|&i| members[i])),
            }
        }
    }
}

pub fn sscan(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let pattern = match super::collection_scan_options(args) {
        Ok(p) => p,
        Err(e) => return resp::error(out, &e),
    };
    match set_mut(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(set) => {
            let found: Vec<&Vec<u8>> = set
                .into_iter()
                .flat_map(|s| s.iter())
                .filter(|m| pattern.as_ref().is_none_or(|p| glob::matches(p, m)))
                .collect();
            resp::array(out, 2);
            resp::bulk(out, b"0");
            write_members(out, found.into_iter());
        }
    }
}

pub fn smove(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    if set_mut(store, &args[2], now_ms).is_err() {
        return resp::error(out, WRONGTYPE);
    }
    let moved = match set_mut(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) => false,
        Ok(Some(set)) => set.remove(&args[3]),
    };
    if !moved {
        return resp::integer(out, 0);
    }
    store.refund(args[3].len() + ELEMENT_OVERHEAD);
    drop_if_empty(store, &args[1], now_ms);
    // The destination was checked above: `add` cannot meet another type.
    let _ = add(store, &args[2], std::slice::from_ref(&args[3]), now_ms);
    resp::integer(out, 1);
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// The result of `op` over the sets at `keys` (a missing key is an empty set).
fn combine(store: &mut Store, keys: &[Vec<u8>], op: Op, now_ms: u64) -> Result<Set, ()> {
    let mut sets: Vec<Option<Set>> = Vec::with_capacity(keys.len());
    for key in keys {
        sets.push(set_mut(store, key, now_ms)?.map(|s| s.clone()));
    }
    let empty = Set::default();
    let mut result = sets[0].clone().unwrap_or_default();
    for set in &sets[1..] {
        let set = set.as_ref().unwrap_or(&empty);
        match op {
            Op::Inter => result.retain(|m| set.contains(m)),
            Op::Union => result.extend(set.iter().cloned()),
            Op::Diff => result.retain(|m| !set.contains(m)),
        }
    }
    Ok(result)
}

fn reply_combined(store: &mut Store, args: &[Vec<u8>], op: Op, now_ms: u64, out: &mut Vec<u8>) {
    match combine(store, &args[1..], op, now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(set) => write_set(out, set.iter()),
    }
}

fn store_combined(store: &mut Store, args: &[Vec<u8>], op: Op, now_ms: u64, out: &mut Vec<u8>) {
    let set = match combine(store, &args[2..], op, now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(set) => set,
    };
    let len = set.len();
    store.remove(&args[1]);
    if len > 0 {
        store.insert(
            &args[1],
            Entry {
                value: Value::Set(set),
                expires_at_ms: None,
            },
        );
    }
    resp::integer(out, len as i64);
}

pub fn sinter(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    reply_combined(store, args, Op::Inter, now_ms, out);
}

pub fn sunion(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    reply_combined(store, args, Op::Union, now_ms, out);
}

pub fn sdiff(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    reply_combined(store, args, Op::Diff, now_ms, out);
}

pub fn sinterstore(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    store_combined(store, args, Op::Inter, now_ms, out);
}

pub fn sunionstore(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    store_combined(store, args, Op::Union, now_ms, out);
}

pub fn sdiffstore(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    store_combined(store, args, Op::Diff, now_ms, out);
}

pub fn sintercard(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let numkeys = match parse_int(&args[1]) {
        Some(n) if n > 0 => n as usize,
        _ => return resp::error(out, "ERR numkeys should be greater than 0"),
    };
    if numkeys > args.len() - 2 {
        return resp::error(
            out,
            "ERR Number of keys can't be greater than number of args",
        );
    }
    let mut limit = 0usize;
    let mut rest = &args[2 + numkeys..];
    while !rest.is_empty() {
        match rest {
            [opt, n, ..] if opt.eq_ignore_ascii_case(b"LIMIT") => match parse_int(n) {
                Some(l) if l >= 0 => limit = l as usize,
                _ => return resp::error(out, "ERR LIMIT can't be negative"),
            },
            _ => return resp::error(out, SYNTAX),
        }
        rest = &rest[2..];
    }
    match combine(store, &args[2..2 + numkeys], Op::Inter, now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(set) => {
            let n = if limit > 0 {
                set.len().min(limit)
            } else {
                set.len()
            };
            resp::integer(out, n as i64);
        }
    }
}

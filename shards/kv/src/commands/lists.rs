//! List commands: pushes and pops, LRANGE, LLEN, LINDEX, LSET, LREM, LTRIM, LINSERT, LPOS,
//! LMOVE, LMPOP, and the non-blocking step of the blocking pops (see `blocking`).

use std::collections::VecDeque;

use super::{
    strings::list_range,
    table::{NOT_INTEGER, SYNTAX, WRONGTYPE},
};
use crate::{
    resp::{self, parse_int},
    store::{Entry, Store, Value, memory::ELEMENT_OVERHEAD},
};

pub fn push(store: &mut Store, args: &[Vec<u8>], left: bool, now_ms: u64, out: &mut Vec<u8>) {
    match store.get(&args[1], now_ms).map(|e| &e.value) {
        Some(Value::List(_)) => {}
        Some(_) => return resp::error(out, WRONGTYPE),
        None => {
            store.insert(
                &args[1],
                Entry {
                    value: Value::List(VecDeque::new()),
                    expires_at_ms: None,
                },
            );
        }
    }
    let Some(Value::List(list)) = store.get_mut(&args[1], now_ms).map(|e| &mut e.value) else {
        return resp::error(out, WRONGTYPE);
    };
    let mut grown = 0;
    for value in &args[2..] {
        grown += value.len() + ELEMENT_OVERHEAD;
        if left {
            list.push_front(value.clone());
        } else {
            list.push_back(value.clone());
        }
    }
    let len = list.len();
    store.charge(grown);
    resp::integer(out, len as i64);
}

pub fn pop(store: &mut Store, args: &[Vec<u8>], left: bool, now_ms: u64, out: &mut Vec<u8>) {
    if args.len() > 3 {
        return resp::error(
            out,
            &super::table::wrong_arity(if left { "lpop" } else { "rpop" }),
        );
    }
    let count = match args.get(2).map(|c| parse_int(c)) {
        None => None,
        Some(Some(n)) if n >= 0 => Some(n as usize),
        Some(_) => return resp::error(out, "ERR value is out of range, must be positive"),
    };
    let (popped, empty) = match store.get_mut(&args[1], now_ms).map(|e| &mut e.value) {
        None if count.is_some() => return resp::null_array(out),
        None => return resp::null(out),
        Some(Value::List(list)) => {
            let n = count.unwrap_or(1).min(list.len());
            let popped: Vec<Vec<u8>> = (0..n)
                .filter_map(|_| {
                    if left {
                        list.pop_front()
                    } else {
                        list.pop_back()
                    }
                })
                .collect();
            (popped, list.is_empty())
        }
        Some(_) => return resp::error(out, WRONGTYPE),
    };
    store.refund(popped.iter().map(|v| v.len() + ELEMENT_OVERHEAD).sum());
    if empty {
        store.remove(&args[1]);
    }
    match count {
        None => match popped.first() {
            Some(v) => resp::bulk(out, v),
            None => resp::null(out),
        },
        Some(_) => {
            resp::array(out, popped.len());
            for v in &popped {
                resp::bulk(out, v);
            }
        }
    }
}

pub fn lrange(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let (Some(start), Some(stop)) = (parse_int(&args[2]), parse_int(&args[3])) else {
        return resp::error(out, NOT_INTEGER);
    };
    let list = match store.get(&args[1], now_ms).map(|e| &e.value) {
        None => return resp::array(out, 0),
        Some(Value::List(list)) => list,
        Some(_) => return resp::error(out, WRONGTYPE),
    };
    let len = list.len() as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    if start > stop || start >= len {
        return resp::array(out, 0);
    }
    resp::array(out, (stop - start + 1) as usize);
    for value in list.range(start as usize..=stop as usize) {
        resp::bulk(out, value);
    }
}

pub fn llen(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match store.get(&args[1], now_ms).map(|e| &e.value) {
        None => resp::integer(out, 0),
        Some(Value::List(list)) => resp::integer(out, list.len() as i64),
        Some(_) => resp::error(out, WRONGTYPE),
    }
}

/// The list at `key` for a change: `Ok(None)` when missing, `Err` when another type.
fn list_mut<'a>(
    store: &'a mut Store,
    key: &[u8],
    now_ms: u64,
) -> Result<Option<&'a mut VecDeque<Vec<u8>>>, ()> {
    match store.get_mut(key, now_ms).map(|e| &mut e.value) {
        None => Ok(None),
        Some(Value::List(l)) => Ok(Some(l)),
        Some(_) => Err(()),
    }
}

/// Removes `key` when its list became empty.
fn drop_if_empty(store: &mut Store, key: &[u8], now_ms: u64) {
    if matches!(list_mut(store, key, now_ms), Ok(Some(l)) if l.is_empty()) {
        store.remove(key);
    }
}

fn pushx(store: &mut Store, args: &[Vec<u8>], left: bool, now_ms: u64, out: &mut Vec<u8>) {
    match list_mut(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(None) => resp::integer(out, 0),
        Ok(Some(_)) => push(store, args, left, now_ms, out),
    }
}

pub fn lpushx(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    pushx(store, args, true, now_ms, out);
}

pub fn rpushx(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    pushx(store, args, false, now_ms, out);
}

/// A list index: negative counts from the end; `None` outside the list.
fn index_of(index: i64, len: usize) -> Option<usize> {
    let i = if index < 0 { len as i64 + index } else { index };
    (0..len as i64).contains(&i).then_some(i as usize)
}

pub fn lindex(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let Some(index) = parse_int(&args[2]) else {
        return resp::error(out, NOT_INTEGER);
    };
    match list_mut(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(None) => resp::null(out),
        Ok(Some(list)) => match index_of(index, list.len()) {
            Some(i) => resp::bulk(out, &list[i]),
            None => resp::null(out),
        },
    }
}

pub fn lset(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let Some(index) = parse_int(&args[2]) else {
        return resp::error(out, NOT_INTEGER);
    };
    let (grown, shrunk) = match list_mut(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) => return resp::error(out, "ERR no such key"),
        Ok(Some(list)) => match index_of(index, list.len()) {
            Some(i) => {
                let old = std::mem::replace(&mut list[i], args[3].clone());
                (args[3].len(), old.len())
            }
            None => return resp::error(out, "ERR index out of range"),
        },
    };
    store.charge(grown);
    store.refund(shrunk);
    resp::ok(out);
}

pub fn lrem(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let Some(count) = parse_int(&args[2]) else {
        return resp::error(out, NOT_INTEGER);
    };
    let (removed, freed) = match list_mut(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) => return resp::integer(out, 0),
        Ok(Some(list)) => {
            let limit = if count == 0 {
                usize::MAX
            } else {
                count.unsigned_abs() as usize
            };
            let mut removed = 0;
            let mut kept = VecDeque::with_capacity(list.len());
            let items: Vec<Vec<u8>> = if count < 0 {
                list.drain(..).rev().collect()
            } else {
                list.drain(..).collect()
            };
            for item in items {
                if removed < limit && item == args[3] {
                    removed += 1;
                } else if count < 0 {
                    kept.push_front(item);
                } else {
                    kept.push_back(item);
                }
            }
            *list = kept;
            (removed, removed * (args[3].len() + ELEMENT_OVERHEAD))
        }
    };
    store.refund(freed);
    drop_if_empty(store, &args[1], now_ms);
    resp::integer(out, removed as i64);
}

pub fn ltrim(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let (Some(start), Some(stop)) = (parse_int(&args[2]), parse_int(&args[3])) else {
        return resp::error(out, NOT_INTEGER);
    };
    let freed = match list_mut(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) => return resp::ok(out),
        Ok(Some(list)) => {
            let before: usize = list.iter().map(|v| v.len() + ELEMENT_OVERHEAD).sum();
            match list_range(start, stop, list.len()) {
                Some((a, b)) => {
                    list.truncate(b + 1);
                    list.drain(..a);
                }
                None => list.clear(),
            }
            before
                - list
                    .iter()
                    .map(|v| v.len() + ELEMENT_OVERHEAD)
                    .sum::<usize>()
        }
    };
    store.refund(freed);
    drop_if_empty(store, &args[1], now_ms);
    resp::ok(out);
}

pub fn linsert(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let after = match args[2].to_ascii_uppercase().as_slice() {
        b"BEFORE" => false,
        b"AFTER" => true,
        _ => return resp::error(out, SYNTAX),
    };
    let len = match list_mut(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) => return resp::integer(out, 0),
        Ok(Some(list)) => match list.iter().position(|v| *v == args[3]) {
            None => return resp::integer(out, -1),
            Some(i) => {
                list.insert(i + usize::from(after), args[4].clone());
                list.len()
            }
        },
    };
    store.charge(args[4].len() + ELEMENT_OVERHEAD);
    resp::integer(out, len as i64);
}

pub fn lpos(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut i = 3;
    while i < args.len() {
        let value = args.get(i + 1);
        match (args[i].to_ascii_uppercase().as_slice(), value) {
            (b"RANK", Some(v)) => match parse_int(v) {
                None => return resp::error(out, NOT_INTEGER),
                Some(0) => {
                    return resp::error(
                        out,
                        "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                    );
                }
                Some(r) if r == i64::MIN => return resp::error(out, NOT_INTEGER),
                Some(r) => rank = r,
            },
            (b"COUNT", Some(v)) => match parse_int(v) {
                Some(c) if c >= 0 => count = Some(c as usize),
                _ => return resp::error(out, "ERR COUNT can't be negative"),
            },
            (b"MAXLEN", Some(v)) => match parse_int(v) {
                Some(m) if m >= 0 => maxlen = m as usize,
                _ => return resp::error(out, "ERR MAXLEN can't be negative"),
            },
            _ => return resp::error(out, SYNTAX),
        }
        i += 2;
    }
    let list = match list_mut(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) => {
            return if count.is_some() {
                resp::array(out, 0)
            } else {
                resp::null(out)
            };
        }
        Ok(Some(list)) => list,
    };
    let wanted = match count {
        Some(0) => usize::MAX,
        Some(c) => c,
        None => 1,
    };
    let limit = if maxlen == 0 {
        list.len()
    } else {
        maxlen.min(list.len())
    };
    let mut skip = rank.unsigned_abs() - 1;
    let mut found = Vec::new();
    let indices: Box<dyn Iterator<Item = usize>> = if rank > 0 {
        Box::new(0..limit)
    } else {
        Box::new((list.len() - limit..list.len()).rev())
    };
    for i in indices {
        if list[i] == args[2] {
            if skip > 0 {
                skip -= 1;
            } else {
                found.push(i);
                if found.len() >= wanted {
                    break;
                }
            }
        }
    }
    match count {
        None => match found.first() {
            Some(&i) => resp::integer(out, i as i64),
            None => resp::null(out),
        },
        Some(_) => {
            resp::array(out, found.len());
            for i in found {
                resp::integer(out, i as i64);
            }
        }
    }
}

fn side(arg: &[u8]) -> Option<bool> {
    if arg.eq_ignore_ascii_case(b"LEFT") {
        Some(true)
    } else if arg.eq_ignore_ascii_case(b"RIGHT") {
        Some(false)
    } else {
        None
    }
}

/// Moves one element from `source`'s `from_left` end to `destination`'s `to_left` end;
/// writes the element, or null when `source` is empty. Checks both types first.
fn move_element(
    store: &mut Store,
    source: &[u8],
    destination: &[u8],
    from_left: bool,
    to_left: bool,
    now_ms: u64,
    out: &mut Vec<u8>,
) {
    // As Redis checks them: the source first; the destination only when there is
    // something to move (a blocking move with an empty source waits whatever the
    // destination holds).
    match list_mut(store, source, now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) => return resp::null(out),
        Ok(Some(list)) if list.is_empty() => return resp::null(out),
        Ok(Some(_)) => {}
    }
    if list_mut(store, destination, now_ms).is_err() {
        return resp::error(out, WRONGTYPE);
    }
    let value = match list_mut(store, source, now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) => return resp::null(out),
        Ok(Some(list)) => {
            let popped = if from_left {
                list.pop_front()
            } else {
                list.pop_back()
            };
            match popped {
                Some(v) => v,
                None => return resp::null(out),
            }
        }
    };
    store.refund(value.len() + ELEMENT_OVERHEAD);
    drop_if_empty(store, source, now_ms);
    let push_args = [Vec::new(), destination.to_vec(), value.clone()];
    push(store, &push_args, to_left, now_ms, &mut Vec::new());
    resp::bulk(out, &value);
}

pub fn lmove(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let (Some(from), Some(to)) = (side(&args[3]), side(&args[4])) else {
        return resp::error(out, SYNTAX);
    };
    move_element(store, &args[1], &args[2], from, to, now_ms, out);
}

pub fn rpoplpush(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    move_element(store, &args[1], &args[2], false, true, now_ms, out);
}

/// LMPOP's and BLMPOP's arguments after the count at `at`: (keys, left, count).
fn mpop_args(args: &[Vec<u8>], at: usize) -> Result<(&[Vec<u8>], bool, usize), &'static str> {
    let numkeys = match parse_int(&args[at]) {
        Some(n) if n > 0 => n as usize,
        _ => return Err("ERR numkeys should be greater than 0"),
    };
    let side_at = at + numkeys + 1;
    let Some(left) = args.get(side_at).and_then(|a| side(a)) else {
        return Err(SYNTAX);
    };
    let count = match &args[side_at + 1..] {
        [] => 1,
        [opt, n] if opt.eq_ignore_ascii_case(b"COUNT") => match parse_int(n) {
            Some(c) if c > 0 => c as usize,
            _ => return Err("ERR count should be greater than 0"),
        },
        _ => return Err(SYNTAX),
    };
    Ok((&args[at + 1..side_at], left, count))
}

/// Pops up to `count` from the first non-empty list of `keys`: `[key, [elements]]`; writes
/// nothing when every list is empty (the caller answers null, or blocks).
fn mpop(
    store: &mut Store,
    keys: &[Vec<u8>],
    left: bool,
    count: usize,
    now_ms: u64,
    out: &mut Vec<u8>,
) {
    for key in keys {
        let popped: Vec<Vec<u8>> = match list_mut(store, key, now_ms) {
            Err(()) => return resp::error(out, WRONGTYPE),
            Ok(None) => continue,
            Ok(Some(list)) => {
                let n = count.min(list.len());
                (0..n)
                    .filter_map(|_| {
                        if left {
                            list.pop_front()
                        } else {
                            list.pop_back()
                        }
                    })
                    .collect()
            }
        };
        store.refund(popped.iter().map(|v| v.len() + ELEMENT_OVERHEAD).sum());
        drop_if_empty(store, key, now_ms);
        resp::array(out, 2);
        resp::bulk(out, key);
        resp::array(out, popped.len());
        for v in &popped {
            resp::bulk(out, v);
        }
        return;
    }
}

pub fn lmpop(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match mpop_args(args, 1) {
        Err(e) => resp::error(out, e),
        Ok((keys, left, count)) => {
            let mut reply = Vec::new();
            mpop(store, keys, left, count, now_ms, &mut reply);
            if reply.is_empty() {
                resp::null_array(out);
            } else {
                out.extend_from_slice(&reply);
            }
        }
    }
}

/// Parses a blocking command's timeout in seconds (a float): milliseconds, 0 for ever.
pub fn timeout_ms(arg: &[u8]) -> Result<u64, &'static str> {
    let seconds = super::strings::parse_float(arg)
        .filter(|s| s.is_finite())
        .ok_or("ERR timeout is not a float or out of range")?;
    if seconds < 0.0 {
        return Err("ERR timeout is negative");
    }
    Ok((seconds * 1000.0).ceil() as u64)
}

/// The non-blocking step of BLPOP/BRPOP: `[key, element]` from the first non-empty list,
/// or nothing written when all are empty.
fn bpop(store: &mut Store, args: &[Vec<u8>], left: bool, now_ms: u64, out: &mut Vec<u8>) {
    if let Err(e) = timeout_ms(&args[args.len() - 1]) {
        return resp::error(out, e);
    }
    for key in &args[1..args.len() - 1] {
        let value = match list_mut(store, key, now_ms) {
            Err(()) => return resp::error(out, WRONGTYPE),
            Ok(None) => continue,
            Ok(Some(list)) => match if left {
                list.pop_front()
            } else {
                list.pop_back()
            } {
                Some(v) => v,
                None => continue,
            },
        };
        store.refund(value.len() + ELEMENT_OVERHEAD);
        drop_if_empty(store, key, now_ms);
        resp::array(out, 2);
        resp::bulk(out, key);
        resp::bulk(out, &value);
        return;
    }
}

pub fn blpop(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    bpop(store, args, true, now_ms, out);
}

pub fn brpop(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    bpop(store, args, false, now_ms, out);
}

/// The non-blocking step of BLMOVE/BRPOPLPUSH: the moved element, or nothing written.
fn bmove(
    store: &mut Store,
    args: &[Vec<u8>],
    from: bool,
    to: bool,
    timeout: &[u8],
    now_ms: u64,
    out: &mut Vec<u8>,
) {
    if let Err(e) = timeout_ms(timeout) {
        return resp::error(out, e);
    }
    let mut reply = Vec::new();
    move_element(store, &args[1], &args[2], from, to, now_ms, &mut reply);
    if reply != b"$-1\r\n" {
        out.extend_from_slice(&reply);
    }
}

pub fn brpoplpush(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    bmove(store, args, false, true, &args[3], now_ms, out);
}

pub fn blmove(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let (Some(from), Some(to)) = (side(&args[3]), side(&args[4])) else {
        return resp::error(out, SYNTAX);
    };
    bmove(store, args, from, to, &args[5], now_ms, out);
}

pub fn blmpop(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    if let Err(e) = timeout_ms(&args[1]) {
        return resp::error(out, e);
    }
    match mpop_args(args, 2) {
        Err(e) => resp::error(out, e),
        Ok((keys, left, count)) => mpop(store, keys, left, count, now_ms, out),
    }
}

//! Sorted-set operations over several keys: ZUNION, ZINTER, ZDIFF, their STORE forms and
//! ZINTERCARD (sets count as sorted sets with every score 1, as in Redis).

use super::{
    strings::parse_float,
    table::{NOT_INTEGER, SYNTAX, WRONGTYPE},
    zsets::{Elements, store_elements, write_elements},
};
use crate::{
    hash::FxHashMap,
    resp::{self, parse_int},
    store::{Store, Value},
};

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// The members and scores of a sorted set or (scores 1) a set at `key`.
fn members_of(
    store: &mut Store,
    key: &[u8],
    now_ms: u64,
) -> Result<Option<FxHashMap<Vec<u8>, f64>>, ()> {
    match store.get(key, now_ms).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z.iter().map(|(m, s)| (m.clone(), s)).collect())),
        Some(Value::Set(s)) => Ok(Some(s.iter().map(|m| (m.clone(), 1.0)).collect())),
        Some(_) => Err(()),
    }
}

/// ZUNION/ZINTER/ZDIFF and their STORE and CARD forms: `at` is the key count's position.
/// Returns the result, ordered, and whether WITHSCORES was given (and the LIMIT of CARD).
fn set_operation(
    store: &mut Store,
    args: &[Vec<u8>],
    at: usize,
    op: SetOp,
    store_form: bool,
    card: bool,
    now_ms: u64,
) -> Result<(Elements, bool, usize), String> {
    let name = String::from_utf8_lossy(&args[0]).to_lowercase();
    let numkeys = parse_int(&args[at]).ok_or(NOT_INTEGER)?;
    if numkeys < 1 {
        return Err(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        ));
    }
    let numkeys = numkeys as usize;
    if numkeys > args.len() - at - 1 {
        return Err(SYNTAX.into());
    }
    let keys = &args[at + 1..at + 1 + numkeys];
    let mut weights = vec![1.0; numkeys];
    let mut aggregate = Aggregate::Sum;
    let (mut with_scores, mut limit) = (false, 0usize);
    let mut i = at + 1 + numkeys;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        let left = args.len() - i - 1;
        match opt.as_slice() {
            b"WEIGHTS" if op != SetOp::Diff && !card && left >= numkeys => {
                for (w, arg) in weights.iter_mut().zip(&args[i + 1..]) {
                    *w = parse_float(arg).ok_or("ERR weight value is not a float")?;
                }
                i += numkeys;
            }
            b"AGGREGATE" if op != SetOp::Diff && !card && left >= 1 => {
                aggregate = match args[i + 1].to_ascii_uppercase().as_slice() {
                    b"SUM" => Aggregate::Sum,
                    b"MIN" => Aggregate::Min,
                    b"MAX" => Aggregate::Max,
                    _ => return Err(SYNTAX.into()),
                };
                i += 1;
            }
            b"WITHSCORES" if !store_form && !card => with_scores = true,
            b"LIMIT" if card && left >= 1 => {
                limit = match parse_int(&args[i + 1]) {
                    Some(l) if l >= 0 => l as usize,
                    _ => return Err("ERR LIMIT can't be negative".into()),
                };
                i += 1;
            }
            _ => return Err(SYNTAX.into()),
        }
        i += 1;
    }
    let mut inputs = Vec::with_capacity(numkeys);
    for key in keys {
        inputs.push(members_of(store, key, now_ms).map_err(|()| WRONGTYPE.to_string())?);
    }
    let combine = |a: f64, b: f64| {
        let r = match aggregate {
            Aggregate::Sum => a + b,
            Aggregate::Min => a.min(b),
            Aggregate::Max => a.max(b),
        };
        if r.is_nan() { 0.0 } else { r }
    };
    let weigh = |score: f64, weight: f64| {
        let r = score * weight;
        if r.is_nan() { 0.0 } else { r }
    };
    let mut result: FxHashMap<Vec<u8>, f64> = FxHashMap::default();
    match op {
        SetOp::Union => {
            for (input, w) in inputs.iter().zip(&weights) {
                for (m, s) in input.iter().flatten() {
                    let s = weigh(*s, *w);
                    result
                        .entry(m.clone())
                        .and_modify(|cur| *cur = combine(*cur, s))
                        .or_insert(s);
                }
            }
        }
        SetOp::Inter => {
            if let Some(first) = &inputs[0] {
                'members: for (m, s) in first {
                    let mut acc = weigh(*s, weights[0]);
                    for (input, w) in inputs[1..].iter().zip(&weights[1..]) {
                        match input.as_ref().and_then(|i| i.get(m)) {
                            Some(s) => acc = combine(acc, weigh(*s, *w)),
                            None => continue 'members,
                        }
                    }
                    result.insert(m.clone(), acc);
                    if card && limit > 0 && result.len() >= limit {
                        break;
                    }
                }
            }
        }
        SetOp::Diff => {
            if let Some(first) = &inputs[0] {
                for (m, s) in first {
                    if !inputs[1..].iter().flatten().any(|i| i.contains_key(m)) {
                        result.insert(m.clone(), *s);
                    }
                }
            }
        }
    }
    let mut ordered: Vec<(Vec<u8>, f64)> = result.into_iter().collect();
    ordered.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(&b.0))
    });
    Ok((ordered, with_scores, limit))
}

fn op_reply(store: &mut Store, args: &[Vec<u8>], op: SetOp, now_ms: u64, out: &mut Vec<u8>) {
    match set_operation(store, args, 1, op, false, false, now_ms) {
        Err(e) => resp::error(out, &e),
        Ok((found, with_scores, _)) => write_elements(out, &found, with_scores),
    }
}

fn op_store(store: &mut Store, args: &[Vec<u8>], op: SetOp, now_ms: u64, out: &mut Vec<u8>) {
    match set_operation(store, args, 2, op, true, false, now_ms) {
        Err(e) => resp::error(out, &e),
        Ok((found, _, _)) => {
            let n = store_elements(store, &args[1], found);
            resp::integer(out, n as i64);
        }
    }
}

pub fn zunion(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    op_reply(store, args, SetOp::Union, now_ms, out);
}

pub fn zinter(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    op_reply(store, args, SetOp::Inter, now_ms, out);
}

pub fn zdiff(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    op_reply(store, args, SetOp::Diff, now_ms, out);
}

pub fn zunionstore(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    op_store(store, args, SetOp::Union, now_ms, out);
}

pub fn zinterstore(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    op_store(store, args, SetOp::Inter, now_ms, out);
}

pub fn zdiffstore(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    op_store(store, args, SetOp::Diff, now_ms, out);
}

pub fn zintercard(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match set_operation(store, args, 1, SetOp::Inter, false, true, now_ms) {
        Err(e) => resp::error(out, &e),
        Ok((found, _, limit)) => {
            let n = if limit > 0 {
                found.len().min(limit)
            } else {
                found.len()
            };
            resp::integer(out, n as i64);
        }
    }
}

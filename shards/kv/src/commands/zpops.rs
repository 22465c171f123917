//! Sorted-set pops: ZPOPMIN, ZPOPMAX, ZMPOP, and the non-blocking step of BZPOPMIN,
//! BZPOPMAX and BZMPOP.

use super::{
    table::{SYNTAX, WRONGTYPE},
    zsets::{Elements, bulk_score, drop_if_empty, element_size, write_elements, zset_mut},
};
use crate::{
    resp::{self, parse_int},
    store::Store,
};

/// Pops up to `count` elements from the low (`max` false) or high end of the first
/// non-empty sorted set of `keys`: the key and the elements; `None` when all are empty.
fn pop_from(
    store: &mut Store,
    keys: &[Vec<u8>],
    max: bool,
    count: usize,
    now_ms: u64,
) -> Result<Option<(Vec<u8>, Elements)>, ()> {
    for key in keys {
        let popped = match zset_mut(store, key, now_ms)? {
            None => continue,
            Some(z) => {
                let n = count.min(z.len());
                let mut found = if max {
                    z.range(z.len() - n, z.len())
                } else {
                    z.range(0, n)
                };
                if max {
                    found.reverse();
                }
                for (member, _) in &found {
                    z.remove(member);
                }
                found
            }
        };
        store.refund(popped.iter().map(|(m, _)| element_size(m)).sum());
        drop_if_empty(store, key, now_ms);
        return Ok(Some((key.clone(), popped)));
    }
    Ok(None)
}

fn zpop(store: &mut Store, args: &[Vec<u8>], max: bool, now_ms: u64, out: &mut Vec<u8>) {
    let count = match args.len() {
        2 => 1,
        3 => match parse_int(&args[2]) {
            Some(n) if n >= 0 => n as usize,
            _ => return resp::error(out, "ERR value is out of range, must be positive"),
        },
        _ => return resp::error(out, SYNTAX),
    };
    match pop_from(store, &args[1..2], max, count, now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(None) => resp::array(out, 0),
        // Without a count: one flat `[member, score]`, in RESP3 too.
        Ok(Some((_, popped))) if args.len() == 2 => {
            resp::array(out, 2 * popped.len());
            for (member, score) in &popped {
                resp::bulk(out, member);
                bulk_score(out, *score);
            }
        }
        Ok(Some((_, popped))) => write_elements(out, &popped, true),
    }
}

pub fn zpopmin(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    zpop(store, args, false, now_ms, out);
}

pub fn zpopmax(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    zpop(store, args, true, now_ms, out);
}

/// ZMPOP's and BZMPOP's arguments from the key count at `at`: (keys, max, count).
fn mpop_args(args: &[Vec<u8>], at: usize) -> Result<(&[Vec<u8>], bool, usize), &'static str> {
    let numkeys = match parse_int(&args[at]) {
        Some(n) if n > 0 => n as usize,
        _ => return Err("ERR numkeys should be greater than 0"),
    };
    let side_at = at + numkeys + 1;
    let max = match args.get(side_at).map(|a| a.to_ascii_uppercase()) {
        Some(s) if s == b"MIN" => false,
        Some(s) if s == b"MAX" => true,
        _ => return Err(SYNTAX),
    };
    let count = match &args[side_at + 1..] {
        [] => 1,
        [opt, n] if opt.eq_ignore_ascii_case(b"COUNT") => match parse_int(n) {
            Some(c) if c > 0 => c as usize,
            _ => return Err("ERR count should be greater than 0"),
        },
        _ => return Err(SYNTAX),
    };
    Ok((&args[at + 1..side_at], max, count))
}

fn write_mpop(out: &mut Vec<u8>, key: &[u8], popped: &[(Vec<u8>, f64)]) {
    resp::array(out, 2);
    resp::bulk(out, key);
    resp::array(out, popped.len());
    for (member, score) in popped {
        resp::array(out, 2);
        resp::bulk(out, member);
        bulk_score(out, *score);
    }
}

pub fn zmpop(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let (keys, max, count) = match mpop_args(args, 1) {
        Ok(parsed) => parsed,
        Err(e) => return resp::error(out, e),
    };
    match pop_from(store, keys, max, count, now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(None) => resp::null_array(out),
        Ok(Some((key, popped))) => write_mpop(out, &key, &popped),
    }
}

/// The non-blocking step of BZPOPMIN/BZPOPMAX: `[key, member, score]`, or nothing written.
fn bzpop(store: &mut Store, args: &[Vec<u8>], max: bool, now_ms: u64, out: &mut Vec<u8>) {
    if let Err(e) = super::lists::timeout_ms(&args[args.len() - 1]) {
        return resp::error(out, e);
    }
    match pop_from(store, &args[1..args.len() - 1], max, 1, now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(None) => {}
        Ok(Some((key, popped))) => {
            resp::array(out, 3);
            resp::bulk(out, &key);
            resp::bulk(out, &popped[0].0);
            bulk_score(out, popped[0].1);
        }
    }
}

pub fn bzpopmin(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    bzpop(store, args, false, now_ms, out);
}

pub fn bzpopmax(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    bzpop(store, args, true, now_ms, out);
}

pub fn bzmpop(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    if let Err(e) = super::lists::timeout_ms(&args[1]) {
        return resp::error(out, e);
    }
    let (keys, max, count) = match mpop_args(args, 2) {
        Ok(parsed) => parsed,
        Err(e) => return resp::error(out, e),
    };
    match pop_from(store, keys, max, count, now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(None) => {}
        Ok(Some((key, popped))) => write_mpop(out, &key, &popped),
    }
}

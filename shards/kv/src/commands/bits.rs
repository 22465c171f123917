//! Bit commands on strings: SETBIT, GETBIT, BITCOUNT (BYTE and BIT ranges).

use super::{
    strings::{MAX_STRING, clamp_range, put, string_of},
    table::{NOT_INTEGER, SYNTAX, WRONGTYPE},
};
use crate::{
    resp::{self, parse_int},
    store::{Entry, Store, Value},
};

const BIT_OFFSET: &str = "ERR bit offset is not an integer or out of range";

fn bit_offset(arg: &[u8]) -> Option<usize> {
    let n = parse_int(arg)?;
    (0..(MAX_STRING as i64) * 8)
        .contains(&n)
        .then_some(n as usize)
}

pub fn setbit(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let Some(offset) = bit_offset(&args[2]) else {
        return resp::error(out, BIT_OFFSET);
    };
    let on = match args[3].as_slice() {
        b"1" => true,
        b"0" => false,
        _ => return resp::error(out, "ERR bit is not an integer or out of range"),
    };
    let (mut bytes, ttl) = match store.get(&args[1], now_ms) {
        None => (Vec::new(), None),
        Some(Entry {
            value: Value::Str(s),
            expires_at_ms,
        }) => (s.to_vec(), *expires_at_ms),
        Some(_) => return resp::error(out, WRONGTYPE),
    };
    let byte = offset / 8;
    if bytes.len() <= byte {
        bytes.resize(byte + 1, 0);
    }
    let mask = 0x80 >> (offset % 8);
    let old = bytes[byte] & mask != 0;
    if on {
        bytes[byte] |= mask;
    } else {
        bytes[byte] &= !mask;
    }
    put(store, &args[1], &bytes, ttl);
    resp::integer(out, i64::from(old));
}

pub fn getbit(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let Some(offset) = bit_offset(&args[2]) else {
        return resp::error(out, BIT_OFFSET);
    };
    match string_of(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(value) => {
            let bit = value
                .and_then(|s| s.get(offset / 8))
                .is_some_and(|b| b & (0x80 >> (offset % 8)) != 0);
            resp::integer(out, i64::from(bit));
        }
    }
}

pub fn bitcount(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let range = match args.len() {
        2 => None,
        4 | 5 => {
            let (Some(start), Some(end)) = (parse_int(&args[2]), parse_int(&args[3])) else {
                return resp::error(out, NOT_INTEGER);
            };
            let bits = match args.get(4).map(|a| a.to_ascii_uppercase()) {
                None => false,
                Some(u) if u == b"BYTE" => false,
                Some(u) if u == b"BIT" => true,
                Some(_) => return resp::error(out, SYNTAX),
            };
            Some((start, end, bits))
        }
        _ => return resp::error(out, SYNTAX),
    };
    let value = match string_of(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) => return resp::integer(out, 0),
        Ok(Some(v)) => v,
    };
    let count = match range {
        None => value.iter().map(|b| b.count_ones() as i64).sum(),
        Some((start, end, false)) => match clamp_range(start, end, value.len()) {
            Some((a, b)) => value[a..=b].iter().map(|b| b.count_ones() as i64).sum(),
            None => 0,
        },
        Some((start, end, true)) => match clamp_range(start, end, value.len() * 8) {
            Some((a, b)) => (a..=b)
                .filter(|&i| value[i / 8] & (0x80 >> (i % 8)) != 0)
                .count() as i64,
            None => 0,
        },
    };
    resp::integer(out, count);
}

//! List commands: LPUSH, RPUSH, LPOP, RPOP (with COUNT), LRANGE, LLEN.

use std::collections::VecDeque;

use super::table::{NOT_INTEGER, WRONGTYPE};
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

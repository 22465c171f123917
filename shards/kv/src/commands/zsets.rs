//! Sorted-set commands on [`ZSet`]: ZADD (NX/XX/GT/LT/CH/INCR), ZINCRBY, ZREM, ZCARD,
//! ZSCORE, ZMSCORE, ZRANK, ZREVRANK, ZCOUNT, ZLEXCOUNT, the ZRANGE family (rank, BYSCORE,
//! BYLEX, REV, LIMIT, WITHSCORES, ZRANGESTORE), ZREMRANGEBY*, ZPOPMIN/MAX, ZMPOP,
//! ZRANDMEMBER, ZSCAN. The pops are in `zpops`, the set operations in `zsetops`.

use super::{
    random_picks,
    strings::parse_float,
    table::{NOT_FLOAT, NOT_INTEGER, SYNTAX, WRONGTYPE},
};
use crate::{
    glob,
    resp::{self, parse_int},
    store::{Entry, Store, Value, ZSet, memory::ELEMENT_OVERHEAD},
};

/// Members with their scores.
pub(super) type Elements = Vec<(Vec<u8>, f64)>;

/// The sorted set at `key`: `Ok(None)` when missing, `Err` when another type.
pub(super) fn zset_mut<'a>(
    store: &'a mut Store,
    key: &[u8],
    now_ms: u64,
) -> Result<Option<&'a mut ZSet>, ()> {
    match store.get_mut(key, now_ms).map(|e| &mut e.value) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(()),
    }
}

pub(super) fn drop_if_empty(store: &mut Store, key: &[u8], now_ms: u64) {
    if matches!(zset_mut(store, key, now_ms), Ok(Some(z)) if z.is_empty()) {
        store.remove(key);
    }
}

pub(super) fn element_size(member: &[u8]) -> usize {
    member.len() + 8 + ELEMENT_OVERHEAD
}

/// A score as Redis 7.0 writes it in RESP2 (`%.17g`).
pub fn format_score(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{value:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if (-4..17).contains(&exp) {
        trim(&format!("{value:.*}", (16 - exp) as usize))
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    }
}

pub(super) fn bulk_score(out: &mut Vec<u8>, score: f64) {
    resp::double_text(out, &format_score(score));
}

pub fn zadd(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut at = 2;
    while at < args.len() {
        match args[at].to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            b"CH" => ch = true,
            b"INCR" => incr = true,
            _ => break,
        }
        at += 1;
    }
    let pairs = &args[at..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return resp::error(out, SYNTAX);
    }
    if nx && xx {
        return resp::error(
            out,
            "ERR XX and NX options at the same time are not compatible",
        );
    }
    if (gt || lt) && nx || gt && lt {
        return resp::error(
            out,
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        );
    }
    if incr && pairs.len() > 2 {
        return resp::error(
            out,
            "ERR INCR option supports a single increment-element pair",
        );
    }
    let mut scores = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks_exact(2) {
        match parse_float(&pair[0]) {
            Some(s) => scores.push(s),
            None => return resp::error(out, NOT_FLOAT),
        }
    }
    match zset_mut(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) if xx => {
            return if incr {
                resp::null(out)
            } else {
                resp::integer(out, 0)
            };
        }
        Ok(None) => {
            store.insert(
                &args[1],
                Entry {
                    value: Value::ZSet(Box::new(ZSet::new())),
                    expires_at_ms: None,
                },
            );
        }
        Ok(Some(_)) => {}
    }
    let Ok(Some(zset)) = zset_mut(store, &args[1], now_ms) else {
        return resp::error(out, WRONGTYPE);
    };
    let (mut added, mut updated, mut grown) = (0, 0, 0);
    let mut last: Option<f64> = None;
    for (pair, score) in pairs.chunks_exact(2).zip(scores) {
        let member = &pair[1];
        match zset.score(member) {
            Some(current) => {
                if nx {
                    continue;
                }
                let new = if incr { current + score } else { score };
                if new.is_nan() {
                    return resp::error(out, "ERR resulting score is not a number (NaN)");
                }
                if gt && new <= current || lt && new >= current {
                    continue;
                }
                last = Some(new);
                if new != current {
                    zset.insert(member, new);
                    updated += 1;
                }
            }
            None => {
                if xx {
                    continue;
                }
                zset.insert(member, score);
                added += 1;
                grown += element_size(member);
                last = Some(score);
            }
        }
    }
    store.charge(grown);
    drop_if_empty(store, &args[1], now_ms);
    if incr {
        match last {
            Some(score) => bulk_score(out, score),
            None => resp::null(out),
        }
    } else {
        resp::integer(out, if ch { added + updated } else { added });
    }
}

pub fn zincrby(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let zadd_args = [
        b"zadd".to_vec(),
        args[1].clone(),
        b"INCR".to_vec(),
        args[2].clone(),
        args[3].clone(),
    ];
    zadd(store, &zadd_args, now_ms, out);
}

pub fn zrem(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let (removed, freed) = match zset_mut(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) => return resp::integer(out, 0),
        Ok(Some(z)) => {
            let (mut removed, mut freed) = (0, 0);
            for member in &args[2..] {
                if z.remove(member) {
                    removed += 1;
                    freed += element_size(member);
                }
            }
            (removed, freed)
        }
    };
    store.refund(freed);
    drop_if_empty(store, &args[1], now_ms);
    resp::integer(out, removed);
}

pub fn zcard(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match zset_mut(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(z) => resp::integer(out, z.map_or(0, |z| z.len() as i64)),
    }
}

pub fn zscore(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match zset_mut(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(z) => match z.and_then(|z| z.score(&args[2])) {
            Some(s) => bulk_score(out, s),
            None => resp::null(out),
        },
    }
}

pub fn zmscore(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    match zset_mut(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(z) => {
            resp::array(out, args.len() - 2);
            for member in &args[2..] {
                match z.as_ref().and_then(|z| z.score(member)) {
                    Some(s) => bulk_score(out, s),
                    None => resp::null(out),
                }
            }
        }
    }
}

fn rank(store: &mut Store, args: &[Vec<u8>], rev: bool, now_ms: u64, out: &mut Vec<u8>) {
    match zset_mut(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(z) => match z
            .as_ref()
            .and_then(|z| z.rank(&args[2]).map(|r| (r, z.len())))
        {
            Some((r, len)) => resp::integer(out, if rev { len - 1 - r } else { r } as i64),
            None => resp::null(out),
        },
    }
}

pub fn zrank(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    rank(store, args, false, now_ms, out);
}

pub fn zrevrank(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    rank(store, args, true, now_ms, out);
}

/// One end of a score range: the score and whether it is excluded.
#[derive(Clone, Copy)]
struct ScoreBound(f64, bool);

fn score_bound(arg: &[u8]) -> Option<ScoreBound> {
    match arg.strip_prefix(b"(") {
        Some(rest) => parse_float(rest).map(|s| ScoreBound(s, true)),
        None => parse_float(arg).map(|s| ScoreBound(s, false)),
    }
}

/// One end of a lex range.
#[derive(Clone)]
enum LexBound {
    Min,
    Max,
    Inclusive(Vec<u8>),
    Exclusive(Vec<u8>),
}

fn lex_bound(arg: &[u8]) -> Option<LexBound> {
    match arg.first() {
        Some(b'-') if arg.len() == 1 => Some(LexBound::Min),
        Some(b'+') if arg.len() == 1 => Some(LexBound::Max),
        Some(b'[') => Some(LexBound::Inclusive(arg[1..].to_vec())),
        Some(b'(') => Some(LexBound::Exclusive(arg[1..].to_vec())),
        _ => None,
    }
}

/// A range of a sorted set in ascending rank: `start..end`.
enum Range {
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

impl Range {
    fn ranks(&self, z: &ZSet) -> (usize, usize) {
        match self {
            Range::Score(min, max) => {
                let start = z.count_before(|s, _| if min.1 { s <= min.0 } else { s < min.0 });
                let end = z.count_before(|s, _| if max.1 { s < max.0 } else { s <= max.0 });
                (start, end.max(start))
            }
            Range::Lex(min, max) => {
                let start = z.count_before(|_, m| match min {
                    LexBound::Min => false,
                    LexBound::Max => true,
                    LexBound::Inclusive(v) => m < v.as_slice(),
                    LexBound::Exclusive(v) => m <= v.as_slice(),
                });
                let end = z.count_before(|_, m| match max {
                    LexBound::Min => false,
                    LexBound::Max => true,
                    LexBound::Inclusive(v) => m <= v.as_slice(),
                    LexBound::Exclusive(v) => m < v.as_slice(),
                });
                (start, end.max(start))
            }
        }
    }
}

fn parse_range(min: &[u8], max: &[u8], lex: bool) -> Result<Range, &'static str> {
    if lex {
        match (lex_bound(min), lex_bound(max)) {
            (Some(a), Some(b)) => Ok(Range::Lex(a, b)),
            _ => Err("ERR min or max not valid string range item"),
        }
    } else {
        match (score_bound(min), score_bound(max)) {
            (Some(a), Some(b)) => Ok(Range::Score(a, b)),
            _ => Err("ERR min or max is not a float"),
        }
    }
}

fn count_in(store: &mut Store, args: &[Vec<u8>], lex: bool, now_ms: u64, out: &mut Vec<u8>) {
    let range = match parse_range(&args[2], &args[3], lex) {
        Ok(r) => r,
        Err(e) => return resp::error(out, e),
    };
    match zset_mut(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(None) => resp::integer(out, 0),
        Ok(Some(z)) => {
            let (a, b) = range.ranks(z);
            resp::integer(out, (b - a) as i64);
        }
    }
}

pub fn zcount(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    count_in(store, args, false, now_ms, out);
}

pub fn zlexcount(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    count_in(store, args, true, now_ms, out);
}

#[derive(Clone, Copy, PartialEq)]
enum By {
    Rank,
    Score,
    Lex,
}

/// A parsed ZRANGE-family request.
struct RangeRequest {
    by: By,
    rev: bool,
    limit: Option<(i64, i64)>,
    with_scores: bool,
}

/// The elements a ZRANGE-family request selects, in reply order.
fn select(
    z: &ZSet,
    min: &[u8],
    max: &[u8],
    req: &RangeRequest,
) -> Result<Vec<(Vec<u8>, f64)>, &'static str> {
    let len = z.len();
    let (start, end) = match req.by {
        By::Rank => {
            let (Some(a), Some(b)) = (parse_int(min), parse_int(max)) else {
                return Err(NOT_INTEGER);
            };
            let Some((a, b)) = super::strings::list_range(a, b, len) else {
                return Ok(Vec::new());
            };
            if req.rev {
                (len - 1 - b, len - a)
            } else {
                (a, b + 1)
            }
        }
        By::Score | By::Lex => {
            // Reverse ranges are given max first.
            let (lo, hi) = if req.rev { (max, min) } else { (min, max) };
            parse_range(lo, hi, req.by == By::Lex)?.ranks(z)
        }
    };
    let (mut start, mut end) = (start, end);
    if let Some((offset, count)) = req.limit {
        if offset < 0 {
            return Ok(Vec::new());
        }
        let offset = offset as usize;
        let count = if count < 0 {
            usize::MAX
        } else {
            count as usize
        };
        if req.rev {
            end = end.saturating_sub(offset).max(start);
            start = start.max(end.saturating_sub(count));
        } else {
            start = (start + offset).min(end);
            end = end.min(start.saturating_add(count));
        }
    }
    let mut found = z.range(start, end);
    if req.rev {
        found.reverse();
    }
    Ok(found)
}

/// Members, with their scores when asked: flat in RESP2, `[member, score]` pairs in RESP3.
pub(super) fn write_elements(out: &mut Vec<u8>, found: &[(Vec<u8>, f64)], with_scores: bool) {
    let pairs = with_scores && resp::resp3();
    resp::array(out, found.len() * if with_scores && !pairs { 2 } else { 1 });
    for (member, score) in found {
        if pairs {
            resp::array(out, 2);
        }
        resp::bulk(out, member);
        if with_scores {
            bulk_score(out, *score);
        }
    }
}

/// Parses the options after `args[first..]` of ZRANGE (`generic`) or a fixed form.
fn range_request(
    args: &[Vec<u8>],
    first: usize,
    mut req: RangeRequest,
    generic: bool,
    store_form: bool,
) -> Result<RangeRequest, &'static str> {
    let mut i = first;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        match opt.as_slice() {
            b"WITHSCORES" if !store_form => req.with_scores = true,
            b"LIMIT" if i + 2 < args.len() => {
                let (Some(o), Some(c)) = (parse_int(&args[i + 1]), parse_int(&args[i + 2])) else {
                    return Err(NOT_INTEGER);
                };
                req.limit = Some((o, c));
                i += 2;
            }
            b"REV" if generic && !req.rev => req.rev = true,
            b"BYSCORE" if generic && req.by == By::Rank => req.by = By::Score,
            b"BYLEX" if generic && req.by == By::Rank => req.by = By::Lex,
            _ => return Err(SYNTAX),
        }
        i += 1;
    }
    if req.limit.is_some() && req.by == By::Rank {
        return Err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
    }
    if req.with_scores && req.by == By::Lex {
        return Err("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    Ok(req)
}

fn range_command(
    store: &mut Store,
    args: &[Vec<u8>],
    by: By,
    rev: bool,
    generic: bool,
    now_ms: u64,
    out: &mut Vec<u8>,
) {
    let base = RangeRequest {
        by,
        rev,
        limit: None,
        with_scores: false,
    };
    let req = match range_request(args, 4, base, generic, false) {
        Ok(r) => r,
        Err(e) => return resp::error(out, e),
    };
    let z = match zset_mut(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) => {
            // Argument errors are still reported for a missing key.
            return match select(&ZSet::new(), &args[2], &args[3], &req) {
                Err(e) => resp::error(out, e),
                Ok(_) => resp::array(out, 0),
            };
        }
        Ok(Some(z)) => z,
    };
    match select(z, &args[2], &args[3], &req) {
        Err(e) => resp::error(out, e),
        Ok(found) => write_elements(out, &found, req.with_scores),
    }
}

pub fn zrange(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    range_command(store, args, By::Rank, false, true, now_ms, out);
}

pub fn zrevrange(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    range_command(store, args, By::Rank, true, false, now_ms, out);
}

pub fn zrangebyscore(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    range_command(store, args, By::Score, false, false, now_ms, out);
}

pub fn zrevrangebyscore(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    range_command(store, args, By::Score, true, false, now_ms, out);
}

pub fn zrangebylex(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    range_command(store, args, By::Lex, false, false, now_ms, out);
}

pub fn zrevrangebylex(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    range_command(store, args, By::Lex, true, false, now_ms, out);
}

/// Replaces whatever is at `key` with the sorted set of `elements` (nothing when empty).
pub(super) fn store_elements(
    store: &mut Store,
    key: &[u8],
    elements: impl IntoIterator<Item = (Vec<u8>, f64)>,
) -> usize {
    let mut z = ZSet::new();
    for (member, score) in elements {
        z.insert(&member, score);
    }
    let len = z.len();
    store.remove(key);
    if len > 0 {
        store.insert(
            key,
            Entry {
                value: Value::ZSet(Box::new(z)),
                expires_at_ms: None,
            },
        );
    }
    len
}

pub fn zrangestore(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let base = RangeRequest {
        by: By::Rank,
        rev: false,
        limit: None,
        with_scores: false,
    };
    let req = match range_request(args, 5, base, true, true) {
        Ok(r) => r,
        Err(e) => return resp::error(out, e),
    };
    let found = match zset_mut(store, &args[2], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) => select(&ZSet::new(), &args[3], &args[4], &req),
        Ok(Some(z)) => select(z, &args[3], &args[4], &req),
    };
    match found {
        Err(e) => resp::error(out, e),
        Ok(found) => {
            let n = store_elements(store, &args[1], found);
            resp::integer(out, n as i64);
        }
    }
}

fn remove_range(store: &mut Store, args: &[Vec<u8>], by: By, now_ms: u64, out: &mut Vec<u8>) {
    let req = RangeRequest {
        by,
        rev: false,
        limit: None,
        with_scores: false,
    };
    if by == By::Rank && (parse_int(&args[2]).is_none() || parse_int(&args[3]).is_none()) {
        return resp::error(out, NOT_INTEGER);
    }
    if by != By::Rank
        && let Err(e) = parse_range(&args[2], &args[3], by == By::Lex)
    {
        return resp::error(out, e);
    }
    let (removed, freed) = match zset_mut(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) => return resp::integer(out, 0),
        Ok(Some(z)) => match select(z, &args[2], &args[3], &req) {
            Err(e) => return resp::error(out, e),
            Ok(found) => {
                for (member, _) in &found {
                    z.remove(member);
                }
                (
                    found.len(),
                    found.iter().map(|(m, _)| element_size(m)).sum(),
                )
            }
        },
    };
    store.refund(freed);
    drop_if_empty(store, &args[1], now_ms);
    resp::integer(out, removed as i64);
}

pub fn zremrangebyrank(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    remove_range(store, args, By::Rank, now_ms, out);
}

pub fn zremrangebyscore(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    remove_range(store, args, By::Score, now_ms, out);
}

pub fn zremrangebylex(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    remove_range(store, args, By::Lex, now_ms, out);
}

pub fn zrandmember(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let with_scores = match args.len() {
        2 | 3 => false,
        4 if args[3].eq_ignore_ascii_case(b"WITHSCORES") => true,
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
    let z = match zset_mut(store, &args[1], now_ms) {
        Err(()) => return resp::error(out, WRONGTYPE),
        Ok(None) if count.is_some() => return resp::array(out, 0),
        Ok(None) => return resp::null(out),
        Ok(Some(z)) => z,
    };
    let picks = random_picks(z.len(), count);
    let chosen: Vec<(Vec<u8>, f64)> = picks
        .into_iter()
        .filter_map(|i| z.at(i).map(|(m, s)| (m.to_vec(), s)))
        .collect();
    if count.is_none() {
        return resp::bulk(out, &chosen[0].0);
    }
    write_elements(out, &chosen, with_scores);
}

pub fn zscan(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let pattern = match super::collection_scan_options(args) {
        Ok(p) => p,
        Err(e) => return resp::error(out, &e),
    };
    match zset_mut(store, &args[1], now_ms) {
        Err(()) => resp::error(out, WRONGTYPE),
        Ok(z) => {
            let found: Vec<(Vec<u8>, f64)> = z
                .map(|z| z.range(0, z.len()))
                .unwrap_or_default()
                .into_iter()
                .filter(|(m, _)| pattern.as_ref().is_none_or(|p| glob::matches(p, m)))
                .collect();
            resp::array(out, 2);
            resp::bulk(out, b"0");
            write_elements(out, &found, true);
        }
    }
}

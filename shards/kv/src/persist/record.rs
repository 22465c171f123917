//! The log's records: framed, checksummed, and decoded with every length checked, so a
//! torn or corrupt tail is found (never trusted, never a panic).
//!
//! A record is `[u32 length][u32 crc32 of the payload][payload]`, little-endian. Payloads:
//!
//! | kind | fields |
//! |---|---|
//! | 1 entry | db u8, key bytes, the entry (below) |
//! | 2 delete | db u8, key bytes |
//! | 3 flushdb | db u8 |
//! | 4 flushall | — |
//! | 5 swapdb | a u8, b u8 |
//!
//! `bytes` is a u32 length and the bytes. An entry is its type (0 string, 1 list, 2 hash,
//! 3 set, 4 sorted set), its expiry (u64 Unix ms, 0 for none) and its value: a string's
//! bytes; a count and that many elements (hash: field, value; sorted set: f64 score bits,
//! member).

use std::collections::VecDeque;

use crate::{
    hash::{FxHashMap, FxHashSet},
    store::{Entry, Value, ZSet},
};

/// The most bytes one record's payload may claim (a longer claim is corruption).
pub const MAX_RECORD: usize = 1 << 30;

/// What a record says.
#[derive(Debug, PartialEq)]
pub enum Record {
    Entry(u8, Vec<u8>, Entry),
    Delete(u8, Vec<u8>),
    FlushDb(u8),
    FlushAll,
    SwapDb(u8, u8),
}

/// CRC-32 (IEEE), bitwise-table-free but byte-at-a-time with a small table.
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    });
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Frames a payload written by `fill` into `out`.
fn frame(out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    fill(out);
    let len = (out.len() - start - 8) as u32;
    let crc = crc32(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Appends the record of `key`'s state in `db`: its entry, or a delete.
pub fn put_key(out: &mut Vec<u8>, db: u8, key: &[u8], entry: Option<&Entry>) {
    frame(out, |p| match entry {
        None => {
            p.push(2);
            p.push(db);
            put_bytes(p, key);
        }
        Some(entry) => {
            p.push(1);
            p.push(db);
            put_bytes(p, key);
            put_entry(p, entry);
        }
    });
}

pub fn put_flushdb(out: &mut Vec<u8>, db: u8) {
    frame(out, |p| p.extend_from_slice(&[3, db]));
}

pub fn put_flushall(out: &mut Vec<u8>) {
    frame(out, |p| p.push(4));
}

pub fn put_swapdb(out: &mut Vec<u8>, a: u8, b: u8) {
    frame(out, |p| p.extend_from_slice(&[5, a, b]));
}

fn put_entry(p: &mut Vec<u8>, entry: &Entry) {
    let kind = match &entry.value {
        Value::Str(_) => 0,
        Value::List(_) => 1,
        Value::Hash(_) => 2,
        Value::Set(_) => 3,
        Value::ZSet(_) => 4,
    };
    p.push(kind);
    p.extend_from_slice(&entry.expires_at_ms.unwrap_or(0).to_le_bytes());
    match &entry.value {
        Value::Str(s) => put_bytes(p, s),
        Value::List(l) => {
            p.extend_from_slice(&(l.len() as u32).to_le_bytes());
            l.iter().for_each(|e| put_bytes(p, e));
        }
        Value::Hash(h) => {
            p.extend_from_slice(&(h.len() as u32).to_le_bytes());
            for (f, v) in h {
                put_bytes(p, f);
                put_bytes(p, v);
            }
        }
        Value::Set(s) => {
            p.extend_from_slice(&(s.len() as u32).to_le_bytes());
            s.iter().for_each(|e| put_bytes(p, e));
        }
        Value::ZSet(z) => {
            p.extend_from_slice(&(z.len() as u32).to_le_bytes());
            for (member, score) in z.iter() {
                p.extend_from_slice(&score.to_bits().to_le_bytes());
                put_bytes(p, member);
            }
        }
    }
}

/// A reader over a payload; every read is checked.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        self.take(n).map(<[u8]>::to_vec)
    }

    /// A count of elements, each at least `min` bytes: bounded by what is left.
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n.saturating_mul(min) <= self.0.len()).then_some(n)
    }
}

fn decode_payload(payload: &[u8]) -> Option<Record> {
    let mut c = Cursor(payload);
    let record = match c.u8()? {
        1 => {
            let db = c.u8()?;
            let key = c.bytes()?;
            let kind = c.u8()?;
            let at = c.u64()?;
            let value = match kind {
                0 => Value::Str(c.bytes()?.as_slice().into()),
                1 => {
                    let n = c.count(4)?;
                    let mut l = VecDeque::with_capacity(n);
                    for _ in 0..n {
                        l.push_back(c.bytes()?);
                    }
                    Value::List(l)
                }
                2 => {
                    let n = c.count(8)?;
                    let mut h = FxHashMap::default();
                    for _ in 0..n {
                        let f = c.bytes()?;
                        h.insert(f, c.bytes()?);
                    }
                    Value::Hash(h)
                }
                3 => {
                    let n = c.count(4)?;
                    let mut s = FxHashSet::default();
                    for _ in 0..n {
                        s.insert(c.bytes()?);
                    }
                    Value::Set(s)
                }
                4 => {
                    let n = c.count(12)?;
                    let mut z = ZSet::new();
                    for _ in 0..n {
                        let score = f64::from_bits(c.u64()?);
                        z.insert(&c.bytes()?, score);
                    }
                    Value::ZSet(Box::new(z))
                }
                _ => return None,
            };
            Record::Entry(
                db,
                key,
                Entry {
                    value,
                    expires_at_ms: (at != 0).then_some(at),
                },
            )
        }
        2 => {
            let db = c.u8()?;
            Record::Delete(db, c.bytes()?)
        }
        3 => Record::FlushDb(c.u8()?),
        4 => Record::FlushAll,
        5 => Record::SwapDb(c.u8()?, c.u8()?),
        _ => return None,
    };
    c.0.is_empty().then_some(record)
}

/// The next record of `data` and its framed length; `None` when what is left is not a
/// whole, intact record (a torn tail, or corruption).
pub fn decode(data: &[u8]) -> Option<(Record, usize)> {
    let mut c = Cursor(data);
    let len = c.u32()? as usize;
    let crc = c.u32()?;
    if len > MAX_RECORD {
        return None;
    }
    let payload = c.take(len)?;
    if crc32(payload) != crc {
        return None;
    }
    Some((decode_payload(payload)?, 8 + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: Value, at: Option<u64>) -> Entry {
        Entry {
            value,
            expires_at_ms: at,
        }
    }

    #[test]
    fn every_record_round_trips_and_a_torn_tail_is_refused() {
        let mut z = ZSet::new();
        z.insert(b"m", 1.5);
        z.insert(b"n", -2.0);
        let entries = vec![
            entry(Value::Str(b"v".as_slice().into()), Some(123)),
            entry(
                Value::List(VecDeque::from(vec![b"a".to_vec(), b"b".to_vec()])),
                None,
            ),
            entry(
                Value::Hash([(b"f".to_vec(), b"v".to_vec())].into_iter().collect()),
                None,
            ),
            entry(Value::Set([b"x".to_vec()].into_iter().collect()), None),
            entry(Value::ZSet(Box::new(z)), None),
        ];
        let mut out = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            put_key(&mut out, i as u8, b"key", Some(e));
        }
        put_key(&mut out, 3, b"gone", None);
        put_flushdb(&mut out, 2);
        put_flushall(&mut out);
        put_swapdb(&mut out, 0, 9);
        let mut at = 0;
        let mut decoded = Vec::new();
        while let Some((record, n)) = decode(&out[at..]) {
            decoded.push(record);
            at += n;
        }
        assert_eq!(at, out.len());
        for (i, e) in entries.into_iter().enumerate() {
            assert_eq!(decoded[i], Record::Entry(i as u8, b"key".to_vec(), e));
        }
        assert_eq!(decoded[5], Record::Delete(3, b"gone".to_vec()));
        assert_eq!(
            decoded[6..],
            [Record::FlushDb(2), Record::FlushAll, Record::SwapDb(0, 9)]
        );
        // Every cut inside the last record, and a flipped byte, are refused.
        let mut last = Vec::new();
        put_key(
            &mut last,
            0,
            b"k",
            Some(&entry(Value::Str(b"vv".as_slice().into()), None)),
        );
        for cut in 0..last.len() {
            assert!(decode(&last[..cut]).is_none(), "cut at {cut}");
        }
        for i in 8..last.len() {
            let mut bad = last.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_none(), "flip at {i}");
        }
        assert!(decode(&[0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]).is_none());
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}

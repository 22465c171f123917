//! One shard's keyspace: strings, hashes and lists with optional expiry times, and the
//! bytes they use. A store is owned by its shard (`!Sync` in practice: it lives in a
//! thread-local on the shard) and is only touched by commands that run there, so it needs
//! no locks.
//!
//! Time is passed in (`now_ms`, Unix milliseconds) by the caller, so tests drive expiry
//! with a clock of their own. Expiry is lazy (a key found expired on access is removed)
//! plus an active sweep ([`Store::sweep`]) that the service runs on a timer.
//!
//! The keys are split into segments, each a map holding the keys of a range of *slots*
//! (a slot is a hash of the key, below [`SLOTS`]). SCAN and the sweep walk whole segments
//! in slot order and resume at a slot: a key never changes slot, so a resumed walk neither
//! repeats nor skips the keys that stayed put, whatever else was inserted or removed (one
//! map's iteration order changes with every rehash or removal), and resuming costs
//! nothing (skipping `cursor` entries of one map's iteration cost O(cursor) a call, so a
//! full SCAN was quadratic). A store starts as one segment over every slot; a segment that
//! grows past [`SPLIT_AT`] keys splits its slot range in two halves. Segments never merge,
//! so a slot handed out as a cursor stays the start of a segment.
//!
//! Why not a fixed number of segments: 4096 of them cost 11% CPU per SET and GET at 100k
//! keys (measured): the headers and the control bytes of 4096 small maps are spread over
//! ~600 KiB where one map's control bytes take 130 KiB, and lookups missed cache more.
//! Segments of a few hundred keys keep the control bytes about as dense as one map's.

pub mod bytes;
pub mod dbs;
pub mod memory;
pub mod zset;

use std::{collections::VecDeque, hash::BuildHasher};

pub use self::bytes::{Key, Str};
pub use self::dbs::{DATABASES, Databases};
pub use self::{memory::entry_size, zset::ZSet};
use crate::hash::{FxBuild, FxHashMap, FxHashSet};

/// How many slots the keys are spread over (a power of two): the most segments a store
/// splits into, and the bound of a shard's SCAN position.
pub const SLOTS: usize = 1 << 14;

/// A segment with more keys than this splits in two (unless it holds a single slot, past
/// ~8M keys a shard): the most one SCAN or sweep step looks at beyond its COUNT or
/// budget, and the most keys one split moves (a few tens of µs).
pub const SPLIT_AT: usize = 512;

/// The slot of `key`: bits 32.. of the map's hash of it (hashed as `[u8]` hashes, as the
/// maps hash the `Key` stored and the `&[u8]` looked up). Not the low bits, which pick the
/// bucket inside a segment's map (the keys of one segment would share them and crowd a few
/// buckets), nor the top 7, the map's control tag; a map would need 2^32 buckets to reach
/// bit 32.
#[inline]
fn slot_of(key: &[u8]) -> usize {
    (FxBuild::default().hash_one(key) >> 32) as usize & (SLOTS - 1)
}

/// The keys of slots `start..end` (a power-of-two range, aligned to its size).
struct Segment {
    map: FxHashMap<Key, Entry>,
    start: u32,
    end: u32,
}

impl Segment {
    fn new(map: FxHashMap<Key, Entry>, start: usize, end: usize) -> Self {
        Segment {
            map,
            start: start as u32,
            end: end as u32,
        }
    }
}

/// A value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Up to 30 bytes inline (no allocation per SET of a short value; see [`Str`]).
    Str(Str),
    Hash(FxHashMap<Vec<u8>, Vec<u8>>),
    List(VecDeque<Vec<u8>>),
    Set(FxHashSet<Vec<u8>>),
    ZSet(Box<ZSet>),
}

impl Value {
    /// The name TYPE answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }
}

/// A key's value and expiry time (Unix ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub value: Value,
    pub expires_at_ms: Option<u64>,
}

impl Entry {
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }
}

/// Counts the INFO command reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreStats {
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub expired_keys: u64,
    pub evicted_keys: u64,
    pub commands: u64,
}

/// The running totals over all segments.
#[derive(Default)]
struct Totals {
    /// Keys.
    len: usize,
    /// Keys with an expiry time.
    expires: usize,
    /// Approximate bytes of keys and values (see [`entry_size`]).
    used_bytes: usize,
}

impl Totals {
    /// Takes a removed entry's share out of the counts.
    fn forget(&mut self, old: &Entry, key_len: usize) {
        self.len -= 1;
        if old.expires_at_ms.is_some() {
            self.expires -= 1;
        }
        let size = entry_size(&[], old) + key_len;
        self.used_bytes = self.used_bytes.saturating_sub(size);
    }
}

/// One shard's keys.
pub struct Store {
    /// The keys, in segments (in the order they were made, not in slot order). Keys of up
    /// to 22 bytes sit inline in their map slots (see [`Key`]): a probe compares them
    /// without touching another cache line, and they cost no allocation.
    segments: Vec<Segment>,
    /// For every slot, the index of its segment in `segments` (32 KiB).
    directory: Box<[u16]>,
    totals: Totals,
    /// Writes that may grow memory are refused past this (`None`: no limit).
    max_bytes: Option<usize>,
    /// The slot where the next active sweep resumes.
    sweep_cursor: usize,
    pub stats: StoreStats,
    /// Per key, when it was last used and how often (kept only while an LRU or LFU
    /// eviction policy is set: see [`set_tracking`]).
    access: FxHashMap<Key, Access>,
}

/// A key's use, for the LRU and LFU eviction policies (Redis's 24-bit clock and
/// logarithmic 8-bit counter, approximated the same way).
#[derive(Clone, Copy, Debug)]
pub struct Access {
    /// Unix ms (of the kv's clock) at the last use.
    pub at: u64,
    /// Logarithmic use counter (Redis's LFU: starts at 5, grows ever more slowly).
    pub counter: u8,
    /// Minute of the counter's last decay.
    decayed_at: u32,
}

thread_local! {
    /// Use tracking: 0 none, 1 last use (LRU), 2 frequency (LFU).
    static TRACK: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// Sets what this shard's stores track about key use (see [`Access`]).
pub fn set_tracking(mode: u8) {
    TRACK.with(|t| t.set(mode));
}

fn tracking() -> u8 {
    TRACK.with(std::cell::Cell::get)
}

impl Access {
    fn new(now_ms: u64) -> Self {
        Access {
            at: now_ms,
            counter: 5,
            decayed_at: (now_ms / 60_000) as u32,
        }
    }

    /// The counter after decay (one per minute unused, as `lfu-decay-time 1`).
    pub fn decayed(&self, now_ms: u64) -> u8 {
        let minutes = ((now_ms / 60_000) as u32).saturating_sub(self.decayed_at);
        self.counter.saturating_sub(minutes.min(255) as u8)
    }

    fn used(&mut self, now_ms: u64) {
        self.counter = self.decayed(now_ms);
        self.decayed_at = (now_ms / 60_000) as u32;
        self.at = now_ms;
        if self.counter < 255 {
            // Redis's `lfu-log-factor 10`: p = 1 / ((counter - 5) × 10 + 1).
            let base = f64::from(self.counter.saturating_sub(5));
            let odds = (base * 10.0 + 1.0) as usize;
            if crate::commands::random_below(odds.max(1)) == 0 {
                self.counter += 1;
            }
        }
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new(None)
    }
}

impl Store {
    pub fn new(max_bytes: Option<usize>) -> Self {
        Store {
            segments: vec![Segment::new(FxHashMap::default(), 0, SLOTS)],
            directory: vec![0; SLOTS].into_boxed_slice(),
            totals: Totals::default(),
            max_bytes,
            sweep_cursor: 0,
            stats: StoreStats::default(),
            access: FxHashMap::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.totals.len
    }

    pub fn is_empty(&self) -> bool {
        self.totals.len == 0
    }

    pub fn expires(&self) -> usize {
        self.totals.expires
    }

    pub fn used_bytes(&self) -> usize {
        self.totals.used_bytes
    }

    pub fn max_bytes(&self) -> Option<usize> {
        self.max_bytes
    }

    /// True when a write that may grow memory must be refused with OOM.
    pub fn over_limit(&self) -> bool {
        self.max_bytes
            .is_some_and(|max| self.totals.used_bytes > max)
    }

    /// Notes a use of `key` (when use is tracked).
    #[inline]
    fn used(&mut self, key: &[u8], now_ms: u64) {
        if tracking() == 0 {
            return;
        }
        match self.access.get_mut(key) {
            Some(access) => access.used(now_ms),
            None => {
                self.access.insert(Key::from(key), Access::new(now_ms));
            }
        }
    }

    /// What is known of `key`'s use (nothing when use was not tracked).
    pub fn access(&self, key: &[u8]) -> Option<Access> {
        self.access.get(key).copied()
    }

    /// The live entry of `key`, removing it first if it has expired.
    pub fn get(&mut self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        let segment = self.segment_of(key);
        self.expire_if_due(segment, key, now_ms);
        self.used(key, now_ms);
        self.segments[segment].map.get(key)
    }

    /// The live entry of `key`, without removing it when it has expired.
    pub fn peek(&self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        self.segments[self.segment_of(key)]
            .map
            .get(key)
            .filter(|e| !e.is_expired(now_ms))
    }

    /// The live entry of `key` for a change; the caller reports size changes with
    /// [`charge`](Self::charge)/[`refund`](Self::refund).
    pub fn get_mut(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        let segment = self.segment_of(key);
        self.expire_if_due(segment, key, now_ms);
        self.used(key, now_ms);
        self.segments[segment].map.get_mut(key)
    }

    /// The index of the segment that holds (or would hold) `key`.
    #[inline]
    fn segment_of(&self, key: &[u8]) -> usize {
        usize::from(self.directory[slot_of(key)])
    }

    /// Counts a hit or a miss (for reads, as Redis's INFO does).
    pub fn count_lookup(&mut self, hit: bool) {
        if hit {
            self.stats.keyspace_hits += 1;
        } else {
            self.stats.keyspace_misses += 1;
        }
    }

    /// Removes `key` (in `segment`) if it has expired.
    fn expire_if_due(&mut self, segment: usize, key: &[u8], now_ms: u64) {
        if self.totals.expires == 0 {
            return;
        }
        let map = &mut self.segments[segment].map;
        if map.get(key).is_some_and(|e| e.is_expired(now_ms))
            && let Some(old) = map.remove(key)
        {
            self.totals.forget(&old, key.len());
            self.stats.expired_keys += 1;
            self.access.remove(key);
        }
    }

    /// Inserts or replaces `key` (the old entry, if any, is returned).
    pub fn insert(&mut self, key: &[u8], entry: Entry) -> Option<Entry> {
        let size = entry_size(key, &entry);
        if entry.expires_at_ms.is_some() {
            self.totals.expires += 1;
        }
        self.totals.len += 1;
        self.totals.used_bytes += size;
        // A replaced key keeps its stored copy: only a new key is built (and, past the
        // inline size, allocated), where `insert` would build one and drop it.
        let segment = self.segment_of(key);
        let map = &mut self.segments[segment].map;
        let old = match map.get_mut(key) {
            Some(slot) => Some(std::mem::replace(slot, entry)),
            None => {
                map.insert(Key::from(key), entry);
                if map.len() > SPLIT_AT {
                    self.split(segment);
                }
                None
            }
        };
        if let Some(old) = &old {
            self.totals.forget(old, key.len());
        }
        old
    }

    /// Removes `key` (expired or not).
    /// Splits segment `index` into the lower and the upper half of its slots; the upper
    /// half becomes a new segment. A single slot stays as it is.
    fn split(&mut self, index: usize) {
        let segment = &mut self.segments[index];
        let (start, end) = (segment.start as usize, segment.end as usize);
        if end - start < 2 {
            return;
        }
        let mid = start + (end - start) / 2;
        let upper = segment
            .map
            .extract_if(|key, _| slot_of(key) >= mid)
            .collect();
        segment.end = mid as u32;
        // At most SLOTS segments, one per slot: every index fits a u16.
        let new = self.segments.len() as u16;
        self.segments.push(Segment::new(upper, mid, end));
        self.directory[mid..end].fill(new);
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let segment = self.segment_of(key);
        if !self.access.is_empty() {
            self.access.remove(key);
        }
        let old = self.segments[segment].map.remove(key)?;
        self.totals.forget(&old, key.len());
        Some(old)
    }

    /// Sets or clears the expiry time of a live key; false when there is no such key.
    pub fn set_expiry(&mut self, key: &[u8], at_ms: Option<u64>, now_ms: u64) -> bool {
        let Some(entry) = self.get_mut(key, now_ms) else {
            return false;
        };
        let had = entry.expires_at_ms.is_some();
        entry.expires_at_ms = at_ms;
        match (had, at_ms.is_some()) {
            (false, true) => self.totals.expires += 1,
            (true, false) => self.totals.expires -= 1,
            _ => {}
        }
        true
    }

    /// Grows the used bytes by `bytes` (an in-place change made a value larger).
    pub fn charge(&mut self, bytes: usize) {
        self.totals.used_bytes += bytes;
    }

    /// Shrinks the used bytes by `bytes`.
    pub fn refund(&mut self, bytes: usize) {
        self.totals.used_bytes = self.totals.used_bytes.saturating_sub(bytes);
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.segments = vec![Segment::new(FxHashMap::default(), 0, SLOTS)];
        self.directory.fill(0);
        self.totals = Totals::default();
        self.sweep_cursor = 0;
        self.access = FxHashMap::default();
    }

    /// Live keys from slot `cursor` on, filtered by `keep`, and the slot to resume at (0
    /// when done). Whole segments are looked at until at least `count` keys were (or every
    /// segment was): `count` is a hint, as in Redis, and a call may return up to a
    /// segment's worth ([`SPLIT_AT`]) more. A key stays in its slot, so one present from
    /// the first call to the last is returned exactly once, whatever else changes in
    /// between. A cursor of [`SLOTS`] or more is done: nothing, and 0.
    pub fn scan(
        &self,
        cursor: usize,
        count: usize,
        now_ms: u64,
        mut keep: impl FnMut(&[u8], &Entry) -> bool,
    ) -> (Vec<Vec<u8>>, usize) {
        let mut keys = Vec::new();
        let mut seen = 0;
        let mut slot = cursor;
        while slot < SLOTS && seen < count {
            let segment = &self.segments[usize::from(self.directory[slot])];
            // A cursor inside a segment (one handed out before a FLUSHALL merged the
            // segments back into one) skips the keys of the slots before it.
            let skip = slot > segment.start as usize;
            seen += segment.map.len();
            for (key, entry) in &segment.map {
                if (!skip || slot_of(key) >= slot) && !entry.is_expired(now_ms) && keep(key, entry)
                {
                    keys.push(key.to_vec());
                }
            }
            slot = segment.end as usize;
        }
        (keys, if slot >= SLOTS { 0 } else { slot })
    }

    /// A random live key (a random non-empty segment, a random key of it), `None` when
    /// there is none; tries a bounded number of picks before walking every segment.
    pub fn random_key(&self, now_ms: u64) -> Option<Vec<u8>> {
        let live: Vec<&Segment> = self.segments.iter().filter(|s| !s.map.is_empty()).collect();
        if live.is_empty() {
            return None;
        }
        for _ in 0..16 {
            let segment = live[crate::commands::random_below(live.len())];
            let skip = crate::commands::random_below(segment.map.len());
            if let Some((key, entry)) = segment.map.iter().nth(skip)
                && !entry.is_expired(now_ms)
            {
                return Some(key.to_vec());
            }
        }
        live.iter()
            .flat_map(|s| s.map.iter())
            .find(|(_, e)| !e.is_expired(now_ms))
            .map(|(k, _)| k.to_vec())
    }

    /// The active sweep: removes the expired keys of whole segments from where the last
    /// sweep stopped, stopping before a segment that would take the keys looked at past
    /// `budget` (the first segment is always taken, so a sweep always moves on) or after
    /// one lap. Returns how many it removed.
    pub fn sweep(&mut self, now_ms: u64, budget: usize) -> usize {
        if self.totals.expires == 0 {
            self.sweep_cursor = 0;
            return 0;
        }
        let mut slot = self.sweep_cursor;
        let (mut seen, mut removed) = (0, 0);
        for _ in 0..self.segments.len() {
            let segment = &mut self.segments[usize::from(self.directory[slot])];
            if seen > 0 && seen + segment.map.len() > budget {
                break;
            }
            seen += segment.map.len();
            let totals = &mut self.totals;
            let access = &mut self.access;
            segment.map.retain(|key, entry| {
                let expired = entry.is_expired(now_ms);
                if expired {
                    if !access.is_empty() {
                        access.remove(key.as_ref());
                    }
                    totals.forget(entry, key.len());
                    removed += 1;
                }
                !expired
            });
            slot = segment.end as usize & (SLOTS - 1);
            if self.totals.expires == 0 {
                break;
            }
        }
        self.sweep_cursor = slot;
        self.stats.expired_keys += removed as u64;
        removed
    }
}

#[cfg(test)]
mod tests;

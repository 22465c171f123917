//! One shard's keyspace: strings, hashes and lists with optional expiry times, and the
//! bytes they use. A store is owned by its shard (`!Sync` in practice: it lives in a
//! thread-local on the shard) and is only touched by commands that run there, so it needs
//! no locks.
//!
//! Time is passed in (`now_ms`, Unix milliseconds) by the caller, so tests drive expiry
//! with a clock of their own. Expiry is lazy (a key found expired on access is removed)
//! plus an active sweep ([`Store::sweep`]) that the service runs on a timer.

pub mod bytes;
pub mod memory;

use std::collections::VecDeque;

pub use self::bytes::{Key, Str};
pub use self::memory::entry_size;
use crate::hash::FxHashMap;

/// A value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Up to 30 bytes inline (no allocation per SET of a short value; see [`Str`]).
    Str(Str),
    Hash(FxHashMap<Vec<u8>, Vec<u8>>),
    List(VecDeque<Vec<u8>>),
}

impl Value {
    /// The name TYPE answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
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
    pub commands: u64,
}

/// One shard's keys.
#[derive(Default)]
pub struct Store {
    /// Keys of up to 22 bytes sit inline in their slots (see [`Key`]): a probe compares
    /// them without touching another cache line, and they cost no allocation.
    map: FxHashMap<Key, Entry>,
    /// Keys with an expiry time.
    expires: usize,
    /// Approximate bytes of keys and values (see [`entry_size`]).
    used_bytes: usize,
    /// Writes that may grow memory are refused past this (`None`: no limit).
    max_bytes: Option<usize>,
    /// Where the next active sweep resumes (an index into the map's iteration order).
    sweep_cursor: usize,
    pub stats: StoreStats,
}

impl Store {
    pub fn new(max_bytes: Option<usize>) -> Self {
        Store {
            max_bytes,
            ..Store::default()
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn expires(&self) -> usize {
        self.expires
    }

    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    pub fn max_bytes(&self) -> Option<usize> {
        self.max_bytes
    }

    /// True when a write that may grow memory must be refused with OOM.
    pub fn over_limit(&self) -> bool {
        self.max_bytes.is_some_and(|max| self.used_bytes > max)
    }

    /// The live entry of `key`, removing it first if it has expired.
    pub fn get(&mut self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        self.expire_if_due(key, now_ms);
        self.map.get(key)
    }

    /// The live entry of `key` for a change; the caller reports size changes with
    /// [`charge`](Self::charge)/[`refund`](Self::refund).
    pub fn get_mut(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        self.expire_if_due(key, now_ms);
        self.map.get_mut(key)
    }

    /// Counts a hit or a miss (for reads, as Redis's INFO does).
    pub fn count_lookup(&mut self, hit: bool) {
        if hit {
            self.stats.keyspace_hits += 1;
        } else {
            self.stats.keyspace_misses += 1;
        }
    }

    fn expire_if_due(&mut self, key: &[u8], now_ms: u64) {
        if self.expires == 0 {
            return;
        }
        if self.map.get(key).is_some_and(|e| e.is_expired(now_ms)) {
            self.remove(key);
            self.stats.expired_keys += 1;
        }
    }

    /// Inserts or replaces `key` (the old entry, if any, is returned).
    pub fn insert(&mut self, key: &[u8], entry: Entry) -> Option<Entry> {
        let size = entry_size(key, &entry);
        if entry.expires_at_ms.is_some() {
            self.expires += 1;
        }
        // A replaced key keeps its stored copy: only a new key is built (and, past the
        // inline size, allocated), where `insert` would build one and drop it.
        let old = match self.map.get_mut(key) {
            Some(slot) => Some(std::mem::replace(slot, entry)),
            None => {
                self.map.insert(Key::from(key), entry);
                None
            }
        };
        self.used_bytes += size;
        if let Some(old) = &old {
            self.forget(old, key.len());
        }
        old
    }

    /// Removes `key` (expired or not).
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let old = self.map.remove(key)?;
        self.forget(&old, key.len());
        Some(old)
    }

    /// Takes an entry's share out of the counts .
    fn forget(&mut self, old: &Entry, key_len: usize) {
        if old.expires_at_ms.is_some() {
            self.expires -= 1;
        }
        let size = entry_size(&[], old) + key_len;
        self.used_bytes = self.used_bytes.saturating_sub(size);
    }

    /// Sets or clears the expiry time of a live key; false when there is no such key.
    pub fn set_expiry(&mut self, key: &[u8], at_ms: Option<u64>, now_ms: u64) -> bool {
        let Some(entry) = self.get_mut(key, now_ms) else {
            return false;
        };
        let had = entry.expires_at_ms.is_some();
        entry.expires_at_ms = at_ms;
        match (had, at_ms.is_some()) {
            (false, true) => self.expires += 1,
            (true, false) => self.expires -= 1,
            _ => {}
        }
        true
    }

    /// Grows the used bytes by `bytes` (an in-place change made a value larger).
    pub fn charge(&mut self, bytes: usize) {
        self.used_bytes += bytes;
    }

    /// Shrinks the used bytes by `bytes`.
    pub fn refund(&mut self, bytes: usize) {
        self.used_bytes = self.used_bytes.saturating_sub(bytes);
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.map = FxHashMap::default();
        self.expires = 0;
        self.used_bytes = 0;
        self.sweep_cursor = 0;
    }

    /// Live keys, in the map's order, starting at `cursor`: at most `count` are looked at.
    /// Returns the keys (filtered by `keep`) and the next cursor (0 when done).
    pub fn scan(
        &self,
        cursor: usize,
        count: usize,
        now_ms: u64,
        mut keep: impl FnMut(&[u8], &Entry) -> bool,
    ) -> (Vec<Vec<u8>>, usize) {
        let mut keys = Vec::new();
        let mut seen = 0;
        for (key, entry) in self.map.iter().skip(cursor).take(count) {
            seen += 1;
            if !entry.is_expired(now_ms) && keep(key, entry) {
                keys.push(key.to_vec());
            }
        }
        let next = cursor + seen;
        (keys, if next >= self.map.len() { 0 } else { next })
    }

    /// The active sweep: looks at up to `budget` keys from where the last sweep stopped and
    /// removes the expired ones. Returns how many it removed.
    pub fn sweep(&mut self, now_ms: u64, budget: usize) -> usize {
        if self.expires == 0 {
            self.sweep_cursor = 0;
            return 0;
        }
        let (expired, next) = self.scan_expired(now_ms, budget);
        self.sweep_cursor = next;
        for key in &expired {
            self.remove(key);
        }
        self.stats.expired_keys += expired.len() as u64;
        expired.len()
    }

    fn scan_expired(&self, now_ms: u64, budget: usize) -> (Vec<Vec<u8>>, usize) {
        let cursor = if self.sweep_cursor >= self.map.len() {
            0
        } else {
            self.sweep_cursor
        };
        let mut expired = Vec::new();
        let mut seen = 0;
        for (key, entry) in self.map.iter().skip(cursor).take(budget) {
            seen += 1;
            if entry.is_expired(now_ms) {
                expired.push(key.to_vec());
            }
        }
        // Removing the expired keys shifts the later ones back by as many places.
        let next = cursor + seen - expired.len();
        (expired, next)
    }
}

#[cfg(test)]
mod tests;

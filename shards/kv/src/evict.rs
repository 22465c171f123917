//! `maxmemory` and its eviction policies, as Redis approximates them: when a write that
//! may grow memory finds its shard past its share of `maxmemory` (the limit split evenly
//! over the shards), the shard evicts keys until it is under it again, each one the best
//! of a few sampled keys (`maxmemory-samples`, 5 by default, per database in use):
//!
//! - `noeviction`: nothing is evicted; the write is refused with `-OOM`;
//! - `allkeys-lru` / `volatile-lru`: the least recently used (keys with an expiry only,
//!   for `volatile-`);
//! - `allkeys-lfu` / `volatile-lfu`: the least frequently used (Redis's logarithmic
//!   counter, decaying one step per idle minute);
//! - `volatile-ttl`: the one that expires soonest;
//! - `allkeys-random` / `volatile-random`: any.
//!
//! Use is tracked (see `store::Access`) only while an LRU or LFU policy is set, so the
//! other policies cost nothing on reads. Keys locked by a running transaction are not
//! evicted. When no key can be evicted (no candidates, e.g. `volatile-*` with no key
//! having an expiry), the write is refused with `-OOM`. At most [`MAX_PER_WRITE`] keys are
//! evicted for one write (bounded work); the next write goes on.

use std::sync::atomic::Ordering;

use crate::{
    commands::random_below,
    store::{self, Databases},
};

/// Keys one write may evict at most.
pub const MAX_PER_WRITE: usize = 1024;

/// `maxmemory-policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Policy {
    NoEviction = 0,
    AllKeysLru,
    AllKeysLfu,
    AllKeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

const NAMES: [(&str, Policy); 8] = [
    ("noeviction", Policy::NoEviction),
    ("allkeys-lru", Policy::AllKeysLru),
    ("allkeys-lfu", Policy::AllKeysLfu),
    ("allkeys-random", Policy::AllKeysRandom),
    ("volatile-lru", Policy::VolatileLru),
    ("volatile-lfu", Policy::VolatileLfu),
    ("volatile-random", Policy::VolatileRandom),
    ("volatile-ttl", Policy::VolatileTtl),
];

impl Policy {
    pub fn parse(text: &str) -> Option<Policy> {
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(text))
            .map(|(_, p)| *p)
    }

    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("noeviction", |(n, _)| n)
    }

    pub fn from_u8(v: u8) -> Policy {
        NAMES
            .get(usize::from(v))
            .map_or(Policy::NoEviction, |(_, p)| *p)
    }

    fn volatile(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }

    /// What the stores track about key use under this policy (see `store::set_tracking`).
    fn tracking(self) -> u8 {
        match self {
            Policy::AllKeysLru | Policy::VolatileLru => 1,
            Policy::AllKeysLfu | Policy::VolatileLfu => 2,
            _ => 0,
        }
    }
}

/// The policy this shard runs under now; keeps the stores' use tracking in step with it.
/// One atomic load per write command when a limit is set.
pub fn policy(dbs: &Databases) -> Policy {
    let policy = dbs.live().map_or(Policy::NoEviction, |l| {
        Policy::from_u8(l.policy.load(Ordering::Relaxed))
    });
    store::set_tracking(if dbs.max_bytes().is_some() {
        policy.tracking()
    } else {
        0
    });
    policy
}

/// Evicts keys until the shard is under its share of `maxmemory`; false when it could not
/// (the write is then refused with `-OOM`).
pub fn make_room(dbs: &mut Databases, now_ms: u64) -> bool {
    let policy = policy(dbs);
    if policy == Policy::NoEviction {
        return false;
    }
    let samples = dbs
        .live()
        .map_or(5, |l| l.samples.load(Ordering::Relaxed).max(1));
    for _ in 0..MAX_PER_WRITE {
        if !dbs.over_limit() {
            return true;
        }
        let Some((db, key)) = pick(dbs, policy, samples, now_ms) else {
            return false;
        };
        let store = dbs.db(db);
        store.remove(&key);
        store.stats.evicted_keys += 1;
        crate::persist::note(db, &key);
        crate::watch::touch(db, &key);
        crate::notify::keyspace(db, b"evicted", &key, crate::notify::EVICTED);
    }
    !dbs.over_limit()
}

/// The best of `samples` sampled keys per database in use (lower score evicts first).
fn pick(dbs: &Databases, policy: Policy, samples: u8, now_ms: u64) -> Option<(usize, Vec<u8>)> {
    let mut best: Option<(u64, usize, Vec<u8>)> = None;
    for (db, store) in dbs.iter() {
        if store.is_empty() || policy.volatile() && store.expires() == 0 {
            continue;
        }
        // Bounded: a volatile pick may miss keys without expiry; three tries per sample.
        let mut found = 0;
        for _ in 0..usize::from(samples) * 3 {
            if found == samples {
                break;
            }
            let Some(key) = store.random_key(now_ms) else {
                break;
            };
            let Some(entry) = store.peek(&key, now_ms) else {
                continue;
            };
            if policy.volatile() && entry.expires_at_ms.is_none() {
                continue;
            }
            if !crate::txn::free(0, std::slice::from_ref(&key)) {
                continue;
            }
            found += 1;
            let access = store.access(&key);
            let score = match policy {
                Policy::AllKeysLru | Policy::VolatileLru => access.map_or(now_ms, |a| a.at),
                Policy::AllKeysLfu | Policy::VolatileLfu => {
                    access.map_or(5, |a| u64::from(a.decayed(now_ms)))
                }
                Policy::VolatileTtl => entry.expires_at_ms.unwrap_or(u64::MAX),
                _ => random_below(1 << 20) as u64,
            };
            if best.as_ref().is_none_or(|(s, _, _)| score < *s) {
                best = Some((score, db, key));
            }
        }
    }
    best.map(|(_, db, key)| (db, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_by_redis_name_and_round_trip() {
        for (name, policy) in NAMES {
            assert_eq!(Policy::parse(&name.to_uppercase()), Some(policy));
            assert_eq!(Policy::from_u8(policy as u8), policy);
            assert_eq!(policy.name(), name);
        }
        assert_eq!(Policy::parse("lru"), None);
    }
}

//! CONFIG GET/SET: the server's parameters, process-wide as in Redis (a connection on any
//! shard sees what another set). Only the admin path touches them (CONFIG, OBJECT
//! ENCODING), never a command's fast path, so one mutex is enough.
//!
//! Most parameters are accepted and reported without changing behaviour (persistence,
//! replication, latency tracking, ...): what a client may set without error. The ones
//! that do change behaviour: the encoding thresholds OBJECT ENCODING reports against.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::glob;

/// Each parameter's default, in Redis 7.0's spelling.
const DEFAULTS: &[(&str, &str)] = &[
    ("save", ""),
    ("appendonly", "no"),
    ("appendfsync", "everysec"),
    ("maxmemory", "0"),
    ("maxmemory-policy", "noeviction"),
    ("maxmemory-samples", "5"),
    ("databases", "16"),
    ("proto-max-bulk-len", "536870912"),
    ("client-query-buffer-limit", "1073741824"),
    ("timeout", "0"),
    ("io-threads", "1"),
    ("notify-keyspace-events", ""),
    ("hash-max-listpack-entries", "128"),
    ("hash-max-listpack-value", "64"),
    ("set-max-intset-entries", "512"),
    ("zset-max-listpack-entries", "128"),
    ("zset-max-listpack-value", "64"),
    ("list-max-listpack-size", "-2"),
    ("list-compress-depth", "0"),
    ("lazyfree-lazy-user-del", "no"),
    ("lazyfree-lazy-user-flush", "no"),
    ("latency-tracking", "yes"),
    ("latency-tracking-info-percentiles", "50 99 99.9"),
    ("rdb-key-save-delay", "0"),
    ("replica-read-only", "yes"),
    ("slowlog-log-slower-than", "10000"),
    ("slowlog-max-len", "128"),
    ("hz", "10"),
    ("loglevel", "notice"),
    ("protected-mode", "no"),
    ("active-expire-enabled", "yes"),
    ("repl-ping-replica-period", "10"),
    ("repl-backlog-size", "1048576"),
    ("busy-reply-threshold", "5000"),
    ("lua-time-limit", "5000"),
    ("maxclients", "10000"),
    ("close-on-replica-write", "yes"),
    ("lfu-log-factor", "10"),
    ("lfu-decay-time", "1"),
    ("activedefrag", "no"),
    ("stream-node-max-entries", "100"),
    ("stream-node-max-bytes", "4096"),
];

/// Older names Redis still takes for a parameter.
const ALIASES: &[(&str, &str)] = &[
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
];

static PARAMS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

fn with_params<R>(f: impl FnOnce(&mut BTreeMap<String, String>) -> R) -> R {
    // A panic while holding the lock cannot leave the map half-changed (each change is
    // one insert), so a poisoned lock is still good.
    let mut params = PARAMS.lock().unwrap_or_else(|e| e.into_inner());
    if params.is_empty() {
        for (name, value) in DEFAULTS {
            params.insert((*name).into(), (*value).into());
        }
    }
    f(&mut params)
}

fn canonical(name: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, real)| real)
}

/// The parameters matching any of `patterns` (glob, any case), each once, as
/// (name, value); an alias asked by its exact name answers under that name.
pub fn get(patterns: &[Vec<u8>]) -> Vec<(String, String)> {
    with_params(|params| {
        let mut found: Vec<(String, String)> = Vec::new();
        for pattern in patterns {
            let pattern = pattern.to_ascii_lowercase();
            let names = params.iter().map(|(n, v)| (n.clone(), v.clone())).chain(
                ALIASES
                    .iter()
                    .filter(|(alias, _)| pattern == alias.as_bytes())
                    .map(|(alias, real)| (alias.to_string(), params[*real].clone())),
            );
            for (name, value) in names {
                if glob::matches(&pattern, name.as_bytes())
                    && !found.iter().any(|(n, _)| *n == name)
                {
                    found.push((name, value));
                }
            }
        }
        found
    })
}

/// Sets parameter `name` (any case, aliases too) to `value`.
pub fn set(name: &[u8], value: &[u8]) -> Result<(), String> {
    let lower = String::from_utf8_lossy(name).to_lowercase();
    let name = canonical(&lower).to_string();
    let value = String::from_utf8_lossy(value).into_owned();
    with_params(|params| {
        let Some(current) = params.get_mut(&name) else {
            return Err(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{lower}'"
            ));
        };
        let numeric = current.parse::<i64>().is_ok() && !matches!(name.as_str(), "save");
        if numeric && parse_memory(&value).is_none() {
            return Err(format!(
                "ERR CONFIG SET failed (possibly related to argument '{lower}') - argument couldn't be parsed into an integer"
            ));
        }
        *current = match parse_memory(&value) {
            Some(n) if numeric => n.to_string(),
            _ => value,
        };
        Ok(())
    })
}

/// A number, with Redis's memory units (`1gb`, `100mb`, `64k`).
pub fn parse_memory(value: &str) -> Option<i64> {
    let lower = value.to_ascii_lowercase();
    let units = [
        ("gb", 1 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1000),
        ("b", 1),
    ];
    for (suffix, scale) in units {
        if let Some(digits) = lower.strip_suffix(suffix) {
            return digits.parse::<i64>().ok()?.checked_mul(scale);
        }
    }
    lower.parse().ok()
}

/// A numeric parameter's value (0 when not numeric).
pub fn number(name: &str) -> i64 {
    with_params(|params| {
        params
            .get(canonical(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
}

/// Whether the active expiry sweep runs (DEBUG SET-ACTIVE-EXPIRE); read by every shard's
/// sweep on each tick, hence an atomic rather than the map.
static ACTIVE_EXPIRE: AtomicBool = AtomicBool::new(true);

pub fn set_active_expire(on: bool) {
    ACTIVE_EXPIRE.store(on, Ordering::Relaxed);
}

pub fn active_expire() -> bool {
    ACTIVE_EXPIRE.load(Ordering::Relaxed)
}

/// Back to the defaults (a test's way to start clean).
#[cfg(test)]
pub fn reset() {
    with_params(|params| params.clear());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_then_get_by_name_alias_and_pattern() {
        reset();
        assert_eq!(number("hash-max-listpack-entries"), 128);
        set(b"HASH-MAX-ZIPLIST-ENTRIES", b"5").unwrap();
        assert_eq!(number("hash-max-listpack-entries"), 5);
        assert_eq!(
            get(&[b"hash-max-ziplist-entries".to_vec()]),
            vec![("hash-max-ziplist-entries".to_string(), "5".to_string())]
        );
        set(b"maxmemory", b"1mb").unwrap();
        assert_eq!(number("maxmemory"), 1 << 20);
        assert!(
            set(b"maxmemory", b"lots")
                .unwrap_err()
                .contains("couldn't be parsed")
        );
        assert!(
            set(b"nope", b"1")
                .unwrap_err()
                .starts_with("ERR Unknown option")
        );
        assert!(get(&[b"zset-max-*".to_vec()]).len() >= 2);
        reset();
    }
}

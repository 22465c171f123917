//! A server's settings that CONFIG SET changes while it runs and that shards read on
//! their paths: shared by the server's shards through one `Arc` in its [`Config`]
//! (each server its own: several may run in one process, as the tests do).
//!
//! [`Config`]: crate::Config

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64, Ordering};

/// The live settings (see the module docs).
#[derive(Debug)]
pub struct Live {
    /// `appendonly` (see `persist`).
    pub appendonly: AtomicBool,
    /// `appendfsync`, as `persist::AppendFsync as u8`.
    pub fsync: AtomicU8,
    /// Unix seconds of the last successful save (LASTSAVE).
    pub last_save: AtomicU64,
    /// `maxmemory` in bytes over the whole process (0: no limit), split evenly per shard.
    pub maxmemory: AtomicU64,
    /// `maxmemory-policy`, as `evict::Policy as u8`.
    pub policy: AtomicU8,
    /// `maxmemory-samples`.
    pub samples: AtomicU8,
    /// `notify-keyspace-events`, as `notify` flag bits.
    pub notify: AtomicU32,
    /// `slowlog-log-slower-than` in µs (negative: off).
    pub slowlog_us: AtomicI64,
    /// `slowlog-max-len`, per shard.
    pub slowlog_max: AtomicU32,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            appendonly: AtomicBool::new(false),
            fsync: AtomicU8::new(1),
            last_save: AtomicU64::new(0),
            maxmemory: AtomicU64::new(0),
            policy: AtomicU8::new(0),
            samples: AtomicU8::new(5),
            notify: AtomicU32::new(0),
            slowlog_us: AtomicI64::new(10_000),
            slowlog_max: AtomicU32::new(128),
        }
    }
}

impl Live {
    pub fn maxmemory(&self) -> u64 {
        self.maxmemory.load(Ordering::Relaxed)
    }
}

//! Helpers shared by the integration tests: seeded patterns, fd and CPU accounting, polling
//! a server's counters.

#![allow(dead_code)]

use std::{
    fs,
    time::{Duration, Instant},
};

use percore::{ServerHandle, ShardStats};

/// xorshift64*: a seeded stream of bytes, so every connection has its own replayable pattern.
pub struct Pattern(u64);

impl Pattern {
    pub fn new(seed: u64) -> Self {
        Pattern(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.fill(&mut v);
        v
    }
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// CPU ticks (utime + stime, 10 ms each) used so far by this process's shard threads.
pub fn shard_cpu_ticks() -> u64 {
    let mut total = 0;
    for task in fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = task.path();
        let comm = fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.starts_with("percore-shard") {
            continue;
        }
        let stat = fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the parenthesised command name: state is field 3; utime 14, stime 15.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
        total += utime + stime;
    }
    total
}

/// Polls the shards' counters until `done` holds for every shard, or `limit` passes.
/// There is no event for "the server has finished closing", so a bounded poll it is.
pub fn wait_for_stats(
    handle: &ServerHandle,
    limit: Duration,
    done: impl Fn(&ShardStats) -> bool,
) -> Vec<ShardStats> {
    let deadline = Instant::now() + limit;
    loop {
        let stats = handle.shard_stats(Duration::from_secs(2));
        if stats.iter().all(&done) || Instant::now() >= deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

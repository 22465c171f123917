//! Persistence: an append-only file per shard, written through the kernel's file ops
//! (`percore::fs`: io_uring `WRITE` and `FSYNC`), replayed at start; snapshots (SAVE,
//! BGSAVE) and log rewrites (BGREWRITEAOF) made in the background without stopping the
//! shard.
//!
//! # What is logged
//!
//! Not commands but **states**: each write notes its keys as dirty on their shard, and the
//! shard's log writer appends, per write cycle, one record per dirty key holding the key's
//! state at that moment (its entry, with the absolute expiry time, or a delete). A key
//! written many times between two cycles is logged once. Non-deterministic and relative
//! commands (SPOP, EXPIRE, SET EX, blocking pops, cross-shard write-backs) need no
//! rewriting: the state is what is logged. FLUSHDB, FLUSHALL and SWAPDB are logged as such,
//! after the dirty keys noted before them. Expired keys are not logged: their absolute
//! expiry time is in the log, and replay drops what has expired.
//!
//! # When it reaches the disk (`appendfsync`)
//!
//! The writer is a task per shard: it wakes when a key is noted, writes everything noted
//! since its last cycle in one write (group commit; under `everysec` and `no` at most one
//! cycle per 10 ms, since nothing waits for it), then:
//! - `always`: fsyncs (`fdatasync`) and then marks the cycle durable. A connection whose
//!   commands wrote waits, before its replies leave, until every shard it wrote on is
//!   durable past its writes: no acknowledged write is lost by a crash;
//! - `everysec`: fsyncs at most once a second (also when idle with unsynced data): a crash
//!   loses at most about the last second;
//! - `no`: never fsyncs (the kernel writes back when it likes).
//!
//! # Replay
//!
//! At a shard's start (its state is made on first use, before anything reads its store),
//! the shard reads its file `appendonly-<shard>-of-<shards>.aof` in `dir` and applies the
//! records in order. A record that is cut short or fails its checksum ends the log: the
//! file is truncated there, with a warning naming the offset and the bytes dropped, and the
//! shard starts with what came before. With `appendonly no` the shard loads its snapshot
//! (`dump-<shard>-of-<shards>.snap`, the same records) instead, if there is one. Files
//! written with another shard count are not read (a warning names them).
//!
//! # Snapshots and rewrites
//!
//! A snapshot walks the shard's databases a segment at a time (at most [`WALK_CHUNK`] keys
//! looked at per step, yielding to the shard's other tasks between steps) writing each
//! live key's record to a new file; keys written during the walk are noted, and their
//! states at the end are appended after the walk, so the file holds the shard's state at
//! its end. A FLUSH or SWAPDB during the walk starts it over (at most [`WALK_TRIES`]
//! times). The file is fsynced and renamed over the old one (atomic). A rewrite is a
//! snapshot that becomes the log: the writer, between two cycles, appends the keys written
//! since the walk began to the new file, fsyncs it, renames it over the log and goes on
//! writing there.
//!
//! A cross-shard transaction is logged by each shard for its own keys: a crash between two
//! shards' cycles can keep one shard's part and not another's.
//!
//! # Files
//!
//! This file holds the settings, the per-shard log state, noting writes, INFO's figures
//! and SAVE/BGSAVE/BGREWRITEAOF; `replay` loads a shard's log or snapshot at its start;
//! `writer` is the log writer (and turning logging on and off, and waiting for it to be
//! durable); `snapshot` walks a shard for a snapshot or a rewrite; `record` is the
//! records' format.

pub mod record;
mod replay;
mod snapshot;
mod writer;

use std::{
    cell::{Cell, OnceCell, RefCell},
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use percore::fs::File;

pub use self::{
    replay::start,
    snapshot::snapshot,
    writer::{durable_here, switch, wait_durable},
};
use crate::{hash::FxHashSet, settings::Live, shard::now_ms, store::Databases};

/// Keys a snapshot step looks at before it yields (a segment or more; see `Store::scan`).
pub const WALK_CHUNK: usize = 512;
/// Walks a snapshot starts over after a FLUSH or SWAPDB before it gives up.
pub const WALK_TRIES: usize = 3;

/// When the log is fsynced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendFsync {
    Always,
    EverySec,
    No,
}

impl AppendFsync {
    pub fn parse(text: &str) -> Option<AppendFsync> {
        match text.to_ascii_lowercase().as_str() {
            "always" => Some(AppendFsync::Always),
            "everysec" => Some(AppendFsync::EverySec),
            "no" => Some(AppendFsync::No),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::EverySec => "everysec",
            AppendFsync::No => "no",
        }
    }
}

thread_local! {
    static LIVE: OnceCell<(Arc<Live>, PathBuf)> = const { OnceCell::new() };
}

/// Sets the server's live settings from its config (once, at `serve`).
pub fn configure(config: &crate::Config) {
    let live = &config.live;
    live.appendonly.store(config.appendonly, Ordering::Release);
    live.fsync
        .store(config.appendfsync as u8, Ordering::Release);
    live.last_save.store(unix_secs(), Ordering::Release);
}

fn live<R>(f: impl FnOnce(&Live) -> R) -> Option<R> {
    LIVE.with(|l| l.get().map(|(live, _)| f(live)))
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn set_fsync(policy: AppendFsync) {
    live(|l| l.fsync.store(policy as u8, Ordering::Release));
}

pub fn fsync_policy() -> AppendFsync {
    match live(|l| l.fsync.load(Ordering::Acquire)).unwrap_or(1) {
        0 => AppendFsync::Always,
        1 => AppendFsync::EverySec,
        _ => AppendFsync::No,
    }
}

pub fn append_only() -> bool {
    live(|l| l.appendonly.load(Ordering::Acquire)).unwrap_or(false)
}

/// Whether replies of writes wait for the fsync (`appendonly yes` with `always`).
#[inline]
pub fn always() -> bool {
    append_only() && fsync_policy() == AppendFsync::Always
}

pub fn last_save() -> u64 {
    live(|l| l.last_save.load(Ordering::Acquire)).unwrap_or(0)
}

fn dir() -> PathBuf {
    LIVE.with(|l| l.get().map(|(_, dir)| dir.clone()))
        .unwrap_or_else(|| PathBuf::from("."))
}

fn aof_name(shard: usize, shards: usize) -> String {
    format!("appendonly-{shard}-of-{shards}.aof")
}

fn snap_name(shard: usize, shards: usize) -> String {
    format!("dump-{shard}-of-{shards}.snap")
}

/// A snapshot in progress on this shard: what was written during its walk.
#[derive(Default)]
struct Walk {
    touched: FxHashSet<(u8, Vec<u8>)>,
    /// A FLUSH or SWAPDB ran during the walk: start over.
    reset: bool,
}

/// A finished rewrite handed to the writer, to become the log.
struct Swap {
    file: File,
    path: PathBuf,
    offset: u64,
    touched: FxHashSet<(u8, Vec<u8>)>,
}

/// One shard's log.
#[derive(Default)]
struct Log {
    /// Whether this shard logs (appendonly was on when it started, or was turned on).
    on: bool,
    /// Keys written since the writer's last cycle.
    dirty: FxHashSet<(u8, Vec<u8>)>,
    /// Records already made (dirty keys flushed ahead of a FLUSH or SWAPDB, and those).
    ready: Vec<u8>,
    /// Notes made (writes), and the last one durable.
    noted: u64,
    durable: u64,
    waiters: Vec<(u64, flume::Sender<()>)>,
    wake: Option<flume::Sender<()>>,
    /// A note has woken the writer since it last took the dirty keys: later notes of the
    /// same cycle need not (a `try_send` per write was a lock per write).
    wake_sent: bool,
    walk: Option<Walk>,
    swap: Option<Swap>,
    size: u64,
    /// Writes since the last successful snapshot (INFO's rdb_changes_since_last_save).
    changes: u64,
    bgsave_running: bool,
    rewrite_running: bool,
    last_write_ok: bool,
    last_bgsave_ok: bool,
    rewrites: u64,
}

thread_local! {
    static LOG: RefCell<Log> = RefCell::new(Log {
        last_write_ok: true,
        last_bgsave_ok: true,
        ..Log::default()
    });
    /// Whether writes must be noted here (logging, or a snapshot walking): the one check
    /// a write makes.
    static NOTING: Cell<bool> = const { Cell::new(false) };
}

fn refresh_noting(log: &Log) {
    NOTING.with(|n| n.set(log.on || log.walk.is_some()));
}

/// True when writes on this shard are noted (usually false without persistence).
#[inline]
pub fn noting() -> bool {
    NOTING.with(Cell::get)
}

/// A write touched `key` in `db` on this shard.
pub fn note(db: usize, key: &[u8]) {
    if !noting() {
        return;
    }
    LOG.with(|l| {
        let mut log = l.borrow_mut();
        log.changes += 1;
        if let Some(walk) = &mut log.walk {
            walk.touched.insert((db as u8, key.to_vec()));
        }
        if log.on {
            log.dirty.insert((db as u8, key.to_vec()));
            log.noted += 1;
            if !log.wake_sent
                && let Some(wake) = &log.wake
            {
                let _ = wake.try_send(());
                log.wake_sent = true;
            }
        }
    });
}

/// The records of `keys` in their current state.
fn key_records<'a>(
    dbs: &Databases,
    keys: impl IntoIterator<Item = &'a (u8, Vec<u8>)>,
    now: u64,
    out: &mut Vec<u8>,
) {
    for (db, key) in keys {
        let entry = dbs
            .existing(usize::from(*db))
            .and_then(|s| s.peek(key, now));
        record::put_key(out, *db, key, entry);
    }
}

/// A FLUSHDB (`Some(db)`), FLUSHALL (`None`) or SWAPDB (`swap`) is about to run on this
/// shard's `dbs`: logs the dirty keys first, then it.
pub fn note_special(dbs: &Databases, flush: Option<usize>, swap: Option<(usize, usize)>) {
    if !noting() {
        return;
    }
    LOG.with(|l| {
        let mut log = l.borrow_mut();
        log.changes += 1;
        if let Some(walk) = &mut log.walk {
            walk.reset = true;
        }
        if !log.on {
            return;
        }
        let dirty = std::mem::take(&mut log.dirty);
        let mut out = std::mem::take(&mut log.ready);
        key_records(dbs, &dirty, now_ms(), &mut out);
        match (flush, swap) {
            (_, Some((a, b))) => record::put_swapdb(&mut out, a as u8, b as u8),
            (Some(db), None) => record::put_flushdb(&mut out, db as u8),
            (None, None) => record::put_flushall(&mut out),
        }
        log.ready = out;
        log.noted += 1;
        if let Some(wake) = &log.wake {
            let _ = wake.try_send(());
        }
    });
}

/// What INFO persistence shows of this shard.
#[derive(Clone, Copy, Debug, Default)]
pub struct Figures {
    pub aof_on: bool,
    pub aof_size: u64,
    pub changes: u64,
    pub bgsave_running: bool,
    pub rewrite_running: bool,
    pub last_write_ok: bool,
    pub last_bgsave_ok: bool,
    pub rewrites: u64,
}

pub fn figures() -> Figures {
    LOG.with(|l| {
        let log = l.borrow();
        Figures {
            aof_on: log.on,
            aof_size: log.size,
            changes: log.changes,
            bgsave_running: log.bgsave_running,
            rewrite_running: log.rewrite_running,
            last_write_ok: log.last_write_ok,
            last_bgsave_ok: log.last_bgsave_ok,
            rewrites: log.rewrites,
        }
    })
}

/// SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE.
pub async fn command(conn: &crate::conn::Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let name = args[0].to_ascii_uppercase();
    if name == b"LASTSAVE" {
        return crate::resp::integer(out, last_save() as i64);
    }
    let rewrite = name == b"BGREWRITEAOF";
    let background = name != b"SAVE";
    if rewrite && !append_only() {
        return crate::resp::error(
            out,
            "ERR Background AOF rewriting needs appendonly yes in percore kv",
        );
    }
    let calls = (0..conn.shards)
        .map(|shard| {
            let config = conn.state.config.clone();
            Box::pin(percore::mesh::submit_to_async(shard, move || {
                let state = crate::shard::init(&config);
                async move {
                    if background {
                        percore::spawn(snapshot(state, rewrite));
                        true
                    } else {
                        snapshot(state, false).await
                    }
                }
            })) as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>
        })
        .collect();
    let results = crate::route::join_all(calls).await;
    conn.speak();
    let ok = results.iter().all(|r| matches!(r, Ok(true)));
    match (background, rewrite, ok) {
        (false, _, true) => crate::resp::ok(out),
        (false, _, false) => crate::resp::error(out, "ERR a shard's snapshot failed (see the log)"),
        (true, true, _) => {
            crate::resp::simple(out, "Background append only file rewriting started")
        }
        (true, false, _) => crate::resp::simple(out, "Background saving started"),
    }
}

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
//! since its last cycle in one write (group commit), then:
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

pub mod record;

use std::{
    cell::{Cell, OnceCell, RefCell},
    path::{Path, PathBuf},
    rc::Rc,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use percore::{fs::File, time::timeout};

use self::record::Record;
use crate::{
    hash::FxHashSet,
    settings::Live,
    shard::{ShardState, now_ms},
    store::{DATABASES, Databases},
};

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
            if let Some(wake) = &log.wake {
                let _ = wake.try_send(());
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

/// Applies the records of `data` to `dbs`; returns the length of the intact prefix.
fn replay(dbs: &mut Databases, data: &[u8], now: u64) -> (usize, usize) {
    let (mut at, mut count) = (0, 0);
    while at < data.len() {
        let Some((record, n)) = record::decode(&data[at..]) else {
            break;
        };
        at += n;
        count += 1;
        match record {
            Record::Entry(db, key, entry) => {
                let store = dbs.db(usize::from(db).min(DATABASES - 1));
                store.remove(&key);
                if !entry.is_expired(now) {
                    store.insert(&key, entry);
                }
            }
            Record::Delete(db, key) => {
                dbs.db(usize::from(db).min(DATABASES - 1)).remove(&key);
            }
            Record::FlushDb(db) => dbs.db(usize::from(db).min(DATABASES - 1)).clear(),
            Record::FlushAll => dbs.iter_mut().for_each(|s| s.clear()),
            Record::SwapDb(a, b) => {
                let (a, b) = (usize::from(a), usize::from(b));
                if a < DATABASES && b < DATABASES {
                    dbs.swap(a, b);
                }
            }
        }
    }
    (at, count)
}

/// Loads `path` into `dbs`; a torn or corrupt tail is cut off the file (with a warning).
/// Returns the intact length.
fn load(dbs: &mut Databases, path: &Path, shard: usize) -> u64 {
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(e) => {
            tracing::error!(shard, "cannot read {}: {e}; starting empty", path.display());
            return 0;
        }
    };
    let (intact, records) = replay(dbs, &data, now_ms());
    if intact < data.len() {
        tracing::warn!(
            shard,
            "{}: a torn or corrupt record at offset {intact}: truncated, {} bytes dropped ({records} records loaded)",
            path.display(),
            data.len() - intact
        );
        if let Err(e) = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(intact as u64))
        {
            tracing::error!(shard, "cannot truncate {}: {e}", path.display());
        }
    } else if records > 0 {
        tracing::info!(shard, "{}: {records} records loaded", path.display());
    }
    intact as u64
}

/// At a shard's start: loads its log (or snapshot) into `dbs` and starts its writer.
pub fn start(state: &Rc<ShardState>, dbs: &mut Databases) {
    LIVE.with(|l| {
        let _ = l.set((state.config.live.clone(), state.config.dir.clone()));
    });
    let shard = percore::mesh::shard_id();
    let shards = percore::mesh::shard_count().max(1);
    let dir = dir();
    warn_other_counts(&dir, shards, shard);
    let aof = dir.join(aof_name(shard, shards));
    if append_only() {
        let size = if aof.exists() {
            load(dbs, &aof, shard)
        } else {
            load(dbs, &dir.join(snap_name(shard, shards)), shard);
            0
        };
        match File::open_rw(&aof) {
            Ok(file) => {
                let fresh = size == 0 && dbs.iter().any(|(_, s)| !s.is_empty());
                LOG.with(|l| {
                    let mut log = l.borrow_mut();
                    log.on = true;
                    log.size = size;
                    refresh_noting(&log);
                });
                percore::spawn(writer(state.clone(), file, size));
                if fresh {
                    // Loaded from a snapshot: the log needs its base.
                    percore::spawn(snapshot(state.clone(), true));
                }
            }
            Err(e) => tracing::error!(
                shard,
                "cannot open {}: {e}; this shard does not log",
                aof.display()
            ),
        }
    } else {
        load(dbs, &dir.join(snap_name(shard, shards)), shard);
    }
}

fn warn_other_counts(dir: &Path, shards: usize, shard: usize) {
    if shard != 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let suffix = format!("-of-{shards}.");
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if (name.starts_with("appendonly-") || name.starts_with("dump-"))
            && !name.contains(&suffix)
            && !name.ends_with(".tmp")
        {
            tracing::warn!(
                "{name} was written with another shard count and is not loaded (start with that count, BGREWRITEAOF, then restart with this one)"
            );
        }
    }
}

/// CONFIG SET appendonly yes|no: switches every shard's log on or off (in the
/// background; the reply does not wait). On: the shard's log starts empty and a rewrite
/// writes its base, then it logs as at a start with `--appendonly yes`.
pub fn switch(conn: &crate::conn::Conn, on: bool) {
    let live = &conn.state.config.live;
    if live.appendonly.swap(on, Ordering::AcqRel) == on {
        return;
    }
    let (shards, config) = (conn.shards, conn.state.config.clone());
    percore::spawn(async move {
        for shard in 0..shards {
            let config = config.clone();
            let _ = percore::mesh::submit_to(shard, move || {
                let state = crate::shard::init(&config);
                switch_here(&state, on);
            })
            .await;
        }
    });
}

fn switch_here(state: &Rc<ShardState>, on: bool) {
    if !on {
        LOG.with(|l| {
            let mut log = l.borrow_mut();
            log.on = false;
            log.wake = None;
            log.dirty.clear();
            log.ready.clear();
            log.durable = log.noted;
            for (_, tx) in log.waiters.drain(..) {
                let _ = tx.try_send(());
            }
            refresh_noting(&log);
        });
        return;
    }
    if LOG.with(|l| l.borrow().on) {
        return;
    }
    let shard = percore::mesh::shard_id();
    let shards = percore::mesh::shard_count().max(1);
    let path = dir().join(aof_name(shard, shards));
    let file = std::fs::File::create(&path).map(File::from_std);
    match file {
        Ok(file) => {
            LOG.with(|l| {
                let mut log = l.borrow_mut();
                log.on = true;
                log.size = 0;
                refresh_noting(&log);
            });
            percore::spawn(writer(state.clone(), file, 0));
            percore::spawn(snapshot(state.clone(), true));
        }
        Err(e) => tracing::error!(shard, "cannot create {}: {e}", path.display()),
    }
}

/// The shard's log writer (see the module docs).
async fn writer(state: Rc<ShardState>, mut file: File, mut offset: u64) {
    let (wake, woken) = flume::bounded(1);
    LOG.with(|l| l.borrow_mut().wake = Some(wake));
    let mut unsynced = false;
    let mut last_sync = Instant::now();
    loop {
        let idle = match fsync_policy() {
            AppendFsync::EverySec if unsynced => Duration::from_millis(100),
            _ => Duration::from_secs(1),
        };
        if let Ok(Err(_)) = timeout(idle, woken.recv_async()).await {
            // `appendonly no` (CONFIG SET): this writer's log is closed.
            return;
        }
        // A finished rewrite becomes the log here, between two cycles.
        if let Some(swap) = LOG.with(|l| l.borrow_mut().swap.take()) {
            match finish_swap(&state, swap).await {
                Ok((new_file, new_offset)) => {
                    file = new_file;
                    offset = new_offset;
                    unsynced = false;
                }
                Err(e) => tracing::error!("AOF rewrite failed at the swap: {e}"),
            }
        }
        let (bytes, upto) = LOG.with(|l| {
            let mut log = l.borrow_mut();
            let dirty = std::mem::take(&mut log.dirty);
            let mut out = std::mem::take(&mut log.ready);
            key_records(&state.dbs.borrow(), &dirty, now_ms(), &mut out);
            (out, log.noted)
        });
        if !bytes.is_empty() {
            let len = bytes.len() as u64;
            if let Err(e) = file.write_all_at(bytes, offset).await {
                // The records went with the failed op: a rewrite writes the whole state
                // again. Replies under `always` wait meanwhile (nothing is durable).
                tracing::error!("AOF write failed: {e}; rewriting the log");
                LOG.with(|l| l.borrow_mut().last_write_ok = false);
                percore::spawn(snapshot(state.clone(), true));
                percore::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            offset += len;
            unsynced = true;
            LOG.with(|l| {
                let mut log = l.borrow_mut();
                log.size = offset;
                log.last_write_ok = true;
            });
        }
        let policy = fsync_policy();
        let sync_now = unsynced
            && match policy {
                AppendFsync::Always => true,
                AppendFsync::EverySec => last_sync.elapsed() >= Duration::from_secs(1),
                AppendFsync::No => false,
            };
        if sync_now {
            if let Err(e) = file.sync(true).await {
                tracing::error!("AOF fsync failed: {e}");
                LOG.with(|l| l.borrow_mut().last_write_ok = false);
                continue;
            }
            unsynced = false;
            last_sync = Instant::now();
        }
        if sync_now || policy != AppendFsync::Always {
            LOG.with(|l| {
                let mut log = l.borrow_mut();
                log.durable = log.durable.max(upto);
                let durable = log.durable;
                log.waiters.retain(|(at, tx)| {
                    if *at <= durable {
                        let _ = tx.try_send(());
                        false
                    } else {
                        true
                    }
                });
            });
        }
    }
}

/// Waits until this shard's log is durable past every write noted so far (at once when it
/// does not log or does not wait for fsyncs).
pub async fn durable_here() {
    let wait = LOG.with(|l| {
        let mut log = l.borrow_mut();
        if !log.on || log.durable >= log.noted {
            return None;
        }
        let (tx, rx) = flume::bounded(1);
        let at = log.noted;
        log.waiters.push((at, tx));
        if let Some(wake) = &log.wake {
            let _ = wake.try_send(());
        }
        Some(rx)
    });
    if let Some(rx) = wait {
        let _ = rx.recv_async().await;
    }
}

/// Under `always`: waits until each of `shards` is durable past what it ran so far.
pub async fn wait_durable(config: &crate::Config, shards: &[usize]) {
    let calls = shards
        .iter()
        .map(|&shard| {
            let config = config.clone();
            Box::pin(percore::mesh::submit_to_async(shard, move || {
                let _ = crate::shard::init(&config);
                durable_here()
            })) as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>
        })
        .collect();
    for result in crate::route::join_all(calls).await {
        if let Err(e) = result {
            tracing::warn!("waiting for a shard's fsync failed: {e}");
        }
    }
}

/// The writer's half of a rewrite: the keys written since the walk began go to the new
/// file, which is fsynced and renamed over the log.
async fn finish_swap(state: &Rc<ShardState>, swap: Swap) -> std::io::Result<(File, u64)> {
    let mut tail = Vec::new();
    key_records(&state.dbs.borrow(), &swap.touched, now_ms(), &mut tail);
    let mut offset = swap.offset;
    if !tail.is_empty() {
        let len = tail.len() as u64;
        swap.file.write_all_at(tail, offset).await?;
        offset += len;
    }
    swap.file.sync(false).await?;
    let shard = percore::mesh::shard_id();
    let shards = percore::mesh::shard_count().max(1);
    std::fs::rename(&swap.path, dir().join(aof_name(shard, shards)))?;
    LOG.with(|l| {
        let mut log = l.borrow_mut();
        log.size = offset;
        log.rewrites += 1;
    });
    Ok((swap.file, offset))
}

/// Writes a snapshot of this shard (see the module docs): to the snapshot file, or
/// (`rewrite`) to a new log handed to the writer. Returns whether it succeeded.
pub async fn snapshot(state: Rc<ShardState>, rewrite: bool) -> bool {
    let started = LOG.with(|l| {
        let mut log = l.borrow_mut();
        let busy = if rewrite {
            &mut log.rewrite_running
        } else {
            &mut log.bgsave_running
        };
        if *busy {
            return false;
        }
        *busy = true;
        true
    });
    if !started {
        return false;
    }
    let result = walk(&state, rewrite).await;
    let ok = result.is_ok();
    if let Err(e) = &result {
        tracing::error!(
            "{} failed: {e}",
            if rewrite { "AOF rewrite" } else { "snapshot" }
        );
    }
    LOG.with(|l| {
        let mut log = l.borrow_mut();
        if rewrite {
            log.rewrite_running = false;
        } else {
            log.bgsave_running = false;
            log.last_bgsave_ok = ok;
            if ok {
                log.changes = 0;
            }
        }
        if log.walk.is_some() && !log.rewrite_running && !log.bgsave_running {
            log.walk = None;
        }
        refresh_noting(&log);
    });
    ok
}

async fn walk(state: &Rc<ShardState>, rewrite: bool) -> std::io::Result<()> {
    let shard = percore::mesh::shard_id();
    let shards = percore::mesh::shard_count().max(1);
    let name = if rewrite {
        aof_name(shard, shards)
    } else {
        snap_name(shard, shards)
    };
    let path = dir().join(format!("{name}.tmp"));
    for _ in 0..WALK_TRIES {
        LOG.with(|l| {
            let mut log = l.borrow_mut();
            log.walk = Some(Walk::default());
            refresh_noting(&log);
        });
        std::fs::File::create(&path)?;
        let file = File::open_rw(&path)?;
        let mut offset = 0u64;
        let mut reset = false;
        'dbs: for db in 0..DATABASES {
            let mut cursor = 0;
            loop {
                let mut out = Vec::new();
                let next = {
                    let dbs = state.dbs.borrow();
                    let Some(store) = dbs.existing(db) else {
                        break;
                    };
                    let now = now_ms();
                    let (keys, next) = store.scan(cursor, WALK_CHUNK, now, |_, _| true);
                    for key in keys {
                        record::put_key(&mut out, db as u8, &key, store.peek(&key, now));
                    }
                    next
                };
                if !out.is_empty() {
                    let len = out.len() as u64;
                    file.write_all_at(out, offset).await?;
                    offset += len;
                }
                if LOG.with(|l| l.borrow().walk.as_ref().is_some_and(|w| w.reset)) {
                    reset = true;
                    break 'dbs;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
                percore::task::yield_now().await;
            }
        }
        if reset {
            continue;
        }
        let touched = LOG.with(|l| {
            l.borrow_mut()
                .walk
                .as_mut()
                .map(|w| std::mem::take(&mut w.touched))
                .unwrap_or_default()
        });
        if rewrite && LOG.with(|l| l.borrow().on) {
            // The writer appends the keys written meanwhile (and all later ones go to
            // the new file): it owns the swap.
            LOG.with(|l| {
                let mut log = l.borrow_mut();
                let mut touched = touched;
                // Keys noted from here until the swap are dirty in the writer's set too.
                touched.extend(log.dirty.iter().cloned());
                log.swap = Some(Swap {
                    file,
                    path: path.clone(),
                    offset,
                    touched,
                });
                if let Some(wake) = &log.wake {
                    let _ = wake.try_send(());
                }
            });
            return Ok(());
        }
        let mut tail = Vec::new();
        key_records(&state.dbs.borrow(), &touched, now_ms(), &mut tail);
        if !tail.is_empty() {
            file.write_all_at(tail, offset).await?;
        }
        file.sync(false).await?;
        std::fs::rename(&path, dir().join(&name))?;
        if !rewrite {
            live(|l| l.last_save.store(unix_secs(), Ordering::Release));
        }
        return Ok(());
    }
    let _ = std::fs::remove_file(&path);
    Err(std::io::Error::other(
        "the keyspace was flushed or swapped during every try",
    ))
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

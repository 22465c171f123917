//! Replay: at a shard's start, its log (or snapshot) is loaded into its databases and
//! its writer started (see the module docs of `persist`).

use std::{path::Path, rc::Rc};

use percore::fs::File;

use super::{
    LIVE, LOG, aof_name, append_only, dir,
    record::{self, Record},
    refresh_noting, snap_name, snapshot,
    writer::writer,
};
use crate::{
    shard::{ShardState, now_ms},
    store::{DATABASES, Databases},
};

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

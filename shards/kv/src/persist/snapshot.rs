//! Snapshots (SAVE, BGSAVE) and log rewrites (BGREWRITEAOF): a walk of the shard's
//! databases a segment at a time (see the module docs of `persist`).

use std::{rc::Rc, sync::atomic::Ordering};

use percore::fs::File;

use super::{
    LOG, Swap, WALK_CHUNK, WALK_TRIES, Walk, aof_name, dir, key_records, live, record,
    refresh_noting, snap_name, unix_secs,
};
use crate::{
    shard::{ShardState, now_ms},
    store::DATABASES,
};

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

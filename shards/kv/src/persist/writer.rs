//! The shard's log writer (group commit, `appendfsync`), turning logging on and off
//! (CONFIG SET appendonly), and waiting until writes are durable.

use std::{
    rc::Rc,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use percore::{fs::File, time::timeout};

use super::{
    AppendFsync, LOG, Swap, aof_name, dir, fsync_policy, key_records, refresh_noting, snapshot,
};
use crate::shard::{ShardState, now_ms};

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

/// Under `everysec` and `no`, the shortest time between two write cycles. Nothing waits for
/// these cycles (replies leave at once, and a crash may lose up to about a second anyway),
/// so a cycle per loop iteration would buy nothing but a file write per iteration: under a
/// pipelined load that was tens of thousands of writes a second and a third of the
/// throughput. A cycle every 10 ms writes the same records in a hundred writes a second
/// (and a key written several times in between, once).
const COALESCE: Duration = Duration::from_millis(10);

/// The shard's log writer (see the module docs).
pub(super) async fn writer(state: Rc<ShardState>, mut file: File, mut offset: u64) {
    let (wake, woken) = flume::bounded(1);
    LOG.with(|l| {
        let mut log = l.borrow_mut();
        log.wake = Some(wake);
        log.wake_sent = false;
    });
    let mut unsynced = false;
    let mut last_sync = Instant::now();
    let mut last_cycle = Instant::now();
    loop {
        let idle = match fsync_policy() {
            AppendFsync::EverySec if unsynced => Duration::from_millis(100),
            _ => Duration::from_secs(1),
        };
        match timeout(idle, woken.recv_async()).await {
            // `appendonly no` (CONFIG SET): this writer's log is closed.
            Ok(Err(_)) => return,
            // Woken by a write: under `always` its reply waits for this cycle; otherwise
            // the cycle gathers what comes in the next few milliseconds too.
            Ok(Ok(())) if fsync_policy() != AppendFsync::Always => {
                let next = last_cycle + COALESCE;
                let now = Instant::now();
                if next > now {
                    percore::time::sleep(next - now).await;
                }
            }
            _ => {}
        }
        last_cycle = Instant::now();
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
            // Notes from here on belong to the next cycle and must wake the writer again.
            log.wake_sent = false;
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

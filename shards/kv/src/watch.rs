//! WATCH: optimistic locking for MULTI/EXEC.
//!
//! A connection's watch is one *dirty flag* (an `Arc<AtomicBool>`) shared with the owner
//! shards of its watched keys. Each shard keeps, per (database, key), the flags watching
//! it; a write command over a watched key sets them (and drops the key's entry: a dirty
//! flag stays dirty). FLUSHALL, FLUSHDB and SWAPDB set the flags of watched keys that
//! exist. WATCH also notes a key's expiry time: a key that expires before EXEC counts as
//! changed, as in Redis.
//!
//! EXEC locks the watched keys with the transaction's keys (see `txn`) before it reads
//! the flag, so no write slips in between the check and the commands. A write command
//! sets the flags whether or not it changed the value (Redis touches only on a change),
//! so an EXEC may fail where Redis's would succeed, never the reverse.
//!
//! The flags are dropped on EXEC, DISCARD, UNWATCH, RESET and disconnect: the shards are
//! told (best effort; a key's entry is also dropped when it is next written).

use std::{
    cell::{Cell, RefCell},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use percore::mesh::submit_to;

use crate::{
    conn::Conn,
    hash::{FxHashMap, owner},
    resp,
    shard::{self, now_ms, with_dbs},
    store::Databases,
};

/// A connection's watch.
pub struct Watching {
    dirty: Arc<AtomicBool>,
    /// Watched keys: database, key, expiry time when watched.
    keys: Vec<(usize, Vec<u8>, Option<u64>)>,
    token: u64,
}

impl Watching {
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.keys.iter().map(|(_, k, _)| k.as_slice())
    }

    /// What a shard needs to check the watch inside a one-shard EXEC's batch: the dirty
    /// flag and the expiry times noted.
    pub fn check(&self) -> WatchCheck {
        (
            self.dirty.clone(),
            self.keys.iter().filter_map(|(_, _, at)| *at).collect(),
        )
    }

    /// Whether a watched key was written, or has expired, since it was watched.
    pub fn dirty(&self, now_ms: u64) -> bool {
        self.dirty.load(Ordering::Acquire)
            || self
                .keys
                .iter()
                .any(|(_, _, at)| at.is_some_and(|at| at <= now_ms))
    }
}

/// A watch's dirty flag and expiry times, checked where a one-shard EXEC runs.
pub type WatchCheck = (Arc<AtomicBool>, Vec<u64>);

/// Whether `check` finds its watch broken at `now_ms`.
pub fn broken(check: &WatchCheck, now_ms: u64) -> bool {
    check.0.load(Ordering::Acquire) || check.1.iter().any(|&at| at <= now_ms)
}

type Watchers = FxHashMap<(usize, Vec<u8>), Vec<(u64, Arc<AtomicBool>)>>;

thread_local! {
    static WATCHED: RefCell<Watchers> = RefCell::new(FxHashMap::default());
    static ANY: Cell<bool> = const { Cell::new(false) };
}

/// True when this shard has watched keys (the check every write makes; usually false).
#[inline]
pub fn any() -> bool {
    ANY.with(Cell::get)
}

/// A write touched `key` in `db`: its watchers are dirty.
pub fn touch(db: usize, key: &[u8]) {
    if !any() {
        return;
    }
    WATCHED.with(|w| {
        let mut watched = w.borrow_mut();
        if let Some(flags) = watched.remove(&(db, key.to_vec())) {
            for (_, flag) in flags {
                flag.store(true, Ordering::Release);
            }
        }
        ANY.with(|a| a.set(!watched.is_empty()));
    });
}

/// Before a flush or a swap of `db` (every database: `None`): the watchers of the keys
/// that exist there are dirty.
pub fn touch_existing(dbs: &mut Databases, db: Option<usize>) {
    if !any() {
        return;
    }
    let now = now_ms();
    let hit: Vec<(usize, Vec<u8>)> = WATCHED.with(|w| {
        w.borrow()
            .keys()
            .filter(|(d, k)| {
                db.is_none_or(|db| db == *d)
                    && dbs.existing(*d).is_some_and(|s| s.peek(k, now).is_some())
            })
            .cloned()
            .collect()
    });
    for (d, k) in hit {
        touch(d, &k);
    }
}

fn register(db: usize, key: Vec<u8>, token: u64, flag: Arc<AtomicBool>) {
    WATCHED.with(|w| {
        let mut watched = w.borrow_mut();
        let flags = watched.entry((db, key)).or_default();
        if !flags.iter().any(|(t, _)| *t == token) {
            flags.push((token, flag));
        }
    });
    ANY.with(|a| a.set(true));
}

fn unregister(db: usize, key: &[u8], token: u64) {
    WATCHED.with(|w| {
        let mut watched = w.borrow_mut();
        let id = (db, key.to_vec());
        if let Some(flags) = watched.get_mut(&id) {
            flags.retain(|(t, _)| *t != token);
            if flags.is_empty() {
                watched.remove(&id);
            }
        }
        ANY.with(|a| a.set(!watched.is_empty()));
    });
}

/// WATCH key [key ...].
pub async fn watch(conn: &mut Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
    if conn.multi.is_some() {
        return resp::error(out, "ERR WATCH inside MULTI is not allowed");
    }
    let watching = conn.watching.get_or_insert_with(|| Watching {
        dirty: Arc::new(AtomicBool::new(false)),
        keys: Vec::new(),
        token: conn.id,
    });
    let (flag, token, db) = (watching.dirty.clone(), watching.token, conn.db);
    for key in &args[1..] {
        if watching.keys.iter().any(|(d, k, _)| *d == db && k == key) {
            continue;
        }
        let (key_owned, flag, config) = (key.clone(), flag.clone(), conn.state.config.clone());
        let expiry = submit_to(owner(key, conn.shards), move || {
            let at = with_dbs(&config, |dbs| {
                dbs.db(db)
                    .peek(&key_owned, now_ms())
                    .and_then(|e| e.expires_at_ms)
            });
            register(db, key_owned, token, flag);
            at
        })
        .await;
        match expiry {
            Ok(at) => watching.keys.push((db, key.clone(), at)),
            Err(e) => {
                conn.speak();
                return resp::error(out, &format!("ERR a shard is unavailable: {e}"));
            }
        }
    }
    conn.speak();
    resp::ok(out);
}

/// Drops a watch: its keys' owners forget its flag.
pub fn forget(conn: &Conn, watching: Watching) {
    let token = watching.token;
    for (db, key, _) in watching.keys {
        let target = owner(&key, conn.shards);
        if target == conn.shard {
            unregister(db, &key, token);
        } else {
            let config = conn.state.config.clone();
            let _ = percore::mesh::try_send_to(target, move || {
                let _ = shard::init(&config);
                unregister(db, &key, token);
            });
        }
    }
}

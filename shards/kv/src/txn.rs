//! Atomic commands and transactions across shards: per-shard key locks taken in shard
//! order, VLL-style (Dragonfly's "very lightweight locking", without its global counter).
//!
//! # The problem
//!
//! A key lives on one shard, so a command over one shard's keys is atomic: it runs inside
//! one call on that shard, between two of the shard's other calls. A command or a MULTI
//! over keys of several shards runs in several calls, one per shard, which other clients'
//! commands can run between. Without more, a reader's cross-shard MGET could see the
//! first shard after a cross-shard MSET and the second before it.
//!
//! # Locks
//!
//! Each shard keeps a lock table (thread-local, reached only on that shard): per key, the
//! transaction that holds it (exclusive; keys are compared without their database, which
//! only makes a lock cover a key's namesakes in other databases), optionally one
//! transaction holding the *whole* shard (FLUSHALL, SWAPDB, KEYS inside a MULTI), and a
//! FIFO queue of what waits. A transaction has an id, unique in the process
//! (`sequence × shards + shard + 1`).
//!
//! A cross-shard command or an EXEC:
//! 1. **locks** the keys it will touch on every shard involved (the keys of all the
//!    queued commands, and the watched keys). First optimistically, on every shard at once
//!    with *try* requests, which never queue. When a shard refuses (a key is held, or
//!    queued for), the transaction keeps the locks of the shards *below* the lowest
//!    refusing shard, gives back those above it, and from the refusing shard on asks shard
//!    by shard, **in ascending shard order**, each request queueing until granted.
//! 2. **runs** its commands: they reach the shards through the ordinary paths, carrying
//!    the transaction's id, so the shards let them through its own locks;
//! 3. **releases** its locks on every shard; each shard then runs, in queue order, what
//!    waited and is no longer blocked.
//!
//! Every other command that touches keys checks the table on the owner shard before it
//! runs (one `Cell` read when the shard has no lock and nothing waiting, the usual case):
//! a command over a key that is locked by another transaction, or that an earlier waiter
//! wants, is *parked* in the queue with its reply channel and runs when its turn comes,
//! so nobody sees a transaction half done. A connection's commands for a shard travel as
//! one batch and park as one, which keeps their order. Blocking pops are not served from
//! a locked key; its waiters are served when the lock is released.
//!
//! # No deadlock
//!
//! A transaction waits (a queued request) only at one shard `s` at a time, and then holds
//! locks only on shards below `s` (those above were given back, and never asked for
//! before `s` is granted). What it waits for at `s` is either a transaction holding keys
//! there, which therefore waits at a shard above `s` or is running (and running never
//! waits for a lock), or an earlier waiter in `s`'s queue. Ordering waiters by (shard,
//! place in that shard's queue), every wait is for something strictly further along, so
//! there is no cycle. A plain command holds nothing, so it is never waited for. A
//! transaction's own commands pass its own locks at once, also ahead of the queue.
//!
//! # Failures
//!
//! A transaction that is dropped mid-way (its client disconnects or is killed, the server
//! drains) releases on drop: a release is sent to every shard it asked, which also drops
//! its queued requests there; a grant that finds its requester gone is undone at once.
//! A lock wait is bounded ([`LOCK_WAIT`]): past it the transaction gives every lock back
//! and the client gets a `TRYAGAIN` error, nothing having run.
//!
//! # What is not covered
//!
//! KEYS, SCAN, DBSIZE and RANDOMKEY outside a MULTI read every shard without locks (they
//! may see a cross-shard write on one shard and not yet on another); PUBLISH is not
//! ordered with transactions. A shard that fails (stuck past the mesh timeout) while a
//! transaction writes leaves the writes made on the other shards.

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    time::Duration,
};

use percore::{
    mesh::{CallBatcher, MeshError},
    time::timeout,
};

use crate::{
    blocking,
    clients::Shield,
    conn::Conn,
    hash::{FxHashMap, owner},
    route::{Batch, BatchReply, join_all},
    shard,
};

/// A transaction's id: unique in the process; 0 is no transaction.
pub type TxId = u64;

/// How long a transaction waits for a shard's locks before it gives up (`TRYAGAIN`).
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// What waits in a shard's queue.
enum Action {
    /// A transaction's lock request: granted through the channel.
    Grant(flume::Sender<()>),
    /// A parked command batch: run when its keys are free.
    Run(Box<dyn FnOnce()>),
}

struct Waiting {
    tx: TxId,
    keys: Vec<Vec<u8>>,
    whole: bool,
    action: Action,
}

#[derive(Default)]
struct Locks {
    /// Per locked key, its holder.
    held: FxHashMap<Vec<u8>, TxId>,
    /// The transaction holding the whole shard.
    whole: Option<TxId>,
    /// Per holder, the keys it holds here (to release them).
    owned: FxHashMap<TxId, Vec<Vec<u8>>>,
    queue: VecDeque<Waiting>,
}

impl Locks {
    fn is_idle(&self) -> bool {
        self.held.is_empty() && self.whole.is_none() && self.queue.is_empty()
    }

    /// Whether `tx` holds everything a request for `keys` (or the whole shard) needs.
    fn covered(&self, tx: TxId, keys: &[Vec<u8>], whole: bool) -> bool {
        tx != 0
            && (self.whole == Some(tx)
                || !whole && keys.iter().all(|k| self.held.get(k) == Some(&tx)))
    }

    /// Whether held locks keep `tx` from `keys` (or the whole shard).
    fn held_blocks(&self, tx: TxId, keys: &[Vec<u8>], whole: bool) -> bool {
        if self.whole.is_some_and(|h| h != tx) {
            return true;
        }
        if whole {
            return self.held.values().any(|&h| h != tx);
        }
        keys.iter()
            .any(|k| self.held.get(k).is_some_and(|&h| h != tx))
    }

    /// Whether the first `upto` queue entries hold back a request of `tx` for `keys`.
    fn queue_blocks(&self, upto: usize, tx: TxId, keys: &[Vec<u8>], whole: bool) -> bool {
        self.queue.iter().take(upto).any(|w| {
            (tx == 0 || w.tx != tx) && (w.whole || whole || w.keys.iter().any(|k| keys.contains(k)))
        })
    }

    fn free(&self, tx: TxId, keys: &[Vec<u8>], whole: bool) -> bool {
        self.covered(tx, keys, whole)
            || !self.held_blocks(tx, keys, whole)
                && !self.queue_blocks(self.queue.len(), tx, keys, whole)
    }

    fn take(&mut self, tx: TxId, keys: Vec<Vec<u8>>, whole: bool) {
        if whole {
            self.whole = Some(tx);
        }
        let owned = self.owned.entry(tx).or_default();
        for key in keys {
            if self.held.insert(key.clone(), tx).is_none() {
                owned.push(key);
            }
        }
    }

    /// Gives back what `tx` holds here and drops its queued requests; returns the keys.
    fn release(&mut self, tx: TxId) -> Vec<Vec<u8>> {
        if self.whole == Some(tx) {
            self.whole = None;
        }
        self.queue
            .retain(|w| !(w.tx == tx && matches!(w.action, Action::Grant(_))));
        let keys = self.owned.remove(&tx).unwrap_or_default();
        for key in &keys {
            self.held.remove(key);
        }
        keys
    }

    /// The first queue entry that may go now, taken out of the queue.
    fn next_ready(&mut self) -> Option<Waiting> {
        let index = (0..self.queue.len()).find(|&i| {
            let w = &self.queue[i];
            self.covered(w.tx, &w.keys, w.whole)
                || !self.held_blocks(w.tx, &w.keys, w.whole)
                    && !self.queue_blocks(i, w.tx, &w.keys, w.whole)
        })?;
        self.queue.remove(index)
    }
}

thread_local! {
    static LOCKS: RefCell<Locks> = RefCell::new(Locks::default());
    /// Whether `LOCKS` may hold anything: the one check a plain command makes.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static NEXT_TX: Cell<u64> = const { Cell::new(0) };
}

/// True when this shard has locks or waiters (usually false).
#[inline]
pub fn active() -> bool {
    ACTIVE.with(Cell::get)
}

fn refresh_active(locks: &Locks) {
    ACTIVE.with(|a| a.set(!locks.is_idle()));
}

/// A new transaction id, unique in the process.
pub fn new_id() -> TxId {
    let seq = NEXT_TX.with(|n| {
        let v = n.get();
        n.set(v + 1);
        v
    });
    let shards = percore::mesh::shard_count().max(1) as u64;
    seq * shards + percore::mesh::shard_id() as u64 + 1
}

/// Whether a command of `tx` (0: none) over `keys` may run now on this shard.
pub fn free(tx: TxId, keys: &[Vec<u8>]) -> bool {
    !active() || LOCKS.with(|l| l.borrow().free(tx, keys, false))
}

/// Queues `run` to run on this shard once `keys` are free for `tx` (in queue order).
/// The caller has found them not [`free`].
pub fn park(tx: TxId, keys: Vec<Vec<u8>>, run: Box<dyn FnOnce()>) {
    LOCKS.with(|l| {
        let mut locks = l.borrow_mut();
        locks.queue.push_back(Waiting {
            tx,
            keys,
            whole: false,
            action: Action::Run(run),
        });
        refresh_active(&locks);
    });
}

/// The answer to a lock request.
enum Request {
    Granted,
    /// A try request that would have to wait.
    Busy,
    Queued(flume::Receiver<()>),
}

/// On the shard: `tx` asks for `keys` (or the whole shard); a `try_only` request does not
/// queue.
fn request(tx: TxId, keys: Vec<Vec<u8>>, whole: bool, try_only: bool) -> Request {
    LOCKS.with(|l| {
        let mut locks = l.borrow_mut();
        let answer = if locks.free(tx, &keys, whole) {
            locks.take(tx, keys, whole);
            Request::Granted
        } else if try_only {
            Request::Busy
        } else {
            let (grant, granted) = flume::bounded(1);
            locks.queue.push_back(Waiting {
                tx,
                keys,
                whole,
                action: Action::Grant(grant),
            });
            Request::Queued(granted)
        };
        refresh_active(&locks);
        answer
    })
}

/// On the shard: releases what `tx` holds, then runs what may go.
pub fn release_here(tx: TxId) {
    let keys = LOCKS.with(|l| {
        let mut locks = l.borrow_mut();
        let keys = locks.release(tx);
        refresh_active(&locks);
        keys
    });
    drain();
    if !keys.is_empty() && blocking::any_waiters() {
        blocking::refeed(&keys);
    }
}

/// Runs (grants, for requests) the queue entries that may go, in queue order.
fn drain() {
    loop {
        let next = LOCKS.with(|l| {
            let mut locks = l.borrow_mut();
            let next = locks.next_ready();
            if let Some(w) = &next
                && let Action::Grant(_) = w.action
            {
                locks.take(w.tx, w.keys.clone(), w.whole);
            }
            refresh_active(&locks);
            next
        });
        let Some(waiting) = next else {
            return;
        };
        match waiting.action {
            Action::Run(run) => run(),
            Action::Grant(grant) => {
                if grant.send(()).is_err() {
                    // Its transaction is gone: undo the grant.
                    LOCKS.with(|l| {
                        let mut locks = l.borrow_mut();
                        locks.release(waiting.tx);
                        refresh_active(&locks);
                    });
                }
            }
        }
    }
}

/// One shard's part of a transaction's claim.
#[derive(Clone, Debug, Default)]
pub struct Claim {
    pub keys: Vec<Vec<u8>>,
    /// The whole shard (a fan-out over its keys).
    pub whole: bool,
}

/// The claims of a set of keys, per shard (`shards` entries).
pub fn claims_of<'a>(keys: impl IntoIterator<Item = &'a [u8]>, shards: usize) -> Vec<Claim> {
    let mut claims = vec![Claim::default(); shards];
    for key in keys {
        let claim = &mut claims[owner(key, shards)];
        if !claim.keys.iter().any(|k| k == key) {
            claim.keys.push(key.to_vec());
        }
    }
    claims
}

/// A running transaction's hold on its shards. Dropped without [`Txn::release`] (the
/// connection went away mid-way), it releases in the background.
pub struct Txn {
    pub id: TxId,
    /// False inside an EXEC, whose transaction owns the locks.
    owned: bool,
    /// The shards asked, to release.
    asked: Vec<usize>,
    config: crate::Config,
    /// The connection's batcher: a dropped transaction's release travels behind the
    /// batches it sent (a batch still waiting to leave would otherwise run after it).
    batcher: CallBatcher<Batch, BatchReply>,
    /// A CLIENT KILL waits until the transaction is over.
    _shield: Option<Shield>,
}

impl Txn {
    /// Locks `claims` (one per shard; empty ones are skipped) for a new transaction, or
    /// joins the connection's running EXEC (which holds them already).
    pub async fn begin(conn: &Conn, claims: Vec<Claim>) -> Result<Txn, String> {
        if let Some(id) = conn.tx {
            return Ok(Txn {
                id,
                owned: false,
                asked: Vec::new(),
                config: conn.state.config.clone(),
                batcher: conn.state.batcher.clone(),
                _shield: None,
            });
        }
        if conn.kill.is_killed() {
            return Err("ERR the client was killed".into());
        }
        let mut txn = Txn {
            id: new_id(),
            owned: true,
            asked: Vec::new(),
            config: conn.state.config.clone(),
            batcher: conn.state.batcher.clone(),
            _shield: Some(conn.kill.shield()),
        };
        let wanted: Vec<(usize, Claim)> = claims
            .into_iter()
            .enumerate()
            .filter(|(_, c)| c.whole || !c.keys.is_empty())
            .collect();
        txn.asked = wanted.iter().map(|(s, _)| *s).collect();
        let result = match timeout(LOCK_WAIT, txn.acquire(wanted)).await {
            Ok(result) => result,
            Err(_) => Err("TRYAGAIN a transaction waited too long for its keys' locks".into()),
        };
        match result {
            Ok(()) => Ok(txn),
            Err(e) => {
                txn.release().await;
                Err(e)
            }
        }
    }

    async fn acquire(&self, wanted: Vec<(usize, Claim)>) -> Result<(), String> {
        let id = self.id;
        // Optimistic: try every shard at once.
        let calls = wanted
            .iter()
            .map(|(shard, claim)| {
                let claim = claim.clone();
                Box::pin(on_shard(&self.config, *shard, move || {
                    matches!(request(id, claim.keys, claim.whole, true), Request::Granted)
                })) as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>
            })
            .collect();
        let results: Vec<Result<bool, MeshError>> = join_all(calls).await;
        let mut granted = Vec::new();
        for ((shard, _), result) in wanted.iter().zip(results) {
            if result.map_err(mesh_text)? {
                granted.push(*shard);
            }
        }
        let Some(first_busy) = wanted
            .iter()
            .map(|(s, _)| *s)
            .find(|s| !granted.contains(s))
        else {
            return Ok(());
        };
        // Keep the locks below the first refusing shard, give back those above it, and
        // from there on ask in shard order.
        for &shard in granted.iter().filter(|&&s| s > first_busy) {
            send_release(&self.config, shard, id);
        }
        for (shard, claim) in wanted.into_iter().filter(|(s, _)| *s >= first_busy) {
            let answer = on_shard(&self.config, shard, move || {
                match request(id, claim.keys, claim.whole, false) {
                    Request::Granted => None,
                    Request::Queued(rx) => Some(rx),
                    Request::Busy => unreachable!("a queueing request is never busy"),
                }
            })
            .await
            .map_err(mesh_text)?;
            if let Some(granted) = answer {
                granted
                    .recv_async()
                    .await
                    .map_err(|_| "ERR a shard dropped a lock request".to_string())?;
            }
        }
        Ok(())
    }

    /// Releases the transaction's locks on every shard it asked (nothing inside an EXEC:
    /// its transaction releases). Waits until every shard has released.
    pub async fn release(mut self) {
        let asked = std::mem::take(&mut self.asked);
        if !self.owned {
            return;
        }
        let id = self.id;
        let calls = asked
            .into_iter()
            .map(|shard| {
                Box::pin(on_shard(&self.config, shard, move || release_here(id)))
                    as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>
            })
            .collect();
        for result in join_all(calls).await {
            if let Err(e) = result {
                tracing::warn!("a transaction's release failed: {e}");
            }
        }
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        if self.owned {
            for &shard in &self.asked {
                // The call is sent whether or not its answer is awaited.
                drop(self.batcher.call(
                    shard,
                    Batch {
                        tx: self.id,
                        commands: Vec::new(),
                        release: true,
                        watch: None,
                    },
                ));
            }
        }
    }
}

/// Releases `tx` on `shard` without waiting (a full inbox: from a task).
fn send_release(config: &crate::Config, shard: usize, tx: TxId) {
    if percore::mesh::shard_id() == shard {
        return release_here(tx);
    }
    let config = config.clone();
    let release = move || {
        let _ = shard::init(&config);
        release_here(tx)
    };
    if let Err(MeshError::Full) = percore::mesh::try_send_to(shard, release.clone()) {
        percore::spawn(async move {
            let _ = percore::mesh::send_to(shard, release).await;
        });
    }
}

/// Runs `f` on `shard` (its state made first).
fn on_shard<R: Send + 'static>(
    config: &crate::Config,
    shard: usize,
    f: impl FnOnce() -> R + Send + 'static,
) -> impl std::future::Future<Output = Result<R, MeshError>> + 'static {
    let config = config.clone();
    percore::mesh::submit_to(shard, move || {
        let _ = shard::init(&config);
        f()
    })
}

fn mesh_text(e: MeshError) -> String {
    match e {
        MeshError::Unavailable(n) => format!("TRYAGAIN shard {n} is unavailable"),
        e => format!("ERR a shard is unavailable: {e}"),
    }
}

/// Runs `work` on `shard` for `tx` (0: none) once `keys` are free there: at once when they
/// are, else parked in the shard's queue; the answer comes back either way.
pub async fn run_when_free<R: Send + 'static>(
    config: &crate::Config,
    shard: usize,
    tx: TxId,
    keys: Vec<Vec<u8>>,
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<R, MeshError> {
    let answer = on_shard(config, shard, move || {
        if free(tx, &keys) {
            return Ok(work());
        }
        let (reply, replied) = flume::bounded(1);
        park(
            tx,
            keys,
            Box::new(move || {
                let _ = reply.send(work());
            }),
        );
        Err(replied)
    })
    .await?;
    match answer {
        Ok(r) => Ok(r),
        Err(replied) => replied.recv_async().await.map_err(|_| MeshError::Closed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<Vec<u8>> {
        names.iter().map(|n| n.as_bytes().to_vec()).collect()
    }

    #[test]
    fn held_keys_block_others_and_not_their_holder() {
        let mut l = Locks::default();
        assert!(l.free(1, &keys(&["a", "b"]), false));
        l.take(1, keys(&["a", "b"]), false);
        assert!(l.free(1, &keys(&["a"]), false));
        assert!(!l.free(2, &keys(&["a"]), false));
        assert!(!l.free(0, &keys(&["b", "c"]), false));
        assert!(l.free(0, &keys(&["c"]), false));
        assert!(
            !l.free(2, &[], true),
            "a whole-shard request waits for held keys"
        );
        assert_eq!(l.release(1).len(), 2);
        assert!(l.is_idle());
    }

    #[test]
    fn queue_is_first_come_and_holder_passes_it() {
        let mut l = Locks::default();
        l.take(1, keys(&["a"]), false);
        let (grant, granted) = flume::bounded(1);
        l.queue.push_back(Waiting {
            tx: 2,
            keys: keys(&["a", "b"]),
            whole: false,
            action: Action::Grant(grant),
        });
        // "b" is free but wanted by an earlier waiter: a plain command queues behind it.
        assert!(!l.free(0, &keys(&["b"]), false));
        // The holder's own commands pass the queue (else it would wait for its waiter).
        assert!(l.free(1, &keys(&["a"]), false));
        assert!(l.next_ready().is_none());
        l.release(1);
        let next = l.next_ready().expect("the waiter goes once a is free");
        assert_eq!(next.tx, 2);
        drop(granted);
    }

    #[test]
    fn a_grant_to_a_gone_transaction_is_undone() {
        assert!(matches!(
            request(1, keys(&["g"]), false, false),
            Request::Granted
        ));
        let Request::Queued(granted) = request(2, keys(&["g"]), false, false) else {
            panic!("a held key queues the request");
        };
        assert!(matches!(
            request(3, keys(&["g"]), false, true),
            Request::Busy
        ));
        drop(granted);
        release_here(1);
        assert!(
            !active(),
            "nothing held or queued once the requester is gone"
        );
        // A release of a transaction that only queued drops its request.
        assert!(matches!(
            request(4, keys(&["h"]), false, false),
            Request::Granted
        ));
        let Request::Queued(_granted) = request(5, keys(&["h"]), false, false) else {
            panic!("a held key queues the request");
        };
        release_here(5);
        release_here(4);
        assert!(!active());
    }

    #[test]
    fn whole_shard_lock_blocks_every_key() {
        let mut l = Locks::default();
        l.take(7, Vec::new(), true);
        assert!(!l.free(0, &keys(&["x"]), false));
        assert!(l.free(7, &keys(&["x"]), false));
        l.release(7);
        assert!(l.free(0, &keys(&["x"]), false));
    }
}

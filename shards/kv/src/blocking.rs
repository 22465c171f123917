//! The blocking pops: BLPOP, BRPOP, BRPOPLPUSH, BLMOVE, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP.
//!
//! A blocking command first runs its non-blocking step (the store function of its table
//! entry, which writes nothing when every key is empty) where its keys live. When that
//! finds nothing, the connection registers a *waiter* on the owner shard of each key, runs
//! the step once more (a push between the first try and the registration would otherwise
//! go unseen), and sleeps until woken, timed out, or the client disconnects.
//!
//! Each shard keeps, per (database, key), a queue of waiters in arrival order. After a
//! write command on a shard that has waiters, each of the command's keys that now holds a
//! list or sorted set wakes the first live waiter of its queue (and removes it from the
//! queue): waiters are served first come, first served. The woken connection runs the
//! step again; if another client took the element first, it registers again, in its place.
//! A pop that leaves elements behind wakes the next waiter the same way.
//!
//! *Arrival* is when the connection's shard began the command, not when its registration
//! reached the key's shard: two clients' commands read by two shards reach a third one's
//! queue after a first try and a hop each, whose times vary, so a client that sent its
//! command first could otherwise be queued behind one that sent it later (Redis's suite
//! catches this: "BRPOPLPUSH with multiple blocked clients"). Each waiter carries the
//! instant its command began (the monotonic clock, one for every CPU), and a registration
//! goes in before the waiters that began after it.
//!
//! A waiter is shared between its connection and the shards it is queued on: an
//! `Arc` with a `done` flag and a channel to wake the connection. The connection sets
//! `done` when its wait ends in any way (served, timed out, disconnected, dropped), so a
//! shard skips and drops it instead of waking a connection that no longer waits; the
//! connection also asks each shard to purge its done waiters.

use std::{
    cell::RefCell,
    collections::VecDeque,
    rc::Rc,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use percore::{
    TcpStream,
    future::{Either, select},
    mesh::submit_to,
    time::timeout,
};

use crate::{
    clients::{self, Unblock},
    commands::{
        lists::timeout_ms,
        table::{Spec, key_positions},
    },
    conn::Conn,
    fanout,
    hash::{FxHashMap, owner},
    resp,
    shard::{ShardState, now_ms},
    store::{Databases, Store, Value},
};

/// One waiting connection, as the shards holding its keys see it.
pub struct Waiter {
    /// When the connection's shard began the command: the waiter's place in its queues.
    arrived: Instant,
    /// Set by the connection when its wait ends, or by a shard that claims it to serve it.
    done: AtomicBool,
    wake: flume::Sender<Wake>,
    /// The command, when all its keys live on the shard it waits on: that shard then
    /// serves it in place, in queue order, right after the write that fed the key.
    step: Option<Step>,
}

/// A waiting command a shard can run for its connection.
pub struct Step {
    spec: &'static Spec,
    args: Vec<Vec<u8>>,
    resp3: bool,
}

/// What a shard tells a waiting connection.
enum Wake {
    /// Try the command again (a key it waits on was fed).
    Retry,
    /// The command ran: its reply.
    Served(Vec<u8>),
}

/// Per (database, key), the waiters in arrival order.
type Queues = FxHashMap<(usize, Vec<u8>), VecDeque<Arc<Waiter>>>;

thread_local! {
    static WAITERS: RefCell<Queues> =
        RefCell::new(FxHashMap::default());
}

thread_local! {
    /// Whether `WAITERS` or `READY` may hold anything: the one check every command makes
    /// (usually false), a plain cell rather than a borrow of the maps.
    static ACTIVE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True when this shard has waiters (the check every write makes; usually false).
#[inline]
pub fn any_waiters() -> bool {
    ACTIVE.with(std::cell::Cell::get)
}

fn register(db: usize, key: Vec<u8>, waiter: Arc<Waiter>) {
    ACTIVE.with(|a| a.set(true));
    WAITERS.with(|w| {
        let mut waiters = w.borrow_mut();
        let queue = waiters.entry((db, key)).or_default();
        queue.retain(|w| !w.done.load(Ordering::Acquire));
        // Usually at the back: a later arrival registers later.
        let place = queue
            .iter()
            .rposition(|w| w.arrived <= waiter.arrived)
            .map_or(0, |i| i + 1);
        queue.insert(place, waiter);
    });
}

fn purge(db: usize, key: &[u8]) {
    WAITERS.with(|w| {
        let mut waiters = w.borrow_mut();
        let id = (db, key.to_vec());
        if let Some(queue) = waiters.get_mut(&id) {
            queue.retain(|w| !w.done.load(Ordering::Acquire));
            if queue.is_empty() {
                waiters.remove(&id);
            }
        }
    });
}

thread_local! {
    /// Keys with waiters written since the waiters were last served here.
    static READY: RefCell<Vec<(usize, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
}

/// Notes that a write touched `key` in `db`; its waiters are served by [`serve_ready`]
/// once the command (or the transaction, or the batch it came in) is done, as Redis serves
/// blocked clients after a command or an EXEC, never inside one.
pub fn note_written(db: usize, key: &[u8]) {
    let waited = WAITERS.with(|w| w.borrow().contains_key(&(db, key.to_vec())));
    if waited {
        READY.with(|r| r.borrow_mut().push((db, key.to_vec())));
    }
}

/// Serves the waiters of the keys noted since the last call (see [`fed`]).
#[inline]
pub fn serve_ready(dbs: &mut Databases, now_ms: u64) {
    if any_waiters() {
        serve_noted(dbs, now_ms);
    }
}

fn serve_noted(dbs: &mut Databases, now_ms: u64) {
    let ready = READY.with(|r| std::mem::take(&mut *r.borrow_mut()));
    for (db, key) in ready {
        fed(dbs.db(db), db, &key, now_ms);
    }
    // Idle again once no key has waiters (nothing can be noted then either).
    if WAITERS.with(|w| w.borrow().is_empty()) {
        ACTIVE.with(|a| a.set(false));
    }
}

fn has_elements(store: &Store, key: &[u8], now_ms: u64) -> bool {
    match store.peek(key, now_ms).map(|e| &e.value) {
        Some(Value::List(l)) => !l.is_empty(),
        Some(Value::ZSet(z)) => !z.is_empty(),
        _ => false,
    }
}

/// After a write to `key` in `db` of `store`: while the key holds a list or a sorted set
/// with elements, serves its waiters in arrival order (as Redis serves blocked clients
/// after each command): a waiter whose keys all live here runs its command here and gets
/// the reply; any other is woken to try again, and serving stops there. A served move
/// feeds its destination in turn.
pub fn fed(store: &mut Store, db: usize, key: &[u8], now_ms: u64) {
    let mut work = vec![key.to_vec()];
    // Bounded: each round serves a waiter (removing it) or stops with this key.
    while let Some(key) = work.pop() {
        // A key a transaction holds is served when the transaction releases it.
        if crate::txn::active() && !crate::txn::free(0, std::slice::from_ref(&key)) {
            continue;
        }
        while has_elements(store, &key, now_ms) {
            let id = (db, key.clone());
            let next = WAITERS.with(|w| {
                let mut waiters = w.borrow_mut();
                let queue = waiters.get_mut(&id)?;
                let found = loop {
                    match queue.pop_front() {
                        None => break None,
                        Some(w) if w.done.load(Ordering::Acquire) => continue,
                        Some(w) => break Some(w),
                    }
                };
                if queue.is_empty() {
                    waiters.remove(&id);
                }
                found
            });
            let Some(waiter) = next else {
                break;
            };
            let Some(step) = &waiter.step else {
                let _ = waiter.wake.try_send(Wake::Retry);
                break;
            };
            // Claim it: a connection that timed out at this moment keeps it.
            if waiter
                .done
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            let protocol = resp::resp3();
            resp::set_protocol(step.resp3);
            let mut reply = Vec::new();
            if let Some(run) = step.spec.run {
                run(store, &step.args, now_ms, &mut reply);
            }
            resp::set_protocol(protocol);
            // The fed key holds what the command pops, so an error here is about another
            // of its keys (a move's destination of the wrong type): the client gets it.
            if reply.is_empty() {
                let _ = waiter.wake.try_send(Wake::Retry);
                break;
            }
            let _ = waiter.wake.try_send(Wake::Served(reply));
            for i in key_positions(step.spec, &step.args).unwrap_or_default() {
                crate::watch::touch(db, &step.args[i]);
                crate::persist::note(db, &step.args[i]);
            }
            if matches!(step.spec.name, "brpoplpush" | "blmove") {
                work.push(step.args[2].clone());
            }
        }
    }
}

/// After a transaction released `keys` on this shard: serves their waiters (in every
/// database), which were not served while the keys were locked.
pub fn refeed(keys: &[Vec<u8>]) {
    let Some(state) = crate::shard::current() else {
        return;
    };
    let waited: Vec<(usize, Vec<u8>)> = WAITERS.with(|w| {
        w.borrow()
            .keys()
            .filter(|(_, k)| keys.contains(k))
            .cloned()
            .collect()
    });
    if waited.is_empty() {
        return;
    }
    let mut dbs = state.dbs.borrow_mut();
    let now = now_ms();
    for (db, key) in waited {
        fed(dbs.db(db), db, &key, now);
    }
    drop(dbs);
    if WAITERS.with(|w| w.borrow().is_empty()) {
        ACTIVE.with(|a| a.set(false));
    }
}

/// Marks the waiter done when its wait ends, however it ends.
struct DoneOnDrop(Arc<Waiter>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        self.0.done.store(true, Ordering::Release);
    }
}

/// Where a blocking command's timeout is.
fn timeout_arg<'a>(spec: &Spec, args: &'a [Vec<u8>]) -> &'a [u8] {
    match spec.name {
        "brpoplpush" => &args[3],
        "blmove" => &args[5],
        "blmpop" | "bzmpop" => &args[1],
        _ => &args[args.len() - 1],
    }
}

/// The reply when the time runs out: a null bulk for the moves, a null array otherwise.
pub fn timed_out(spec: &Spec, out: &mut Vec<u8>) {
    match spec.name {
        "brpoplpush" | "blmove" => resp::null(out),
        _ => resp::null_array(out),
    }
}

/// Runs a blocking command for `conn`, waiting as long as it asks.
pub async fn run(
    stream: &mut TcpStream,
    conn: &mut Conn,
    spec: &'static Spec,
    args: &[Vec<u8>],
    out: &mut Vec<u8>,
) {
    let arrived = Instant::now();
    conn.count_command();
    let positions = key_positions(spec, args).unwrap_or_default();
    // A malformed timeout: the step answers the error.
    let wait_ms = timeout_ms(timeout_arg(spec, args)).unwrap_or_default();
    let deadline = (wait_ms > 0).then(|| Instant::now() + Duration::from_millis(wait_ms));
    let mut blocked: Option<Blocked> = None;
    // Whether the peer may still be watched for a disconnect (not once input is pending).
    let mut watch_peer = true;
    let mut first = true;
    let home = positions.first().map(|&i| owner(&args[i], conn.shards));
    let local = positions
        .iter()
        .all(|&i| Some(owner(&args[i], conn.shards)) == home);
    // The keys waited on: a move waits on its source only (its destination may well hold
    // elements, which its step does not take).
    let waited = match spec.name {
        "brpoplpush" | "blmove" => &positions[..1.min(positions.len())],
        _ => &positions[..],
    };
    let keys: Vec<Vec<u8>> = waited.iter().map(|&i| args[i].clone()).collect();
    // Every key of a local command, for the transaction locks it must find free.
    let mut locked: Vec<Vec<u8>> = Vec::new();
    for &i in &positions {
        if !locked.contains(&args[i]) {
            locked.push(args[i].clone());
        }
    }
    let db = conn.db;
    loop {
        let (tx, rx) = flume::bounded(1);
        let waiter = Arc::new(Waiter {
            arrived,
            done: AtomicBool::new(false),
            wake: tx,
            step: local.then(|| Step {
                spec,
                args: args.to_vec(),
                resp3: conn.resp == 3,
            }),
        });
        let guard = DoneOnDrop(waiter.clone());
        let mut reply = Vec::new();
        if let (true, Some(home)) = (local, home) {
            // The try and the registration in one visit to the keys' shard: nothing can
            // feed the key (or queue another waiter) between the two.
            let (queued, waiter) = (keys.clone(), waiter.clone());
            let then = move |reply: &mut Vec<u8>| {
                keep_waiting_on_wrong_type(first, reply);
                if reply.is_empty() {
                    for key in queued {
                        register(db, key, waiter.clone());
                    }
                }
            };
            fanout::on_owner(conn, spec, args, home, locked.clone(), then, &mut reply).await;
        } else {
            fanout::gathered(conn, spec, args, &positions, &mut reply).await;
            keep_waiting_on_wrong_type(first, &mut reply);
        }
        first = false;
        if !reply.is_empty() {
            out.extend_from_slice(&reply);
            return;
        }
        blocked.get_or_insert_with(|| Blocked::new(conn.state.clone()));
        if !local {
            for key in &keys {
                let (key, waiter) = (key.clone(), waiter.clone());
                let _ =
                    submit_to(owner(&key, conn.shards), move || register(db, key, waiter)).await;
            }
            // A push between the first try and the registration: try once more.
            let mut reply = Vec::new();
            fanout::gathered(conn, spec, args, &positions, &mut reply).await;
            keep_waiting_on_wrong_type(false, &mut reply);
            if !reply.is_empty() {
                drop(guard);
                forget(conn, db, &keys);
                out.extend_from_slice(&reply);
                return;
            }
        }
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let (unblock_tx, unblock_rx) = flume::bounded(1);
        clients::update(conn.id, |e| e.unblock = Some(unblock_tx));
        let mut woken = wait(stream, &rx, &unblock_rx, remaining, &mut watch_peer).await;
        clients::update(conn.id, |e| e.unblock = None);
        // Ending the wait: a shard that claimed the waiter first is serving it and sends
        // its reply (or a retry) at once; that answer wins over the timeout.
        if !matches!(woken, Wait::Woken(_))
            && waiter.done.swap(true, Ordering::AcqRel)
            && let Ok(Wake::Served(reply)) = rx.recv_async().await
        {
            woken = Wait::Woken(Wake::Served(reply));
        }
        drop(guard);
        forget(conn, db, &keys);
        match woken {
            Wait::Woken(Wake::Served(reply)) => {
                out.extend_from_slice(&reply);
                return;
            }
            Wait::Woken(Wake::Retry) => continue,
            Wait::TimedOut => {
                conn.speak();
                return timed_out(spec, out);
            }
            Wait::Disconnected | Wait::Unblocked(Unblock::Killed) => {
                conn.closing = true;
                return;
            }
            Wait::Unblocked(Unblock::Timeout) => {
                conn.speak();
                return timed_out(spec, out);
            }
            Wait::Unblocked(Unblock::Error) => {
                return resp::error(out, "UNBLOCKED client unblocked via CLIENT UNBLOCK");
            }
        }
    }
}

/// A key that held another type when the command came answers WRONGTYPE; one that took
/// another type while the client waited leaves it waiting, as in Redis.
fn keep_waiting_on_wrong_type(first: bool, reply: &mut Vec<u8>) {
    if !first && reply.starts_with(b"-WRONGTYPE") {
        reply.clear();
    }
}

/// Counts the connection in INFO's `blocked_clients` while it waits.
struct Blocked(Rc<ShardState>);

impl Blocked {
    fn new(state: Rc<ShardState>) -> Self {
        state.blocked_clients.set(state.blocked_clients.get() + 1);
        Blocked(state)
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        self.0.blocked_clients.set(self.0.blocked_clients.get() - 1);
    }
}

enum Wait {
    Woken(Wake),
    TimedOut,
    Disconnected,
    Unblocked(Unblock),
}

async fn wait(
    stream: &mut TcpStream,
    rx: &flume::Receiver<Wake>,
    unblock: &flume::Receiver<Unblock>,
    remaining: Option<Duration>,
    watch_peer: &mut bool,
) -> Wait {
    let woken = async {
        loop {
            let waking = select(rx.recv_async(), unblock.recv_async());
            let event = if *watch_peer {
                match select(waking, stream.readable()).await {
                    Either::Left(event) => event,
                    Either::Right(Ok(true)) => {
                        *watch_peer = false;
                        continue;
                    }
                    Either::Right(_) => return Wait::Disconnected,
                }
            } else {
                waking.await
            };
            return match event {
                Either::Left(Ok(wake)) => Wait::Woken(wake),
                Either::Right(Ok(how)) => Wait::Unblocked(how),
                Either::Left(Err(_)) | Either::Right(Err(_)) => Wait::Disconnected,
            };
        }
    };
    let result = match remaining {
        Some(left) if left.is_zero() => return Wait::TimedOut,
        Some(left) => timeout(left, woken).await.ok(),
        None => Some(woken.await),
    };
    result.unwrap_or(Wait::TimedOut)
}

/// Asks the owners of `keys` to drop the done waiters of those keys (best effort: a full
/// inbox leaves them to the next registration or wake-up, which skip done waiters).
fn forget(conn: &Conn, db: usize, keys: &[Vec<u8>]) {
    for key in keys {
        let key_owned = key.clone();
        let target = owner(key, conn.shards);
        if target == conn.shard {
            purge(db, key);
        } else {
            let _ = percore::mesh::try_send_to(target, move || purge(db, &key_owned));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(arrived: Instant) -> Arc<Waiter> {
        let (wake, _) = flume::bounded(1);
        Arc::new(Waiter {
            arrived,
            done: AtomicBool::new(false),
            wake,
            step: None,
        })
    }

    fn queued(db: usize, key: &[u8]) -> Vec<Instant> {
        WAITERS.with(|w| {
            w.borrow()
                .get(&(db, key.to_vec()))
                .map(|q| q.iter().map(|w| w.arrived).collect())
                .unwrap_or_default()
        })
    }

    #[test]
    fn a_waiter_whose_registration_comes_late_is_queued_by_when_its_command_began() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        // Registrations reach the key's shard in the order 2, 5, 1, 3 (their first tries
        // took different times): the queue is in the order the commands began.
        for ms in [2, 5, 1, 3] {
            register(0, b"list".to_vec(), waiter(at(ms)));
        }
        assert_eq!(queued(0, b"list"), vec![at(1), at(2), at(3), at(5)]);
        // A tie keeps registration order (first registered, first served).
        let tied = waiter(at(3));
        register(0, b"list".to_vec(), tied.clone());
        let order = WAITERS.with(|w| {
            let waiters = w.borrow();
            let queue = &waiters[&(0, b"list".to_vec())];
            queue.iter().position(|w| Arc::ptr_eq(w, &tied))
        });
        assert_eq!(order, Some(3));
        // A done waiter is dropped from the queue when the next one registers.
        WAITERS.with(|w| {
            w.borrow()[&(0, b"list".to_vec())][0]
                .done
                .store(true, Ordering::Release)
        });
        register(0, b"list".to_vec(), waiter(at(9)));
        assert_eq!(queued(0, b"list"), vec![at(2), at(3), at(3), at(5), at(9)]);
    }
}

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
//! step again; if another client took the element first, it registers again (at the back).
//! A pop that leaves elements behind wakes the next waiter the same way.
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
    commands::{
        lists::timeout_ms,
        table::{Spec, key_positions},
    },
    conn::Conn,
    fanout,
    hash::{FxHashMap, owner},
    resp,
    shard::ShardState,
    store::{Store, Value},
};

/// One waiting connection, as the shards holding its keys see it.
pub struct Waiter {
    done: AtomicBool,
    wake: flume::Sender<()>,
}

/// Per (database, key), the waiters in arrival order.
type Queues = FxHashMap<(usize, Vec<u8>), VecDeque<Arc<Waiter>>>;

thread_local! {
    static WAITERS: RefCell<Queues> =
        RefCell::new(FxHashMap::default());
}

/// True when this shard has waiters (the check every write makes; usually false).
pub fn any_waiters() -> bool {
    WAITERS.with(|w| !w.borrow().is_empty())
}

fn register(db: usize, key: Vec<u8>, waiter: Arc<Waiter>) {
    WAITERS.with(|w| {
        let mut waiters = w.borrow_mut();
        let queue = waiters.entry((db, key)).or_default();
        queue.retain(|w| !w.done.load(Ordering::Acquire));
        queue.push_back(waiter);
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

/// After a write to `key` in `db` of `store`: wakes the first live waiter of the key when
/// it now holds a list or a sorted set with elements.
pub fn fed(store: &Store, db: usize, key: &[u8], now_ms: u64) {
    let has_elements = match store.peek(key, now_ms).map(|e| &e.value) {
        Some(Value::List(l)) => !l.is_empty(),
        Some(Value::ZSet(z)) => !z.is_empty(),
        _ => false,
    };
    if !has_elements {
        return;
    }
    WAITERS.with(|w| {
        let mut waiters = w.borrow_mut();
        let id = (db, key.to_vec());
        let Some(queue) = waiters.get_mut(&id) else {
            return;
        };
        while let Some(waiter) = queue.pop_front() {
            if !waiter.done.load(Ordering::Acquire) && waiter.wake.try_send(()).is_ok() {
                break;
            }
        }
        if queue.is_empty() {
            waiters.remove(&id);
        }
    });
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
    conn.count_command();
    let positions = key_positions(spec, args).unwrap_or_default();
    // A malformed timeout: the step answers the error.
    let wait_ms = timeout_ms(timeout_arg(spec, args)).unwrap_or_default();
    let deadline = (wait_ms > 0).then(|| Instant::now() + Duration::from_millis(wait_ms));
    let mut blocked: Option<Blocked> = None;
    // Whether the peer may still be watched for a disconnect (not once input is pending).
    let mut watch_peer = true;
    let mut first = true;
    loop {
        let mut reply = Vec::new();
        fanout::gathered(conn, spec, args, &positions, &mut reply).await;
        // A key that held another type when the command came answers WRONGTYPE; one that
        // took another type while the client waited leaves it waiting, as in Redis.
        if !first && reply.starts_with(b"-WRONGTYPE") {
            reply.clear();
        }
        first = false;
        if !reply.is_empty() {
            out.extend_from_slice(&reply);
            return;
        }
        blocked.get_or_insert_with(|| Blocked::new(conn.state.clone()));
        let (tx, rx) = flume::bounded(1);
        let waiter = Arc::new(Waiter {
            done: AtomicBool::new(false),
            wake: tx,
        });
        let guard = DoneOnDrop(waiter.clone());
        // The keys waited on: a move waits on its source only (its destination may well
        // hold elements, which its step does not take).
        let waited = match spec.name {
            "brpoplpush" | "blmove" => &positions[..1.min(positions.len())],
            _ => &positions[..],
        };
        let keys: Vec<Vec<u8>> = waited.iter().map(|&i| args[i].clone()).collect();
        let db = conn.db;
        for key in &keys {
            let (key, waiter) = (key.clone(), waiter.clone());
            let _ = submit_to(owner(&key, conn.shards), move || register(db, key, waiter)).await;
        }
        // A push between the first try and the registration.
        let mut reply = Vec::new();
        fanout::gathered(conn, spec, args, &positions, &mut reply).await;
        if reply.starts_with(b"-WRONGTYPE") {
            reply.clear();
        }
        if !reply.is_empty() {
            drop(guard);
            forget(conn, db, &keys);
            out.extend_from_slice(&reply);
            return;
        }
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let woken = wait(stream, &rx, remaining, &mut watch_peer).await;
        drop(guard);
        forget(conn, db, &keys);
        match woken {
            Wait::Woken => continue,
            Wait::TimedOut => {
                conn.speak();
                return timed_out(spec, out);
            }
            Wait::Disconnected => {
                conn.closing = true;
                return;
            }
        }
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
    Woken,
    TimedOut,
    Disconnected,
}

async fn wait(
    stream: &mut TcpStream,
    rx: &flume::Receiver<()>,
    remaining: Option<Duration>,
    watch_peer: &mut bool,
) -> Wait {
    let woken = async {
        loop {
            if !*watch_peer {
                return rx.recv_async().await.is_ok();
            }
            match select(rx.recv_async(), stream.readable()).await {
                Either::Left(r) => return r.is_ok(),
                Either::Right(Ok(true)) => *watch_peer = false,
                Either::Right(_) => return false,
            }
        }
    };
    let result = match remaining {
        Some(left) if left.is_zero() => return Wait::TimedOut,
        Some(left) => timeout(left, woken).await.ok(),
        None => Some(woken.await),
    };
    match result {
        None => Wait::TimedOut,
        Some(true) => Wait::Woken,
        Some(false) => Wait::Disconnected,
    }
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

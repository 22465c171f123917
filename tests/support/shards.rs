//! Test support: start a small real server, run a test body as a shard's main task, and bring
//! what it saw back to the test thread. Every wait is bounded, so a hang fails the test
//! instead of blocking it, and the server is stopped before a failure is reported.
//!
//! Assertions belong on the test thread: a body returns what it observed. A body that panics
//! drops its result sender, which the test thread sees at once as a disconnected channel (the
//! panic message itself is printed by the panic hook).

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

#[path = "ports.rs"]
mod ports;

use std::{
    fmt::Debug,
    future::Future,
    sync::{Mutex, MutexGuard, PoisonError, mpsc},
    thread,
    time::{Duration, Instant},
};

use percore::{Server, ServerBuilder, ServerHandle, ShardInfo};

/// The longest a test waits for any one thing a shard should do in well under a second.
pub const WAIT: Duration = Duration::from_secs(5);

/// How long the helpers give a server to stop and join.
pub const STOP_WAIT: Duration = Duration::from_secs(3);

/// Two shards, pinned (the test machine has two cores; with fewer, placement wraps).
pub fn two_shards() -> ServerBuilder {
    Server::builder().shards(2)
}

/// Starts a server, failing the test with the reason if it does not start.
pub fn start<F, Fut>(builder: ServerBuilder, setup: F) -> ServerHandle
where
    F: Fn(ShardInfo) -> Result<Fut, percore::Error> + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    builder
        .start(setup)
        .unwrap_or_else(|e| panic!("server did not start: {e}"))
}

/// Receives one value within [`WAIT`], failing the test (naming `what`) otherwise.
pub fn recv<T>(rx: &mpsc::Receiver<T>, what: &str) -> T {
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|e| panic!("no {what} within {WAIT:?} ({e}); did a shard panic?"))
}

/// Joins the server on a helper thread and waits at most `within`. `None`: it did not stop.
pub fn join_within(handle: ServerHandle, within: Duration) -> Option<Result<(), percore::Error>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(handle.join());
    });
    rx.recv_timeout(within).ok()
}

/// Stops the server with a short drain and joins it, failing the test if it does not stop
/// cleanly within [`STOP_WAIT`].
pub fn stop(handle: ServerHandle) {
    if let Err(e) = try_stop(handle) {
        panic!("{e}");
    }
}

/// Stops the server with a short drain and joins it; why it did not stop cleanly within
/// [`STOP_WAIT`], if it did not.
pub fn try_stop(handle: ServerHandle) -> Result<(), String> {
    handle.stop_within(Duration::from_millis(500));
    match join_within(handle, STOP_WAIT) {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(format!("server stopped with an error: {e}")),
        None => Err(format!("server did not stop within {STOP_WAIT:?}")),
    }
}

/// Runs `body` as the main task of shard `on` (the other shards idle) and returns its
/// output, then stops the server.
pub fn run_on<T, F, Fut>(builder: ServerBuilder, on: usize, body: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + Debug + 'static,
{
    let body = Mutex::new(Some(body));
    let (tx, rx) = mpsc::channel();
    let handle = start(builder, move |info: ShardInfo| {
        let body = if info.id == on {
            lock(&body).take()
        } else {
            None
        };
        let tx = tx.clone();
        Ok(async move {
            if let Some(body) = body {
                let _ = tx.send(body().await);
            }
        })
    });
    let output = rx.recv_timeout(WAIT);
    let stopped = try_stop(handle);
    let output = output.unwrap_or_else(|e| {
        panic!("shard {on} gave no result within {WAIT:?} ({e}); then: {stopped:?}")
    });
    if let Err(e) = stopped {
        panic!("{e}; shard {on}'s result was {output:?}");
    }
    output
}

/// Runs `body(info)` as the main task of every shard and returns their outputs in shard
/// order, then stops the server.
pub fn run_on_each<T, F, Fut>(builder: ServerBuilder, body: F) -> Vec<T>
where
    F: Fn(ShardInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + Debug + 'static,
{
    let (tx, rx) = mpsc::channel();
    let handle = start(builder, move |info: ShardInfo| {
        let run = body(info);
        let tx = tx.clone();
        Ok(async move {
            let _ = tx.send((info.id, run.await));
        })
    });
    let count = handle.report().shards;
    let deadline = Instant::now() + WAIT;
    let mut outputs = Vec::with_capacity(count);
    let mut missing = None;
    while outputs.len() < count {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(output) => outputs.push(output),
            Err(e) => {
                missing = Some(e);
                break;
            }
        }
    }
    let stopped = try_stop(handle);
    if let Some(e) = missing {
        panic!(
            "{} of {count} shards gave no result within {WAIT:?} ({e}); then: {stopped:?}",
            count - outputs.len()
        );
    }
    if let Err(e) = stopped {
        panic!("{e}; the shards' results were {outputs:?}");
    }
    outputs.sort_by_key(|(id, _)| *id);
    outputs.into_iter().map(|(_, output)| output).collect()
}

/// Serialises the timing-sensitive tests of one test binary, so their shards do not compete
/// for the two cores with another test's busy shards.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    lock(&SERIAL)
}

/// Locks a mutex, ignoring poisoning (a failed test must not fail the next one).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// xorshift64: seeded randomness that replays.
pub fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// Holds shard `target`'s loop inside its mesh phase (nothing else runs there, its inbox
/// stays undrained) until the returned sender is dropped or sent to; bounded by [`WAIT`].
/// Returns once the target is held. Call it from a task on another shard.
pub async fn hold_shard(target: usize) -> mpsc::Sender<()> {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    percore::mesh::send_to(target, move || {
        let _ = entered_tx.send(());
        let _ = release_rx.recv_timeout(WAIT);
    })
    .await
    .expect("holder delivered");
    // Waited for on a pool thread, not on the calling shard, whose loop must go on.
    percore::spawn_blocking(move || entered_rx.recv_timeout(WAIT))
        .await
        .expect("pool thread")
        .unwrap_or_else(|e| panic!("shard {target} did not run the holder: {e}"));
    release_tx
}

/// A loopback address for a server the test starts, free now and outside the ephemeral
/// range (see `ports`).
pub fn free_loopback_addr() -> std::net::SocketAddr {
    ports::free_loopback_addr()
}

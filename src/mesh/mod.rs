//! The mesh: how shards talk. Each shard has one bounded inbox of messages (closures that run
//! on the receiving shard, carrying typed data); `submit_to` calls a shard and awaits its
//! reply, `send_to` delivers without a reply, `broadcast` reaches every shard, and
//! [`Channel`] gives typed point-to-point queues.
//!
//! Bounded everywhere: a full inbox makes `send_to`/`submit_to` wait (backpressure) and
//! `try_send_to` fail with [`MeshError::Full`]; memory never grows without limit.
//!
//! Bounded waiting for a stuck shard: once the stall detector has seen a shard's loop
//! iteration run longer than the mesh timeout (`ServerBuilder::mesh_timeout`, 5 s by
//! default), calls to it fail with [`MeshError::Unavailable`] instead of waiting: new ones
//! at once, and those already waiting for its answer when the detector marks it (each
//! caller shard is told through its inbox). A call therefore waits at most about the mesh
//! timeout for a shard that has stopped answering; one made to a shard that is merely busy
//! (a long inbox, short iterations) waits as before. The answer a stuck shard gives after
//! it recovers is dropped. A sender waiting for room in a stuck shard's *full* inbox is not
//! released (only `try_send_to` fails at once); inboxes hold 1024 messages by default. A sender
//! wakes a sleeping receiver through MSG_RING from its own ring (or the receiver's eventfd
//! from threads that own no ring); a receiver that is awake costs its senders no syscall.
//! Messages from one shard to another run in the order they were sent; a [`CallBatcher`]'s
//! batches keep their own order but leave at the end of the run phase, so they may run after
//! messages sent later in the same iteration (see `batch`).

#![forbid(unsafe_code)]

mod batch;
mod channel;
mod waiting;

use std::{
    cell::RefCell,
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    rc::Rc,
    sync::Arc,
};

pub use self::{
    batch::{BatchedCall, CallBatcher, MAX_CALLS_PER_MESSAGE},
    channel::Channel,
};
use crate::{
    future::Either,
    task::{
        self, CORE, Core, JoinError, join::panic_message, local::ShardLocal, remote::ShardRemote,
    },
};

thread_local! {
    static CURRENT: RefCell<Option<Rc<MeshShard>>> = const { RefCell::new(None) };
}

/// The mesh end of the shard this thread runs.
pub(crate) static MESH: ShardLocal<MeshShard> = ShardLocal::new(&CURRENT);

pub(crate) type Envelope = Box<dyn FnOnce() + Send>;

/// Why a mesh message was not delivered or answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeshError {
    /// The target's inbox is full (only from the `try_` calls).
    Full,
    /// No shard has this id.
    NoSuchShard(usize),
    /// The target shard has stopped.
    Closed,
    /// The handler panicked on the target shard (the shard goes on).
    Panicked(String),
    /// The target shard has been stuck in one loop iteration longer than the mesh timeout
    /// (a handler that computes or blocks): the call was not made, or its answer was given
    /// up. Worth retrying later; the shard may recover.
    Unavailable(usize),
}

impl std::fmt::Display for MeshError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MeshError::Full => f.write_str("the target shard's inbox is full"),
            MeshError::NoSuchShard(id) => write!(f, "there is no shard {id}"),
            MeshError::Closed => f.write_str("the target shard has stopped"),
            MeshError::Panicked(msg) => {
                write!(f, "the handler panicked on the target shard: {msg}")
            }
            MeshError::Unavailable(id) => write!(f, "shard {id} is unavailable (stuck)"),
        }
    }
}

impl std::error::Error for MeshError {}

/// What all shards share: every inbox's sender, every reply lane's sender and every
/// shard's wake handle.
pub(crate) struct MeshShared {
    senders: Vec<flume::Sender<Envelope>>,
    reply_senders: Vec<flume::Sender<Envelope>>,
    remotes: Vec<Arc<ShardRemote>>,
}

/// A shard's reply lane, as held by the messages that will answer it.
pub(crate) struct ReplyLane {
    sender: flume::Sender<Envelope>,
    remote: Arc<ShardRemote>,
}

impl ReplyLane {
    /// Delivers a reply and wakes the shard; false when the shard has stopped.
    pub(crate) fn post(&self, reply: Envelope) -> bool {
        if self.sender.send(reply).is_err() {
            return false;
        }
        self.remote.notify();
        count_sent();
        true
    }
}

/// One shard's end of the mesh.
pub(crate) struct MeshShard {
    inbox: flume::Receiver<Envelope>,
    /// Replies to batched calls this shard made ([`CallBatcher`]). Unbounded on purpose: a
    /// reply must never wait (the shard that sends it is inside its own mesh phase, and two
    /// shards waiting on each other's full queues would deadlock), and the number of replies
    /// in flight is bounded by the calls admitted through the bounded inboxes.
    replies: flume::Receiver<Envelope>,
    pub(crate) shared: Arc<MeshShared>,
}

/// Builds the inboxes of `remotes.len()` shards, each holding at most `capacity` messages.
pub(crate) fn build(remotes: Vec<Arc<ShardRemote>>, capacity: usize) -> Vec<MeshShard> {
    let (senders, receivers): (Vec<_>, Vec<_>) = remotes
        .iter()
        .map(|_| flume::bounded(capacity.max(1)))
        .unzip();
    let (reply_senders, reply_receivers): (Vec<_>, Vec<_>) =
        remotes.iter().map(|_| flume::unbounded()).unzip();
    let shared = Arc::new(MeshShared {
        senders,
        reply_senders,
        remotes,
    });
    receivers
        .into_iter()
        .zip(reply_receivers)
        .map(|(inbox, replies)| MeshShard {
            inbox,
            replies,
            shared: shared.clone(),
        })
        .collect()
}

impl MeshShard {
    pub(crate) fn has_pending(&self) -> bool {
        !self.inbox.is_empty() || !self.replies.is_empty()
    }

    /// Drops every message still queued for this shard once its loop has ended; dropping a
    /// call's message answers its caller with [`MeshError::Closed`].
    pub(crate) fn drop_undelivered(&self) {
        for message in self.inbox.drain() {
            drop(message);
        }
        for reply in self.replies.drain() {
            drop(reply);
        }
    }

    pub(crate) fn inbox_len(&self) -> usize {
        self.inbox.len()
    }
}

impl MeshShared {
    fn sender(&self, target: usize) -> Result<&flume::Sender<Envelope>, MeshError> {
        self.senders
            .get(target)
            .ok_or(MeshError::NoSuchShard(target))
    }

    /// Fails with [`MeshError::Unavailable`] when the stall detector marked `target` stuck
    /// past the mesh timeout (one relaxed load of a word only the detector writes).
    fn check_available(&self, target: usize) -> Result<(), MeshError> {
        match self.remotes.get(target) {
            Some(remote) if remote.stall.is_unavailable() => Err(MeshError::Unavailable(target)),
            _ => Ok(()),
        }
    }

    /// Every shard's wake handle and stall state, in shard order.
    pub(crate) fn remotes(&self) -> &[Arc<ShardRemote>] {
        &self.remotes
    }

    /// Tells every other shard that `target` has become unavailable: each fails the calls
    /// to it that it still waits for (from the stall detector). A shard whose inbox is full
    /// is not told; its callers wait for the answer as before.
    pub(crate) fn fail_calls_to(&self, target: usize) {
        for origin in (0..self.senders.len()).filter(|origin| *origin != target) {
            self.post_from_outside(origin, Box::new(move || waiting::fail_calls_to(target)));
        }
    }

    /// Whether `target`'s inbox has room for a message now (a hint: other shards may fill
    /// it before the caller posts).
    pub(crate) fn has_room(&self, target: usize) -> bool {
        self.sender(target).is_ok_and(|sender| !sender.is_full())
    }

    /// Delivers a message from a thread that runs no shard (admin, tests); false when the
    /// inbox is full or gone.
    pub(crate) fn post_from_outside(&self, target: usize, message: Envelope) -> bool {
        let Ok(sender) = self.sender(target) else {
            return false;
        };
        if sender.try_send(message).is_err() {
            return false;
        }
        self.notify(target);
        true
    }

    /// Where replies to shard `origin`'s batched calls go: its reply lane (never waits; see
    /// [`MeshShard::replies`]) and its wake handle. Holds nothing of the other shards, so a
    /// call waiting in some inbox keeps no inbox alive.
    pub(crate) fn reply_lane(&self, origin: usize) -> Option<ReplyLane> {
        Some(ReplyLane {
            sender: self.reply_senders.get(origin)?.clone(),
            remote: self.remotes.get(origin)?.clone(),
        })
    }

    pub(crate) fn notify_eventfd(&self, target: usize) {
        if let Some(remote) = self.remotes.get(target) {
            remote.notify_eventfd();
        }
    }

    pub(crate) fn notify(&self, target: usize) {
        if let Some(remote) = self.remotes.get(target) {
            remote.notify();
        }
    }
}

/// Runs every reply waiting in the shard's reply lane (they only complete calls: short),
/// then up to `batch` messages from its inbox. A panicking handler is contained.
pub(crate) fn run_inbox(mesh: &MeshShard, core: &Core, batch: usize) {
    // Only those there now: replies posted meanwhile wait for the next iteration.
    for _ in 0..mesh.replies.len() {
        let Ok(reply) = mesh.replies.try_recv() else {
            break;
        };
        run_message(core, reply);
    }
    for _ in 0..batch {
        let Ok(message) = mesh.inbox.try_recv() else {
            break;
        };
        run_message(core, message);
    }
}

fn run_message(core: &Core, message: Envelope) {
    core.stats.borrow_mut().mesh_received += 1;
    if let Err(payload) = catch_unwind(AssertUnwindSafe(message)) {
        core.count_panic("mesh handler", &panic_message(&*payload));
    }
}

/// Runs a handler on the current shard; a panic is counted there and becomes the caller's
/// error instead of unwinding into the shard's loop.
fn run_contained<R>(f: impl FnOnce() -> R) -> Result<R, MeshError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = panic_message(&*payload);
        CORE.with(|core| core.count_panic("mesh handler", &message));
        MeshError::Panicked(message)
    })
}

/// This shard's id (0-based).
#[track_caller]
pub fn shard_id() -> usize {
    CORE.with_current(|core| core.id)
}

/// How many shards the server runs.
#[track_caller]
pub fn shard_count() -> usize {
    CORE.with_current(|core| core.count)
}

async fn deliver(target: usize, message: Envelope) -> Result<(), MeshError> {
    let shared = MESH.current().shared.clone();
    shared.check_available(target)?;
    let sender = shared.sender(target)?;
    match sender.try_send(message) {
        Ok(()) => {}
        Err(flume::TrySendError::Disconnected(_)) => return Err(MeshError::Closed),
        Err(flume::TrySendError::Full(message)) => wait_for_room(target, sender, message).await?,
    }
    shared.notify(target);
    count_sent();
    Ok(())
}

/// `target`'s inbox is full: waits for room, or fails with [`MeshError::Unavailable`] once
/// the stall detector marks `target` stuck (a stuck shard never makes room, and its callers
/// must not wait on it without bound).
async fn wait_for_room(
    target: usize,
    sender: &flume::Sender<Envelope>,
    message: Envelope,
) -> Result<(), MeshError> {
    let (_registration, failed) = waiting::Waiting::for_room(target);
    match crate::future::select(sender.send_async(message), failed.recv_async()).await {
        Either::Left(sent) => sent.map_err(|_| MeshError::Closed),
        Either::Right(failure) => Err(failure.unwrap_or(MeshError::Closed)),
    }
}

fn count_sent() {
    CORE.with(|core| core.stats.borrow_mut().mesh_sent += 1);
}

/// Counts a message taken by the current shard outside its inbox (a [`Channel`] batch): mesh
/// traffic, which keeps a shard in a conversation idle-polling instead of sleeping.
fn count_received() {
    CORE.with(|core| core.stats.borrow_mut().mesh_received += 1);
}

/// Runs `f` on shard `target` (in its mesh phase) without waiting for a result. Waits while
/// the target's inbox is full.
///
/// # Panics
/// Off a shard (at the call, naming the caller's line).
#[track_caller]
pub fn send_to<F>(target: usize, f: F) -> impl Future<Output = Result<(), MeshError>>
where
    F: FnOnce() + Send + 'static,
{
    task::expect_shard();
    async move { deliver(target, Box::new(f)).await }
}

/// Like [`send_to`], but fails with [`MeshError::Full`] instead of waiting.
#[track_caller]
pub fn try_send_to<F>(target: usize, f: F) -> Result<(), MeshError>
where
    F: FnOnce() + Send + 'static,
{
    let shared = MESH.current().shared.clone();
    shared.check_available(target)?;
    shared
        .sender(target)?
        .try_send(Box::new(f))
        .map_err(|e| match e {
            flume::TrySendError::Full(_) => MeshError::Full,
            flume::TrySendError::Disconnected(_) => MeshError::Closed,
        })?;
    shared.notify(target);
    count_sent();
    Ok(())
}

/// Runs `f` on shard `target` and returns its result. On the current shard, `f` runs at
/// once with no trip through the mesh.
///
/// # Panics
/// Off a shard (at the call, naming the caller's line).
#[track_caller]
pub fn submit_to<F, R>(target: usize, f: F) -> impl Future<Output = Result<R, MeshError>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    task::expect_shard();
    submit_to_inner(target, f)
}

async fn submit_to_inner<F, R>(target: usize, f: F) -> Result<R, MeshError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    if task::current_shard_id() == Some(target) {
        return run_contained(f);
    }
    let (reply_tx, reply_rx) = flume::bounded(1);
    let _waiting = waiting::Waiting::register(target, &reply_tx);
    deliver(
        target,
        Box::new(move || {
            let _ = reply_tx.try_send(run_contained(f));
        }),
    )
    .await?;
    reply_rx.recv_async().await.map_err(|_| MeshError::Closed)?
}

/// Runs the future made by `f` as a task on shard `target` and returns its output; for
/// handlers that need I/O or timers on the target.
///
/// # Panics
/// Off a shard (at the call, naming the caller's line).
#[track_caller]
pub fn submit_to_async<F, Fut, R>(target: usize, f: F) -> impl Future<Output = Result<R, MeshError>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
    R: Send + 'static,
{
    task::expect_shard();
    submit_to_async_inner(target, f)
}

async fn submit_to_async_inner<F, Fut, R>(target: usize, f: F) -> Result<R, MeshError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
    R: Send + 'static,
{
    let (reply_tx, reply_rx) = flume::bounded(1);
    let _waiting = (task::current_shard_id() != Some(target))
        .then(|| waiting::Waiting::register(target, &reply_tx));
    let start = move || {
        let core = CORE.current();
        let handle = core.spawn(f());
        core.spawn(async move {
            let result = handle.await.map_err(|e| match e {
                JoinError::Panicked(msg) => MeshError::Panicked(msg),
                JoinError::Cancelled => MeshError::Closed,
            });
            let _ = reply_tx.try_send(result);
        });
    };
    if task::current_shard_id() == Some(target) {
        start();
    } else {
        deliver(target, Box::new(start)).await?;
    }
    reply_rx.recv_async().await.map_err(|_| MeshError::Closed)?
}

/// Runs `f` on every shard (this one included, at once) and waits until each has run it.
///
/// # Panics
/// Off a shard (at the call, naming the caller's line).
#[track_caller]
pub fn broadcast<F>(f: F) -> impl Future<Output = Result<(), MeshError>>
where
    F: Fn() + Send + Sync + 'static,
{
    task::expect_shard();
    broadcast_inner(f)
}

async fn broadcast_inner<F>(f: F) -> Result<(), MeshError>
where
    F: Fn() + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let count = shard_count();
    let mut replies = Vec::with_capacity(count);
    for target in 0..count {
        let f = f.clone();
        replies.push(submit_to(target, move || f()));
    }
    for reply in replies {
        reply.await?;
    }
    Ok(())
}

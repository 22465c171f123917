//! Batched calls: what the tasks of one loop iteration ask of one other shard travels as one
//! mesh message, and its answers as one reply.
//!
//! [`submit_to`](super::submit_to) costs a message, a reply channel and a cross-thread wake
//! per call. A service whose connections each call the shard that owns some data (a
//! key-value store) makes many such calls per iteration. A [`CallBatcher`] gathers them per
//! target while the iteration's tasks run; once every ready task has run, it sends each
//! target one message. The target runs the handler once over the whole batch and posts one
//! reply, which completes every call at the start of the caller's next iteration (its mesh
//! phase, before its tasks run), so the callers go on in that same iteration.
//!
//! Order: one batcher's batches to one target run in the order they were made, also when the
//! target's inbox is full (later batches wait behind the one waiting for room). Within a
//! batch the handler gets the requests in call order and answers them in that order. A batch
//! leaves at the end of the run phase, so a plain message (`send_to`, `submit_to`) sent later
//! in the same iteration may run before it, and batches of two batchers are not ordered
//! with each other; a caller that needs such an order awaits the call first.
//!
//! Bounds: a message carries at most [`MAX_CALLS_PER_MESSAGE`] requests (more make more
//! messages), so one message is a bounded piece of the target's mesh phase.
//!
//! Failures reach every call of the batch: a handler that panics gives
//! [`MeshError::Panicked`]; a target that stops before running the batch gives
//! [`MeshError::Closed`] (the batch's reply guard answers when the message is dropped); a
//! target stuck past the mesh timeout gives [`MeshError::Unavailable`], at once for a batch
//! not yet sent and when the stall detector marks the target for one waiting for its reply.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    pin::Pin,
    rc::Rc,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
};

use super::{Envelope, MESH, MeshError, ReplyLane, count_sent, run_contained, waiting};
use crate::{
    slab::{Key, Slab},
    task::{self, CORE},
};

/// Requests one batch message carries at most.
pub const MAX_CALLS_PER_MESSAGE: usize = 256;

type Handler<Req, Resp> = Arc<dyn Fn(Vec<Req>) -> Vec<Resp> + Send + Sync>;
type BatchResult<Resp> = Result<Vec<Resp>, MeshError>;

/// Calls from the current shard to any shard, gathered per target over one loop iteration.
/// Made on a shard and used there (it is `!Send`); cheap to clone (clones share the queues).
///
/// ```no_run
/// use std::{cell::RefCell, collections::HashMap};
///
/// use percore::{Server, TcpStream, mesh::{self, CallBatcher}};
///
/// thread_local! {
///     /// Each shard's part of a counter table: the counters whose name hashes to it.
///     static COUNTS: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
/// }
///
/// /// Adds one to each named counter on the shard that runs the batch; answers the new values.
/// fn bump(names: Vec<String>) -> Vec<u64> {
///     COUNTS.with(|counts| {
///         let mut counts = counts.borrow_mut();
///         names
///             .into_iter()
///             .map(|name| {
///                 let n = counts.entry(name).or_default();
///                 *n += 1;
///                 *n
///             })
///             .collect()
///     })
/// }
///
/// async fn handle(mut stream: TcpStream, bumps: CallBatcher<String, u64>) {
///     while let Ok(Some(name)) = stream
///         .respond_with(|input, _| (input.len(), String::from_utf8_lossy(input).into_owned()))
///         .await
///     {
///         let owner = name.len() % mesh::shard_count();
///         // Every connection of this shard that bumps in this iteration shares one message.
///         let value = bumps.call(owner, name).await;
///         let _ = stream.write_with(|out| out.extend_from_slice(format!("{value:?}\n").as_bytes()));
///     }
/// }
///
/// fn main() -> Result<(), percore::Error> {
///     let server = Server::builder().shards(2).start(|_| {
///         Ok(async {
///             let bumps = CallBatcher::new(bump);
///             let listener = percore::TcpListener::bind("127.0.0.1:7001".parse().unwrap())
///                 .expect("bind");
///             while let Ok(stream) = listener.accept().await {
///                 percore::spawn(handle(stream, bumps.clone()));
///             }
///         })
///     })?;
///     server.join()
/// }
/// ```
pub struct CallBatcher<Req, Resp> {
    inner: Rc<Inner<Req, Resp>>,
}

impl<Req, Resp> Clone for CallBatcher<Req, Resp> {
    fn clone(&self) -> Self {
        CallBatcher {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<Req, Resp> {
    handler: Handler<Req, Resp>,
    targets: Vec<Target<Req, Resp>>,
    flush_scheduled: Cell<bool>,
}

/// The calls gathered for one target.
struct Target<Req, Resp> {
    requests: RefCell<Vec<Req>>,
    slots: RefCell<Vec<Rc<Slot<Resp>>>>,
    /// A batch is waiting for room in the target's inbox: later ones wait behind it.
    blocked: Cell<bool>,
}

/// Where one call's answer lands.
struct Slot<Resp> {
    result: RefCell<Option<Result<Resp, MeshError>>>,
    waker: RefCell<Option<Waker>>,
}

impl<Resp> Slot<Resp> {
    fn new() -> Rc<Self> {
        Rc::new(Slot {
            result: RefCell::new(None),
            waker: RefCell::new(None),
        })
    }

    fn fill(&self, result: Result<Resp, MeshError>) {
        *self.result.borrow_mut() = Some(result);
        let waker = self.waker.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The answer of one [`CallBatcher::call`].
pub struct BatchedCall<Resp> {
    slot: Rc<Slot<Resp>>,
}

impl<Resp> Future for BatchedCall<Resp> {
    type Output = Result<Resp, MeshError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(result) = self.slot.result.borrow_mut().take() {
            return Poll::Ready(result);
        }
        let mut waker = self.slot.waker.borrow_mut();
        match &*waker {
            Some(current) if current.will_wake(cx.waker()) => {}
            _ => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> CallBatcher<Req, Resp> {
    /// A batcher whose calls run `handler` on their target shard. The handler gets one
    /// batch's requests in call order and must return one response per request, in the same
    /// order (a batch answered with another count fails each of its calls).
    ///
    /// # Panics
    /// When called from a thread that runs no shard.
    #[track_caller]
    pub fn new(handler: impl Fn(Vec<Req>) -> Vec<Resp> + Send + Sync + 'static) -> Self {
        let shards = CORE.current().count;
        CallBatcher {
            inner: Rc::new(Inner {
                handler: Arc::new(handler),
                targets: (0..shards)
                    .map(|_| Target {
                        requests: RefCell::new(Vec::new()),
                        slots: RefCell::new(Vec::new()),
                        blocked: Cell::new(false),
                    })
                    .collect(),
                flush_scheduled: Cell::new(false),
            }),
        }
    }

    /// Calls shard `target` with `request`. On the current shard the handler runs at once,
    /// alone, with no trip through the mesh; otherwise the request joins this iteration's
    /// batch for `target`, sent when the iteration's ready tasks have all run.
    #[track_caller]
    pub fn call(&self, target: usize, request: Req) -> BatchedCall<Resp> {
        let slot = Slot::new();
        let call = BatchedCall { slot: slot.clone() };
        let Some(queue) = self.inner.targets.get(target) else {
            slot.fill(Err(MeshError::NoSuchShard(target)));
            return call;
        };
        if task::current_shard_id() == Some(target) {
            let result = run_contained(|| (self.inner.handler)(vec![request]));
            distribute(vec![slot], result);
            return call;
        }
        queue.requests.borrow_mut().push(request);
        queue.slots.borrow_mut().push(slot);
        if !self.inner.flush_scheduled.replace(true) {
            let inner = self.inner.clone();
            CORE.current().at_end_of_run(Box::new(move || {
                inner.flush_scheduled.set(false);
                for target in 0..inner.targets.len() {
                    flush(&inner, target);
                }
            }));
        }
        call
    }
}

/// Sends the calls gathered for `target`, [`MAX_CALLS_PER_MESSAGE`] to a message, unless an
/// earlier batch is still waiting for room in its inbox (that batch's sender flushes again
/// once it got in).
fn flush<Req: Send + 'static, Resp: Send + 'static>(inner: &Rc<Inner<Req, Resp>>, target: usize) {
    let queue = &inner.targets[target];
    while !queue.blocked.get() && !queue.requests.borrow().is_empty() {
        let requests = take_front(&mut queue.requests.borrow_mut());
        let slots = take_front(&mut queue.slots.borrow_mut());
        send_batch(inner, target, requests, slots);
    }
}

/// The first [`MAX_CALLS_PER_MESSAGE`] items of `queue`, in order.
fn take_front<T>(queue: &mut Vec<T>) -> Vec<T> {
    if queue.len() <= MAX_CALLS_PER_MESSAGE {
        std::mem::take(queue)
    } else {
        queue.drain(..MAX_CALLS_PER_MESSAGE).collect()
    }
}

fn send_batch<Req: Send + 'static, Resp: Send + 'static>(
    inner: &Rc<Inner<Req, Resp>>,
    target: usize,
    requests: Vec<Req>,
    slots: Vec<Rc<Slot<Resp>>>,
) {
    let core = CORE.current();
    let shared = MESH.current().shared.clone();
    let (Ok(sender), Some(lane)) = (shared.sender(target), shared.reply_lane(core.id)) else {
        // `target` indexes `targets`, made with one entry per shard.
        return distribute(slots, Err(MeshError::NoSuchShard(target)));
    };
    if let Err(error) = shared.check_available(target) {
        return distribute(slots, Err(error));
    }
    let reply: ReplyCell<Resp> = Arc::new(Mutex::new(None));
    let reply_to = ReplyTo::<Resp> {
        lane,
        pending: register_pending(target, slots, reply.clone()),
        reply,
        sent: false,
    };
    let handler = inner.handler.clone();
    let message: Envelope = Box::new(move || {
        let result = run_contained(|| handler(requests));
        reply_to.send(result);
    });
    match sender.try_send(message) {
        Ok(()) => {
            shared.notify(target);
            count_sent();
        }
        Err(flume::TrySendError::Full(message)) => {
            inner.targets[target].blocked.set(true);
            let inner = inner.clone();
            let sender = sender.clone();
            core.spawn(async move {
                // A failed send drops the message, whose reply guard answers `Closed`.
                if sender.send_async(message).await.is_ok() {
                    shared.notify(target);
                    count_sent();
                }
                inner.targets[target].blocked.set(false);
                flush(&inner, target);
            });
        }
        // Dropping the message makes its reply guard answer `Closed`.
        Err(flume::TrySendError::Disconnected(message)) => drop(message),
    }
}

/// Carries a batch's reply home. Dropped unsent (the target stopped before running the
/// batch), it answers [`MeshError::Closed`], so no call waits forever.
struct ReplyTo<Resp: Send + 'static> {
    lane: ReplyLane,
    pending: Key,
    /// Where the typed reply waits for the origin's reply lane to run the completion.
    reply: ReplyCell<Resp>,
    sent: bool,
}

impl<Resp: Send + 'static> ReplyTo<Resp> {
    fn send(mut self, result: BatchResult<Resp>) {
        self.sent = true;
        self.post(result);
    }

    fn post(&self, result: BatchResult<Resp>) {
        // Nobody else holds the lock but the completion, which runs after this post.
        *self
            .reply
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(result);
        let pending = self.pending;
        // False only when the origin has stopped: nobody is left to answer.
        let _ = self
            .lane
            .post(Box::new(move || finish_pending(pending, None)));
    }
}

impl<Resp: Send + 'static> Drop for ReplyTo<Resp> {
    fn drop(&mut self) {
        if !self.sent {
            self.post(Err(MeshError::Closed));
        }
    }
}

/// A batch's reply, written by the target and read by the origin's completion: typed, so
/// nothing is downcast.
type ReplyCell<Resp> = Arc<Mutex<Option<BatchResult<Resp>>>>;

/// Completes a batch's calls with the reply in its cell (`None`), or fails them all.
type Completion = Box<dyn FnOnce(Option<MeshError>)>;

thread_local! {
    /// The batches this shard sent and awaits, by id: each completes its calls' slots.
    static PENDING: RefCell<PendingBatches> = RefCell::new(PendingBatches::default());
}

/// Each batch's completion and its entry among the calls waiting for the target.
type PendingBatches = Slab<(Completion, Key)>;

fn register_pending<Resp: 'static>(
    target: usize,
    slots: Vec<Rc<Slot<Resp>>>,
    reply: ReplyCell<Resp>,
) -> Key {
    let completion: Completion = Box::new(move |failure| {
        let result = match failure {
            Some(error) => Err(error),
            None => reply
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take()
                .unwrap_or(Err(MeshError::Closed)),
        };
        distribute(slots, result);
    });
    PENDING.with(|pending| {
        pending.borrow_mut().insert_with(|id| {
            let fail = waiting::register_fail(
                target,
                Box::new(move |error| finish_pending(id, Some(error))),
            );
            (completion, fail)
        })
    })
}

/// Runs on the origin shard: completes the batch `id` with its reply (`None`) or fails it;
/// a no-op when it already ended (a late reply).
fn finish_pending(id: Key, failure: Option<MeshError>) {
    let entry = PENDING.with(|pending| pending.borrow_mut().remove(id));
    if let Some((completion, fail)) = entry {
        waiting::unregister(fail);
        completion(failure);
    }
}

/// Hands each call its response, or the batch's error to every call.
fn distribute<Resp>(slots: Vec<Rc<Slot<Resp>>>, result: BatchResult<Resp>) {
    match result {
        Ok(responses) if responses.len() == slots.len() => {
            for (slot, response) in slots.into_iter().zip(responses) {
                slot.fill(Ok(response));
            }
        }
        Ok(responses) => {
            let error = MeshError::Panicked(format!(
                "the batch handler answered {} of {} requests",
                responses.len(),
                slots.len()
            ));
            for slot in slots {
                slot.fill(Err(error.clone()));
            }
        }
        Err(error) => {
            for slot in slots {
                slot.fill(Err(error.clone()));
            }
        }
    }
}

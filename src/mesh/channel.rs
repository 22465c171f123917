//! Typed, bounded point-to-point queues between shards.
//!
//! Messages travel in batches: a shard's sends to one target gather in a buffer of that
//! (sender, target) pair and leave as one queue entry once [`BATCH`] are there or at the end
//! of the sender's run phase, whichever comes first; the receiver takes a whole batch off
//! the queue at once and hands its messages out one by one. A stream of messages therefore
//! costs one queue operation and at most one cross-thread wake per batch, not per message.
//!
//! The buffers are the shard's own (thread-local, found by the channel's id), so a message
//! costs the sender one atomic operation (its admission) and the receiver none.
//!
//! Bounds: a queue admits at most `capacity` messages that its shard has not taken yet
//! (buffered at senders or queued), counted per message when sent, so `try_send_to` fails
//! with [`MeshError::Full`] and `send_to` waits exactly as with a per-message queue. A
//! sender that finds the queue full first sends its own buffer (its messages count against
//! the bound, so they must reach the receiver for room to appear). The receiving shard holds
//! the rest of the batches it took on top of that (at most `capacity`).
//!
//! Order: the messages of one sending shard to one target arrive in the order they were
//! sent. Messages of different senders interleave batch by batch. Sends from a thread that
//! runs no shard go out one by one at once.

use std::{
    any::Any,
    cell::RefCell,
    collections::VecDeque,
    future::poll_fn,
    rc::Rc,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, Weak,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Poll, Waker},
};

use super::MeshError;
use crate::task::{self, CORE};

/// Messages one batch carries at most (fewer when the capacity is smaller).
pub(crate) const BATCH: usize = 64;

/// Channel ids, for finding a channel's buffers on a shard.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's buffers of every channel it used, by channel id.
    static LOCAL: RefCell<Vec<(u64, Rc<dyn LocalSide>)>> = const { RefCell::new(Vec::new()) };
}

/// One batch waiting on this thread to be sent, and the rest of batches taken here.
struct Local<T> {
    shared: Weak<Shared<T>>,
    /// Per target: messages admitted and not yet sent as a batch.
    outgoing: RefCell<Vec<Vec<T>>>,
    /// Per target: a flush is scheduled for the end of this run phase.
    flush_scheduled: RefCell<Vec<bool>>,
    /// The rest of the batches this shard took, handed out one by one.
    taken: RefCell<VecDeque<T>>,
}

trait LocalSide {
    fn as_any(&self) -> &dyn Any;
    /// False once the channel is gone everywhere (the entry can be dropped).
    fn alive(&self) -> bool;
}

impl<T: Send + 'static> LocalSide for Local<T> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn alive(&self) -> bool {
        self.shared.strong_count() > 0
    }
}

/// One bounded queue per shard for messages of type `T`. Make it before the server starts,
/// clone it into every shard; each shard receives on its own queue and sends to any.
///
/// Receive on one task per shard: a batch taken by one receiving task is handed out by
/// later `recv`/`try_recv` calls on that shard, and a second task already waiting in
/// `recv` is woken only by a later batch.
pub struct Channel<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Channel<T> {
    fn clone(&self) -> Self {
        Channel {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<T> {
    id: u64,
    lanes: Vec<Lane<T>>,
    capacity: usize,
    batch: usize,
}

/// One shard's queue.
struct Lane<T> {
    tx: flume::Sender<Vec<T>>,
    rx: flume::Receiver<Vec<T>>,
    /// Messages admitted for this shard and not yet taken off the queue by it (in senders'
    /// buffers or queued). Only this bounds the queue; the flume queue itself is unbounded.
    admitted: Padded<AtomicUsize>,
    /// Senders waiting for room, woken when this shard takes a batch.
    room: Mutex<Vec<Waker>>,
    room_wanted: AtomicBool,
}

/// Keeps the senders' per-message count off the cache line of what the receiver writes.
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while the lock was held left a consistent list (push or take), so a poisoned
    // lock is used as it is.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: Send + 'static> Channel<T> {
    /// Queues for `shards` shards, each holding at most `capacity` messages.
    pub fn new(shards: usize, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let lanes = (0..shards)
            .map(|_| {
                let (tx, rx) = flume::unbounded();
                Lane {
                    tx,
                    rx,
                    admitted: Padded(AtomicUsize::new(0)),
                    room: Mutex::new(Vec::new()),
                    room_wanted: AtomicBool::new(false),
                }
            })
            .collect();
        Channel {
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                lanes,
                capacity,
                batch: BATCH.min(capacity),
            }),
        }
    }

    fn lane(&self, target: usize) -> Result<&Lane<T>, MeshError> {
        self.shared
            .lanes
            .get(target)
            .ok_or(MeshError::NoSuchShard(target))
    }

    /// Sends to shard `target`, waiting while its queue is full.
    pub async fn send_to(&self, target: usize, message: T) -> Result<(), MeshError> {
        let lane = self.lane(target)?;
        if !self.shared.admit(lane) {
            Shared::flush_own(&self.shared, target);
            poll_fn(|cx| {
                if self.shared.admit(lane) {
                    return Poll::Ready(());
                }
                {
                    let mut room = lock(&lane.room);
                    if !room.iter().any(|w| w.will_wake(cx.waker())) {
                        room.push(cx.waker().clone());
                    }
                    lane.room_wanted.store(true, Ordering::SeqCst);
                }
                // Room made between the first try and the registration is seen here.
                if self.shared.admit(lane) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        }
        Shared::push(&self.shared, target, message);
        Ok(())
    }

    /// Sends to shard `target`, failing with [`MeshError::Full`] instead of waiting.
    pub fn try_send_to(&self, target: usize, message: T) -> Result<(), MeshError> {
        let lane = self.lane(target)?;
        if !self.shared.admit(lane) {
            Shared::flush_own(&self.shared, target);
            return Err(MeshError::Full);
        }
        Shared::push(&self.shared, target, message);
        Ok(())
    }

    /// Receives the next message for the current shard.
    pub async fn recv(&self) -> Result<T, MeshError> {
        let id = task::current_shard_id().ok_or(MeshError::Closed)?;
        let lane = self.lane(id)?;
        let local = Shared::local(&self.shared);
        if let Some(message) = self.shared.take(lane, &local) {
            return Ok(message);
        }
        let batch = lane.rx.recv_async().await.map_err(|_| MeshError::Closed)?;
        Ok(self.shared.accept(lane, &local, batch))
    }

    /// Takes a message for the current shard if one is queued.
    pub fn try_recv(&self) -> Option<T> {
        let id = task::current_shard_id()?;
        let lane = self.shared.lanes.get(id)?;
        self.shared.take(lane, &Shared::local(&self.shared))
    }

    /// Messages queued for shard `target`: sent (including those still in their senders'
    /// batches) and not yet taken off the queue by that shard.
    pub fn len(&self, target: usize) -> usize {
        self.shared
            .lanes
            .get(target)
            .map_or(0, |lane| lane.admitted.load(Ordering::Acquire))
    }

    /// True when shard `target`'s queue is empty.
    pub fn is_empty(&self, target: usize) -> bool {
        self.len(target) == 0
    }
}

impl<T: Send + 'static> Shared<T> {
    /// This thread's buffers of this channel (made at first use; entries of channels gone
    /// everywhere are dropped then).
    fn local(this: &Arc<Self>) -> Rc<dyn LocalSide> {
        LOCAL.with(|locals| {
            if let Some((_, local)) = locals.borrow().iter().find(|(id, _)| *id == this.id) {
                return local.clone();
            }
            let mut locals = locals.borrow_mut();
            locals.retain(|(_, local)| local.alive());
            let targets = this.lanes.len();
            let local: Rc<dyn LocalSide> = Rc::new(Local {
                shared: Arc::downgrade(this),
                outgoing: RefCell::new((0..targets).map(|_| Vec::new()).collect()),
                flush_scheduled: RefCell::new(vec![false; targets]),
                taken: RefCell::new(VecDeque::new()),
            });
            locals.push((this.id, local.clone()));
            local
        })
    }

    /// Counts one more message for `lane`'s shard; false when its queue is full.
    fn admit(&self, lane: &Lane<T>) -> bool {
        let mut admitted = lane.admitted.load(Ordering::Relaxed);
        loop {
            if admitted >= self.capacity {
                return false;
            }
            match lane.admitted.compare_exchange_weak(
                admitted,
                admitted + 1,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => admitted = now,
            }
        }
    }

    /// Puts an admitted message in the current shard's batch for `target` (sending the
    /// batch when full, or scheduling it for the end of the run phase); from a thread
    /// that runs no shard it goes out alone at once.
    fn push(this: &Arc<Self>, target: usize, message: T) {
        let lane = &this.lanes[target];
        if task::current_shard_id().is_none() {
            let _ = lane.tx.send(vec![message]);
            return;
        }
        let side = Self::local(this);
        let local = downcast::<T>(&side);
        let full = {
            let mut outgoing = local.outgoing.borrow_mut();
            let buffer = &mut outgoing[target];
            buffer.push(message);
            (buffer.len() >= this.batch)
                .then(|| std::mem::replace(buffer, Vec::with_capacity(this.batch)))
        };
        if let Some(batch) = full {
            let _ = lane.tx.send(batch);
        } else if !std::mem::replace(&mut local.flush_scheduled.borrow_mut()[target], true) {
            let shared = this.clone();
            CORE.current().at_end_of_run(Box::new(move || {
                let local = downcast::<T>(&side);
                local.flush_scheduled.borrow_mut()[target] = false;
                let batch = std::mem::take(&mut local.outgoing.borrow_mut()[target]);
                if !batch.is_empty() {
                    let _ = shared.lanes[target].tx.send(batch);
                }
            }));
        }
    }

    /// Sends the current shard's batch for `target` now (its scheduled flush then finds
    /// nothing).
    fn flush_own(this: &Arc<Self>, target: usize) {
        if task::current_shard_id().is_none() {
            return;
        }
        let side = Self::local(this);
        let batch = std::mem::take(&mut downcast::<T>(&side).outgoing.borrow_mut()[target]);
        if !batch.is_empty() {
            let _ = this.lanes[target].tx.send(batch);
        }
    }

    /// The next message already taken by this shard, or the first of a queued batch.
    fn take(&self, lane: &Lane<T>, side: &Rc<dyn LocalSide>) -> Option<T> {
        if let Some(message) = downcast::<T>(side).taken.borrow_mut().pop_front() {
            return Some(message);
        }
        let batch = lane.rx.try_recv().ok()?;
        Some(self.accept(lane, side, batch))
    }

    /// Takes a batch off the queue: frees its room (waking waiting senders), keeps its rest
    /// and returns the oldest message taken.
    fn accept(&self, lane: &Lane<T>, side: &Rc<dyn LocalSide>, batch: Vec<T>) -> T {
        lane.admitted.fetch_sub(batch.len(), Ordering::SeqCst);
        if lane.room_wanted.load(Ordering::SeqCst) {
            let waiting = {
                let mut room = lock(&lane.room);
                lane.room_wanted.store(false, Ordering::SeqCst);
                std::mem::take(&mut *room)
            };
            for waker in waiting {
                waker.wake();
            }
        }
        let mut taken = downcast::<T>(side).taken.borrow_mut();
        // Older messages another task of this shard took first go out first.
        taken.extend(batch);
        taken
            .pop_front()
            .expect("a batch carries at least one message")
    }
}

fn downcast<T: Send + 'static>(side: &Rc<dyn LocalSide>) -> &Local<T> {
    side.as_any()
        .downcast_ref::<Local<T>>()
        .expect("a channel id names one message type")
}

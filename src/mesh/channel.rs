//! Typed, bounded point-to-point queues between shards.
//!
//! Messages travel in batches: a shard's sends to one target gather in a buffer of that
//! (sender, target) pair and leave as one queue entry once [`BATCH`] are there or at the end
//! of the sender's run phase, whichever comes first; the receiver takes a whole batch off
//! the queue at once and hands its messages out one by one. A stream of messages therefore
//! costs one queue operation and at most one cross-thread wake per batch, not per message.
//!
//! The buffers are the shard's own (thread-local, found by the channel's id, one lookup per
//! call). Room is reserved a batch at a time: the first message of a batch reserves room for
//! the whole batch (or what is left of the capacity) with one atomic operation, and the
//! batch's other messages use that reservation, so a message costs the sender no atomic
//! operation and the receiver none. Sending a batch and taking one are counted as mesh traffic,
//! so two shards streaming to each other poll instead of sleeping between batches (a
//! sleeping receiver would cost its sender a wake-up syscall per batch).
//!
//! Bounds: a queue admits at most `capacity` messages that its shard has not taken yet
//! (buffered at senders or queued) plus room reserved by senders' open batches, so
//! `try_send_to` fails with [`MeshError::Full`] and `send_to` waits once that many are
//! counted. A reservation a batch did not use is given back when the batch leaves (when full,
//! at the end of the sender's run phase, or when the sender finds the queue full), so room
//! reserved and unused lasts at most until the end of the reserving shard's run phase. A
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

use super::{MeshError, count_received, count_sent};
use crate::task::{self, CORE};

/// Messages one batch carries at most (fewer when the capacity is smaller). 256 rather than
/// 64: a batch's hand-off (a queue lock, an allocation, a wake of the receiving task) costs
/// about what 64 messages cost, and a queue of the default 1024 then holds 4 batches: the
/// sender of `percore-bench mesh` spent 44 ns of CPU per message instead of 73 (medians of
/// 5 interleaved runs, bench/history/mesh.md).
pub(crate) const BATCH: usize = 256;

/// Channel ids, for finding a channel's buffers on a shard.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// One channel's buffers on this thread.
struct LocalEntry {
    id: u64,
    /// Gone once the channel is gone everywhere (the entry can be dropped then).
    shared: Weak<dyn Any + Send + Sync>,
    /// A `Local<T>` of the channel's message type.
    local: Rc<dyn Any>,
}

thread_local! {
    /// This thread's buffers of every channel it used.
    static LOCAL: RefCell<Vec<LocalEntry>> = const { RefCell::new(Vec::new()) };
}

/// A shard's side of one channel: its open batch per target and the rest of the batches it
/// took, handed out one by one.
struct Local<T> {
    /// The shard this thread runs (None: it runs none), fixed for the thread's life: read
    /// once here instead of through the shard's thread-local on every call.
    shard: Option<usize>,
    outgoing: RefCell<Vec<Outgoing<T>>>,
    taken: RefCell<VecDeque<T>>,
}

/// The open batch of one (sender, target) pair.
struct Outgoing<T> {
    /// Messages admitted and not yet sent as a batch.
    buffer: Vec<T>,
    /// Room reserved on the target's queue and not used yet (see the module docs).
    reserved: usize,
    /// A flush is scheduled for the end of this run phase.
    flush_scheduled: bool,
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
    /// buffers or queued), plus room reserved by senders' open batches. Only this bounds the
    /// queue; the flume queue itself is unbounded.
    admitted: Padded<AtomicUsize>,
    /// Senders waiting for room, woken when room is made (a batch taken, a reservation
    /// given back).
    room: Mutex<Vec<Waker>>,
    room_wanted: AtomicBool,
}

/// Keeps the senders' count off the cache line of what the receiver writes.
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

impl<T> Lane<T> {
    /// Reserves room for up to `want` messages; how many it got (0 when the queue is full).
    fn reserve(&self, capacity: usize, want: usize) -> usize {
        let mut admitted = self.admitted.load(Ordering::Relaxed);
        loop {
            let got = want.min(capacity.saturating_sub(admitted));
            if got == 0 {
                return 0;
            }
            match self.admitted.compare_exchange_weak(
                admitted,
                admitted + got,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return got,
                Err(now) => admitted = now,
            }
        }
    }

    /// Gives back room for `n` messages and wakes the senders waiting for it.
    fn free(&self, n: usize) {
        self.admitted.fetch_sub(n, Ordering::SeqCst);
        if self.room_wanted.load(Ordering::SeqCst) {
            let waiting = {
                let mut room = lock(&self.room);
                self.room_wanted.store(false, Ordering::SeqCst);
                std::mem::take(&mut *room)
            };
            for waker in waiting {
                waker.wake();
            }
        }
    }
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
        let Err(message) = Shared::offer(&self.shared, target, message) else {
            return Ok(());
        };
        poll_fn(|cx| {
            if lane.reserve(self.shared.capacity, 1) == 1 {
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
            if lane.reserve(self.shared.capacity, 1) == 1 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        Shared::push_reserved(&self.shared, target, message);
        Ok(())
    }

    /// Sends to shard `target`, failing with [`MeshError::Full`] instead of waiting.
    pub fn try_send_to(&self, target: usize, message: T) -> Result<(), MeshError> {
        self.lane(target)?;
        Shared::offer(&self.shared, target, message).map_err(|_| MeshError::Full)
    }

    /// Receives the next message for the current shard.
    pub async fn recv(&self) -> Result<T, MeshError> {
        let (lane, message) = Shared::with_local(&self.shared, |_, local| {
            let lane = self.lane(local.shard.ok_or(MeshError::Closed)?)?;
            Ok::<_, MeshError>((lane, self.shared.take(lane, local)))
        })?;
        if let Some(message) = message {
            return Ok(message);
        }
        let batch = lane.rx.recv_async().await.map_err(|_| MeshError::Closed)?;
        Ok(Shared::with_local(&self.shared, |_, local| {
            self.shared.accept(lane, local, batch)
        }))
    }

    /// Takes a message for the current shard if one is queued.
    pub fn try_recv(&self) -> Option<T> {
        Shared::with_local(&self.shared, |_, local| {
            let lane = self.shared.lanes.get(local.shard?)?;
            self.shared.take(lane, local)
        })
    }

    /// Messages queued for shard `target`: sent (including those still in their senders'
    /// batches) and not yet taken off the queue by that shard, plus room senders reserved
    /// for their open batches and have not used yet (given back by the end of their run
    /// phase).
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
    /// Runs `f` with this thread's buffers of this channel (made at first use; entries of
    /// channels gone everywhere are dropped then). One thread-local lookup, no reference
    /// count touched: the per-message path.
    fn with_local<R>(this: &Arc<Self>, f: impl FnOnce(&Rc<dyn Any>, &Local<T>) -> R) -> R {
        LOCAL.with(|locals| {
            {
                let locals = locals.borrow();
                if let Some(entry) = locals.iter().find(|entry| entry.id == this.id) {
                    return f(&entry.local, downcast(&entry.local));
                }
            }
            let targets = this.lanes.len();
            let local: Rc<dyn Any> = Rc::new(Local::<T> {
                shard: task::current_shard_id(),
                outgoing: RefCell::new(
                    (0..targets)
                        .map(|_| Outgoing {
                            buffer: Vec::new(),
                            reserved: 0,
                            flush_scheduled: false,
                        })
                        .collect(),
                ),
                taken: RefCell::new(VecDeque::new()),
            });
            let shared: Arc<dyn Any + Send + Sync> = this.clone();
            {
                let mut locals = locals.borrow_mut();
                locals.retain(|entry| entry.shared.strong_count() > 0);
                locals.push(LocalEntry {
                    id: this.id,
                    shared: Arc::downgrade(&shared),
                    local: local.clone(),
                });
            }
            f(&local, downcast(&local))
        })
    }

    /// Admits `message` for `target` and puts it in the current shard's batch (or, from a
    /// thread that runs no shard, sends it alone at once); gives it back when the queue is
    /// full, after sending this shard's open batch to `target` (its messages must reach the
    /// receiver for room to appear) and giving back its unused reservation.
    fn offer(this: &Arc<Self>, target: usize, message: T) -> Result<(), T> {
        let lane = &this.lanes[target];
        Self::with_local(this, |side, local| {
            if local.shard.is_none() {
                if lane.reserve(this.capacity, 1) == 0 {
                    return Err(message);
                }
                let _ = lane.tx.send(vec![message]);
                return Ok(());
            }
            let mut outgoing = local.outgoing.borrow_mut();
            let open = &mut outgoing[target];
            if open.reserved == 0 {
                let want = this.batch.saturating_sub(open.buffer.len()).max(1);
                open.reserved = lane.reserve(this.capacity, want);
                if open.reserved == 0 {
                    let batch = std::mem::take(&mut open.buffer);
                    drop(outgoing);
                    if !batch.is_empty() {
                        send_batch(lane, batch);
                    }
                    return Err(message);
                }
            }
            open.reserved -= 1;
            drop(outgoing);
            Self::buffer(this, side, local, target, message);
            Ok(())
        })
    }

    /// Puts a message admitted on its own (after a wait for room) in the current shard's
    /// batch for `target`, or sends it alone from a thread that runs no shard.
    fn push_reserved(this: &Arc<Self>, target: usize, message: T) {
        Self::with_local(this, |side, local| {
            if local.shard.is_none() {
                let _ = this.lanes[target].tx.send(vec![message]);
            } else {
                Self::buffer(this, side, local, target, message);
            }
        });
    }

    /// Adds an admitted message to the batch for `target`: sends the batch when full (with
    /// what is left of its reservation given back) or schedules it for the end of the run.
    fn buffer(this: &Arc<Self>, side: &Rc<dyn Any>, local: &Local<T>, target: usize, message: T) {
        let mut outgoing = local.outgoing.borrow_mut();
        let open = &mut outgoing[target];
        open.buffer.push(message);
        if open.buffer.len() >= this.batch {
            let batch = std::mem::replace(&mut open.buffer, Vec::with_capacity(this.batch));
            let unused = std::mem::take(&mut open.reserved);
            drop(outgoing);
            let lane = &this.lanes[target];
            send_batch(lane, batch);
            if unused > 0 {
                lane.free(unused);
            }
        } else if !std::mem::replace(&mut open.flush_scheduled, true) {
            drop(outgoing);
            let (shared, side) = (this.clone(), side.clone());
            CORE.current().at_end_of_run(Box::new(move || {
                Self::flush(&shared, downcast(&side), target);
            }));
        }
    }

    /// The end of the run phase: sends the batch for `target` and gives back its unused
    /// reservation.
    fn flush(this: &Arc<Self>, local: &Local<T>, target: usize) {
        let (batch, unused) = {
            let mut outgoing = local.outgoing.borrow_mut();
            let open = &mut outgoing[target];
            open.flush_scheduled = false;
            (
                std::mem::take(&mut open.buffer),
                std::mem::take(&mut open.reserved),
            )
        };
        let lane = &this.lanes[target];
        if !batch.is_empty() {
            send_batch(lane, batch);
        }
        if unused > 0 {
            lane.free(unused);
        }
    }

    /// The next message already taken by this shard, or the first of a queued batch.
    fn take(&self, lane: &Lane<T>, local: &Local<T>) -> Option<T> {
        if let Some(message) = local.taken.borrow_mut().pop_front() {
            return Some(message);
        }
        let batch = lane.rx.try_recv().ok()?;
        Some(self.accept(lane, local, batch))
    }

    /// Takes a batch off the queue: frees its room (waking waiting senders), keeps its rest
    /// and returns the oldest message taken.
    fn accept(&self, lane: &Lane<T>, local: &Local<T>, batch: Vec<T>) -> T {
        count_received();
        lane.free(batch.len());
        let mut taken = local.taken.borrow_mut();
        // Older messages another task of this shard took first go out first.
        taken.extend(batch);
        taken
            .pop_front()
            .expect("a batch carries at least one message")
    }
}

/// Queues a batch from the current shard; counted as a mesh message (see `count_received`).
fn send_batch<T>(lane: &Lane<T>, batch: Vec<T>) {
    // The receiving end lives as long as the channel: the send cannot fail.
    let _ = lane.tx.send(batch);
    count_sent();
}

fn downcast<T: Send + 'static>(local: &Rc<dyn Any>) -> &Local<T> {
    local
        .downcast_ref::<Local<T>>()
        .expect("a channel id names one message type")
}

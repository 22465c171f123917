//! The part of a shard other threads may touch: its remote wake queue, its sleep flag and the
//! means to end its wait in `io_uring_enter`.
//!
//! Protocol (why no wake-up is lost): before blocking, the shard stores `sleeping = true`,
//! issues a SeqCst fence, then checks the remote queue, its mesh inbox and the stop flag; if
//! any has work it does not block. A waker pushes to the queue first, issues a SeqCst fence,
//! then swaps `sleeping` to false and, only if it was true, signals the shard. One of the two
//! sides always sees the other's write, so either the shard finds the work or the waker sends
//! the signal. Signals to a shard that is awake are skipped, so a busy shard costs its
//! wakers no syscall.

use std::{
    os::fd::RawFd,
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering, fence},
    },
    time::Instant,
};

use super::label::LabelCell;
use crate::sys::eventfd::EventFd;

/// Nanoseconds since the process's first call: the clock of `busy_since`.
pub(crate) fn now_ns() -> u64 {
    ns_at(Instant::now())
}

/// [`now_ns`] for a reading the caller already took.
pub(crate) fn ns_at(at: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    // +1 so that 0 can mean "not busy".
    at.saturating_duration_since(*EPOCH.get_or_init(Instant::now))
        .as_nanos() as u64
        + 1
}

/// A task named by its slot and generation, for wakes from other threads.
pub(crate) type TaskRef = crate::slab::Key;

pub(crate) struct ShardRemote {
    pub(crate) id: usize,
    /// Tasks woken from other threads. Bounded by the number of live tasks of the shard,
    /// because a task enters it only when its `queued` flag goes from false to true.
    wakes: Mutex<Vec<TaskRef>>,
    /// Set after a push to `wakes`, so the loop skips the lock when nobody woke a task
    /// from outside (the common case on a busy shard). `prepare_sleep` still checks the
    /// list itself, under the lock, so a wake racing with this flag is never lost.
    wakes_pending: AtomicBool,
    sleeping: AtomicBool,
    eventfd: EventFd,
    /// The shard's ring fd for MSG_RING wakes from other shards; -1 until the ring exists or
    /// when the kernel lacks MSG_RING.
    ring_fd: AtomicI32,
    /// When the current loop iteration began ([`now_ns`]), 0 while waiting.
    busy_since_ns: AtomicU64,
    /// Iterations the watchdog saw run past the stall threshold.
    stalls: AtomicU64,
    /// The same, by the label the shard ran when each stall was counted (label id, count;
    /// bounded by the labels interned, a fixed set). Written by the watchdog alone, once
    /// per stall; read by the metrics.
    stalls_by_label: Mutex<Vec<(u32, u64)>>,
    /// The shard thread's kernel id (0 until it runs), for its scheduler statistics.
    tid: AtomicI32,
    /// What the shard runs now ([`super::label`]), cleared when its iteration ends.
    label: LabelCell,
    /// The stall detector's verdict on the current iteration (written by it alone).
    pub(crate) stall: StallState,
}

/// What the stall detector found of a shard's current iteration, for readers on any thread
/// (metrics, health checks, the mesh). Written only by the detector; relaxed: each field is
/// a report on its own, and a reader a round late sees the next round's values.
#[derive(Default)]
pub(crate) struct StallState {
    /// How long the current iteration has been stalled (ms); 0 when it is not stalled.
    stalled_ms: AtomicU64,
    /// Stalled longer than the server's `unhealthy_after`: health checks fail.
    stuck: AtomicBool,
    /// Stalled longer than the mesh timeout: calls to the shard fail instead of waiting.
    unavailable: AtomicBool,
}

impl StallState {
    pub(crate) fn publish(&self, stalled_ms: u64, stuck: bool, unavailable: bool) {
        self.stalled_ms.store(stalled_ms, Ordering::Relaxed);
        self.stuck.store(stuck, Ordering::Relaxed);
        self.unavailable.store(unavailable, Ordering::Relaxed);
    }

    pub(crate) fn stalled_ms(&self) -> u64 {
        self.stalled_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn is_stuck(&self) -> bool {
        self.stuck.load(Ordering::Relaxed)
    }

    pub(crate) fn is_unavailable(&self) -> bool {
        self.unavailable.load(Ordering::Relaxed)
    }
}

impl ShardRemote {
    pub(crate) fn new(id: usize) -> std::io::Result<Self> {
        Ok(ShardRemote {
            id,
            wakes: Mutex::new(Vec::new()),
            wakes_pending: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            eventfd: EventFd::new()?,
            ring_fd: AtomicI32::new(-1),
            busy_since_ns: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            stalls_by_label: Mutex::new(Vec::new()),
            tid: AtomicI32::new(0),
            label: LabelCell::default(),
            stall: StallState::default(),
        })
    }

    pub(crate) fn eventfd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    pub(crate) fn set_ring_fd(&self, fd: RawFd) {
        self.ring_fd.store(fd, Ordering::Release);
    }

    /// Queues a task woken from another thread and wakes the shard if it sleeps.
    pub(crate) fn wake_task(&self, task: TaskRef) {
        lock(&self.wakes).push(task);
        self.wakes_pending.store(true, Ordering::Release);
        self.notify();
    }

    /// Ends the shard's wait if it is waiting; a no-op (no syscall) if it is awake.
    pub(crate) fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.swap(false, Ordering::SeqCst) {
            let ring_fd = self.ring_fd.load(Ordering::Acquire);
            if ring_fd < 0 || !super::core::msg_ring_wake(ring_fd, self.id) {
                self.eventfd.notify();
            }
        }
    }

    /// Marks the start of a loop iteration (`now_ns`) or, with 0, the start of a wait
    /// (which also clears the iteration's label).
    pub(crate) fn set_busy_since(&self, now_ns: u64) {
        if now_ns == 0 {
            self.label.set(0);
        }
        self.busy_since_ns.store(now_ns, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn set_label(&self, id: u32) {
        self.label.set(id);
    }

    #[cfg(test)]
    pub(crate) fn set_label_for_test(&self, label: super::label::Label) {
        self.label.set(label.id());
    }

    /// The name of what the shard runs now, when it named it.
    pub(crate) fn label(&self) -> Option<&'static str> {
        super::label::name_of(self.label.get())
    }

    pub(crate) fn busy_since(&self) -> u64 {
        self.busy_since_ns.load(Ordering::Relaxed)
    }

    pub(crate) fn set_tid(&self, tid: i32) {
        self.tid.store(tid, Ordering::Relaxed);
    }

    pub(crate) fn tid(&self) -> i32 {
        self.tid.load(Ordering::Relaxed)
    }

    /// Counts a stall of the current iteration, under what the shard runs now.
    pub(crate) fn count_stall(&self) {
        self.stalls.fetch_add(1, Ordering::Relaxed);
        let label = self.label.get();
        let mut by_label = lock(&self.stalls_by_label);
        match by_label.iter_mut().find(|(id, _)| *id == label) {
            Some((_, count)) => *count += 1,
            None => by_label.push((label, 1)),
        }
    }

    /// The stalls counted so far by what the shard ran (`None`: nothing labelled).
    pub(crate) fn stalls_by_label(&self) -> Vec<(Option<&'static str>, u64)> {
        let by_label = lock(&self.stalls_by_label).clone();
        by_label
            .into_iter()
            .map(|(id, count)| (super::label::name_of(id), count))
            .collect()
    }

    pub(crate) fn stalls(&self) -> u64 {
        self.stalls.load(Ordering::Relaxed)
    }

    /// Wakes the shard through its eventfd unconditionally: the fallback when a MSG_RING
    /// wake could not be delivered (the sleep flag was already cleared by `notify`).
    pub(crate) fn notify_eventfd(&self) {
        self.eventfd.notify();
    }

    /// Called by the shard before it may block. Returns false (and stays awake) when remote
    /// work is already queued.
    pub(crate) fn prepare_sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !lock(&self.wakes).is_empty() {
            self.sleeping.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Whether tasks were woken from other threads since the last drain.
    pub(crate) fn has_wakes(&self) -> bool {
        self.wakes_pending.load(Ordering::Acquire)
    }

    /// Marks the shard awake after `io_uring_enter` returned.
    pub(crate) fn woke(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }

    /// Moves remotely woken tasks into `into`.
    pub(crate) fn drain_wakes(&self, into: &mut Vec<TaskRef>) {
        if !self.wakes_pending.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut wakes = lock(&self.wakes);
        into.append(&mut wakes);
    }

    pub(crate) fn drain_eventfd(&self) {
        let _ = self.eventfd.drain();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the Vec inconsistent (push/append only),
    // so a poisoned lock is still safe to use.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

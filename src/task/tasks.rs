//! Tasks of one shard: a slab of boxed futures, each with a `Waker` made once at spawn.
//!
//! States of a task: **idle** (waiting for a wake) → **queued** (in the run queue, local or
//! remote) → **running** (being polled; a wake during the poll re-queues it) → idle again, or
//! **done** (the slot is freed; late wakes through old wakers are ignored because the
//! header's `done` flag is set and the slot's generation moved on).
//!
//! Wakers are `Send + Sync`, as the `Waker` contract requires: a wake on the owning shard's
//! thread pushes onto the thread-local run queue; a wake from any other thread goes through
//! [`ShardRemote`](super::remote::ShardRemote). The `queued` flag makes a task enter a queue at
//! most once, which bounds both queues by the number of live tasks.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Wake, Waker},
};

use super::{
    core,
    remote::{ShardRemote, TaskRef},
};
use crate::slab::Slab;

pub(crate) struct TaskHeader {
    task: TaskRef,
    queued: AtomicBool,
    done: AtomicBool,
    remote: Arc<ShardRemote>,
}

impl TaskHeader {
    /// Clears the queued flag before a poll, so a wake during the poll queues the task again.
    pub(crate) fn start_poll(&self) {
        self.queued.store(false, Ordering::Release);
    }
}

impl Wake for TaskHeader {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.done.load(Ordering::Acquire) || self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        if !core::wake_local(self.remote.id, self.task) {
            self.remote.wake_task(self.task);
        }
    }
}

pub(crate) struct Task {
    pub(crate) future: Pin<Box<dyn Future<Output = ()>>>,
    pub(crate) waker: Waker,
    pub(crate) header: Arc<TaskHeader>,
    /// A background task of the shard (see [`spawn_background`](super::spawn_background)):
    /// cancelled when the drain begins instead of waited for.
    pub(crate) background: bool,
}

/// The shard's tasks. Only the shard's thread touches it. A task being polled is taken
/// out of its slot (so the poll may spawn or touch the table) and its slot stays reserved.
#[derive(Default)]
pub(crate) struct Tasks {
    slots: Slab<Option<Task>>,
    /// How many of the live tasks are background tasks.
    background: usize,
}

impl Tasks {
    /// Stores a future and returns the reference to queue it with; the task starts queued.
    pub(crate) fn insert(
        &mut self,
        future: Pin<Box<dyn Future<Output = ()>>>,
        remote: &Arc<ShardRemote>,
        background: bool,
    ) -> TaskRef {
        self.background += usize::from(background);
        self.slots.insert_with(|task| {
            let header = Arc::new(TaskHeader {
                task,
                queued: AtomicBool::new(true),
                done: AtomicBool::new(false),
                remote: remote.clone(),
            });
            let waker = Waker::from(header.clone());
            Some(Task {
                future,
                waker,
                header,
                background,
            })
        })
    }

    /// Takes the task out for polling.
    pub(crate) fn take(&mut self, task: TaskRef) -> Option<Task> {
        self.slots.get_mut(task)?.take()
    }

    /// Puts a task back after a poll that returned `Pending`.
    pub(crate) fn put_back(&mut self, task: TaskRef, body: Task) {
        let slot = self.slots.get_mut(task);
        debug_assert!(
            slot.as_ref().is_some_and(|s| s.is_none()),
            "a task's slot kept"
        );
        if let Some(slot) = slot {
            *slot = Some(body);
        }
    }

    /// Frees the slot of a task that finished (its body was taken and is dropped by the caller).
    pub(crate) fn finish(&mut self, task: TaskRef, body: &Task) {
        body.header.done.store(true, Ordering::Release);
        self.background -= usize::from(body.background);
        let freed = self.slots.remove(task);
        debug_assert!(
            matches!(freed, Some(None)),
            "a finished task's slot was reserved"
        );
    }

    pub(crate) fn live(&self) -> usize {
        self.slots.len()
    }

    /// Live background tasks.
    pub(crate) fn background(&self) -> usize {
        self.background
    }

    /// Removes every task not being polled (forced stop); the caller drops them outside any
    /// borrow.
    pub(crate) fn drain_all(&mut self) -> Vec<Task> {
        self.remove_where(|_| true)
    }

    /// Removes every background task not being polled (the drain began); the caller drops
    /// them outside any borrow.
    pub(crate) fn drain_background(&mut self) -> Vec<Task> {
        self.remove_where(|task| task.background)
    }

    fn remove_where(&mut self, pick: impl Fn(&Task) -> bool) -> Vec<Task> {
        let waiting: Vec<TaskRef> = self
            .slots
            .iter()
            .filter(|(_, task)| task.as_ref().is_some_and(&pick))
            .map(|(key, _)| key)
            .collect();
        let mut removed = Vec::with_capacity(waiting.len());
        for key in waiting {
            if let Some(task) = self.slots.remove(key).flatten() {
                task.header.done.store(true, Ordering::Release);
                self.background -= usize::from(task.background);
                removed.push(task);
            }
        }
        removed
    }
}

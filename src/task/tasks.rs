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
}

struct Slot {
    generation: u32,
    task: Option<Task>,
}

/// The shard's tasks. Only the shard's thread touches it.
#[derive(Default)]
pub(crate) struct Tasks {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
}

impl Tasks {
    /// Stores a future and returns the reference to queue it with; the task starts queued.
    pub(crate) fn insert(
        &mut self,
        future: Pin<Box<dyn Future<Output = ()>>>,
        remote: &Arc<ShardRemote>,
    ) -> TaskRef {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    task: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        let task = TaskRef {
            index,
            generation: slot.generation,
        };
        let header = Arc::new(TaskHeader {
            task,
            queued: AtomicBool::new(true),
            done: AtomicBool::new(false),
            remote: remote.clone(),
        });
        let waker = Waker::from(header.clone());
        slot.task = Some(Task {
            future,
            waker,
            header,
        });
        self.live += 1;
        task
    }

    /// Takes the task out for polling (so the poll may spawn or touch the table).
    pub(crate) fn take(&mut self, task: TaskRef) -> Option<Task> {
        let slot = self.slots.get_mut(task.index as usize)?;
        if slot.generation != task.generation {
            return None;
        }
        slot.task.take()
    }

    /// Puts a task back after a poll that returned `Pending`.
    pub(crate) fn put_back(&mut self, task: TaskRef, body: Task) {
        let slot = &mut self.slots[task.index as usize];
        debug_assert_eq!(slot.generation, task.generation);
        slot.task = Some(body);
    }

    /// Frees the slot of a task that finished (its body was taken and is dropped by the caller).
    pub(crate) fn finish(&mut self, task: TaskRef, body: &Task) {
        body.header.done.store(true, Ordering::Release);
        let slot = &mut self.slots[task.index as usize];
        debug_assert!(slot.task.is_none());
        self.free.push(task.index);
        self.live -= 1;
    }

    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Removes every task (forced stop); the caller drops them outside any borrow.
    pub(crate) fn drain_all(&mut self) -> Vec<Task> {
        let mut all = Vec::with_capacity(self.live);
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if let Some(task) = slot.task.take() {
                task.header.done.store(true, Ordering::Release);
                self.free.push(index as u32);
                all.push(task);
            }
        }
        self.live -= all.len();
        all
    }
}

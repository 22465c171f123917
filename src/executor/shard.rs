//! The shard: everything one core owns (ring, tasks, timers, connections, mesh inbox), and
//! the thread-local context through which the public API finds it.
//!
//! A `Shard` lives in an `Rc` on its own thread and is never shared: the public handles that
//! refer to it (`TcpStream`, `JoinHandle`, ...) are `!Send`. Each part sits in its own
//! `RefCell`, and no borrow is held across a call into user code (task polls, wakers run
//! after the borrow ends), so the cells never conflict.

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    future::Future,
    rc::Rc,
    sync::Arc,
    task::Waker,
    time::Instant,
};

use super::{
    join::{CancelOnDrop, JoinHandle, JoinSlot, JoinState, complete},
    remote::{ShardRemote, TaskRef},
    task::Tasks,
};
use crate::{
    blocking::BlockingPool,
    mesh::MeshShard,
    net::NetState,
    ring::{
        Ring,
        op::msg_ring::MsgRingWake,
        token::{Kind, Token},
    },
    server::control::ServerControl,
    time::{clock::Clock, wheel::TimerWheel},
};

pub(crate) struct Shard {
    pub(crate) id: usize,
    pub(crate) count: usize,
    pub(crate) cpu: Option<usize>,
    pub(crate) remote: Arc<ShardRemote>,
    pub(crate) ring: RefCell<Ring>,
    pub(crate) tasks: RefCell<Tasks>,
    pub(crate) timers: RefCell<TimerWheel<Waker>>,
    pub(crate) clock: Clock,
    pub(crate) net: NetState,
    pub(crate) mesh: MeshShard,
    pub(crate) blocking: BlockingPool,
    pub(crate) control: Arc<ServerControl>,
    pub(crate) drain: Drain,
    pub(crate) panics: Cell<u64>,
    pub(crate) loop_stats: RefCell<crate::metrics::LoopStats>,
    pub(crate) service_metrics: RefCell<crate::metrics::counters::Registry>,
}

/// The shard's view of a graceful stop: the flag, and the tasks waiting for it (a slab, so a
/// waiter that re-registers on every poll takes one slot, not one more each time).
#[derive(Default)]
pub(crate) struct Drain {
    pub(crate) draining: Cell<bool>,
    waiters: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

impl Drain {
    /// Registers (or refreshes) the waker of the waiter holding `key`.
    pub(crate) fn register(&self, key: &mut Option<usize>, waker: &Waker) {
        let mut waiters = self.waiters.borrow_mut();
        match key {
            Some(k) => match &mut waiters[*k] {
                Some(current) if current.will_wake(waker) => {}
                slot => *slot = Some(waker.clone()),
            },
            None => {
                let slot = match self.free.borrow_mut().pop() {
                    Some(free) => free,
                    None => {
                        waiters.push(None);
                        waiters.len() - 1
                    }
                };
                waiters[slot] = Some(waker.clone());
                *key = Some(slot);
            }
        }
    }

    /// Removes the waiter holding `key` (its future was dropped or completed).
    pub(crate) fn unregister(&self, key: &mut Option<usize>) {
        if let Some(k) = key.take()
            && let (Ok(mut waiters), Ok(mut free)) =
                (self.waiters.try_borrow_mut(), self.free.try_borrow_mut())
        {
            waiters[k] = None;
            free.push(k);
        }
    }

    /// Wakes every waiter (the drain began).
    pub(crate) fn wake_all(&self) {
        let wakers: Vec<Waker> = self
            .waiters
            .borrow_mut()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Shard>>> = const { RefCell::new(None) };
    static SHARD_ID: Cell<usize> = const { Cell::new(usize::MAX) };
    /// When this shard's current loop iteration began (see [`iteration_now`]).
    static ITERATION_NOW: Cell<Option<Instant>> = const { Cell::new(None) };
    static RUN_QUEUE: RefCell<VecDeque<TaskRef>> = const { RefCell::new(VecDeque::new()) };
    /// Work to run once the run phase of this iteration is over (see [`at_end_of_run`]).
    static END_OF_RUN: RefCell<Vec<Box<dyn FnOnce()>>> = const { RefCell::new(Vec::new()) };
    /// Set while the end-of-run work runs: MSG_RING wakes then wait for the loop's own
    /// `io_uring_enter`, which follows at once, instead of entering the kernel themselves.
    static WAKES_RIDE_THE_ENTER: Cell<bool> = const { Cell::new(false) };
    /// The shards woken by MSG_RING SQEs that wait for the loop's enter: if that enter
    /// fails, they get their eventfd instead (their sleep flag is already cleared, so no
    /// later wake would reach them).
    static DEFERRED_WAKES: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// The loop's enter submitted the deferred wakes: forget them.
pub(crate) fn deferred_wakes_submitted() {
    DEFERRED_WAKES.with(|wakes| wakes.borrow_mut().clear());
}

/// The loop's enter failed: wake the shards of the deferred MSG_RINGs through their eventfd.
pub(crate) fn deferred_wakes_failed(shard: &Shard) {
    let targets = DEFERRED_WAKES.with(|wakes| std::mem::take(&mut *wakes.borrow_mut()));
    for target in targets {
        shard.mesh.shared.notify_eventfd(target);
    }
}

/// Runs `f` on this shard after every task ready in this iteration has been polled, before
/// the loop submits its I/O and waits: the place to send what the tasks of one iteration
/// gathered (one mesh message for many calls). Work added while that phase runs runs in it
/// too.
pub(crate) fn at_end_of_run(f: Box<dyn FnOnce()>) {
    END_OF_RUN.with(|hooks| hooks.borrow_mut().push(f));
}

/// Runs the end-of-run work (see [`at_end_of_run`]); a panic in it is contained and counted
/// like a task's.
pub(crate) fn run_end_of_run(shard: &Shard) {
    WAKES_RIDE_THE_ENTER.with(|flag| flag.set(true));
    loop {
        let hooks = END_OF_RUN.with(|hooks| std::mem::take(&mut *hooks.borrow_mut()));
        if hooks.is_empty() {
            break;
        }
        for hook in hooks {
            if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook)) {
                shard.panics.set(shard.panics.get() + 1);
                tracing::error!(
                    shard = shard.id,
                    "end-of-run work panicked: {}",
                    super::join::panic_message(&*payload)
                );
            }
        }
    }
    WAKES_RIDE_THE_ENTER.with(|flag| flag.set(false));
}

/// Makes `shard` the current shard of this thread for as long as the guard lives.
pub(crate) fn enter(shard: Rc<Shard>) -> EnterGuard {
    SHARD_ID.with(|id| id.set(shard.id));
    CURRENT.with(|c| *c.borrow_mut() = Some(shard));
    EnterGuard(())
}

pub(crate) struct EnterGuard(());

impl Drop for EnterGuard {
    fn drop(&mut self) {
        SHARD_ID.with(|id| id.set(usize::MAX));
        let shard = CURRENT.with(|c| c.borrow_mut().take());
        RUN_QUEUE.with(|q| q.borrow_mut().clear());
        END_OF_RUN.with(|hooks| hooks.borrow_mut().clear());
        drop(shard);
    }
}

pub(crate) fn current_shard_id() -> Option<usize> {
    let id = SHARD_ID.with(Cell::get);
    (id != usize::MAX).then_some(id)
}

/// The clock reading the loop took as its current iteration began, if this thread runs a
/// shard: one reading per iteration, shared by the loop's phases and `crate::time::now`.
pub(crate) fn iteration_now() -> Option<Instant> {
    ITERATION_NOW.with(Cell::get)
}

pub(crate) fn set_iteration_now(now: Instant) {
    ITERATION_NOW.with(|cell| cell.set(Some(now)));
}

/// The current shard, if this thread runs one.
pub(crate) fn try_current() -> Option<Rc<Shard>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The current shard. Calling the shard API from a thread that runs no shard is a
/// programming error, like calling `tokio::spawn` outside a runtime.
pub(crate) fn current() -> Rc<Shard> {
    try_current()
        .expect("percore: this function must be called from a task running on a percore shard")
}

pub(crate) fn push_local(task: TaskRef) {
    RUN_QUEUE.with(|q| q.borrow_mut().push_back(task));
}

pub(crate) fn pop_local() -> Option<TaskRef> {
    RUN_QUEUE.with(|q| q.borrow_mut().pop_front())
}

pub(crate) fn local_queue_len() -> usize {
    RUN_QUEUE.with(|q| q.borrow().len())
}

/// Wakes another shard's ring through MSG_RING from this thread's ring. False when this
/// thread has no ring, its ring is busy (we are inside the driver), or MSG_RING is missing:
/// the caller then uses the eventfd.
pub(crate) fn msg_ring_wake(target_ring_fd: std::os::fd::RawFd, target_shard: usize) -> bool {
    CURRENT.with(|c| {
        let Ok(current) = c.try_borrow() else {
            return false;
        };
        let Some(shard) = current.as_ref() else {
            return false;
        };
        let Ok(mut ring) = shard.ring.try_borrow_mut() else {
            return false;
        };
        if !ring.features.msg_ring {
            return false;
        }
        let delivered = Token::new(Kind::Wake, WAKE_MSG_RING, 0);
        let on_failure = Token::new(Kind::Wake, WAKE_MSG_RING_FAILED, target_shard as u32);
        ring.push(&MsgRingWake { target_ring_fd }.to_sqe(delivered, on_failure));
        ring.stats.msg_ring_wakes += 1;
        if WAKES_RIDE_THE_ENTER.with(Cell::get) {
            // The loop enters the kernel right after this phase; a failed MSG_RING still
            // falls back to the eventfd through its failure CQE, a failed enter through
            // `deferred_wakes_failed`.
            DEFERRED_WAKES.with(|wakes| wakes.borrow_mut().push(target_shard));
            return true;
        }
        ring.submit_now().is_ok()
    })
}

/// Wake-token slots: which wake source a `Kind::Wake` CQE came from.
pub(crate) const WAKE_EVENTFD: u32 = 0;
pub(crate) const WAKE_MSG_RING: u32 = 1;
/// On the sender: a MSG_RING wake that failed; the token's generation names the target.
pub(crate) const WAKE_MSG_RING_FAILED: u32 = 2;

impl Shard {
    /// Spawns a task on this shard.
    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let slot: JoinSlot<F::Output> = Rc::new(RefCell::new(JoinState::Running(None)));
        let guard = CancelOnDrop(slot.clone());
        let task = async move {
            let guard = guard;
            let mut future = std::pin::pin!(future);
            // Catch the panic here, while the slot is still ours: unwinding out of this block
            // would drop `guard` before the run loop knows the message.
            let output = std::future::poll_fn(|cx| {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    future.as_mut().poll(cx)
                })) {
                    Ok(poll) => poll.map(Ok),
                    Err(payload) => std::task::Poll::Ready(Err(payload)),
                }
            })
            .await;
            match output {
                Ok(output) => complete(&guard.0, Ok(output)),
                Err(payload) => {
                    let message = super::join::panic_message(&*payload);
                    complete(&guard.0, Err(super::join::JoinError::Panicked(message)));
                    // The run loop still counts, logs and drops the task.
                    std::panic::resume_unwind(payload);
                }
            }
        };
        let task_ref = self.tasks.borrow_mut().insert(Box::pin(task), &self.remote);
        push_local(task_ref);
        JoinHandle { slot }
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.drain.draining.get()
    }
}

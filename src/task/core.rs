//! The executor's part of a shard: its driver, its tasks, its run queue, the work queued for
//! the end of the run phase, and the clock reading of the current loop iteration.
//!
//! A `Core` lives in an `Rc` on its own thread and is never shared: the handles that refer
//! to it are `!Send`. Each part sits in its own cell, and no borrow is held across a call
//! into user code (task polls and wakers run after the borrow ends), so the cells never
//! conflict. Code on the shard finds it through [`CORE`] (see `local` for the rule).

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    future::Future,
    os::fd::RawFd,
    rc::Rc,
    sync::Arc,
    time::Instant,
};

use super::{
    join::{CancelOnDrop, JoinHandle, JoinSlot, JoinState, complete, panic_message},
    local::ShardLocal,
    remote::{ShardRemote, TaskRef},
    stats::LoopStats,
    tasks::Tasks,
};
use crate::driver::{Driver, Kind, Token, uring::op::MsgRingWake};

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
}

/// The executor state of the shard this thread runs.
pub(crate) static CORE: ShardLocal<Core> = ShardLocal::new(&CURRENT);

/// Wake-token slots: which wake source a `Kind::Wake` CQE came from.
pub(crate) const WAKE_EVENTFD: u32 = 0;
pub(crate) const WAKE_MSG_RING: u32 = 1;
/// On the sender: a MSG_RING wake that failed; the token's generation names the target.
pub(crate) const WAKE_MSG_RING_FAILED: u32 = 2;

pub(crate) struct Core {
    /// This shard's id (0-based) and how many shards the server runs.
    pub(crate) id: usize,
    pub(crate) count: usize,
    pub(crate) cpu: Option<usize>,
    /// What other threads may touch: remote wakes, the sleep flag, the eventfd.
    pub(crate) remote: Arc<ShardRemote>,
    pub(crate) driver: RefCell<Driver>,
    pub(crate) tasks: RefCell<Tasks>,
    run_queue: RefCell<VecDeque<TaskRef>>,
    /// Work to run once the run phase of this iteration is over (see [`Core::at_end_of_run`]).
    end_of_run: RefCell<Vec<Box<dyn FnOnce()>>>,
    /// When this iteration began (see [`Core::iteration_now`]).
    iteration_now: Cell<Option<Instant>>,
    /// Set while the end-of-run work runs: MSG_RING wakes then wait for the loop's own
    /// `io_uring_enter`, which follows at once, instead of entering the kernel themselves.
    wakes_ride_the_enter: Cell<bool>,
    /// The shards woken by MSG_RING SQEs that wait for the loop's enter: if that enter
    /// fails, they get their eventfd instead (their sleep flag is already cleared, so no
    /// later wake would reach them).
    deferred_wakes: RefCell<Vec<usize>>,
    /// Task, message and end-of-run panics contained by the shard.
    pub(crate) panics: Cell<u64>,
    pub(crate) stats: RefCell<LoopStats>,
    /// True while a background task is polled or the shard's init hook runs: what is
    /// spawned then is a background task too.
    pub(crate) in_background: Cell<bool>,
    /// The application's per-shard values (see [`PerShard`](super::PerShard)).
    pub(crate) per_shard: super::per_shard::PerShardValues,
}

impl Core {
    pub(crate) fn new(
        id: usize,
        count: usize,
        cpu: Option<usize>,
        remote: Arc<ShardRemote>,
        driver: Driver,
    ) -> Self {
        Core {
            id,
            count,
            cpu,
            remote,
            driver: RefCell::new(driver),
            tasks: RefCell::default(),
            run_queue: RefCell::default(),
            end_of_run: RefCell::default(),
            iteration_now: Cell::new(None),
            wakes_ride_the_enter: Cell::new(false),
            deferred_wakes: RefCell::default(),
            panics: Cell::new(0),
            stats: RefCell::default(),
            in_background: Cell::new(false),
            per_shard: Default::default(),
        }
    }

    /// Spawns a task on this shard; it is a background task when spawned from one (or from
    /// the init hook).
    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.spawn_as(future, self.in_background.get())
    }

    /// Spawns a task on this shard, a background task or not.
    pub(crate) fn spawn_as<F>(&self, future: F, background: bool) -> JoinHandle<F::Output>
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
                    let message = panic_message(&*payload);
                    complete(&guard.0, Err(super::join::JoinError::Panicked(message)));
                    // The run loop still counts, logs and drops the task.
                    std::panic::resume_unwind(payload);
                }
            }
        };
        let task_ref = self
            .tasks
            .borrow_mut()
            .insert(Box::pin(task), &self.remote, background);
        self.push_local(task_ref);
        JoinHandle { slot }
    }

    pub(crate) fn push_local(&self, task: TaskRef) {
        self.run_queue.borrow_mut().push_back(task);
    }

    pub(crate) fn pop_local(&self) -> Option<TaskRef> {
        self.run_queue.borrow_mut().pop_front()
    }

    pub(crate) fn local_queue_len(&self) -> usize {
        self.run_queue.borrow().len()
    }

    /// The clock reading the loop took as its current iteration began: one reading per
    /// iteration, shared by the loop's phases and `time::now`.
    pub(crate) fn iteration_now(&self) -> Option<Instant> {
        self.iteration_now.get()
    }

    pub(crate) fn set_iteration_now(&self, now: Instant) {
        self.iteration_now.set(Some(now));
    }

    /// Counts a panic contained on this shard and logs it.
    pub(crate) fn count_panic(&self, what: &str, message: &str) {
        self.panics.set(self.panics.get() + 1);
        tracing::error!(shard = self.id, "{what} panicked: {message}");
    }

    /// Runs `f` on this shard after every task ready in this iteration has been polled,
    /// before the loop submits its I/O and waits: the place to send what the tasks of one
    /// iteration gathered (one mesh message for many calls). Work added while that phase
    /// runs runs in it too.
    pub(crate) fn at_end_of_run(&self, f: Box<dyn FnOnce()>) {
        self.end_of_run.borrow_mut().push(f);
    }

    /// Runs the end-of-run work; a panic in it is contained and counted like a task's.
    pub(crate) fn run_end_of_run(&self) {
        self.wakes_ride_the_enter.set(true);
        loop {
            let hooks = std::mem::take(&mut *self.end_of_run.borrow_mut());
            if hooks.is_empty() {
                break;
            }
            for hook in hooks {
                if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook)) {
                    self.count_panic("end-of-run work", &panic_message(&*payload));
                }
            }
        }
        self.wakes_ride_the_enter.set(false);
    }

    /// The loop's enter submitted the deferred wakes: forget them.
    pub(crate) fn deferred_wakes_submitted(&self) {
        self.deferred_wakes.borrow_mut().clear();
    }

    /// The loop's enter failed: wake the shards of the deferred MSG_RINGs another way.
    pub(crate) fn take_deferred_wakes(&self) -> Vec<usize> {
        std::mem::take(&mut *self.deferred_wakes.borrow_mut())
    }

    /// Wakes another shard's driver through MSG_RING from this one. False when the driver
    /// is busy (we are inside it) or lacks MSG_RING: the caller then uses the eventfd.
    fn msg_ring_wake(&self, target_ring_fd: RawFd, target_shard: usize) -> bool {
        let Ok(mut driver) = self.driver.try_borrow_mut() else {
            return false;
        };
        if !driver.features().msg_ring {
            return false;
        }
        let delivered = Token::new(Kind::Wake, WAKE_MSG_RING, 0);
        let on_failure = Token::new(Kind::Wake, WAKE_MSG_RING_FAILED, target_shard as u32);
        driver.submit(
            MsgRingWake {
                target_ring_fd,
                delivered,
            },
            on_failure,
        );
        driver.stats_mut().msg_ring_wakes += 1;
        if self.wakes_ride_the_enter.get() {
            // The loop enters the kernel right after this phase; a failed MSG_RING still
            // falls back to the eventfd through its failure CQE, a failed enter through
            // `take_deferred_wakes`.
            self.deferred_wakes.borrow_mut().push(target_shard);
            return true;
        }
        driver.submit_now().is_ok()
    }

    /// Drops every task (the shard has ended): tasks hold `Rc`s of the shard's state, and
    /// dropping them breaks those cycles so the driver and its fds close.
    pub(crate) fn drop_all_tasks(&self) {
        let all = self.tasks.borrow_mut().drain_all();
        drop(all);
        self.run_queue.borrow_mut().clear();
        self.end_of_run.borrow_mut().clear();
        self.per_shard.clear();
    }

    /// Cancels the background tasks (the drain began): they are dropped at the await point
    /// they wait at, and their `JoinHandle`s answer `Cancelled`. Returns how many.
    pub(crate) fn cancel_background(&self) -> usize {
        if self.tasks.borrow().background() == 0 {
            return 0;
        }
        let background = self.tasks.borrow_mut().drain_background();
        let count = background.len();
        drop(background);
        count
    }
}

/// Wakes shard `target_shard` through MSG_RING from the shard this thread runs, if any.
pub(crate) fn msg_ring_wake(target_ring_fd: RawFd, target_shard: usize) -> bool {
    CORE.with(|core| core.msg_ring_wake(target_ring_fd, target_shard))
        .unwrap_or(false)
}

/// Queues `task` on this thread's run queue if this thread runs shard `shard`; false when
/// the wake comes from another thread.
#[inline]
pub(crate) fn wake_local(shard: usize, task: TaskRef) -> bool {
    CORE.with(|core| {
        if core.id != shard {
            return false;
        }
        core.push_local(task);
        true
    })
    .unwrap_or(false)
}

//! The shard loop's engine: the executor's own part of every phase, with the other layers'
//! parts plugged in through [`Phases`] (implemented by the server, which assembles a shard;
//! the phases themselves are described once, in the crate docs).
//!
//! The executor owns what needs nothing above it: taking tasks woken from other threads,
//! polling ready tasks under a budget, the end-of-run work, the one `io_uring_enter`, the
//! wake-ups (eventfd read, MSG_RING) and the completions of generic operations. Everything
//! else (timers, mesh, connections, the graceful stop) is a hook, called statically.
//!
//! The loop reads the clock twice per iteration: as it wakes (that reading drives the timers
//! phase and is the iteration's `time::now`) and before it waits (busy time and the wait's
//! timeout).

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    task::Context,
    time::{Duration, Instant},
};

use super::{
    coop,
    core::{Core, WAKE_EVENTFD, WAKE_MSG_RING_FAILED},
    join::{drop_panicked, panic_message},
    remote::{TaskRef, ns_at},
};
use crate::driver::{
    Completion, Kind, Token, Wait,
    uring::{
        lifecycle::{Done, Route},
        op::{EventFdRead, Owned},
    },
};

/// Task polls per iteration before the loop goes back to the kernel for I/O.
pub(crate) const MAX_POLLS_PER_ITERATION: usize = 1024;

/// The longest idle poll: after iterations that ran or sent mesh messages (see
/// [`IDLE_POLL_AFTER`]), a shard with nothing else to do polls this long for more (its peer usually answers within a few µs)
/// before it sleeps. Waking a sleeping shard costs ~40 µs on these machines (the floor in
/// docs/benchmarking.md), so a shard in a conversation stays awake instead; a shard with no
/// mesh traffic never polls. The poll watches the mesh inbox, remote wakes, the stop
/// request and the ring's completions, so nothing waits for it to end.
pub(crate) const IDLE_POLL: Duration = Duration::from_micros(50);

/// Consecutive iterations with mesh traffic before the idle poll starts: a conversation, not
/// one message, makes a shard stay awake.
pub(crate) const IDLE_POLL_AFTER: u32 = 8;

/// The other layers' parts of the loop, in the order the loop calls them.
pub(crate) trait Phases {
    /// 1. **timers**: fire what is due at `now`.
    fn timers(&mut self, now: Instant);
    /// 2. **mesh**: run a bounded batch of messages from other shards.
    fn mesh(&mut self);
    /// Graceful stop, before the run phase: returns true when the shard has finished.
    fn stop_step(&mut self) -> bool;
    /// 3. **run**, its tail (after the tasks and the end-of-run work): settle input, queue
    ///    one send per connection with output, and release the connections closed by the
    ///    tasks that can go at once.
    fn after_run(&mut self);
    /// Work that cannot wait for a completion: the loop must not sleep.
    fn busy(&self) -> bool;
    /// Checked after the shard announced it may sleep: work that arrived from elsewhere.
    fn pending_from_outside(&self) -> bool;
    /// The longest the loop may sleep, measured from `now`; `None` for no limit.
    fn sleep_limit(&self, now: Instant) -> Option<Duration>;
    /// 5. **complete**: a multishot receive's completion (its token names a connection).
    fn recv(&mut self, completion: Completion);
    /// 5. **complete**: an accept's completion (its token names a listener).
    fn accept(&mut self, completion: Completion);
    /// 5. **complete**: an owned op came back to the owner its route names (a send).
    fn routed(&mut self, route: Token, result: i32, op: Owned);
    /// 6. **close**: release what the last completions ended.
    fn close(&mut self);
    /// A MSG_RING wake-up of shard `target` did not reach it: wake it another way.
    fn wake_by_eventfd(&mut self, target: usize);
}

struct LoopState {
    completions: Vec<Completion>,
    remote_wakes: Vec<TaskRef>,
    /// When a timed wait should end, to measure how late the loop woke.
    expected_wake: Option<Instant>,
    /// Mesh messages run and sent by the end of the last iteration (its mesh traffic).
    mesh_seen: u64,
    /// Consecutive iterations (up to `IDLE_POLL_AFTER`) that ran or sent mesh messages.
    mesh_streak: u32,
}

/// Runs the shard until `phases` says it has stopped.
pub(crate) fn run<P: Phases>(core: &Core, phases: &mut P) -> std::io::Result<()> {
    let mut state = LoopState {
        completions: Vec::with_capacity(1024),
        remote_wakes: Vec::new(),
        expected_wake: None,
        mesh_seen: 0,
        mesh_streak: 0,
    };
    arm_eventfd(core, EventFdRead::new(core.remote.eventfd()));
    let mut start = Instant::now();
    core.set_iteration_now(start);
    loop {
        core.remote.set_busy_since(ns_at(start));
        record_timer_lag(core, &mut state, start);
        phases.timers(start);
        take_remote_wakes(core, &mut state);
        phases.mesh();
        if phases.stop_step() {
            // Closes queued by the last completions still sit in the SQ: hand them over.
            return core.driver.borrow_mut().enter(Wait::No);
        }
        run_tasks(core);
        core.run_end_of_run();
        phases.after_run();
        let end = Instant::now();
        let wait = choose_wait(core, phases, &mut state, end);
        end_iteration(core, &mut state, start, end, wait);
        let entered = core.driver.borrow_mut().enter(wait);
        start = Instant::now();
        core.set_iteration_now(start);
        core.remote.woke();
        if entered.is_err() {
            for target in core.take_deferred_wakes() {
                phases.wake_by_eventfd(target);
            }
        } else {
            core.deferred_wakes_submitted();
        }
        entered?;
        dispatch_completions(core, phases, &mut state);
        phases.close();
    }
}

/// Records the iteration's busy time and marks the shard as waiting.
fn end_iteration(core: &Core, state: &mut LoopState, start: Instant, end: Instant, wait: Wait) {
    let busy_us = end.saturating_duration_since(start).as_micros() as u64;
    {
        let mut stats = core.stats.borrow_mut();
        stats.iterations += 1;
        stats.iteration_us.record_us(busy_us);
    }
    state.expected_wake = match wait {
        Wait::Timeout(timeout) => Some(end + timeout),
        Wait::No | Wait::Forever => None,
    };
    core.remote.set_busy_since(0);
}

/// How late a timed wait ended (kernel wake-up latency plus anything that delayed the loop).
fn record_timer_lag(core: &Core, state: &mut LoopState, now: Instant) {
    if let Some(expected) = state.expected_wake.take()
        && now >= expected
    {
        let lag_us = (now - expected).as_micros() as u64;
        core.stats.borrow_mut().timer_lag_us.record_us(lag_us);
    }
}

/// Arms the read of the shard's eventfd. The driver keeps the read (and the 8 bytes it
/// writes) until its completion, which comes back here through `EVENTFD_ROUTE`; a read still
/// in flight when the loop ends stays owned by the driver until the ring closes.
fn arm_eventfd(core: &Core, read: EventFdRead) {
    core.driver
        .borrow_mut()
        .submit_owned(read, Route::To(EVENTFD_ROUTE));
}

const EVENTFD_ROUTE: Token = Token::new(Kind::Wake, WAKE_EVENTFD, 0);

fn take_remote_wakes(core: &Core, state: &mut LoopState) {
    core.remote.drain_wakes(&mut state.remote_wakes);
    for task in state.remote_wakes.drain(..) {
        core.push_local(task);
    }
}

/// Polls ready tasks. Tasks woken during this phase run in the next iteration, after the
/// loop has collected I/O, so a task that keeps waking itself cannot starve the rest.
fn run_tasks(core: &Core) {
    let ready = core.local_queue_len().min(MAX_POLLS_PER_ITERATION);
    core.stats.borrow_mut().tasks_polled += ready as u64;
    for _ in 0..ready {
        let Some(task_ref) = core.pop_local() else {
            break;
        };
        let Some(mut task) = core.tasks.borrow_mut().take(task_ref) else {
            continue;
        };
        task.header.start_poll();
        coop::reset();
        let mut cx = Context::from_waker(&task.waker);
        core.in_background.set(task.background);
        let polled = catch_unwind(AssertUnwindSafe(|| task.future.as_mut().poll(&mut cx)));
        core.in_background.set(false);
        match polled {
            Ok(std::task::Poll::Pending) => core.tasks.borrow_mut().put_back(task_ref, task),
            Ok(std::task::Poll::Ready(())) => {
                core.tasks.borrow_mut().finish(task_ref, &task);
                drop(task);
            }
            Err(payload) => {
                let message = panic_message(&*payload);
                core.count_panic(
                    "task",
                    &format!("{message}; its connections are closed, the shard goes on"),
                );
                core.tasks.borrow_mut().finish(task_ref, &task);
                drop_panicked(task, message);
            }
        }
    }
}

/// How the loop waits, with `now` read after the tasks ran.
fn choose_wait<P: Phases>(core: &Core, phases: &P, state: &mut LoopState, now: Instant) -> Wait {
    if core.local_queue_len() > 0 || core.driver.borrow().has_reaped() || phases.busy() {
        return Wait::No;
    }
    let mesh_now = {
        let stats = core.stats.borrow();
        stats.mesh_received + stats.mesh_sent
    };
    state.mesh_streak = if mesh_now != state.mesh_seen {
        (state.mesh_streak + 1).min(IDLE_POLL_AFTER)
    } else {
        0
    };
    state.mesh_seen = mesh_now;
    if state.mesh_streak >= IDLE_POLL_AFTER && idle_poll(core, phases, now) {
        return Wait::No;
    }
    // Work from outside is checked once, after `prepare_sleep` (the mesh takes a lock).
    if !core.remote.prepare_sleep() || phases.pending_from_outside() {
        core.remote.woke();
        return Wait::No;
    }
    match phases.sleep_limit(now) {
        Some(limit) => Wait::Timeout(limit),
        None => Wait::Forever,
    }
}

/// Polls for work from other shards for at most [`IDLE_POLL`] (see there); true when some
/// arrived (the loop then goes on without sleeping).
fn idle_poll<P: Phases>(core: &Core, phases: &P, start: Instant) -> bool {
    core.stats.borrow_mut().idle_polls += 1;
    // The clock is read once per 64 checks: a check costs far less than a clock read.
    let mut checks = 0u32;
    loop {
        if phases.pending_from_outside()
            || core.remote.has_wakes()
            || core.driver.borrow_mut().io_ready()
        {
            core.stats.borrow_mut().idle_poll_hits += 1;
            return true;
        }
        checks = checks.wrapping_add(1);
        if checks % 64 == 0 && start.elapsed() >= IDLE_POLL {
            return false;
        }
        std::hint::spin_loop();
    }
}

fn dispatch_completions<P: Phases>(core: &Core, phases: &mut P, state: &mut LoopState) {
    core.driver
        .borrow_mut()
        .take_completions(&mut state.completions);
    for completion in state.completions.drain(..) {
        match completion.token.kind() {
            Some(Kind::Recv) => phases.recv(completion),
            Some(Kind::Accept) => phases.accept(completion),
            Some(Kind::Lifecycle) => {
                let done = core
                    .driver
                    .borrow_mut()
                    .ops_mut()
                    .complete(completion.token, completion.result);
                match done {
                    Done::Wake(waker) => waker.wake(),
                    Done::Routed { route, result, op } => route_op(core, phases, route, result, op),
                    Done::Quiet => {}
                }
            }
            Some(Kind::Wake) => {
                // MSG_RING completions: a wake-up delivered here (nothing to do: the loop
                // is awake), or one that failed on its way to another shard.
                if completion.token.index() == WAKE_MSG_RING_FAILED {
                    // The target was asleep and the MSG_RING did not reach it: its eventfd will.
                    let target = completion.token.generation() as usize;
                    tracing::debug!(
                        shard = core.id,
                        target,
                        "MSG_RING wake failed ({}); using the eventfd",
                        std::io::Error::from_raw_os_error(-completion.result)
                    );
                    core.driver.borrow_mut().stats_mut().msg_ring_failures += 1;
                    phases.wake_by_eventfd(target);
                }
            }
            Some(Kind::Ignore) => {
                if completion.result < 0
                    && completion.result != -libc::ECANCELED
                    && completion.result != -libc::ENOENT
                    && completion.result != -libc::EALREADY
                {
                    tracing::debug!(
                        shard = core.id,
                        "auxiliary operation failed: {}",
                        std::io::Error::from_raw_os_error(-completion.result)
                    );
                }
            }
            // A route, never a completion's own token: this word is not ours.
            Some(Kind::Send) | None => tracing::warn!(
                shard = core.id,
                user_data = completion.token.user_data(),
                "completion with an unknown token"
            ),
        }
    }
}

/// An owned op came back: the eventfd read is re-armed here, the rest go to their owner.
fn route_op<P: Phases>(core: &Core, phases: &mut P, route: Token, result: i32, op: Owned) {
    match op {
        Owned::EventFdRead(read) if route == EVENTFD_ROUTE => {
            core.remote.drain_eventfd();
            arm_eventfd(core, read);
        }
        op => phases.routed(route, result, op),
    }
}

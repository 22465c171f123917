//! One shard's event loop: the phases of every iteration, in order.
//!
//! 1. **timers**: fire expired timers, waking their tasks;
//! 2. **mesh**: take tasks woken from other threads and run a bounded batch of inbox messages;
//! 3. **run**: poll ready tasks, at most [`MAX_POLLS_PER_ITERATION`], each with an I/O budget;
//!    then the end-of-run work (what tasks gathered to send as one message, see
//!    `shard::at_end_of_run`), then settle receive buffers and queue one send per connection
//!    with pending output;
//! 4. **submit + wait**: one `io_uring_enter` submits every queued SQE and waits for a
//!    completion or the next timer deadline (never a busy spin; no wait at all while tasks
//!    are still ready);
//! 5. **complete**: every CQE is reaped into a local queue first, then dispatched;
//!    multishot operations that ended without `IORING_CQE_F_MORE` are re-armed;
//! 6. **close**: connections whose last operation completed release their buffers and fds.
//!
//! The loop reads the clock twice per iteration: as it wakes (that reading drives the timers
//! phase and is the iteration's `crate::time::now`) and before it waits (busy time and the
//! wait's timeout).

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    rc::Rc,
    task::Context,
    time::{Duration, Instant},
};

use super::{
    coop,
    join::{drop_panicked, panic_message},
    remote::TaskRef,
    shard::{self, Shard, WAKE_EVENTFD, WAKE_MSG_RING_FAILED},
    watchdog,
};
use crate::{
    mesh, net,
    ring::{
        Completion, Wait,
        op::read::EventFdRead,
        token::{Kind, Token},
    },
};

/// Task polls per iteration before the loop goes back to the kernel for I/O.
pub(crate) const MAX_POLLS_PER_ITERATION: usize = 1024;
/// Mesh messages run per iteration.
pub(crate) const MESH_BATCH: usize = 256;
/// After the drain deadline, how long to wait for cancelled operations' final CQEs.
const FORCED_CLOSE_GRACE: Duration = Duration::from_secs(2);

pub(crate) struct LoopState {
    completions: Vec<Completion>,
    remote_wakes: Vec<TaskRef>,
    fired: Vec<std::task::Waker>,
    eventfd_buf: Box<u64>,
    forced_at: Option<Instant>,
    /// When a timed wait should end, to measure how late the loop woke.
    expected_wake: Option<Instant>,
}

/// Runs the shard until it has stopped and drained.
pub(crate) fn run(shard: &Rc<Shard>) -> std::io::Result<()> {
    let mut state = LoopState {
        completions: Vec::with_capacity(1024),
        remote_wakes: Vec::new(),
        fired: Vec::new(),
        eventfd_buf: Box::new(0),
        forced_at: None,
        expected_wake: None,
    };
    arm_eventfd(shard, &mut state);
    // The iteration's clock reading, taken as the loop wakes (`crate::time::now`): the loop
    // reads the clock twice per iteration, here and before it waits.
    let mut start = Instant::now();
    shard::set_iteration_now(start);
    loop {
        shard.remote.set_busy_since(watchdog::ns_at(start));
        record_timer_lag(shard, &mut state, start);
        fire_timers(shard, &mut state, start);
        take_remote_wakes(shard, &mut state);
        mesh::run_inbox(shard, MESH_BATCH);
        if drain_step(shard, &mut state) {
            // Closes queued by the last completions still sit in the SQ: hand them over.
            return shard.ring.borrow_mut().enter(Wait::No);
        }
        run_tasks(shard);
        shard::run_end_of_run(shard);
        net::after_run(shard);
        let end = Instant::now();
        let wait = choose_wait(shard, end);
        end_iteration(shard, &mut state, start, end, wait);
        let entered = shard.ring.borrow_mut().enter(wait);
        start = Instant::now();
        shard::set_iteration_now(start);
        shard.remote.woke();
        if entered.is_err() {
            shard::deferred_wakes_failed(shard);
        } else {
            shard::deferred_wakes_submitted();
        }
        entered?;
        dispatch_completions(shard, &mut state);
        net::close_phase(shard);
    }
}

/// Records the iteration's busy time and marks the shard as waiting.
fn end_iteration(shard: &Shard, state: &mut LoopState, start: Instant, end: Instant, wait: Wait) {
    let busy_us = end.saturating_duration_since(start).as_micros() as u64;
    {
        let mut stats = shard.loop_stats.borrow_mut();
        stats.iterations += 1;
        stats.iteration_us.record_us(busy_us);
    }
    state.expected_wake = match wait {
        Wait::Timeout(timeout) => Some(end + timeout),
        Wait::No | Wait::Forever => None,
    };
    shard.remote.set_busy_since(0);
}

/// How late a timed wait ended (kernel wake-up latency plus anything that delayed the loop).
fn record_timer_lag(shard: &Shard, state: &mut LoopState, now: Instant) {
    if let Some(expected) = state.expected_wake.take() {
        if now >= expected {
            let lag_us = (now - expected).as_micros() as u64;
            shard.loop_stats.borrow_mut().timer_lag_us.record_us(lag_us);
        }
    }
}

fn arm_eventfd(shard: &Shard, state: &mut LoopState) {
    let read = EventFdRead {
        fd: shard.remote.eventfd(),
        target: &mut *state.eventfd_buf,
    };
    shard
        .ring
        .borrow_mut()
        .push(&read.to_sqe(Token::new(Kind::Wake, WAKE_EVENTFD, 0)));
}

fn fire_timers(shard: &Shard, state: &mut LoopState, now: Instant) {
    let now_ms = shard.clock.ms_at(now);
    shard.timers.borrow_mut().advance(now_ms, &mut state.fired);
    for waker in state.fired.drain(..) {
        waker.wake();
    }
}

fn take_remote_wakes(shard: &Shard, state: &mut LoopState) {
    shard.remote.drain_wakes(&mut state.remote_wakes);
    for task in state.remote_wakes.drain(..) {
        shard::push_local(task);
    }
}

/// Polls ready tasks. Tasks woken during this phase run in the next iteration, after the
/// loop has collected I/O, so a task that keeps waking itself cannot starve the rest.
fn run_tasks(shard: &Shard) {
    let ready = shard::local_queue_len().min(MAX_POLLS_PER_ITERATION);
    shard.loop_stats.borrow_mut().tasks_polled += ready as u64;
    for _ in 0..ready {
        let Some(task_ref) = shard::pop_local() else {
            break;
        };
        let Some(mut task) = shard.tasks.borrow_mut().take(task_ref) else {
            continue;
        };
        task.header.start_poll();
        coop::reset();
        let mut cx = Context::from_waker(&task.waker);
        match catch_unwind(AssertUnwindSafe(|| task.future.as_mut().poll(&mut cx))) {
            Ok(std::task::Poll::Pending) => shard.tasks.borrow_mut().put_back(task_ref, task),
            Ok(std::task::Poll::Ready(())) => {
                shard.tasks.borrow_mut().finish(task_ref, &task);
                drop(task);
            }
            Err(payload) => {
                let message = panic_message(&*payload);
                shard.panics.set(shard.panics.get() + 1);
                tracing::error!(
                    shard = shard.id,
                    "task panicked: {message}; its connections are closed, the shard goes on"
                );
                shard.tasks.borrow_mut().finish(task_ref, &task);
                drop_panicked(task, message);
            }
        }
    }
}

/// How the loop waits, with `now` read after the tasks ran.
fn choose_wait(shard: &Shard, now: Instant) -> Wait {
    if shard::local_queue_len() > 0 || shard.ring.borrow().has_reaped() || net::has_starved(shard) {
        return Wait::No;
    }
    // The mesh is checked once, after `prepare_sleep` (its channels take a lock each).
    if !shard.remote.prepare_sleep()
        || shard.mesh.has_pending()
        || shard.control.stop_requested() != shard.is_draining()
    {
        shard.remote.woke();
        return Wait::No;
    }
    let next_deadline = shard.timers.borrow().next_deadline_ms();
    match next_deadline {
        Some(deadline_ms) => Wait::Timeout(shard.clock.until_ms_from(deadline_ms, now)),
        None if shard.is_draining() => Wait::Timeout(Duration::from_millis(50)),
        None => Wait::Forever,
    }
}

fn dispatch_completions(shard: &Rc<Shard>, state: &mut LoopState) {
    shard
        .ring
        .borrow_mut()
        .take_completions(&mut state.completions);
    for completion in state.completions.drain(..) {
        match completion.token.kind() {
            Some(Kind::Recv) => net::on_recv(shard, completion),
            Some(Kind::Send) => net::on_send(shard, completion),
            Some(Kind::Accept) => net::on_accept(shard, completion),
            Some(Kind::Lifecycle) => {
                let waker = shard
                    .ring
                    .borrow_mut()
                    .ops
                    .complete(completion.token, completion.result);
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            Some(Kind::Wake) => {
                if completion.token.index() == WAKE_EVENTFD {
                    shard.remote.drain_eventfd();
                    let read = EventFdRead {
                        fd: shard.remote.eventfd(),
                        target: &mut *state.eventfd_buf,
                    };
                    shard.ring.borrow_mut().push(&read.to_sqe(completion.token));
                } else if completion.token.index() == WAKE_MSG_RING_FAILED {
                    // The target was asleep and the MSG_RING did not reach it: its eventfd will.
                    let target = completion.token.generation() as usize;
                    tracing::debug!(
                        shard = shard.id,
                        target,
                        "MSG_RING wake failed ({}); using the eventfd",
                        std::io::Error::from_raw_os_error(-completion.result)
                    );
                    shard.ring.borrow_mut().stats.msg_ring_failures += 1;
                    shard.mesh.shared.notify_eventfd(target);
                }
            }
            Some(Kind::Ignore) => {
                if completion.result < 0
                    && completion.result != -libc::ECANCELED
                    && completion.result != -libc::ENOENT
                    && completion.result != -libc::EALREADY
                {
                    tracing::debug!(
                        shard = shard.id,
                        "auxiliary operation failed: {}",
                        std::io::Error::from_raw_os_error(-completion.result)
                    );
                }
            }
            None => tracing::warn!(
                shard = shard.id,
                user_data = completion.token.user_data(),
                "completion with an unknown token"
            ),
        }
    }
}

/// Handles a graceful stop. Returns true when the shard has finished and the loop must end.
fn drain_step(shard: &Rc<Shard>, state: &mut LoopState) -> bool {
    let control = &shard.control;
    if !control.stop_requested() {
        return false;
    }
    if !shard.is_draining() {
        shard.drain.draining.set(true);
        net::stop_listening(shard);
        shard.drain.wake_all();
    }
    if state.forced_at.is_none() && Instant::now() >= control.drain_deadline() {
        let tasks_live = shard.tasks.borrow().live();
        if tasks_live > 0 || !net::is_quiet(shard) {
            tracing::warn!(
                shard = shard.id,
                tasks = tasks_live,
                "drain deadline passed: closing remaining connections"
            );
        }
        let all = shard.tasks.borrow_mut().drain_all();
        drop(all);
        net::force_close_all(shard);
        state.forced_at = Some(Instant::now());
    }
    // Messages from shards still draining are served first: their callers wait for them.
    let finished = shard.tasks.borrow().live() == 0
        && net::is_quiet(shard)
        && !shard.mesh.has_pending()
        && shard.ring.borrow().ops.in_flight() == 0;
    finished
        || state
            .forced_at
            .is_some_and(|at| at.elapsed() > FORCED_CLOSE_GRACE)
}

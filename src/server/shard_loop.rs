//! The shard loop assembled: the executor's engine (`task::run_loop`) with each layer's
//! part of the phases plugged in. Only the server knows every layer, so the loop is tied
//! together here; the phases themselves are described once, in the crate docs.

use std::{
    rc::Rc,
    task::Waker,
    time::{Duration, Instant},
};

use super::drain::ShardStop;
use crate::{
    driver::{Completion, Token, uring::op::Owned},
    mesh::{self, MeshShard},
    net::{self, NetShard},
    task::{Core, run_loop::Phases},
    time::Timers,
};

/// Mesh messages run per iteration.
pub(crate) const MESH_BATCH: usize = 256;
/// After the drain deadline, how long to wait for cancelled operations' final CQEs.
const FORCED_CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How often a draining shard with no timer armed looks at its connections again.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// One shard's layers, as the loop sees them.
pub(crate) struct ShardLoop {
    pub(crate) core: Rc<Core>,
    pub(crate) timers: Rc<Timers>,
    pub(crate) mesh: Rc<MeshShard>,
    pub(crate) net: Rc<NetShard>,
    pub(crate) stop: Rc<ShardStop>,
    /// Scratch for the timers phase (kept to reuse its capacity).
    fired: Vec<Waker>,
    /// When the drain deadline forced the remaining connections closed.
    forced_at: Option<Instant>,
}

impl ShardLoop {
    pub(crate) fn new(
        core: Rc<Core>,
        timers: Rc<Timers>,
        mesh: Rc<MeshShard>,
        net: Rc<NetShard>,
        stop: Rc<ShardStop>,
    ) -> Self {
        ShardLoop {
            core,
            timers,
            mesh,
            net,
            stop,
            fired: Vec::new(),
            forced_at: None,
        }
    }

    /// Runs the loop until the shard has stopped and drained.
    pub(crate) fn run(&mut self) -> std::io::Result<()> {
        let core = self.core.clone();
        crate::task::run_loop::run(&core, self)
    }
}

impl Phases for ShardLoop {
    fn timers(&mut self, now: Instant) {
        self.timers.fire(now, &mut self.fired);
    }

    fn mesh(&mut self) {
        mesh::run_inbox(&self.mesh, &self.core, MESH_BATCH);
    }

    /// Handles a graceful stop: stop accepting, wake the waiters, and past the deadline
    /// close what remains. True when the shard has finished.
    fn stop_step(&mut self) -> bool {
        let control = &self.stop.control;
        if !control.stop_requested() {
            return false;
        }
        if !self.stop.is_draining() {
            self.stop.drain.draining.set(true);
            net::stop_listening(&self.net);
            self.stop.drain.wake_all();
            let cancelled = self.core.cancel_background();
            tracing::debug!(
                shard = self.core.id,
                background_tasks_cancelled = cancelled,
                connections = self.net.conns.borrow().open(),
                tasks = self.core.tasks.borrow().live(),
                "drain started"
            );
        } else {
            // A background task spawned during the drain is cancelled too (a counter check
            // when there is none).
            self.core.cancel_background();
        }
        if self.forced_at.is_none() && Instant::now() >= control.drain_deadline() {
            let tasks_live = self.core.tasks.borrow().live();
            let connections = self.net.conns.borrow().open();
            if connections > 0 {
                tracing::warn!(
                    shard = self.core.id,
                    connections,
                    tasks = tasks_live,
                    "drain deadline passed: closing the remaining connections and cancelling the remaining tasks"
                );
            } else if tasks_live > 0 {
                tracing::warn!(
                    shard = self.core.id,
                    tasks = tasks_live,
                    "drain deadline passed: no connection is left; cancelling tasks that did not finish (a loop that should stop at the drain start belongs in spawn_background, or should select on shutdown_signal)"
                );
            }
            let all = self.core.tasks.borrow_mut().drain_all();
            drop(all);
            net::force_close_all(&self.net);
            self.forced_at = Some(Instant::now());
        }
        // Messages from shards still draining are served first: their callers wait for them.
        let finished = self.core.tasks.borrow().live() == 0
            && net::is_quiet(&self.net)
            && !self.mesh.has_pending()
            && self.core.driver.borrow().ops().in_flight() == 0;
        finished
            || self
                .forced_at
                .is_some_and(|at| at.elapsed() > FORCED_CLOSE_GRACE)
    }

    fn after_run(&mut self) {
        net::after_run(&self.net);
        // A handle dropped in the run phase after its receive had already ended (the peer
        // closed) leaves nothing in flight: no completion would come to run the close phase,
        // and the loop could sleep holding the connection's fd and its slot under a
        // connection cap (a shard waiting at the global cap is told only by a release).
        net::close_phase(&self.net);
    }

    fn busy(&self) -> bool {
        net::has_starved(&self.net)
    }

    fn pending_from_outside(&self) -> bool {
        self.mesh.has_pending() || self.stop.control.stop_requested() != self.stop.is_draining()
    }

    fn sleep_limit(&self, now: Instant) -> Option<Duration> {
        match self.timers.until_next(now) {
            Some(limit) => Some(limit),
            None if self.stop.is_draining() => Some(DRAIN_POLL),
            None => None,
        }
    }

    #[inline]
    fn recv(&mut self, completion: Completion) {
        net::on_recv(&self.net, completion);
    }

    fn accept(&mut self, completion: Completion) {
        net::on_accept(&self.net, completion);
    }

    #[inline]
    fn routed(&mut self, route: Token, result: i32, op: Owned) {
        match op {
            Owned::Send(send) => net::on_send(&self.net, route, result, send),
            // Nothing else is routed to the network; dropping the op releases it.
            _ => tracing::warn!(shard = self.core.id, "an op was routed to no owner"),
        }
    }

    fn close(&mut self) {
        net::close_phase(&self.net);
    }

    fn wake_by_eventfd(&mut self, target: usize) {
        self.mesh.shared.notify_eventfd(target);
    }
}

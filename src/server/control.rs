//! The server-wide stop switch, shared by every shard and by `ServerHandle`.
//!
//! `stop` is set once (SeqCst) and never cleared; the drain deadline is written before it,
//! so a shard that sees the flag also sees the deadline. Every shard is then notified, which
//! ends its wait in `io_uring_enter`.
//!
//! A stop may be *announced* first ([`ServerControl::announce_stop`]: SIGTERM, the admin
//! listener's `POST /drain`): health checks answer 503 at once, the listeners stay open for
//! the drain delay so that a load balancer notices and sends no more, and only then does
//! the graceful stop begin.

use std::{
    sync::{
        Arc, Condvar, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{metrics::Readiness, task::remote::ShardRemote};

pub(crate) struct ServerControl {
    stop: AtomicBool,
    deadline: Mutex<Option<Instant>>,
    pub(crate) drain_timeout: Duration,
    /// How long listeners stay open after a stop is announced.
    pub(crate) drain_delay: Duration,
    remotes: OnceLock<Vec<Arc<ShardRemote>>>,
    pub(crate) running_shards: AtomicUsize,
    /// What SIGHUP reloads (TLS certificates).
    reload: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
    /// Starting / serving / draining, as health checks report it.
    pub(crate) readiness: Readiness,
    /// Set when the stop was requested; wakes the drain-delay wait early.
    stopped: Condvar,
    /// A successor process took the listeners over (hot restart): the admin thread ends.
    pub(crate) handed_over: AtomicBool,
    /// What `SIGUSR2` does: start a successor (hot restart), when configured.
    pub(crate) on_upgrade_signal: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl ServerControl {
    pub(crate) fn new(drain_timeout: Duration, drain_delay: Duration) -> Self {
        ServerControl {
            stop: AtomicBool::new(false),
            deadline: Mutex::new(None),
            drain_timeout,
            drain_delay,
            remotes: OnceLock::new(),
            running_shards: AtomicUsize::new(0),
            reload: Mutex::new(Vec::new()),
            readiness: Readiness::default(),
            stopped: Condvar::new(),
            handed_over: AtomicBool::new(false),
            on_upgrade_signal: OnceLock::new(),
        }
    }

    /// Announces a stop: health checks answer 503 from now on; after the drain delay (at
    /// once when it is zero) the graceful stop begins. Returns false when a stop was
    /// already announced or requested (nothing changes).
    pub(crate) fn announce_stop(self: &Arc<Self>) -> bool {
        let first = self.readiness.set_draining();
        if !first || self.stop_requested() {
            return false;
        }
        if self.drain_delay.is_zero() {
            self.request_stop();
            return true;
        }
        let control = self.clone();
        let spawned = std::thread::Builder::new()
            .name("percore-drain-delay".into())
            .spawn(move || control.stop_after_delay());
        if let Err(e) = spawned {
            tracing::warn!("drain delay: no thread ({e}); stopping now");
            self.request_stop();
        }
        true
    }

    /// Waits out the drain delay (or until something else requested the stop), then
    /// requests it.
    fn stop_after_delay(&self) {
        let until = Instant::now() + self.drain_delay;
        let mut guard = self.deadline.lock().unwrap_or_else(|p| p.into_inner());
        while !self.stop_requested() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            guard = self
                .stopped
                .wait_timeout(guard, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(guard);
        self.request_stop();
    }

    pub(crate) fn set_remotes(&self, remotes: Vec<Arc<ShardRemote>>) {
        let _ = self.remotes.set(remotes);
    }

    /// Starts a graceful stop with the configured drain timeout (a second call keeps the
    /// earlier deadline).
    pub(crate) fn request_stop(&self) {
        self.stop_within(self.drain_timeout);
    }

    /// Stops with a drain deadline at most `within` from now.
    pub(crate) fn stop_within(&self, within: Duration) {
        {
            let mut deadline = self.deadline.lock().unwrap_or_else(|p| p.into_inner());
            let candidate = Instant::now() + within;
            *deadline = Some(deadline.map_or(candidate, |d| d.min(candidate)));
            // Under the lock, so the drain-delay wait cannot miss it.
            self.stop.store(true, Ordering::SeqCst);
            self.stopped.notify_all();
        }
        self.readiness.set_draining();
        for remote in self.remotes.get().map(Vec::as_slice).unwrap_or_default() {
            remote.notify();
        }
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub(crate) fn drain_deadline(&self) -> Instant {
        self.deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(|| Instant::now() + self.drain_timeout)
    }

    /// Registers something SIGHUP reloads.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn on_reload(&self, hook: Box<dyn Fn() + Send + Sync>) {
        self.reload
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    /// Runs every reload hook; false when there is none.
    pub(crate) fn reload(&self) -> bool {
        let hooks = self.reload.lock().unwrap_or_else(|p| p.into_inner());
        for hook in hooks.iter() {
            hook();
        }
        !hooks.is_empty()
    }
}

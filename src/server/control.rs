//! The server-wide stop switch, shared by every shard and by `ServerHandle`.
//!
//! `stop` is set once (SeqCst) and never cleared; the drain deadline is written before it,
//! so a shard that sees the flag also sees the deadline. Every shard is then notified, which
//! ends its wait in `io_uring_enter`.

use std::{
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::task::remote::ShardRemote;

pub(crate) struct ServerControl {
    stop: AtomicBool,
    deadline: Mutex<Option<Instant>>,
    pub(crate) drain_timeout: Duration,
    remotes: OnceLock<Vec<Arc<ShardRemote>>>,
    pub(crate) running_shards: AtomicUsize,
    /// What SIGHUP reloads (TLS certificates).
    reload: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
}

impl ServerControl {
    pub(crate) fn new(drain_timeout: Duration) -> Self {
        ServerControl {
            stop: AtomicBool::new(false),
            deadline: Mutex::new(None),
            drain_timeout,
            remotes: OnceLock::new(),
            running_shards: AtomicUsize::new(0),
            reload: Mutex::new(Vec::new()),
        }
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
        }
        self.stop.store(true, Ordering::SeqCst);
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

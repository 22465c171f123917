//! A shard's view of a graceful stop: the server-wide stop switch, whether this shard has
//! begun draining, and the tasks waiting for it (`shutdown_signal`). Reached through
//! [`STOP`], installed by the shard thread.

use std::{
    cell::{Cell, RefCell},
    future::{Future, poll_fn},
    rc::Rc,
    sync::Arc,
    task::{Poll, Waker},
};

use super::control::ServerControl;
use crate::{
    slab::{Key, Slab},
    task::local::ShardLocal,
};

thread_local! {
    static CURRENT: RefCell<Option<Rc<ShardStop>>> = const { RefCell::new(None) };
}

/// The stop state of the shard this thread runs.
pub(crate) static STOP: ShardLocal<ShardStop> = ShardLocal::new(&CURRENT);

pub(crate) struct ShardStop {
    pub(crate) control: Arc<ServerControl>,
    pub(crate) drain: Drain,
}

impl ShardStop {
    pub(crate) fn new(control: Arc<ServerControl>) -> Self {
        ShardStop {
            control,
            drain: Drain::default(),
        }
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.drain.draining.get()
    }
}

/// The flag, and the tasks waiting for it (a slab, so a waiter that re-registers on every
/// poll keeps one slot, not one more each time).
#[derive(Default)]
pub(crate) struct Drain {
    pub(crate) draining: Cell<bool>,
    waiters: RefCell<Slab<Waker>>,
}

impl Drain {
    /// Registers (or refreshes) the waker of the waiter holding `key`.
    pub(crate) fn register(&self, key: &mut Option<Key>, waker: &Waker) {
        let mut waiters = self.waiters.borrow_mut();
        if let Some(current) = key.and_then(|k| waiters.get_mut(k)) {
            if !current.will_wake(waker) {
                *current = waker.clone();
            }
            return;
        }
        *key = Some(waiters.insert(waker.clone()));
    }

    /// Removes the waiter holding `key` (its future was dropped or completed).
    pub(crate) fn unregister(&self, key: &mut Option<Key>) {
        if let Some(k) = key.take()
            && let Ok(mut waiters) = self.waiters.try_borrow_mut()
        {
            waiters.remove(k);
        }
    }

    /// Wakes every waiter (the drain began).
    pub(crate) fn wake_all(&self) {
        let wakers = self.waiters.borrow_mut().drain();
        for waker in wakers {
            waker.wake();
        }
    }
}

/// True once the server has begun a graceful stop.
#[track_caller]
pub fn shutdown_requested() -> bool {
    STOP.with_current(ShardStop::is_draining)
}

/// This shard's stop flag, held by a long-lived handler that checks it often: [`is_set`]
/// reads the flag directly, where [`shutdown_requested`] first finds the shard's state
/// through a thread-local (a connection checks after every answered request).
///
/// [`is_set`]: ShutdownFlag::is_set
#[derive(Clone)]
pub struct ShutdownFlag {
    stop: Rc<ShardStop>,
}

impl ShutdownFlag {
    /// The flag of the shard running the caller.
    ///
    /// # Panics
    /// Off a shard (at the call, naming the caller's line).
    #[track_caller]
    pub fn current() -> Self {
        ShutdownFlag {
            stop: STOP.current(),
        }
    }

    /// True once the server has begun a graceful stop (what [`shutdown_requested`] says).
    #[inline]
    pub fn is_set(&self) -> bool {
        self.stop.is_draining()
    }
}

/// Completes when the server begins a graceful stop; long-lived connection handlers select
/// on it to finish their current work and close.
///
/// # Panics
/// Off a shard (at the call, naming the caller's line).
#[track_caller]
pub fn shutdown_signal() -> impl Future<Output = ()> + 'static {
    /// Unregisters the waiter however the future ends.
    struct Waiter {
        stop: Rc<ShardStop>,
        key: Option<Key>,
    }
    impl Drop for Waiter {
        fn drop(&mut self) {
            self.stop.drain.unregister(&mut self.key);
        }
    }
    let mut waiter = Waiter {
        stop: STOP.current(),
        key: None,
    };
    async move {
        poll_fn(|cx| {
            if waiter.stop.is_draining() {
                return Poll::Ready(());
            }
            waiter.stop.drain.register(&mut waiter.key, cx.waker());
            Poll::Pending
        })
        .await
    }
}

/// Asks the whole server to stop gracefully (from inside any shard).
#[track_caller]
pub fn stop_server() {
    STOP.with_current(|stop| stop.control.request_stop());
}

//! How code running on a shard finds that shard's state: the one accessor, [`ShardLocal`].
//!
//! Every layer owns its own per-shard state (the executor its [`Core`](super::Core), `time`
//! its timers, `mesh` its inbox, `net` its connection tables, `server` its stop switch) and
//! keeps it in one `ShardLocal` of its own, private to the layer. No layer reaches into
//! another's slot: a layer that needs a lower layer's state asks that layer, and handles
//! made on a shard (`TcpStream`, `Sleep`, ...) carry an `Rc` of the state they use, so the
//! accessor is needed only where a public call starts from nothing (`TcpListener::bind`,
//! `time::sleep`, `mesh::send_to`, ...).
//!
//! The server installs every slot when a shard thread starts (lowest layer first) and
//! clears them in the reverse order when it ends ([`ShardLocal::enter`] returns the guard).
//! Off a shard, [`ShardLocal::current`] panics with one clear message, like `tokio::spawn`
//! outside a runtime; [`ShardLocal::try_current`] answers `None`.

use std::{cell::RefCell, rc::Rc, thread::LocalKey};

/// One layer's per-shard state on the thread that runs the shard.
pub(crate) struct ShardLocal<T: 'static> {
    key: &'static LocalKey<RefCell<Option<Rc<T>>>>,
}

impl<T: 'static> ShardLocal<T> {
    /// Wraps the thread-local that holds the state (declared by the owning layer).
    pub(crate) const fn new(key: &'static LocalKey<RefCell<Option<Rc<T>>>>) -> Self {
        ShardLocal { key }
    }

    /// Makes `state` this thread's for as long as the guard lives.
    #[must_use = "the state is removed when the guard is dropped"]
    pub(crate) fn enter(&'static self, state: Rc<T>) -> EnterGuard<T> {
        self.key.with(|slot| *slot.borrow_mut() = Some(state));
        EnterGuard { local: self }
    }

    /// This shard's state, if this thread runs a shard (and not while the thread ends).
    pub(crate) fn try_current(&self) -> Option<Rc<T>> {
        self.key
            .try_with(|slot| slot.try_borrow().ok().and_then(|s| s.clone()))
            .ok()
            .flatten()
    }

    /// This shard's state. Calling the shard API from a thread that runs no shard is a
    /// programming error.
    #[track_caller]
    pub(crate) fn current(&self) -> Rc<T> {
        self.try_current()
            .expect("percore: this function must be called from a task running on a percore shard")
    }

    /// Runs `f` with this shard's state without cloning the `Rc` (the per-request paths).
    /// Panics off a shard, like [`current`](Self::current).
    #[inline]
    #[track_caller]
    pub(crate) fn with_current<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        self.with(f)
            .expect("percore: this function must be called from a task running on a percore shard")
    }

    /// Runs `f` with this shard's state without cloning the `Rc`; `None` off a shard.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.key
            .try_with(|slot| match slot.try_borrow() {
                Ok(state) => state.as_deref().map(f),
                Err(_) => None,
            })
            .ok()
            .flatten()
    }
}

/// Removes a layer's state from the thread when dropped.
pub(crate) struct EnterGuard<T: 'static> {
    local: &'static ShardLocal<T>,
}

impl<T: 'static> Drop for EnterGuard<T> {
    fn drop(&mut self) {
        // Taken out first, then dropped outside the borrow: its destructor may use the slot.
        let state = self
            .local
            .key
            .try_with(|slot| slot.borrow_mut().take())
            .ok()
            .flatten();
        drop(state);
    }
}

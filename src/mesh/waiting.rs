//! The calls a shard waits for, by target, so that they can be failed with
//! [`MeshError::Unavailable`] when the target is found stuck (see the module docs of
//! `mesh`). Shard-local: registering a call is a slab insert, no atomics.

use std::cell::RefCell;

use super::MeshError;
use crate::slab::{Key, Slab};

/// Fails one waiting call.
type Fail = Box<dyn FnOnce(MeshError)>;

thread_local! {
    static WAITING: RefCell<Slab<(usize, Fail)>> = RefCell::new(Slab::default());
}

/// A registered call; dropping it (the call completed or was dropped) unregisters it.
pub(super) struct Waiting(Key);

impl Waiting {
    /// Registers a call to `target` whose answer arrives on `reply`.
    pub(super) fn register<R: Send + 'static>(
        target: usize,
        reply: flume::Sender<Result<R, MeshError>>,
    ) -> Self {
        Waiting(register_fail(
            target,
            Box::new(move |error| {
                // Full: the answer came first; it wins.
                let _ = reply.try_send(Err(error));
            }),
        ))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        unregister(self.0);
    }
}

/// Registers how to fail a call to `target`; the key unregisters it.
pub(super) fn register_fail(target: usize, fail: Fail) -> Key {
    WAITING.with(|waiting| waiting.borrow_mut().insert((target, fail)))
}

/// Unregisters a call (a no-op when it was already failed).
pub(super) fn unregister(key: Key) {
    // `try_with`: a call dropped while the thread ends finds the table gone.
    let _ = WAITING.try_with(|waiting| waiting.borrow_mut().remove(key));
}

/// Fails every call of this shard that waits for `target` (runs on the caller's shard).
pub(super) fn fail_calls_to(target: usize) {
    let failed: Vec<Fail> = WAITING.with(|waiting| {
        let mut waiting = waiting.borrow_mut();
        let keys: Vec<Key> = waiting
            .iter()
            .filter(|(_, (to, _))| *to == target)
            .map(|(key, _)| key)
            .collect();
        keys.into_iter()
            .filter_map(|key| waiting.remove(key).map(|(_, fail)| fail))
            .collect()
    });
    // Run outside the borrow: failing a call wakes its task, which may register another.
    for fail in failed {
        fail(MeshError::Unavailable(target));
    }
}

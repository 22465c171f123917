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
    /// Registers a call to `target` whose answer arrives on `reply`. Holds the sender
    /// weakly: when the message (with its sender) is dropped unrun, the caller still sees
    /// the channel close (`Closed`).
    pub(super) fn register<R: Send + 'static>(
        target: usize,
        reply: &flume::Sender<Result<R, MeshError>>,
    ) -> Self {
        let reply = reply.downgrade();
        Waiting(register_fail(
            target,
            Box::new(move |error| {
                // Full: the answer came first; it wins. Gone: the call already ended.
                if let Some(reply) = reply.upgrade() {
                    let _ = reply.try_send(Err(error));
                }
            }),
        ))
    }
}

impl Waiting {
    /// Registers a sender waiting for room in `target`'s full inbox; the receiver gets
    /// the error that fails it.
    pub(super) fn for_room(target: usize) -> (Self, flume::Receiver<MeshError>) {
        let (fail, failed) = flume::bounded(1);
        let key = register_fail(
            target,
            Box::new(move |error| {
                let _ = fail.try_send(error);
            }),
        );
        (Waiting(key), failed)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_call_still_sees_its_message_dropped_as_closed() {
        let (reply_tx, reply_rx) = flume::bounded::<Result<u8, MeshError>>(1);
        let _waiting = Waiting::register(3, &reply_tx);
        drop(reply_tx); // The message, with its sender, dropped unrun.
        assert!(reply_rx.recv().is_err(), "the channel closed");
    }

    #[test]
    fn failing_calls_to_a_target_answers_only_its_own_calls_once() {
        let (to_3, from_3) = flume::bounded::<Result<u8, MeshError>>(1);
        let (to_4, from_4) = flume::bounded::<Result<u8, MeshError>>(1);
        let _a = Waiting::register(3, &to_3);
        let _b = Waiting::register(4, &to_4);
        fail_calls_to(3);
        assert_eq!(from_3.try_recv(), Ok(Err(MeshError::Unavailable(3))));
        assert!(
            from_4.try_recv().is_err(),
            "a call to another shard waits on"
        );
        fail_calls_to(3);
        assert!(from_3.try_recv().is_err(), "failed once");
    }
}

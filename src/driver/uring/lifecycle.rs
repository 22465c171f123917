//! The life of a generic operation awaited by a future (connect, and any op without a
//! dedicated table):
//!
//! ```text
//! submitted ──poll──▶ waiting(waker) ──CQE──▶ completed(result) ──poll──▶ slot freed
//!     │                    │
//!     └──── future dropped ┴──▶ ignored(resources kept) ──CQE──▶ slot and resources freed
//! ```
//!
//! The resources the kernel may touch (socket, address, buffer) are owned by the slot from
//! submission to the terminal CQE, so a dropped future can never free memory the kernel is
//! still writing: the memory safety of cancellation rests on this file. Only the shard's
//! thread touches the table.

use std::{any::Any, task::Waker};

use crate::driver::token::{Kind, Token, next_generation};

enum State {
    Submitted,
    Waiting(Waker),
    Completed {
        result: i32,
    },
    /// The future is gone; the resources wait here for the terminal CQE.
    Ignored,
}

struct Slot {
    generation: u32,
    state: Option<State>,
    resources: Option<Box<dyn Any>>,
}

/// What a poll of an operation found.
pub(crate) enum Poll {
    Pending,
    Ready {
        result: i32,
        resources: Option<Box<dyn Any>>,
    },
}

#[derive(Default)]
pub(crate) struct Lifecycles {
    slots: Vec<Slot>,
    free: Vec<u32>,
    in_flight: usize,
}

impl Lifecycles {
    /// Reserves a slot that owns `resources` until the terminal CQE; returns the token to put
    /// in the SQE.
    pub(crate) fn insert(&mut self, resources: Option<Box<dyn Any>>) -> Token {
        self.in_flight += 1;
        let index = match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.generation = next_generation(slot.generation);
                slot.state = Some(State::Submitted);
                slot.resources = resources;
                index
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    state: Some(State::Submitted),
                    resources,
                });
                (self.slots.len() - 1) as u32
            }
        };
        Token::new(
            Kind::Lifecycle,
            index,
            self.slots[index as usize].generation,
        )
    }

    /// Gives the slot the resources the kernel may touch (after the SQE was built from them).
    pub(crate) fn set_resources(&mut self, token: Token, resources: Box<dyn Any>) {
        if let Some(slot) = self.slot(token) {
            slot.resources = Some(resources);
        }
    }

    fn slot(&mut self, token: Token) -> Option<&mut Slot> {
        let slot = self.slots.get_mut(token.index() as usize)?;
        (slot.generation == token.generation() && slot.state.is_some()).then_some(slot)
    }

    /// Polls the operation: stores the waker, or hands back the result and frees the slot.
    pub(crate) fn poll(&mut self, token: Token, waker: &Waker) -> Poll {
        let Some(slot) = self.slot(token) else {
            // Only a future that already returned Ready polls a freed slot; answer as cancelled.
            return Poll::Ready {
                result: -libc::ECANCELED,
                resources: None,
            };
        };
        match slot.state.take() {
            Some(State::Completed { result }) => {
                let resources = slot.resources.take();
                self.release(token.index());
                Poll::Ready { result, resources }
            }
            Some(State::Waiting(old)) if old.will_wake(waker) => {
                slot.state = Some(State::Waiting(old));
                Poll::Pending
            }
            _ => {
                slot.state = Some(State::Waiting(waker.clone()));
                Poll::Pending
            }
        }
    }

    /// The future was dropped: keep the resources until the terminal CQE. Returns true when
    /// the operation is still in flight (the caller may ask the kernel to cancel it).
    pub(crate) fn drop_future(&mut self, token: Token) -> bool {
        let Some(slot) = self.slot(token) else {
            return false;
        };
        match slot.state.take() {
            Some(State::Completed { .. }) => {
                self.release(token.index());
                false
            }
            _ => {
                slot.state = Some(State::Ignored);
                true
            }
        }
    }

    /// Records a completion; returns the waker to wake, if a future waits.
    pub(crate) fn complete(&mut self, token: Token, result: i32) -> Option<Waker> {
        let slot = self.slot(token)?;
        match slot.state.take() {
            Some(State::Ignored) => {
                slot.resources = None;
                self.release(token.index());
                None
            }
            Some(State::Waiting(waker)) => {
                slot.state = Some(State::Completed { result });
                Some(waker)
            }
            _ => {
                slot.state = Some(State::Completed { result });
                None
            }
        }
    }

    fn release(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        slot.state = None;
        slot.resources = None;
        self.free.push(index);
        self.in_flight -= 1;
    }

    /// Operations submitted whose slot is not yet free (in flight or awaiting their poll).
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use std::{rc::Rc, sync::Arc, task::Wake};

    use super::*;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn completed_result_reaches_the_poller_and_frees_the_slot() {
        let mut ops = Lifecycles::default();
        let flag = Arc::new(Flag(false.into()));
        let waker = Waker::from(flag.clone());
        let token = ops.insert(Some(Box::new(7u32)));
        assert!(matches!(ops.poll(token, &waker), Poll::Pending));
        let woken = ops.complete(token, 42).expect("a waiting future is woken");
        woken.wake();
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        match ops.poll(token, &waker) {
            Poll::Ready {
                result, resources, ..
            } => {
                assert_eq!(result, 42);
                assert_eq!(*resources.unwrap().downcast::<u32>().unwrap(), 7);
            }
            Poll::Pending => panic!("completed op must be ready"),
        }
        assert_eq!(ops.in_flight(), 0);
    }

    #[test]
    fn dropped_future_keeps_resources_until_the_terminal_cqe() {
        let mut ops = Lifecycles::default();
        let resource = Rc::new(());
        let token = ops.insert(Some(Box::new(resource.clone())));
        assert!(ops.drop_future(token), "still in flight");
        assert_eq!(Rc::strong_count(&resource), 2, "kernel may still use it");
        assert!(ops.complete(token, -libc::ECANCELED).is_none());
        assert_eq!(
            Rc::strong_count(&resource),
            1,
            "released on the terminal CQE"
        );
        assert_eq!(ops.in_flight(), 0);
    }

    #[test]
    fn a_stale_completion_for_a_reused_slot_is_ignored() {
        let mut ops = Lifecycles::default();
        let first = ops.insert(None);
        ops.drop_future(first);
        ops.complete(first, 0);
        let second = ops.insert(None);
        assert_eq!(first.index(), second.index());
        assert!(ops.complete(first, 5).is_none());
        assert_eq!(ops.in_flight(), 1, "the stale CQE must not free the new op");
    }
}

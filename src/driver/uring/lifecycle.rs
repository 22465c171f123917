//! The op table: where the driver keeps every op that owns memory ([`OwnedOp`]) from its
//! submission to its terminal completion, whoever submitted it.
//!
//! ```text
//! submitted ──poll──▶ waiting(waker) ──CQE──▶ completed(result) ──poll──▶ op handed back
//!     │                    │
//!     └── future dropped ──┴──▶ ignored ──CQE──▶ op dropped
//!
//! routed(token) ──CQE──▶ op handed, with the result, to the owner the token names
//! ```
//!
//! An awaited op (`task::Op<T>`) starts *submitted*; a dropped future parks its op here
//! (*ignored*) until the terminal completion, so cancellation can never free memory the
//! kernel is still writing. A routed op (a connection's send, the shard's eventfd read) goes
//! back to its owner's table with its completion. The slot is freed exactly when the op
//! leaves the table; keys are generational (`Slab`), so a late completion for a reused slot
//! finds nothing. Only the shard's thread touches the table. The memory safety of every op
//! with a pointer rests on this file and on the drop order in `Ring`.

use std::task::{Poll, Waker};

use super::op::{Owned, OwnedOp};
use crate::{
    driver::token::{Kind, Token},
    slab::{Key, Slab},
};

/// Who learns of an owned op's completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// A future polls for it (`task::Op<T>`).
    Await,
    /// The owner named by the token gets the op back with the result.
    To(Token),
}

enum State {
    Submitted,
    Waiting(Waker),
    Completed(i32),
    /// The future is gone; the op waits here for its terminal CQE.
    Ignored,
    Routed(Token),
}

struct Slot {
    state: State,
    op: Owned,
}

/// What a completion of an owned op calls for.
pub(crate) enum Done {
    /// Wake the task awaiting it.
    Wake(Waker),
    /// Hand the op and its result to the owner the route names.
    Routed {
        route: Token,
        result: i32,
        op: Owned,
    },
    /// Nothing: nobody waits, or the completion was stale.
    Quiet,
}

#[derive(Default)]
pub(crate) struct Lifecycles {
    slots: Slab<Slot>,
    /// Ops submitted to be awaited (`Route::Await`) and still in the table, parked ones
    /// included: what a draining shard waits for.
    awaited: usize,
    /// Set by the ring once the kernel side is gone: from then on no op is in flight.
    ring_closed: bool,
}

fn token_of(key: Key) -> Token {
    Token::new(Kind::Lifecycle, key.index(), key.generation())
}

fn key_of(token: Token) -> Key {
    Key::from_parts(token.index(), token.generation())
}

impl Lifecycles {
    /// Keeps `op` until its terminal completion; returns its token and the SQE to submit.
    /// The SQE is built before the op moves into the table: what it points at is on the
    /// heap and owned by the op (the `OpCode` contract), so the move changes none of it.
    #[inline]
    pub(crate) fn insert<T: OwnedOp>(
        &mut self,
        mut op: T,
        route: Route,
    ) -> (Token, io_uring::squeue::Entry) {
        let sqe = op.sqe();
        let token = self.insert_op(op, route);
        (token, sqe.user_data(token.user_data()))
    }

    /// Keeps `op` until its terminal completion and returns its token (the readiness
    /// driver, which builds no SQE, performs the op itself through [`op_mut`](Self::op_mut)).
    #[inline(always)]
    pub(crate) fn insert_op<T: OwnedOp>(&mut self, op: T, route: Route) -> Token {
        let state = match route {
            Route::Await => {
                self.awaited += 1;
                State::Submitted
            }
            Route::To(token) => State::Routed(token),
        };
        token_of(self.slots.insert(Slot {
            state,
            op: op.into_owned(),
        }))
    }

    /// The op a token names, while it is in the table.
    pub(crate) fn op_mut(&mut self, token: Token) -> Option<&mut Owned> {
        self.slots.get_mut(key_of(token)).map(|slot| &mut slot.op)
    }

    /// Polls an awaited op: stores the waker, or hands back the result and the op and frees
    /// the slot. `None` when no such op is in the table (it was already handed back).
    pub(crate) fn poll<T: OwnedOp>(
        &mut self,
        token: Token,
        waker: &Waker,
    ) -> Option<Poll<(i32, T)>> {
        let key = key_of(token);
        let slot = self.slots.get_mut(key)?;
        match std::mem::replace(&mut slot.state, State::Submitted) {
            State::Completed(result) => {
                let slot = self.slots.remove(key)?;
                self.awaited -= 1;
                let op =
                    T::from_owned(slot.op).expect("an op polled as the type it was submitted as");
                Some(Poll::Ready((result, op)))
            }
            State::Waiting(old) if old.will_wake(waker) => {
                slot.state = State::Waiting(old);
                Some(Poll::Pending)
            }
            _ => {
                slot.state = State::Waiting(waker.clone());
                Some(Poll::Pending)
            }
        }
    }

    /// The future awaiting the op was dropped: keep the op until the terminal CQE. Returns
    /// true when it is still in flight (the caller may ask the kernel to cancel it).
    pub(crate) fn park(&mut self, token: Token) -> bool {
        let key = key_of(token);
        let Some(slot) = self.slots.get_mut(key) else {
            return false;
        };
        if let State::Completed(_) = slot.state {
            self.slots.remove(key);
            self.awaited -= 1;
            return false;
        }
        slot.state = State::Ignored;
        true
    }

    /// Records the terminal completion of an owned op.
    #[inline]
    pub(crate) fn complete(&mut self, token: Token, result: i32) -> Done {
        let key = key_of(token);
        let Some(slot) = self.slots.get_mut(key) else {
            return Done::Quiet;
        };
        // The routed case first: a connection's send, once per response.
        if let State::Routed(route) = slot.state {
            return match self.slots.remove(key) {
                Some(slot) => Done::Routed {
                    route,
                    result,
                    op: slot.op,
                },
                None => Done::Quiet,
            };
        }
        match std::mem::replace(&mut slot.state, State::Completed(result)) {
            State::Waiting(waker) => Done::Wake(waker),
            State::Ignored => {
                self.slots.remove(key);
                self.awaited -= 1;
                Done::Quiet
            }
            State::Submitted | State::Completed(_) | State::Routed(_) => Done::Quiet,
        }
    }

    /// Awaited ops in the table: in flight (parked ones included), or completed and not
    /// yet taken by their future. Routed ops (sends, the eventfd read) are their owners'.
    pub(crate) fn in_flight(&self) -> usize {
        self.awaited
    }

    /// The ring's kernel side is gone: no op can be in flight any more.
    pub(crate) fn ring_closed(&mut self) {
        self.ring_closed = true;
    }
}

impl Drop for Lifecycles {
    fn drop(&mut self) {
        // Freeing an op's memory while the kernel may still use it is the bug this table
        // exists to prevent: the ring must close first (see `Ring`'s drop).
        debug_assert!(
            self.ring_closed || self.slots.is_empty(),
            "{} io_uring op(s) freed while the ring is still open",
            self.slots.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use std::{os::fd::OwnedFd, sync::Arc, task::Wake, time::Duration};

    use super::*;
    use crate::driver::uring::op::{Connect, Timeout};

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn table() -> Lifecycles {
        let mut ops = Lifecycles::default();
        // These tests never submit: no kernel holds their ops.
        ops.ring_closed();
        ops
    }

    #[test]
    fn completed_result_and_op_reach_the_poller_and_free_the_slot() {
        let mut ops = table();
        let flag = Arc::new(Flag(false.into()));
        let waker = Waker::from(flag.clone());
        let (token, _) = ops.insert(Timeout::new(Duration::from_secs(3)), Route::Await);
        assert!(matches!(
            ops.poll::<Timeout>(token, &waker),
            Some(Poll::Pending)
        ));
        let Done::Wake(woken) = ops.complete(token, -libc::ETIME) else {
            panic!("a waiting future is woken");
        };
        woken.wake();
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        match ops.poll::<Timeout>(token, &waker) {
            Some(Poll::Ready((result, _op))) => assert_eq!(result, -libc::ETIME),
            _ => panic!("completed op must be ready"),
        }
        assert_eq!(ops.in_flight(), 0);
        assert!(
            ops.poll::<Timeout>(token, &waker).is_none(),
            "handed back once"
        );
    }

    #[test]
    fn a_parked_op_keeps_its_resources_until_the_terminal_cqe() {
        let mut ops = table();
        let socket: OwnedFd = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().into();
        let addr = "127.0.0.1:9".parse().unwrap();
        let (token, _) = ops.insert(Connect::new(socket, &addr), Route::Await);
        assert!(ops.park(token), "still in flight");
        assert_eq!(
            ops.in_flight(),
            1,
            "the kernel may still use the socket and address"
        );
        assert!(matches!(ops.complete(token, -libc::ECANCELED), Done::Quiet));
        assert_eq!(ops.in_flight(), 0, "released on the terminal CQE");
        assert!(!ops.park(token), "nothing left to park");
    }

    #[test]
    fn a_routed_op_goes_back_to_its_owner_and_a_stale_completion_is_ignored() {
        let mut ops = table();
        let owner = Token::new(Kind::Send, 7, 1);
        let (first, _) = ops.insert(Timeout::new(Duration::ZERO), Route::To(owner));
        assert_eq!(
            ops.in_flight(),
            0,
            "a routed op is its owner's, not awaited"
        );
        match ops.complete(first, 5) {
            Done::Routed { route, result, op } => {
                assert_eq!((route, result), (owner, 5));
                assert!(Timeout::from_owned(op).is_some());
            }
            _ => panic!("routed to its owner"),
        }
        let (second, _) = ops.insert(Timeout::new(Duration::ZERO), Route::Await);
        assert_eq!(first.index(), second.index(), "slot reused");
        assert!(matches!(ops.complete(first, 5), Done::Quiet));
        assert_eq!(ops.in_flight(), 1, "the stale CQE must not free the new op");
        ops.park(second);
        ops.complete(second, 0);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "freed while the ring is still open")]
    fn dropping_an_op_before_the_ring_closes_is_caught() {
        let mut ops = Lifecycles::default();
        let _ = ops.insert(Timeout::new(Duration::ZERO), Route::Await);
        drop(ops);
    }
}

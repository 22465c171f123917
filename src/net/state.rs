//! The state of one connection, and the one function that changes it.
//!
//! ```text
//!                 life                                  receive (multishot)
//!
//!   Open ──Close{abort}──▶ Closing{abort} ──Release──▶ Released     Off ──Arm──▶ Armed
//!                            │      ▲                                ▲            │
//!                            └──────┘ Close{abort: true}             │       CancelRecv
//!                           (an abort can follow a close)            │            ▼
//!                                                          RecvEnded └──── Cancelling
//!                                                     (from Armed too: EOF, error, ENOBUFS)
//!
//!   send:   Idle ──SendSubmitted(op)──▶ InFlight(op) ──SendEnded──▶ Idle
//! ```
//!
//! - **life**: the user's handle is alive (`Open`); it was dropped, or the connection was
//!   aborted (`Closing`, with `abort` when pending output is abandoned: forced stop, a
//!   write error, `TcpStream::abort`); every op ended and the fd and buffers were released
//!   (`Released`). `Release` is legal only when [`ConnState::can_release`] says so.
//! - **receive**: at most one multishot receive is in flight; `Cancelling` remembers that
//!   its cancel was sent, so it is sent once. `Arm` is legal only from `Off` and never
//!   once the connection is closing.
//! - **send**: at most one send is in flight, named by its op's token (to cancel it).
//!
//! Everything that changes a connection's state goes through [`ConnState::apply`], which
//! refuses (and in debug builds asserts on) a transition the diagram does not have. Which
//! per-iteration list a connection sits on (`in_touched_list`) is bookkeeping of that
//! list, not state.

use crate::driver::Token;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Life {
    Open,
    Closing { abort: bool },
    Released,
}

/// The connection's multishot receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recv {
    Off,
    Armed,
    Cancelling,
}

/// What happened to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A multishot receive was submitted.
    Arm,
    /// Its cancel was submitted.
    CancelRecv,
    /// Its terminal completion arrived (no `IORING_CQE_F_MORE`).
    RecvEnded,
    /// A send was submitted; the token names its op.
    SendSubmitted(Token),
    /// The send's completion came back.
    SendEnded,
    /// The handle was dropped (`abort: false`) or the connection aborted (`abort: true`).
    Close { abort: bool },
    /// Every op ended: the fd and buffers are released.
    Release,
}

/// A connection's whole state (see the module docs for the diagram).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConnState {
    life: Life,
    recv: Recv,
    send: Option<Token>,
}

impl Default for ConnState {
    fn default() -> Self {
        ConnState {
            life: Life::Open,
            recv: Recv::Off,
            send: None,
        }
    }
}

impl ConnState {
    /// Applies `event`: the one place a connection's state changes. Returns false, leaving
    /// the state as it was, for a transition the diagram does not have (a debug build
    /// asserts instead, except for the repeated close and cancel the callers rely on being
    /// idempotent).
    pub(crate) fn apply(&mut self, event: Event) -> bool {
        let next = match (event, *self) {
            (
                Event::Arm,
                ConnState {
                    recv: Recv::Off,
                    life: Life::Open,
                    ..
                },
            ) => ConnState {
                recv: Recv::Armed,
                ..*self
            },
            (
                Event::CancelRecv,
                ConnState {
                    recv: Recv::Armed, ..
                },
            ) => ConnState {
                recv: Recv::Cancelling,
                ..*self
            },
            // A receive not armed, or whose cancel is already on its way: nothing to do.
            (Event::CancelRecv, _) => return false,
            (
                Event::RecvEnded,
                ConnState {
                    recv: Recv::Armed | Recv::Cancelling,
                    ..
                },
            ) => ConnState {
                recv: Recv::Off,
                ..*self
            },
            (
                Event::SendSubmitted(op),
                ConnState {
                    send: None, life, ..
                },
            ) if life != Life::Released => ConnState {
                send: Some(op),
                ..*self
            },
            (Event::SendEnded, ConnState { send: Some(_), .. }) => ConnState {
                send: None,
                ..*self
            },
            (
                Event::Close { abort },
                ConnState {
                    life: Life::Open, ..
                },
            ) => ConnState {
                life: Life::Closing { abort },
                ..*self
            },
            (
                Event::Close { abort },
                ConnState {
                    life: Life::Closing { abort: was },
                    ..
                },
            ) => ConnState {
                life: Life::Closing {
                    abort: was || abort,
                },
                ..*self
            },
            // A handle dropped after a forced stop released its connection: nothing left.
            (
                Event::Close { .. },
                ConnState {
                    life: Life::Released,
                    ..
                },
            ) => return false,
            (
                Event::Release,
                ConnState {
                    life: Life::Closing { .. },
                    recv: Recv::Off,
                    send: None,
                },
            ) => ConnState {
                life: Life::Released,
                ..*self
            },
            (event, state) => {
                debug_assert!(
                    false,
                    "connection: no transition for {event:?} in {state:?}"
                );
                return false;
            }
        };
        *self = next;
        true
    }

    pub(crate) fn life(&self) -> Life {
        self.life
    }

    /// The handle is gone (or the connection was aborted): no new receive, no new input.
    pub(crate) fn is_closing(&self) -> bool {
        matches!(self.life, Life::Closing { .. })
    }

    /// Pending output is abandoned.
    pub(crate) fn is_aborting(&self) -> bool {
        matches!(self.life, Life::Closing { abort: true })
    }

    pub(crate) fn recv(&self) -> Recv {
        self.recv
    }

    /// A receive is in flight (armed, or cancelled and not yet ended).
    pub(crate) fn recv_in_flight(&self) -> bool {
        self.recv != Recv::Off
    }

    /// The send in flight, by its op's token.
    pub(crate) fn send_in_flight(&self) -> Option<Token> {
        self.send
    }

    /// Whether `Release` is legal now, given whether the output is done (sent, failed, or
    /// abandoned by an abort).
    pub(crate) fn can_release(&self, output_done: bool) -> bool {
        self.is_closing() && self.recv == Recv::Off && self.send.is_none() && output_done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Kind;

    #[test]
    fn a_connection_lives_open_closing_released() {
        let mut state = ConnState::default();
        assert!(state.apply(Event::Arm));
        let op = Token::new(Kind::Lifecycle, 3, 1);
        assert!(state.apply(Event::SendSubmitted(op)));
        assert_eq!(state.send_in_flight(), Some(op));
        assert!(state.apply(Event::Close { abort: false }));
        assert!(state.is_closing() && !state.is_aborting());
        assert!(
            !state.can_release(true),
            "a receive and a send are in flight"
        );
        assert!(state.apply(Event::CancelRecv));
        assert!(!state.apply(Event::CancelRecv), "the cancel is sent once");
        assert!(state.apply(Event::RecvEnded));
        assert!(state.apply(Event::SendEnded));
        assert!(!state.can_release(false), "output still pending");
        assert!(state.can_release(true));
        assert!(state.apply(Event::Release));
        assert_eq!(state.life(), Life::Released);
    }

    #[test]
    fn an_abort_after_a_close_sticks_and_a_close_after_an_abort_keeps_it() {
        let mut state = ConnState::default();
        assert!(state.apply(Event::Close { abort: false }));
        assert!(state.apply(Event::Close { abort: true }));
        assert!(state.is_aborting());
        assert!(state.apply(Event::Close { abort: false }));
        assert!(
            state.is_aborting(),
            "a later plain close does not undo the abort"
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "no transition for Arm")]
    fn arming_a_closing_connection_is_illegal() {
        let mut state = ConnState::default();
        state.apply(Event::Close { abort: false });
        state.apply(Event::Arm);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "no transition for Release")]
    fn releasing_with_a_send_in_flight_is_illegal() {
        let mut state = ConnState::default();
        state.apply(Event::SendSubmitted(Token::new(Kind::Lifecycle, 0, 0)));
        state.apply(Event::Close { abort: true });
        state.apply(Event::Release);
    }
}

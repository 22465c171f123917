//! A connection's state inside its shard, shared by the user's `TcpStream` handle and the
//! completion dispatcher (both hold an `Rc<Conn>`; only the shard's thread touches it).
//!
//! Receive side: bytes arrive in provided buffers **lent** by the ring (`rx.lent`). The user
//! consumes them in place, with no copy; whatever is left unconsumed when the run phase ends
//! is copied into `rx.spill` and the buffer goes back to the ring, so a slow or idle
//! connection never pins ring buffers, and an idle one holds no receive memory at all.
//!
//! Send side: writes append to `tx.out`. At most one send is in flight: it takes the whole
//! of `tx.out` with it (the driver keeps the bytes until the CQE) and `tx.out` continues in
//! the spare buffer the last send gave back, so the two buffers alternate without
//! allocating, and many responses written in one iteration leave in one send.
//!
//! Closing: when the handle is dropped the connection lingers until its pending output is
//! sent, cancels its multishot receive, and is finally closed once no operation of it is in
//! flight: its fd and buffers are released only after their terminal CQEs.

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    os::fd::{AsRawFd, OwnedFd, RawFd},
    task::Waker,
};

use super::state::{ConnState, Event};
use crate::{
    driver::{Kind, Token},
    slab::Key,
};

/// Part of a lent provided buffer not yet consumed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lent {
    pub(crate) bid: u16,
    pub(crate) start: u32,
    pub(crate) end: u32,
}

#[derive(Default)]
pub(crate) struct Rx {
    pub(crate) lent: VecDeque<Lent>,
    pub(crate) spill: Vec<u8>,
    pub(crate) spill_pos: usize,
    pub(crate) eof: bool,
    pub(crate) error: Option<i32>,
    pub(crate) waker: Option<Waker>,
    /// Receiving stopped because too much is buffered; resumes when the user reads.
    pub(crate) paused: bool,
    /// The multishot receive ended with ENOBUFS; re-armed when buffers come back.
    pub(crate) starved: bool,
    /// Bytes the reader has seen and left unconsumed (it wants more before it can progress).
    pub(crate) seen_len: usize,
}

impl Rx {
    /// Whether `buffered() > 0`, without summing the pieces: a lent piece is never empty
    /// (a receive lends at least one byte, and a piece is removed once consumed).
    pub(crate) fn has_buffered(&self) -> bool {
        let has = !self.lent.is_empty() || self.spill_pos < self.spill.len();
        debug_assert_eq!(has, self.buffered() > 0, "an empty lent piece");
        has
    }

    pub(crate) fn buffered(&self) -> usize {
        let lent: u32 = self.lent.iter().map(|l| l.end - l.start).sum();
        self.spill.len() - self.spill_pos + lent as usize
    }
}

#[derive(Default)]
pub(crate) struct Tx {
    pub(crate) out: Vec<u8>,
    /// The buffer the last send gave back, emptied: `out`'s next allocation.
    pub(crate) spare: Vec<u8>,
    /// Bytes of the send in flight the kernel has not yet taken.
    pub(crate) sending: usize,
    pub(crate) error: Option<i32>,
    pub(crate) waker: Option<Waker>,
    pub(crate) shutdown_after_flush: bool,
}

impl Tx {
    /// Bytes written by the user and not yet acknowledged by a send completion.
    pub(crate) fn pending(&self) -> usize {
        self.out.len() + self.sending
    }
}

pub(crate) struct Conn {
    /// Its key in the shard's connection table, carried by its completion tokens.
    pub(crate) key: Key,
    pub(crate) fd: RawFd,
    pub(crate) owned_fd: RefCell<Option<OwnedFd>>,
    pub(crate) rx: RefCell<Rx>,
    pub(crate) tx: RefCell<Tx>,
    /// Life, receive and send: changed only through [`Conn::apply`] (see `state`).
    state: Cell<ConnState>,
    /// On the shard's list of connections the after-run pass looks at: holding lent
    /// receive buffers, or with output to send this iteration.
    pub(crate) in_touched_list: Cell<bool>,
    /// Counted against the connection caps (an accepted connection while a cap is set).
    pub(crate) capped: Cell<bool>,
}

/// Registers `cx`'s waker in `slot` unless the one there already wakes the same task.
pub(crate) fn register(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(current) if current.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

impl Conn {
    pub(crate) fn new(key: Key, fd: OwnedFd) -> Self {
        Conn {
            key,
            fd: fd.as_raw_fd(),
            owned_fd: RefCell::new(Some(fd)),
            rx: RefCell::default(),
            tx: RefCell::default(),
            state: Cell::default(),
            in_touched_list: Cell::new(false),
            capped: Cell::new(false),
        }
    }

    pub(crate) fn state(&self) -> ConnState {
        self.state.get()
    }

    /// Applies `event` to the connection's state (see `ConnState::apply`).
    #[inline]
    pub(crate) fn apply(&self, event: Event) -> bool {
        let mut state = self.state.get();
        let applied = state.apply(event);
        self.state.set(state);
        applied
    }

    pub(crate) fn recv_token(&self) -> Token {
        Token::new(Kind::Recv, self.key.index(), self.key.generation())
    }

    pub(crate) fn send_token(&self) -> Token {
        Token::new(Kind::Send, self.key.index(), self.key.generation())
    }

    /// Wakes the task reading this connection. The waker stays registered (no clone and
    /// drop per wake-up on the hot path); a stale one at worst polls a task once for nothing.
    pub(crate) fn wake_reader(&self) {
        if let Some(waker) = &self.rx.borrow().waker {
            waker.wake_by_ref();
        }
    }

    /// Wakes the task writing this connection (same registration rule as the reader).
    pub(crate) fn wake_writer(&self) {
        if let Some(waker) = &self.tx.borrow().waker {
            waker.wake_by_ref();
        }
    }

    /// True when the connection is closing, no operation of it is in flight and nothing
    /// remains to send.
    pub(crate) fn can_release(&self) -> bool {
        let state = self.state.get();
        let tx = self.tx.borrow();
        let output_done = tx.pending() == 0 || tx.error.is_some() || state.is_aborting();
        state.can_release(output_done)
    }
}

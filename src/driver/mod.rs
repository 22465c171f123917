//! The driver: the one boundary between the kernel's I/O interface and the rest of percore.
//!
//! What crosses it, in both directions, and nothing else:
//!
//! - **submit a typed op**: an operation ([`op`]) owns what the kernel may touch while it
//!   is in flight, and is queued with the [`Token`] its completion will carry;
//! - **get its completion**: [`Driver::enter`] submits everything queued and waits as told
//!   ([`Wait`]); every [`Completion`] is reaped into a local queue before anyone sees one,
//!   so no code above runs while the kernel's queue is being iterated;
//! - **register buffers**: the provided-buffer ring that multishot receives fill;
//! - **wake**: another shard's driver is woken with a message (`MSG_RING`) or an eventfd.
//!
//! The driver knows no tasks, connections or servers: a completion is routed by its token
//! alone. Today the only implementation is io_uring ([`uring`]); a readiness (epoll) driver
//! will implement the same surface, and [`Driver`] will then name an enum of the two, so
//! every call stays statically dispatched.
//!
//! Unsafe code lives here and in `sys` only.

pub(crate) mod token;
pub(crate) mod uring;

use std::{
    os::fd::{FromRawFd, OwnedFd},
    time::Duration,
};

pub(crate) use self::token::{Kind, Token};
pub use self::uring::{RingConfig, RingFeatures, RingStats};

/// The driver of this build (static dispatch: no trait object on the I/O path).
pub(crate) type Driver = uring::Ring;

/// One reaped completion, decoded: its token, the kernel's result (`-errno` on failure),
/// whether more completions of the same multishot operation follow, and the provided
/// buffer it filled, if any.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Completion {
    pub(crate) token: Token,
    pub(crate) result: i32,
    more: bool,
    buffer_id: Option<u16>,
}

impl Completion {
    pub(crate) fn new(token: Token, result: i32, more: bool, buffer_id: Option<u16>) -> Self {
        Completion {
            token,
            result,
            more,
            buffer_id,
        }
    }

    /// More completions of this (multishot) operation follow; without it the op has ended.
    pub(crate) fn more(&self) -> bool {
        self.more
    }

    /// The provided buffer the kernel filled for this completion.
    pub(crate) fn buffer_id(&self) -> Option<u16> {
        self.buffer_id
    }

    /// The socket a successful accept completion carries, now owned by the caller; `None`
    /// for a failed accept or a completion of another kind. Take it once: the fd is new and
    /// the completion is its only record.
    pub(crate) fn accepted_fd(&self) -> Option<OwnedFd> {
        if self.token.kind() != Some(Kind::Accept) || self.result < 0 {
            return None;
        }
        // SAFETY: a non-negative result of an accept completion is a descriptor the kernel
        // has just opened for this process, which nothing else owns.
        Some(unsafe { OwnedFd::from_raw_fd(self.result) })
    }
}

/// How long [`Driver::enter`] may wait for a completion.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Wait {
    /// Submit and collect what is ready; never block (ready tasks remain).
    No,
    /// Block until a completion or the deadline of the next timer.
    Timeout(Duration),
    /// Block until a completion (no timer armed).
    Forever,
}

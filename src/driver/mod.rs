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
//! alone. Two implementations: io_uring ([`uring`]), and a readiness driver on epoll
//! ([`epoll`]) for hosts where io_uring is blocked or missing. [`Driver`] is an enum of the
//! two, so every call is statically dispatched (one match on two variants, no trait object).
//!
//! Unsafe code lives here and in `sys` only.

pub(crate) mod epoll;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub(crate) mod select;
pub(crate) mod token;
pub(crate) mod uring;

use std::{
    io,
    os::fd::{FromRawFd, OwnedFd, RawFd},
    time::Duration,
};

pub use self::select::{DriverChoice, DriverKind};
pub(crate) use self::token::{Kind, Token};
pub use self::uring::{RingConfig, RingFeatures, RingStats};
use self::{
    epoll::{Epoll, Readiness},
    uring::{
        Ring,
        buf_ring::BufRing,
        lifecycle::{Lifecycles, Route},
        op::{OwnedOp, Pointerless},
    },
};

/// A shard's driver: io_uring or epoll, chosen at start (see [`select`]).
pub(crate) enum Driver {
    Uring(Ring),
    Epoll(Epoll),
}

/// Runs `$body` with `$d` bound to whichever driver this is.
macro_rules! each {
    ($self:expr, $d:ident => $body:expr) => {
        match $self {
            Driver::Uring($d) => $body,
            Driver::Epoll($d) => $body,
        }
    };
}

impl Driver {
    /// Which of the two this is.
    pub(crate) fn kind(&self) -> DriverKind {
        match self {
            Driver::Uring(_) => DriverKind::IoUring,
            Driver::Epoll(_) => DriverKind::Epoll,
        }
    }

    /// Submits an op that points at no memory; its completions carry `token`.
    #[inline]
    pub(crate) fn submit<T: Pointerless + Readiness>(&mut self, op: T, token: Token) {
        #[cfg(feature = "fault-injection")]
        if each!(self, d => d.faults.on_submit(token)) {
            return;
        }
        each!(self, d => d.submit(op, token))
    }

    /// Submits an op that owns memory; the op table keeps it until its terminal completion.
    #[inline]
    pub(crate) fn submit_owned<T: OwnedOp>(&mut self, op: T, route: Route) -> Token {
        #[cfg(feature = "fault-injection")]
        {
            let class = fault::ShardFaults::class_of_route(route);
            if let Some(errno) = each!(self, d => d.faults.should_fail(class)) {
                // Kept in the table as if submitted; its failure completes it there.
                let token = each!(self, d => d.ops.insert_op(op, route));
                each!(self, d => d.faults.failed(token, errno));
                return token;
            }
            let token = each!(self, d => d.submit_owned(op, route));
            each!(self, d => d.faults.submitted(token, class));
            token
        }
        #[cfg(not(feature = "fault-injection"))]
        each!(self, d => d.submit_owned(op, route))
    }

    /// Submits what is queued and waits as told: the loop's one kernel entry.
    pub(crate) fn enter(&mut self, wait: Wait) -> io::Result<()> {
        #[cfg(feature = "fault-injection")]
        let wait = {
            for target in each!(self, d => d.faults.take_cancels()) {
                each!(self, d => d.submit(uring::op::Cancel { target }, Token::IGNORE));
            }
            each!(self, d => d.faults.limit_wait(wait, std::time::Instant::now()))
        };
        each!(self, d => d.enter(wait))
    }

    /// Submits queued work at once, outside the loop's enter (a MSG_RING wake-up; the
    /// readiness driver has none, so nothing waits there).
    pub(crate) fn submit_now(&mut self) -> io::Result<()> {
        match self {
            Driver::Uring(ring) => ring.submit_now(),
            Driver::Epoll(_) => Ok(()),
        }
    }

    /// Hands the reaped completions to the caller.
    #[inline]
    pub(crate) fn take_completions(&mut self, into: &mut Vec<Completion>) {
        each!(self, d => d.take_completions(into));
        #[cfg(feature = "fault-injection")]
        each!(self, d => d.faults.filter(into, std::time::Instant::now()));
    }

    #[inline]
    pub(crate) fn has_reaped(&self) -> bool {
        #[cfg(feature = "fault-injection")]
        if each!(self, d => d.faults.has_ready(std::time::Instant::now())) {
            return true;
        }
        each!(self, d => d.has_reaped())
    }

    /// Whether the kernel has completions (or deferred work that makes them) waiting for
    /// the next enter, seen without a syscall; the readiness driver cannot tell and says no.
    pub(crate) fn io_ready(&mut self) -> bool {
        match self {
            Driver::Uring(ring) => ring.io_ready(),
            Driver::Epoll(_) => false,
        }
    }

    /// The op table (awaited and routed ops that own memory).
    #[inline]
    pub(crate) fn ops(&self) -> &Lifecycles {
        each!(self, d => &d.ops)
    }

    #[inline]
    pub(crate) fn ops_mut(&mut self) -> &mut Lifecycles {
        each!(self, d => &mut d.ops)
    }

    /// The shard's receive buffers.
    #[inline]
    pub(crate) fn bufs(&self) -> &BufRing {
        each!(self, d => &d.bufs)
    }

    #[inline]
    pub(crate) fn bufs_mut(&mut self) -> &mut BufRing {
        each!(self, d => &mut d.bufs)
    }

    pub(crate) fn features(&self) -> &RingFeatures {
        each!(self, d => &d.features)
    }

    pub(crate) fn stats(&self) -> &RingStats {
        each!(self, d => &d.stats)
    }

    pub(crate) fn stats_mut(&mut self) -> &mut RingStats {
        each!(self, d => &mut d.stats)
    }

    /// The ring's fd, for other shards' MSG_RING wake-ups; `None` without MSG_RING.
    pub(crate) fn msg_ring_fd(&self) -> Option<RawFd> {
        match self {
            Driver::Uring(ring) if ring.features.msg_ring => Some(ring.fd()),
            _ => None,
        }
    }
}

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

//! The io_uring driver: the only code that touches io_uring.
//!
//! A `Ring` belongs to one shard and is touched by that shard's thread alone (the ring is
//! set up `SINGLE_ISSUER`). It queues SQEs (submitting early when the SQ is full, never
//! dropping one), enters the kernel once per loop iteration, and reaps every CQE into a local
//! queue before the shard dispatches any of them, so no user code runs while the CQ is being
//! iterated.

pub(crate) mod buf_ring;
pub(crate) mod lifecycle;
pub(crate) mod op;
pub(crate) mod probe;
pub(crate) mod setup;

use std::{
    io,
    mem::ManuallyDrop,
    os::fd::{AsRawFd, RawFd},
};

use io_uring::{IoUring, cqueue, squeue::Entry, types};

pub use self::setup::{RingConfig, RingFeatures};
use self::{
    buf_ring::BufRing,
    lifecycle::{Lifecycles, Route},
    op::{OwnedOp, Pointerless},
};
use super::{Completion, Token, Wait};
use crate::error::Error;

/// Counters of the ring, shard-local; read by metrics and tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct RingStats {
    /// The loop's kernel waits: `io_uring_enter` calls (on the epoll driver, `epoll_wait`).
    pub enters: u64,
    /// SQEs handed to the kernel.
    pub sqes_submitted: u64,
    /// CQEs reaped.
    pub cqes: u64,
    /// Times the kernel reported a completion-queue overflow (completions kept in its backlog).
    pub cq_overflows: u64,
    /// Times the SQ was full and had to be submitted early.
    pub sq_full: u64,
    /// Wake-ups sent to sleeping shards through MSG_RING.
    pub msg_ring_wakes: u64,
    /// MSG_RING wake-ups that failed and fell back to the target's eventfd.
    pub msg_ring_failures: u64,
}

pub(crate) struct Ring {
    /// Closed first, by `Drop`: the kernel stops using every op's memory and the buffer
    /// ring before any of it is freed (the fields below drop after it).
    uring: ManuallyDrop<IoUring>,
    pub(crate) bufs: BufRing,
    pub(crate) ops: Lifecycles,
    reaped: Vec<Completion>,
    pub(crate) features: RingFeatures,
    pub(crate) stats: RingStats,
    #[cfg(feature = "fault-injection")]
    pub(crate) faults: super::fault::ShardFaults,
}

impl Ring {
    pub(crate) fn new(config: &RingConfig) -> Result<Self, Error> {
        let (uring, features, _support) = setup::build_ring(config)?;
        let bufs = BufRing::register(&uring.submitter(), config.recv_buffers, config.recv_buffer_size).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOMEM) {
                setup::unavailable(&e)
            } else if e.kind() == io::ErrorKind::InvalidInput && e.raw_os_error().is_none() {
                Error::Config(e.to_string())
            } else {
                Error::KernelTooOld(format!(
                    "cannot register the provided-buffer ring ({e}); percore needs Linux ≥ 6.0 (IORING_REGISTER_PBUF_RING): upgrade the kernel"
                ))
            }
        })?;
        Ok(Ring {
            uring: ManuallyDrop::new(uring),
            bufs,
            ops: Lifecycles::default(),
            reaped: Vec::with_capacity(config.cq_entries as usize),
            features,
            stats: RingStats::default(),
            #[cfg(feature = "fault-injection")]
            faults: super::fault::ShardFaults::new(),
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.uring.as_raw_fd()
    }

    /// Submits an op that points at no memory; its completions carry `token`.
    #[inline]
    pub(crate) fn submit<T: Pointerless>(&mut self, mut op: T, token: Token) {
        let sqe = op.sqe().user_data(token.user_data());
        // SAFETY: a `Pointerless` op's entry carries no pointer (its contract).
        unsafe { self.push(&sqe) }
    }

    /// Submits an op that owns memory: the op table keeps it until its terminal completion
    /// (see `lifecycle`), so the memory outlives the kernel's use whatever happens to the
    /// submitter. Returns the op's token (to await it, or to cancel it).
    #[inline]
    pub(crate) fn submit_owned<T: OwnedOp>(&mut self, op: T, route: Route) -> Token {
        let (token, sqe) = self.ops.insert(op, route);
        // SAFETY: the entry points into the op, on the heap and owned by the op (the
        // `OpCode` contract), which the table keeps until the terminal CQE; the table is
        // dropped only after the ring has closed (`Drop for Ring`).
        unsafe { self.push(&sqe) };
        token
    }

    /// Queues one SQE. When the SQ is full it submits what is queued first (collecting
    /// completions if the kernel is busy flushing an overflowed CQ), so no SQE is ever dropped.
    ///
    /// # Safety
    ///
    /// Every pointer in `sqe` must stay valid, and unmoved where the kernel writes, until the
    /// op's terminal completion (or until the ring is closed); every fd it names must stay
    /// open that long or be owned by the op. The two safe doors, [`submit`](Self::submit) and
    /// [`submit_owned`](Self::submit_owned), are the only callers.
    #[inline]
    unsafe fn push(&mut self, sqe: &Entry) {
        #[cfg(feature = "fault-injection")]
        if self.faults.sq_full(self.uring.submission().len()) {
            self.make_room();
        }
        // SAFETY: the caller upholds the entry's contract (above).
        while unsafe { self.uring.submission().push(sqe) }.is_err() {
            self.make_room();
        }
    }

    /// The SQ is full: submit what is queued (the rare path of [`push`](Self::push)).
    #[cold]
    #[inline(never)]
    fn make_room(&mut self) {
        self.stats.sq_full += 1;
        match self.uring.submit() {
            Ok(n) => self.stats.sqes_submitted += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => self.reap_all(),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => {
                // Nothing sane remains if the kernel refuses submissions outright; make the
                // cause visible rather than spinning.
                tracing::error!("io_uring submit failed while the SQ was full: {e}");
                self.reap_all();
            }
        }
    }

    /// Submits queued SQEs and waits as told: the loop's single `io_uring_enter`.
    pub(crate) fn enter(&mut self, wait: Wait) -> io::Result<()> {
        let queued = self.uring.submission().len();
        #[cfg(feature = "fault-injection")]
        let injected = self.faults.fail_enter();
        let result = match wait {
            // A failed `io_uring_enter` (fault injection): nothing submitted, nothing waited.
            #[cfg(feature = "fault-injection")]
            _ if injected.is_some() => {
                Err(io::Error::from_raw_os_error(injected.unwrap_or_default()))
            }
            Wait::No => {
                let pending_work =
                    self.uring.submission().taskrun() || self.uring.submission().cq_overflow();
                if queued == 0 && !pending_work {
                    self.reap();
                    return Ok(());
                }
                self.uring.submit()
            }
            Wait::Forever => self.uring.submit_and_wait(1),
            Wait::Timeout(timeout) => {
                let ts = types::Timespec::new()
                    .sec(timeout.as_secs())
                    .nsec(timeout.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                self.uring.submitter().submit_with_args(1, &args)
            }
        };
        self.stats.enters += 1;
        match result {
            Ok(_) => self.stats.sqes_submitted += queued as u64,
            // Transient: the wait timed out or was interrupted, the CQ must be reaped first
            // (EBUSY), or the kernel lacked resources for now (EAGAIN); what was not
            // submitted stays in the SQ for the next entry.
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {
                    self.stats.sqes_submitted += (queued - self.uring.submission().len()) as u64;
                }
                _ => return Err(e),
            },
        }
        if self.uring.submission().cq_overflow() {
            self.stats.cq_overflows += 1;
        }
        self.reap();
        Ok(())
    }

    /// Submits queued SQEs at once, outside the loop's own enter (used to deliver a
    /// MSG_RING wake-up without waiting for this shard's next iteration).
    pub(crate) fn submit_now(&mut self) -> io::Result<()> {
        let queued = self.uring.submission().len();
        self.uring.submit()?;
        self.stats.sqes_submitted += queued as u64;
        Ok(())
    }

    /// Moves every available CQE into the local queue.
    fn reap(&mut self) {
        let mut cq = self.uring.completion();
        cq.sync();
        for cqe in &mut cq {
            self.reaped.push(Completion::new(
                Token::from_user_data(cqe.user_data()),
                cqe.result(),
                cqueue::more(cqe.flags()),
                cqueue::buffer_select(cqe.flags()),
            ));
            // A small CQ (fault injection): what is not taken stays in the kernel's CQ.
            #[cfg(feature = "fault-injection")]
            if self.faults.cq_full(self.reaped.len()) {
                break;
            }
        }
    }

    /// Reaps because the kernel needs room (`EBUSY`): a small CQ of fault injection must not
    /// keep the SQ from draining.
    fn reap_all(&mut self) {
        #[cfg(feature = "fault-injection")]
        self.faults.uncapped(true);
        self.reap();
        #[cfg(feature = "fault-injection")]
        self.faults.uncapped(false);
    }

    /// Hands the reaped completions to the caller (swapping buffers, no allocation).
    pub(crate) fn take_completions(&mut self, into: &mut Vec<Completion>) {
        debug_assert!(into.is_empty());
        self.stats.cqes += self.reaped.len() as u64;
        std::mem::swap(&mut self.reaped, into);
    }

    /// Completions in the CQ, or deferred task work the kernel flagged (`TASKRUN_FLAG`): the
    /// next enter has something to reap.
    pub(crate) fn io_ready(&mut self) -> bool {
        self.uring.submission().taskrun() || !self.uring.completion().is_empty()
    }

    pub(crate) fn has_reaped(&self) -> bool {
        !self.reaped.is_empty()
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, here, and never used after: closing the ring first
        // ends the kernel's use of every op's memory and of the buffer ring, which the
        // remaining fields free after this.
        unsafe { ManuallyDrop::drop(&mut self.uring) };
        self.ops.ring_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        driver::{Kind, uring::op::EventFdRead},
        sys::eventfd::EventFd,
    };

    /// The shard's eventfd read is in flight for the whole life of the loop, so it is
    /// still in flight when the shard ends. Its 8-byte target must outlive the kernel's
    /// use: the op table owns it, the ring closes before the table drops, and the table
    /// asserts that order (`dropping_an_op_before_the_ring_closes_is_caught` shows the
    /// assertion firing for the old order, memory freed while the ring was open).
    #[test]
    fn an_eventfd_read_in_flight_is_freed_only_after_the_ring_closes() {
        let eventfd = EventFd::new().expect("eventfd");
        let mut ring = match Ring::new(&RingConfig::default()) {
            Ok(ring) => ring,
            Err(e) => {
                eprintln!("skipped: no io_uring here ({e})");
                return;
            }
        };
        let route = Token::new(Kind::Wake, 0, 0);
        ring.submit_owned(EventFdRead::new(eventfd.as_raw_fd()), Route::To(route));
        ring.enter(Wait::No).expect("submitted");
        let mut completions = Vec::new();
        ring.take_completions(&mut completions);
        assert!(
            completions.is_empty(),
            "nobody wrote the eventfd: the read waits"
        );
        // Dropping the ring with the read in flight: the kernel side closes first, then the
        // op table frees the target (a debug assertion fails otherwise).
        drop(ring);
        drop(eventfd);
    }
}

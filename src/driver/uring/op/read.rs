//! `IORING_OP_READ` of the shard's eventfd: armed whenever the shard may sleep, so a write to
//! the eventfd from any thread ends the shard's wait. The 8-byte target is boxed and owned by
//! the op, which the driver keeps until the CQE, so it outlives the loop that armed it.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types::Fd};

use super::OpCode;

pub(crate) struct EventFdRead {
    /// The eventfd, kept open by the shard's remote handle, which outlives the driver.
    fd: RawFd,
    target: Box<u64>,
}

impl EventFdRead {
    pub(crate) fn new(fd: RawFd) -> Self {
        EventFdRead {
            fd,
            target: Box::new(0),
        }
    }

    /// The eventfd, for a driver that waits for it to become readable.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }
}

// SAFETY: the 8-byte target is on the heap, owned by the op.
unsafe impl OpCode for EventFdRead {
    fn sqe(&mut self) -> Entry {
        let target: *mut u64 = &mut *self.target;
        opcode::Read::new(Fd(self.fd), target.cast(), 8).build()
    }
}

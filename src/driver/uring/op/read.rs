//! `IORING_OP_READ` of the shard's eventfd: armed whenever the shard may sleep, so a write to
//! the eventfd from any thread ends the shard's wait. The 8-byte target is boxed and owned by
//! the ring until the CQE.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types::Fd};

use crate::driver::Token;

pub(crate) struct EventFdRead {
    pub(crate) fd: RawFd,
    pub(crate) target: *mut u64,
}

impl EventFdRead {
    pub(crate) fn to_sqe(&self, token: Token) -> Entry {
        opcode::Read::new(Fd(self.fd), self.target.cast(), 8)
            .build()
            .user_data(token.user_data())
    }
}

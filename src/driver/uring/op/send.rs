//! `IORING_OP_SEND` of a connection's whole pending output in one submission.
//!
//! The bytes live in the connection's in-flight buffer, which is neither written nor freed
//! until this operation's CQE arrives (the connection keeps it in a separate field from the
//! buffer that new writes go to). A short send is continued from the offset it reached.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types::Fd};

use crate::driver::Token;

pub(crate) struct Send {
    pub(crate) fd: RawFd,
    pub(crate) ptr: *const u8,
    pub(crate) len: u32,
}

impl Send {
    pub(crate) fn to_sqe(&self, token: Token) -> Entry {
        // MSG_NOSIGNAL: a peer that went away gives EPIPE, never a process-killing SIGPIPE.
        opcode::Send::new(Fd(self.fd), self.ptr, self.len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(token.user_data())
    }
}

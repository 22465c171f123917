//! `IORING_OP_ACCEPT` with `IORING_ACCEPT_MULTISHOT`: one submission, one CQE per accepted
//! connection until a CQE arrives without `IORING_CQE_F_MORE`, when it must be re-armed.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types::Fd};

use crate::driver::Token;

pub(crate) struct AcceptMulti {
    /// The listening socket; the listener table keeps it open until the terminal CQE.
    pub(crate) listener_fd: RawFd,
}

impl AcceptMulti {
    pub(crate) fn to_sqe(&self, token: Token) -> Entry {
        opcode::AcceptMulti::new(Fd(self.listener_fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(token.user_data())
    }
}

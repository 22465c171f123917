//! `IORING_OP_CLOSE`, fire and forget: used once every operation on the fd has ended.

use std::os::fd::{IntoRawFd, OwnedFd};

use io_uring::{opcode, squeue::Entry, types::Fd};

use crate::driver::Token;

pub(crate) struct Close {
    pub(crate) fd: OwnedFd,
}

impl Close {
    /// Hands the fd to the kernel: after this the fd number belongs to the close operation.
    pub(crate) fn into_sqe(self) -> Entry {
        opcode::Close::new(Fd(self.fd.into_raw_fd()))
            .build()
            .user_data(Token::IGNORE.user_data())
    }
}

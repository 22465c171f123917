//! `IORING_OP_RECV` with `IORING_RECV_MULTISHOT` and buffer selection: each CQE names a
//! provided buffer the kernel filled. Ends without `IORING_CQE_F_MORE` on EOF, error,
//! `ENOBUFS` (the buffer ring ran dry) or cancellation; the connection decides whether to
//! re-arm.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types::Fd};

use crate::driver::{Token, uring::buf_ring::RECV_GROUP};

pub(crate) struct RecvMulti {
    /// The connection's socket, kept open by the connection until the terminal CQE.
    pub(crate) fd: RawFd,
}

impl RecvMulti {
    pub(crate) fn to_sqe(&self, token: Token) -> Entry {
        opcode::RecvMulti::new(Fd(self.fd), RECV_GROUP)
            .build()
            .user_data(token.user_data())
    }
}

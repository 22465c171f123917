//! `IORING_OP_RECV` with `IORING_RECV_MULTISHOT` and buffer selection: each CQE names a
//! provided buffer the kernel filled. Ends without `IORING_CQE_F_MORE` on EOF, error,
//! `ENOBUFS` (the buffer ring ran dry) or cancellation; the connection decides whether to
//! re-arm.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types::Fd};

use super::{OpCode, Pointerless};
use crate::driver::uring::buf_ring::RECV_GROUP;

pub(crate) struct RecvMulti {
    /// The connection's socket, kept open by the connection until the terminal CQE.
    pub(crate) fd: RawFd,
}

// SAFETY: the entry names an fd and a buffer group; the buffers are the driver's own
// provided-buffer ring, which lives as long as the driver.
unsafe impl OpCode for RecvMulti {
    fn sqe(&mut self) -> Entry {
        opcode::RecvMulti::new(Fd(self.fd), RECV_GROUP).build()
    }
}

// SAFETY: as above, no pointer of the caller's.
unsafe impl Pointerless for RecvMulti {}

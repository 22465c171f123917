//! `IORING_OP_CLOSE`, fire and forget: used once every operation on the fd has ended.

use std::os::fd::{IntoRawFd, OwnedFd};

use io_uring::{opcode, squeue::Entry, types::Fd};

use super::{OpCode, Pointerless};

pub(crate) struct Close {
    fd: Option<OwnedFd>,
}

impl Close {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        Close { fd: Some(fd) }
    }

    /// The fd to close, for a driver that closes it itself.
    pub(crate) fn into_fd(mut self) -> Option<OwnedFd> {
        self.fd.take()
    }
}

// SAFETY: the entry names an fd only. Building it hands the fd to the kernel: after this
// the fd number belongs to the close operation.
unsafe impl OpCode for Close {
    fn sqe(&mut self) -> Entry {
        let fd = self.fd.take().map_or(-1, IntoRawFd::into_raw_fd);
        opcode::Close::new(Fd(fd)).build()
    }
}

// SAFETY: as above, no pointer.
unsafe impl Pointerless for Close {}

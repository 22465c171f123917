//! `IORING_OP_ACCEPT`, one connection per submission. A listener keeps a few in flight, never
//! more than its accept queue has room for, so the queue's bound is exact: a multishot
//! accept accepts every connection in the backlog in one go and cannot be bounded.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types::Fd};

use super::{OpCode, Pointerless};

pub(crate) struct Accept {
    /// The listening socket; the listener table keeps it open until the last accept's CQE.
    pub(crate) listener_fd: RawFd,
}

// SAFETY: the entry names an fd and flags only (null address pointers: the peer's address
// is not asked for).
unsafe impl OpCode for Accept {
    fn sqe(&mut self) -> Entry {
        opcode::Accept::new(
            Fd(self.listener_fd),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
        .flags(libc::SOCK_CLOEXEC)
        .build()
    }
}

// SAFETY: as above, no pointer.
unsafe impl Pointerless for Accept {}

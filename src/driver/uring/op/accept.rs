//! `IORING_OP_ACCEPT` with `IORING_ACCEPT_MULTISHOT`: one submission, one CQE per accepted
//! connection until a CQE arrives without `IORING_CQE_F_MORE`, when it must be re-armed.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types::Fd};

use super::{OpCode, Pointerless};

pub(crate) struct AcceptMulti {
    /// The listening socket; the listener table keeps it open until the terminal CQE.
    pub(crate) listener_fd: RawFd,
}

// SAFETY: the entry names an fd and flags only.
unsafe impl OpCode for AcceptMulti {
    fn sqe(&mut self) -> Entry {
        opcode::AcceptMulti::new(Fd(self.listener_fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
    }
}

// SAFETY: as above, no pointer.
unsafe impl Pointerless for AcceptMulti {}

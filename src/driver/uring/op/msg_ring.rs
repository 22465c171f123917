//! `IORING_OP_MSG_RING` (data form): posts a CQE straight into another shard's ring, which
//! ends that shard's wait in `io_uring_enter` without a syscall on its side.
//! `IOSQE_CQE_SKIP_SUCCESS` suppresses the CQE on the sender's ring when the message is
//! delivered; a failure still posts one there, naming the target, so the sender can fall
//! back to the target's eventfd.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types::Fd};

use super::{OpCode, Pointerless};
use crate::driver::Token;

pub(crate) struct MsgRingWake {
    pub(crate) target_ring_fd: RawFd,
    /// The user_data of the CQE posted on the target.
    pub(crate) delivered: Token,
}

// SAFETY: the entry names the target ring's fd and carries a number; no pointer.
unsafe impl OpCode for MsgRingWake {
    fn sqe(&mut self) -> Entry {
        opcode::MsgRingData::new(Fd(self.target_ring_fd), 0, self.delivered.user_data(), None)
            .build()
            .flags(io_uring::squeue::Flags::SKIP_SUCCESS)
    }
}

// SAFETY: as above, no pointer.
unsafe impl Pointerless for MsgRingWake {}

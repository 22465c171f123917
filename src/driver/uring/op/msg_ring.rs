//! `IORING_OP_MSG_RING` (data form): posts a CQE straight into another shard's ring, which
//! ends that shard's wait in `io_uring_enter` without a syscall on its side.
//! `IOSQE_CQE_SKIP_SUCCESS` suppresses the CQE on the sender's ring when the message is
//! delivered; a failure still posts one there, naming the target, so the sender can fall
//! back to the target's eventfd.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types::Fd};

use crate::driver::Token;

pub(crate) struct MsgRingWake {
    pub(crate) target_ring_fd: RawFd,
}

impl MsgRingWake {
    /// `delivered` is the user_data of the CQE posted on the target; `on_failure` that of
    /// the CQE the sender gets if the message cannot be delivered.
    pub(crate) fn to_sqe(&self, delivered: Token, on_failure: Token) -> Entry {
        opcode::MsgRingData::new(Fd(self.target_ring_fd), 0, delivered.user_data(), None)
            .build()
            .flags(io_uring::squeue::Flags::SKIP_SUCCESS)
            .user_data(on_failure.user_data())
    }
}

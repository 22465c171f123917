//! `IORING_OP_MSG_RING` (data form): posts a CQE straight into another shard's ring, which
//! ends that shard's wait in `io_uring_enter` without a syscall on its side.
//! `IORING_MSG_RING_CQE_SKIP` suppresses the CQE on the sender's ring when it succeeds.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types::Fd};

use crate::ring::token::Token;

/// `IORING_MSG_RING_CQE_SKIP`: no CQE on the sender's ring when the message is delivered.
const SKIP_SUCCESS_CQE: u32 = 1;

pub(crate) struct MsgRingWake {
    pub(crate) target_ring_fd: RawFd,
}

impl MsgRingWake {
    pub(crate) fn to_sqe(&self, delivered: Token) -> Entry {
        opcode::MsgRingData::new(Fd(self.target_ring_fd), 0, delivered.user_data(), None)
            .opcode_flags(SKIP_SUCCESS_CQE)
            .build()
            .user_data(Token::IGNORE.user_data())
    }
}

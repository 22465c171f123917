//! `IORING_OP_ASYNC_CANCEL` of one in-flight operation, found by its user_data. The target
//! still delivers its own terminal CQE (usually `-ECANCELED`); resources are released there,
//! not here. The cancel's own CQE is ignored.

use io_uring::{opcode, squeue::Entry};

use super::{OpCode, Pointerless};
use crate::driver::Token;

pub(crate) struct Cancel {
    pub(crate) target: Token,
}

// SAFETY: the entry carries the target's user_data, a number, and no pointer.
unsafe impl OpCode for Cancel {
    fn sqe(&mut self) -> Entry {
        opcode::AsyncCancel::new(self.target.user_data()).build()
    }
}

// SAFETY: as above, no pointer.
unsafe impl Pointerless for Cancel {}

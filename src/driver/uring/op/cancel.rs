//! `IORING_OP_ASYNC_CANCEL` of in-flight operations, found by their user_data: one
//! ([`Cancel`]) or every one that carries it ([`CancelAll`], a listener's accepts). Each
//! target still delivers its own terminal CQE (usually `-ECANCELED`); resources are released
//! there, not here. The cancel's own CQE is ignored.

use io_uring::{opcode, squeue::Entry, types::CancelBuilder};

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

/// Cancels every in-flight op whose user_data is `target` (`IORING_ASYNC_CANCEL_ALL`).
pub(crate) struct CancelAll {
    pub(crate) target: Token,
}

// SAFETY: the entry carries the target's user_data and flags, no pointer.
unsafe impl OpCode for CancelAll {
    fn sqe(&mut self) -> Entry {
        opcode::AsyncCancel2::new(CancelBuilder::user_data(self.target.user_data()).all()).build()
    }
}

// SAFETY: as above, no pointer.
unsafe impl Pointerless for CancelAll {}

//! `IORING_OP_ASYNC_CANCEL` of one in-flight operation, found by its user_data. The target
//! still delivers its own terminal CQE (usually `-ECANCELED`); resources are released there,
//! not here. The cancel's own CQE is ignored.

use io_uring::{opcode, squeue::Entry};

use crate::driver::Token;

pub(crate) struct Cancel {
    pub(crate) target: Token,
}

impl Cancel {
    pub(crate) fn to_sqe(&self) -> Entry {
        opcode::AsyncCancel::new(self.target.user_data())
            .build()
            .user_data(Token::IGNORE.user_data())
    }
}

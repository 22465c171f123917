//! `IORING_OP_TIMEOUT` (relative, no completion count): completes with `-ETIME` once the
//! duration has passed, or `-ECANCELED` when cancelled. The timespec is boxed and owned by
//! the op, which the driver keeps until the CQE.

use std::time::Duration;

use io_uring::{opcode, squeue::Entry, types::Timespec};

use super::OpCode;

pub(crate) struct Timeout {
    timespec: Box<Timespec>,
    after: Duration,
}

impl Timeout {
    // Awaited by the tests of `Op`; the deadlines of the file ops to come will use it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn new(after: Duration) -> Self {
        Timeout {
            timespec: Box::new(
                Timespec::new()
                    .sec(after.as_secs())
                    .nsec(after.subsec_nanos()),
            ),
            after,
        }
    }

    /// How long after its submission the timeout fires.
    pub(crate) fn after(&self) -> Duration {
        self.after
    }
}

// SAFETY: the timespec is on the heap, owned by the op.
unsafe impl OpCode for Timeout {
    fn sqe(&mut self) -> Entry {
        opcode::Timeout::new(&*self.timespec).build()
    }
}

//! `IORING_OP_SEND` of a connection's whole pending output in one submission.
//!
//! The bytes travel in the op: the connection hands its output buffer over and gets it back
//! with the completion (to continue a short send from the offset it reached, or to reuse
//! its capacity), so the buffer lives exactly as long as the kernel may read it.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types::Fd};

use super::OpCode;

pub(crate) struct Send {
    /// The connection's socket, kept open by the connection until the terminal CQE.
    pub(crate) fd: RawFd,
    pub(crate) buf: Vec<u8>,
    /// Where this submission starts in `buf` (past what earlier short sends took).
    pub(crate) offset: usize,
}

// SAFETY: the bytes are `buf`'s heap allocation, owned by the op and not resized while it
// is in flight (the driver holds the op).
unsafe impl OpCode for Send {
    fn sqe(&mut self) -> Entry {
        let remaining = &self.buf[self.offset.min(self.buf.len())..];
        let len = remaining.len().min(u32::MAX as usize) as u32;
        // MSG_NOSIGNAL: a peer that went away gives EPIPE, never a process-killing SIGPIPE.
        opcode::Send::new(Fd(self.fd), remaining.as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
    }
}

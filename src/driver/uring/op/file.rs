//! File ops: `IORING_OP_WRITE` at an offset and `IORING_OP_FSYNC` (data only, or data and
//! metadata), for append-only logs written without blocking the shard's loop.
//!
//! The file's descriptor travels in the op as an `Rc<OwnedFd>`: a file dropped while its
//! op is in flight (a cancelled await) stays open until the op's terminal completion, so
//! the kernel never writes to a reused fd number.

use std::{
    os::fd::{AsRawFd, OwnedFd},
    rc::Rc,
};

use io_uring::{opcode, squeue::Entry, types::Fd};

use super::OpCode;

pub(crate) struct FileWrite {
    pub(crate) fd: Rc<OwnedFd>,
    pub(crate) buf: Vec<u8>,
    /// Where in `buf` this submission starts (past what earlier short writes took).
    pub(crate) start: usize,
    /// The file offset of `buf[start]`.
    pub(crate) offset: u64,
}

// SAFETY: the bytes are `buf`'s heap allocation, owned by the op and not resized while it
// is in flight; the fd is kept open by the op's `Rc`.
unsafe impl OpCode for FileWrite {
    fn sqe(&mut self) -> Entry {
        let remaining = &self.buf[self.start.min(self.buf.len())..];
        let len = remaining.len().min(u32::MAX as usize) as u32;
        opcode::Write::new(Fd(self.fd.as_raw_fd()), remaining.as_ptr(), len)
            .offset(self.offset)
            .build()
    }
}

pub(crate) struct FileSync {
    pub(crate) fd: Rc<OwnedFd>,
    /// `fdatasync` rather than `fsync`.
    pub(crate) data_only: bool,
}

// SAFETY: the entry names an fd only, kept open by the op's `Rc`.
unsafe impl OpCode for FileSync {
    fn sqe(&mut self) -> Entry {
        let op = opcode::Fsync::new(Fd(self.fd.as_raw_fd()));
        if self.data_only {
            op.flags(io_uring::types::FsyncFlags::DATASYNC).build()
        } else {
            op.build()
        }
    }
}

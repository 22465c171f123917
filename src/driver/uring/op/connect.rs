//! `IORING_OP_CONNECT` for outbound TCP. The socket address is boxed and owned by the
//! operation, so it stays put until the terminal CQE even if the caller's future is dropped.

use std::{
    net::SocketAddr,
    os::fd::{AsRawFd, OwnedFd},
};

use io_uring::{opcode, squeue::Entry, types::Fd};

use super::OpCode;
use crate::sys::socket::SockAddrBuf;

pub(crate) struct Connect {
    pub(crate) socket: OwnedFd,
    addr: Box<SockAddrBuf>,
}

impl Connect {
    pub(crate) fn new(socket: OwnedFd, addr: &SocketAddr) -> Self {
        Connect {
            socket,
            addr: Box::new(SockAddrBuf::from_socket_addr(addr)),
        }
    }

    /// The address to connect to, for a driver that calls `connect` itself.
    pub(crate) fn addr(&self) -> &SockAddrBuf {
        &self.addr
    }
}

// SAFETY: the address is on the heap, owned by the op; the socket is owned by the op too.
unsafe impl OpCode for Connect {
    fn sqe(&mut self) -> Entry {
        opcode::Connect::new(
            Fd(self.socket.as_raw_fd()),
            self.addr.as_ptr(),
            self.addr.len(),
        )
        .build()
    }
}

//! `IORING_OP_CONNECT` for outbound TCP. The socket address is boxed and owned by the
//! operation, so it stays valid until the terminal CQE even if the caller's future is dropped.

use std::{
    net::SocketAddr,
    os::fd::{AsRawFd, OwnedFd},
};

use io_uring::{opcode, squeue::Entry, types::Fd};

use crate::{driver::Token, sys::socket::SockAddrBuf};

pub(crate) struct Connect {
    pub(crate) socket: OwnedFd,
    pub(crate) addr: Box<SockAddrBuf>,
}

impl Connect {
    pub(crate) fn new(socket: OwnedFd, addr: &SocketAddr) -> Self {
        Connect {
            socket,
            addr: Box::new(SockAddrBuf::from_socket_addr(addr)),
        }
    }

    pub(crate) fn to_sqe(&self, token: Token) -> Entry {
        opcode::Connect::new(
            Fd(self.socket.as_raw_fd()),
            self.addr.as_ptr(),
            self.addr.len(),
        )
        .build()
        .user_data(token.user_data())
    }
}

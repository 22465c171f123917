//! Outbound connections: a socket plus `IORING_OP_CONNECT`, through the op lifecycle so a
//! dropped connect future leaves the socket and address alive until the kernel is done.

use std::{future::Future, io, net::SocketAddr};

use super::{NET, listener::adopt, stream::TcpStream};
use crate::{driver::uring::op::Connect, sys::socket::tcp_socket_for, task::op::Op};

impl TcpStream {
    /// Connects to `addr` from the current shard.
    ///
    /// # Panics
    /// Off a shard (at the call, naming the caller's line).
    #[track_caller]
    pub fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<TcpStream>> + 'static {
        let net = NET.current();
        async move {
            let op = Connect::new(tcp_socket_for(&addr)?, &addr);
            // Dropping this future mid-way parks the op (socket and address) in the driver
            // until the kernel is done with it, and cancels it.
            let (result, op) = Op::submit(net.core.clone(), op).await;
            if result < 0 {
                return Err(io::Error::from_raw_os_error(-result));
            }
            Ok(adopt(&net, op.socket, false))
        }
    }
}

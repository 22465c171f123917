//! Outbound connections: a socket plus `IORING_OP_CONNECT`, through the op lifecycle so a
//! dropped connect future leaves the socket and address alive until the kernel is done.

use std::{future::poll_fn, io, net::SocketAddr, task::Poll};

use super::{NET, listener::adopt, stream::TcpStream};
use crate::{
    driver::{
        Token,
        uring::{
            lifecycle,
            op::{cancel::Cancel, connect::Connect},
        },
    },
    sys::socket::tcp_socket_for,
};

impl TcpStream {
    /// Connects to `addr` from the current shard.
    pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        let net = NET.current();
        let op = Connect::new(tcp_socket_for(&addr)?, &addr);
        let token = {
            let mut ring = net.core.driver.borrow_mut();
            let token = ring.ops.insert(None);
            // The SQE points into the boxed address, which moves with `op` into the slot
            // without changing its heap address.
            let sqe = op.to_sqe(token);
            ring.ops.set_resources(token, Box::new(op));
            ring.push(&sqe);
            token
        };
        let mut guard = CancelGuard { token: Some(token) };
        let (result, resources) =
            poll_fn(
                |cx| match net.core.driver.borrow_mut().ops.poll(token, cx.waker()) {
                    lifecycle::Poll::Pending => Poll::Pending,
                    lifecycle::Poll::Ready {
                        result, resources, ..
                    } => Poll::Ready((result, resources)),
                },
            )
            .await;
        guard.token = None;
        if result < 0 {
            return Err(io::Error::from_raw_os_error(-result));
        }
        let op = resources
            .and_then(|r| r.downcast::<Connect>().ok())
            .ok_or_else(|| io::Error::other("connect completed without its socket"))?;
        let Connect { socket, .. } = *op;
        Ok(adopt(&net, socket, false))
    }
}

/// Keeps the socket alive and cancels the connect when the future is dropped early.
struct CancelGuard {
    token: Option<Token>,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        let Some(token) = self.token else { return };
        let Some(net) = NET.try_current() else {
            return;
        };
        let mut ring = net.core.driver.borrow_mut();
        if ring.ops.drop_future(token) {
            ring.push(&Cancel { target: token }.to_sqe());
        }
    }
}

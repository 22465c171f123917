//! One shard serving a router through `service::handle`, counting that shard's allocations
//! (`alloc_counting::count_into_shared`), and a client connected to it: the set-up the
//! allocation tests of whole requests share.

use std::{
    io::{Read, Write},
    net::TcpStream,
    rc::Rc,
    sync::mpsc,
    time::Duration,
};

use percore::{Server, ServerHandle, TcpListener, spawn};
use percore_http::{Limits, Router, service};

use super::alloc_counting;

/// The server, a client connected to it (10 s read timeout), and the length of one response
/// to `request`: read byte by byte up to `body`, its last bytes.
pub fn serve_counted(
    router: fn() -> Router,
    request: &[u8],
    body: &[u8],
) -> (ServerHandle, TcpStream, usize) {
    let (addr_tx, addr_rx) = mpsc::channel();
    let limits = Limits {
        max_requests: u64::MAX,
        ..Limits::default()
    };
    let server = Server::builder()
        .shards(1)
        .start(move |_| {
            alloc_counting::count_into_shared();
            let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap())
                .map_err(|e| percore::Error::Config(e.to_string()))?;
            addr_tx.send(listener.local_addr()).unwrap();
            let router = Rc::new(router());
            let limits = limits.clone();
            Ok(async move {
                while let Ok(stream) = listener.accept().await {
                    spawn(service::handle(stream, router.clone(), limits.clone()));
                }
            })
        })
        .unwrap();
    let addr = addr_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while !first.ends_with(body) {
        stream.read_exact(&mut byte).unwrap();
        first.push(byte[0]);
    }
    (server, stream, first.len())
}

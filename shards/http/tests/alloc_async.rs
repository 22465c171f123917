//! What an async route costs in allocations on the shard, per keep-alive request once warmed
//! up: at most 9 (the owned copy of the request, the handler's boxed future, its task, the
//! response...), and none for naming the route to the stall detector: the service spawns the
//! handler's future inside the label wrapper, which has no box of its own (when the router
//! boxed a second, labelling future around each handler's, it was 10).

use std::{
    io::{Read, Write},
    net::TcpStream,
    rc::Rc,
    sync::mpsc,
    time::Duration,
};

use percore::{Server, TcpListener, spawn};
use percore_http::{Limits, Router, service};

mod alloc_counting;

const REQUEST: &[u8] = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n";

/// Sends `n` requests one after the other on `stream`, reading each response.
fn run(stream: &mut TcpStream, n: usize, response_len: usize) {
    let mut response = vec![0u8; response_len];
    for _ in 0..n {
        stream.write_all(REQUEST).unwrap();
        stream.read_exact(&mut response).unwrap();
        assert!(response.ends_with(b"async"));
    }
}

#[test]
fn an_async_request_allocates_at_most_9_times_on_the_shard() {
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
            let router = Rc::new(Router::new().route_async("GET", "/a", |_| async { "async" }));
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
    stream.write_all(REQUEST).unwrap();
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while !first.ends_with(b"async") {
        stream.read_exact(&mut byte).unwrap();
        first.push(byte[0]);
    }
    run(&mut stream, 200, first.len()); // warm-up
    let requests = 1000;
    let before = alloc_counting::shared_allocations();
    run(&mut stream, requests, first.len());
    let allocations = alloc_counting::shared_allocations() - before;
    println!("{allocations} allocations for {requests} async requests");
    assert!(
        allocations <= 9 * requests as u64,
        "{allocations} allocations on the shard for {requests} async requests (at most 9 each)"
    );
    drop(stream);
    server.stop_within(Duration::from_millis(200));
    server.join().unwrap();
}

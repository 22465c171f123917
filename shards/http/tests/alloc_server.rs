//! Issue #3 item 5 end to end: a shard serving pipelined keep-alive `GET /` over a real
//! socket — ring completions, the connection task, parsing, routing, the response, the send —
//! allocates nothing per request once warmed up. Only the shard thread's allocations count.

use std::{
    io::{Read, Write},
    net::TcpStream,
    rc::Rc,
    sync::mpsc,
    time::Duration,
};

use percore::{Server, TcpListener, spawn};
use percore_http::{Limits, demo, service};

mod alloc_counting;

const PIPELINE: usize = 16;
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

/// Sends `batches` writes of 16 pipelined requests, reading every response back.
fn run_batches(stream: &mut TcpStream, batches: usize, response_len: usize) {
    let batch = REQUEST.repeat(PIPELINE);
    let mut responses = vec![0u8; response_len * PIPELINE];
    for _ in 0..batches {
        stream.write_all(&batch).unwrap();
        stream.read_exact(&mut responses).unwrap();
        assert!(responses.ends_with(b"Hello, World!"));
    }
}

#[test]
fn pipelined_keep_alive_get_allocates_nothing_per_request_on_the_shard() {
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
            let router = Rc::new(demo::router());
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

    // The response length: one request alone, read up to its body.
    stream.write_all(REQUEST).unwrap();
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while !first.ends_with(b"Hello, World!") {
        stream.read_exact(&mut byte).unwrap();
        first.push(byte[0]);
    }
    run_batches(&mut stream, 500, first.len()); // warm-up: buffers reach their sizes
    let before = alloc_counting::shared_allocations();
    run_batches(&mut stream, 1000, first.len());
    let allocations = alloc_counting::shared_allocations() - before;
    assert_eq!(
        allocations,
        0,
        "{allocations} allocations on the shard for {} requests",
        1000 * PIPELINE
    );
    drop(stream);
    server.stop_within(Duration::from_millis(200));
    server.join().unwrap();
}

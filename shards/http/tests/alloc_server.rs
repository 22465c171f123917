//! Issue #3 item 5 end to end: a shard serving pipelined keep-alive `GET /` over a real
//! socket — ring completions, the connection task, parsing, routing, the response, the send —
//! allocates nothing per request once warmed up. Only the shard thread's allocations count.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use percore_http::demo;

mod alloc_counting;
mod counted_shard;

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
    let (server, mut stream, response_len) =
        counted_shard::serve_counted(demo::router, REQUEST, b"Hello, World!");
    run_batches(&mut stream, 500, response_len); // warm-up: buffers reach their sizes
    let before = alloc_counting::shared_allocations();
    run_batches(&mut stream, 1000, response_len);
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

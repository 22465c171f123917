//! What an async route costs in allocations on the shard, per keep-alive request once warmed
//! up: at most 9 (the owned copy of the request, the handler's boxed future, its task, the
//! response...), and none for naming the route to the stall detector: the service spawns the
//! handler's future inside the label wrapper, which has no box of its own (when the router
//! boxed a second, labelling future around each handler's, it was 10).

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use percore_http::Router;

mod alloc_counting;
mod counted_shard;

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
    let (server, mut stream, response_len) = counted_shard::serve_counted(
        || Router::new().route_async("GET", "/a", |_| async { "async" }),
        REQUEST,
        b"async",
    );
    run(&mut stream, 200, response_len); // warm-up
    let requests = 1000;
    let before = alloc_counting::shared_allocations();
    run(&mut stream, requests, response_len);
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

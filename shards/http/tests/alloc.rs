//! Issue #3 item 5: after warm-up, a keep-alive connection answering pipelined `GET /`
//! requests (parse, then write the response) allocates nothing.

use std::time::{Duration, UNIX_EPOCH};

use percore_http::{Connection, DateCache, Event, Limits, Response, write_response};

mod alloc_counting;

/// Default limits, but no cap on requests per connection: 16 000 requests go through one.
fn unbounded() -> Limits {
    Limits {
        max_requests: u64::MAX,
        ..Limits::default()
    }
}

fn allocations() -> u64 {
    alloc_counting::thread_allocations()
}

const GET: &[u8] =
    b"GET / HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n";
const PIPELINE: usize = 16;

/// Answers every request in `input` as the I/O layer would; returns how many.
fn answer_all(conn: &mut Connection, input: &[u8], out: &mut Vec<u8>, date: &[u8; 29]) -> usize {
    let mut consumed = 0;
    let mut answered = 0;
    loop {
        let (n, event) = conn.feed(&input[consumed..]);
        consumed += n;
        match event {
            Event::Request(request) => {
                let response = Response {
                    status: 200,
                    headers: &[("Content-Type", "text/plain")],
                    body: b"Hello, World!",
                };
                write_response(out, &response, date, request.response_framing());
                answered += 1;
            }
            Event::NeedMore => return answered,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn keep_alive_get_allocates_nothing_per_request() {
    let input = GET.repeat(PIPELINE);
    let mut conn = Connection::new(unbounded());
    let mut out = Vec::new();
    let mut dates = DateCache::default();
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);

    // Warm-up: the output buffer reaches its working size.
    for _ in 0..4 {
        out.clear();
        let date = *dates.get(now);
        assert_eq!(answer_all(&mut conn, &input, &mut out, &date), PIPELINE);
    }

    let before = allocations();
    for round in 0..1000u64 {
        out.clear();
        // The shard's once-a-second Date refresh is on the path too.
        let date = *dates.get(now + Duration::from_secs(round / 100));
        assert_eq!(answer_all(&mut conn, &input, &mut out, &date), PIPELINE);
    }
    let after = allocations();
    assert_eq!(
        after - before,
        0,
        "{} allocations for {} requests",
        after - before,
        1000 * PIPELINE
    );
    assert_eq!(conn.requests_served(), 1004 * PIPELINE as u64);
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\nDate: "));

    // The counter works: a request with a chunked body does allocate on first use.
    let mut fresh = Connection::new(Limits::default());
    let before = allocations();
    let chunked =
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n";
    assert!(matches!(fresh.feed(chunked), (_, Event::Request(_))));
    assert!(
        allocations() > before,
        "the counting allocator counts nothing"
    );
}

#[test]
fn serve_allocates_nothing_per_request() {
    let input = GET.repeat(PIPELINE);
    let mut conn = Connection::new(unbounded());
    let mut out = Vec::new();
    let date = *b"Tue, 14 Nov 2023 22:13:20 GMT";
    for _ in 0..4 {
        out.clear();
        conn.serve(&input, &mut out, &date, |_| Response::new(200, b"ok"));
    }
    let before = allocations();
    for _ in 0..1000 {
        out.clear();
        let consumed = conn.serve(&input, &mut out, &date, |req| {
            Response::new(200, req.path())
        });
        assert_eq!(consumed, input.len());
    }
    assert_eq!(allocations() - before, 0);
}

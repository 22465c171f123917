//! The sans-IO hot path alone: parse, route and answer wrk's pipelined `GET /` requests in a
//! loop, and print nanoseconds per request (best of several runs). A user-space figure with
//! no socket or kernel in it, for comparing parser and writer changes on a noisy machine:
//!
//! ```text
//! cargo run --release -p percore-http --example serve_loop
//! ```

use std::time::{Duration, Instant};

use percore_http::{Connection, Limits, demo, http_date};

fn main() {
    let request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n";
    let input = request.repeat(16);
    let router = demo::router();
    let date = http_date(std::time::SystemTime::now());
    let limits = Limits {
        max_requests: u64::MAX,
        ..Limits::default()
    };
    let mut conn = Connection::new(limits);
    let mut out = Vec::with_capacity(64 * 1024);
    let batches = 200_000;
    let mut best = Duration::MAX;
    for _ in 0..7 {
        let started = Instant::now();
        for _ in 0..batches {
            out.clear();
            let consumed = router.serve(&mut conn, &input, &mut out, &date);
            assert_eq!(consumed, input.len());
        }
        best = best.min(started.elapsed());
    }
    let per_request = best.as_nanos() as f64 / (batches * 16) as f64;
    println!(
        "{per_request:.1} ns/request ({} response bytes per batch)",
        out.len()
    );
}

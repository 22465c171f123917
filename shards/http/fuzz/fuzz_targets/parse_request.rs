//! The request parser on arbitrary bytes: it must never panic or read out of bounds, and
//! its verdict must not depend on where the input is split (R15, R16).

#![no_main]

use libfuzzer_sys::fuzz_target;
use percore_http::{Connection, Event, Limits};

/// A compact, owned record of one event.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Continue,
    Request {
        method: Vec<u8>,
        target: Vec<u8>,
        headers: usize,
        body: Vec<u8>,
        keep_alive: bool,
    },
    Error(u16, &'static str),
    Closed,
}

/// Feeds `reads` in turn, re-offering unconsumed bytes as the I/O layer does.
fn run(reads: &[&[u8]], limits: &Limits) -> Vec<Seen> {
    let mut conn = Connection::new(limits.clone());
    let mut buffered = Vec::new();
    let mut seen = Vec::new();
    for read in reads {
        buffered.extend_from_slice(read);
        loop {
            let (consumed, event) = conn.feed(&buffered);
            assert!(consumed <= buffered.len());
            let record = match event {
                Event::NeedMore => None,
                Event::Continue => Some(Seen::Continue),
                Event::Closed => Some(Seen::Closed),
                Event::Error(e) => Some(Seen::Error(e.status, e.reason)),
                Event::Request(r) => {
                    assert!(r.headers().len() <= limits.max_headers);
                    assert!(r.body().len() as u64 <= limits.max_body);
                    Some(Seen::Request {
                        method: r.method().to_vec(),
                        target: r.target().to_vec(),
                        headers: r.headers().len(),
                        body: r.body().to_vec(),
                        keep_alive: r.keep_alive(),
                    })
                }
            };
            buffered.drain(..consumed);
            match record {
                None => break,
                Some(record) => {
                    let end = matches!(record, Seen::Error(..) | Seen::Closed);
                    seen.push(record);
                    if end {
                        assert!(conn.should_close());
                        assert!(matches!(conn.feed(&buffered), (0, Event::Closed)));
                        return seen;
                    }
                }
            }
        }
    }
    seen
}

fuzz_target!(|data: &[u8]| {
    // Small limits, so that every limit is reachable with short inputs.
    let limits = Limits {
        max_request_line: 64,
        max_header_bytes: 128,
        max_headers: 8,
        max_body: 64,
        max_chunk_line: 16,
        max_requests: 4,
        ..Limits::default()
    };
    let whole = run(&[data], &limits);
    let mid = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    assert_eq!(
        run(&[&data[..mid], &data[mid..]], &limits),
        whole,
        "split at {mid}"
    );
    if data.len() <= 512 {
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(run(&bytes, &limits), whole, "byte by byte");
    }
    // The default limits as well.
    let _ = run(&[data], &Limits::default());
});

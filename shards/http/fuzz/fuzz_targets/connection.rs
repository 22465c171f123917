//! The connection state machine, driven through `Connection::serve` over random reads:
//! no panic, consumption within bounds, at most one error response and nothing after it,
//! and the same output whatever the reads (R15, R16).

#![no_main]

use libfuzzer_sys::fuzz_target;
use percore_http::{Connection, Limits, Response};

const DATE: &[u8; 29] = b"Sun, 06 Nov 1994 08:49:37 GMT";

/// Serves `stream` cut into reads of the given lengths; returns everything written.
/// With `echo`, responses carry the request body; without, an empty one.
fn serve(stream: &[u8], cuts: &[u8], limits: &Limits, echo: bool) -> Vec<u8> {
    let mut conn = Connection::new(limits.clone());
    let mut buffered = Vec::new();
    let mut out = Vec::new();
    let mut rest = stream;
    let mut cuts = cuts.iter().cycle();
    let mut closed_at = None;
    while !rest.is_empty() {
        let len = (usize::from(*cuts.next().unwrap_or(&255)) + 1).min(rest.len());
        buffered.extend_from_slice(&rest[..len]);
        rest = &rest[len..];
        loop {
            let before = out.len();
            let consumed = conn.serve(&buffered, &mut out, DATE, |req| {
                Response::new(200, if echo { req.body() } else { b"" })
            });
            assert!(consumed <= buffered.len());
            buffered.drain(..consumed);
            if let Some(at) = closed_at {
                assert_eq!(out.len(), at, "output after the connection closed");
                assert_eq!(consumed, 0);
            }
            if conn.should_close() {
                closed_at.get_or_insert(out.len());
            }
            // `serve` returns early only at max_output: emulate a flush and go on.
            if out.len() == before || closed_at.is_some() {
                break;
            }
        }
        assert!(conn.requests_served() <= limits.max_requests);
    }
    out
}

/// Reads `out` back response by response (it holds no client bytes: bodies are empty or
/// error reasons) and returns the status codes; panics if the output is malformed.
fn statuses(out: &[u8]) -> Vec<u16> {
    let mut statuses = Vec::new();
    let mut rest = out;
    while !rest.is_empty() {
        assert!(
            rest.starts_with(b"HTTP/1.1 "),
            "not a status line: {rest:?}"
        );
        let status = std::str::from_utf8(&rest[9..12]).unwrap().parse().unwrap();
        let head_end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("unterminated head")
            + 4;
        let head = &rest[..head_end];
        let length = head
            .windows(16)
            .position(|w| w == b"Content-Length: ")
            .map_or(0, |at| {
                let digits = head[at + 16..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                std::str::from_utf8(&head[at + 16..at + 16 + digits])
                    .unwrap()
                    .parse()
                    .unwrap()
            });
        statuses.push(status);
        rest = &rest[head_end + length..];
    }
    statuses
}

fuzz_target!(|data: &[u8]| {
    let Some((&config, data)) = data.split_first() else {
        return;
    };
    let split = data.iter().position(|&b| b == 0xff).unwrap_or(0);
    let (cuts, stream) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let limits = Limits {
        max_request_line: 32 + usize::from(config & 0x3f),
        max_header_bytes: 64 + usize::from(config),
        max_headers: 1 + usize::from(config % 16),
        max_body: u64::from(config),
        max_chunk_line: 8 + usize::from(config % 8),
        max_requests: 1 + u64::from(config % 8),
        max_output: 256 + usize::from(config) * 8,
        ..Limits::default()
    };
    let whole = serve(stream, &[255], &limits, true);
    assert_eq!(
        serve(stream, cuts, &limits, true),
        whole,
        "output depends on the reads"
    );
    // Without client bytes in the output, its status lines can be read back: at most one
    // error response (4xx/5xx), and nothing after it.
    let plain = serve(stream, cuts, &limits, false);
    let statuses = statuses(&plain);
    let errors = statuses.iter().filter(|&&s| s >= 400).count();
    assert!(errors <= 1, "{errors} error responses");
    if errors == 1 {
        assert!(statuses.last() >= Some(&400), "output after an error");
    }
    let finals = statuses.iter().filter(|&&s| s >= 200).count() as u64;
    assert!(finals <= limits.max_requests + 1);
});

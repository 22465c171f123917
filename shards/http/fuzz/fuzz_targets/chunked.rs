//! The chunked body decoder on its own (R16): on arbitrary bytes it never panics, never uses
//! more than it was given, keeps the decoded body within `max_body`, and gives the same
//! verdict, body and end position however the input is split (R15). On bodies it encodes
//! itself (the data cut into chunks of fuzzed sizes, with extensions and trailers) it must
//! decode exactly the data back and stop exactly at the end of the encoding.

#![no_main]

use libfuzzer_sys::fuzz_target;
use percore_http::{ChunkedDecoder, Limits};

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Complete: the body, and where in the input the encoding ended.
    Done { body: Vec<u8>, end: usize },
    /// Every byte used, more needed.
    NeedMore { body: Vec<u8> },
    Error(u16, &'static str),
}

/// Feeds `reads` in turn, as the connection does: each call gets only bytes not used yet.
fn run(reads: &[&[u8]], limits: &Limits) -> Verdict {
    let mut decoder = ChunkedDecoder::default();
    let mut body = Vec::new();
    let mut offset = 0;
    for read in reads {
        match decoder.decode(read, &mut body, limits) {
            Err(e) => return Verdict::Error(e.status, e.reason),
            Ok((used, done)) => {
                assert!(used <= read.len(), "used {used} of {}", read.len());
                assert!(body.len() as u64 <= limits.max_body, "body past max_body");
                if done {
                    // Done stays done and takes nothing more.
                    let again = decoder.decode(b"0\r\n\r\n", &mut body, limits);
                    assert!(matches!(again, Ok((0, true))), "{again:?}");
                    return Verdict::Done {
                        body,
                        end: offset + used,
                    };
                }
                assert_eq!(used, read.len(), "not done, yet input left unused");
                offset += used;
            }
        }
    }
    Verdict::NeedMore { body }
}

/// Every way of splitting `data` that is checked against decoding it whole.
fn check_splits(data: &[u8], limits: &Limits) -> Verdict {
    let whole = run(&[data], limits);
    for mid in [data.len() / 2, data.first().map_or(0, |&b| b as usize % (data.len() + 1))] {
        let (a, b) = data.split_at(mid);
        assert_eq!(run(&[a, b], limits), whole, "split at {mid}");
    }
    if data.len() <= 1024 {
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(run(&bytes, limits), whole, "byte by byte");
    }
    whole
}

/// Encodes `payload` in chunks whose sizes come from `sizes`, with an extension on some
/// chunk lines and a trailer, followed by bytes of a next request that must stay unused.
fn encode(payload: &[u8], sizes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = payload;
    let mut i = 0;
    while !rest.is_empty() {
        let size = (sizes.get(i).copied().unwrap_or(7) as usize % 64 + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        match i % 3 {
            0 => out.extend_from_slice(format!("{size:x}\r\n").as_bytes()),
            1 => out.extend_from_slice(format!("{size:X};ext=\"v\"\r\n").as_bytes()),
            _ => out.extend_from_slice(format!("{size:x} \t;e\r\n").as_bytes()),
        }
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
        rest = tail;
        i += 1;
    }
    out.extend_from_slice(b"0\r\n");
    if sizes.len() % 2 == 1 {
        out.extend_from_slice(b"X-Trailer: yes\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fuzz_target!(|data: &[u8]| {
    // Small limits, so that every limit is reachable with short inputs.
    let small = Limits {
        max_header_bytes: 64,
        max_headers: 4,
        max_body: 256,
        max_chunk_line: 16,
        ..Limits::default()
    };
    check_splits(data, &small);
    check_splits(data, &Limits::default());

    // Round trip: the first byte says where the payload ends and the chunk sizes begin.
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let (payload, sizes) = rest.split_at((cut as usize).min(rest.len()));
    let mut encoded = encode(payload, sizes);
    let end = encoded.len();
    encoded.extend_from_slice(b"GET / HTTP/1.1\r\n");
    assert_eq!(
        check_splits(&encoded, &Limits::default()),
        Verdict::Done {
            body: payload.to_vec(),
            end
        },
        "round trip of {} bytes",
        payload.len()
    );
});

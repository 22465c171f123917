//! The RESP parser on arbitrary bytes: it must never panic, must respect its limits, and
//! its verdict must not depend on where the input is split (R15, R16).

#![no_main]

use libfuzzer_sys::fuzz_target;
use percore_kv::resp::{Limits, Parsed, Parser};

/// Feeds `reads` in turn, re-offering unconsumed bytes as the connection does; returns the
/// commands and the error, if any.
fn run(reads: &[&[u8]], limits: &Limits) -> Vec<Result<Vec<Vec<u8>>, String>> {
    let mut parser = Parser::new(limits.clone());
    let mut buffered = Vec::new();
    let mut seen = Vec::new();
    for read in reads {
        buffered.extend_from_slice(read);
        loop {
            let (consumed, parsed) = parser.feed(&buffered);
            assert!(consumed <= buffered.len());
            buffered.drain(..consumed);
            match parsed {
                Parsed::NeedMore => {
                    assert!(buffered.is_empty());
                    break;
                }
                Parsed::Command(args) => {
                    assert!(!args.is_empty());
                    for arg in &args {
                        assert!(arg.len() <= limits.max_bulk_len.max(limits.max_inline_len));
                    }
                    seen.push(Ok(args));
                }
                Parsed::Error(e) => {
                    seen.push(Err(e.message()));
                    return seen;
                }
            }
        }
    }
    seen
}

fuzz_target!(|data: &[u8]| {
    // Small limits, so that every limit is reachable with short inputs.
    let limits = Limits {
        max_bulk_len: 32,
        max_multibulk_len: 8,
        max_inline_len: 64,
    };
    let whole = run(&[data], &limits);
    let mid = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    assert_eq!(run(&[&data[..mid], &data[mid..]], &limits), whole, "split at {mid}");
    if data.len() <= 512 {
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(run(&bytes, &limits), whole, "byte by byte");
    }
    let _ = run(&[data], &Limits::default());
});

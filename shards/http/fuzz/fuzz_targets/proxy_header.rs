//! The PROXY protocol parser (`percore::net::proxy_protocol`) on any bytes: no panic; a
//! header's length lies within the input and the limits; the bytes before a header's end
//! always ask for more (a header is never decided early), and a header parses the same
//! whatever follows it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use percore::net::proxy_protocol::{ProxyLimits, Parsed, V1_MAX, parse};

fuzz_target!(|data: &[u8]| {
    let limits = ProxyLimits::default();
    let parsed = parse(data, &limits);
    match parsed {
        Ok(Parsed::Header { header, len }) => {
            assert!(len <= data.len());
            assert!(len <= V1_MAX.max(16 + limits.max_v2_len));
            // Exactly the header: the same answer.
            assert_eq!(parse(&data[..len], &limits), Ok(Parsed::Header { header, len }));
            // Any prefix of it: not decided yet, or (v1) refused for a bare LF / CR-X only
            // if the whole header could not have had it: so only `NeedMore`.
            for cut in 0..len {
                assert_eq!(parse(&data[..cut], &limits), Ok(Parsed::NeedMore), "cut {cut}");
            }
        }
        Ok(Parsed::NeedMore) => {
            assert!(data.len() < V1_MAX.max(16 + limits.max_v2_len));
        }
        Err(_) => {
            // Refused: more bytes never make it acceptable.
            let mut longer = data.to_vec();
            longer.extend_from_slice(b"\r\n\r\n");
            assert!(parse(&longer, &limits).is_err());
        }
    }
});

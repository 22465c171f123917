//! Message framing from a parsed head (RFC 9112 §6, §9.3; RFC 9110 §7.2, §10.1.1): how long
//! the body is, whether the connection persists, and what the client expects.
//!
//! These are the rules request smuggling attacks; every ambiguity is refused rather than
//! resolved, so no two parsers on a path can disagree about where a request ends:
//!
//! | Head | Verdict |
//! |---|---|
//! | `Content-Length` and `Transfer-Encoding` both | 400 |
//! | `Content-Length` twice (same value or not), empty, signed, hex, a list, over `u64` | 400 |
//! | `Transfer-Encoding` in an HTTP/1.0 request | 400 |
//! | `chunked` not the last coding, or twice (`chunked, gzip`) | 400 |
//! | empty or non-token coding (`chunked,`) | 400 |
//! | any other coding (`gzip, chunked`, `xchunked`, `identity`) | 501 |
//! | HTTP/1.1 without `Host`, or `Host` twice, or an invalid `Host` | 400 |
//! | `Expect` other than `100-continue` (HTTP/1.1) | 417 |

use crate::{
    HttpError, Version,
    chars::{is_host, is_token, list_elements, same_bytes},
    parser::{Field, FieldKind},
};

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyKind {
    /// No body (no `Content-Length`, or `Content-Length: 0`).
    None,
    /// `Content-Length: n`, n > 0.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the framing headers of a valid head say.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Framing {
    pub body: BodyKind,
    /// Whether the client asked to keep the connection open (before server-side limits).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request.
    pub expect_continue: bool,
}

/// The last `Host` value a connection found valid. A client repeats its `Host` on every
/// request of a keep-alive connection, so the next requests compare it (a few words)
/// instead of classifying each byte again (a table look-up per byte).
#[derive(Debug)]
pub(crate) struct KnownHost {
    len: usize,
    bytes: [u8; KnownHost::MAX],
}

impl Default for KnownHost {
    fn default() -> Self {
        // The empty value, which is a valid `Host` (for a target in authority-less form).
        KnownHost {
            len: 0,
            bytes: [0; KnownHost::MAX],
        }
    }
}

impl KnownHost {
    /// Longer values are checked every time (and not remembered).
    const MAX: usize = 64;

    /// Whether `value` is a valid `Host` value ([`is_host`]), remembering it when it is.
    #[inline]
    fn check(&mut self, value: &[u8]) -> bool {
        if self
            .bytes
            .get(..self.len)
            .is_some_and(|known| same_bytes(known, value))
        {
            return true;
        }
        if !is_host(value) {
            return false;
        }
        if let Some(slot) = self.bytes.get_mut(..value.len()) {
            slot.copy_from_slice(value);
            self.len = value.len();
        }
        true
    }
}

#[derive(Default)]
struct Seen {
    hosts: usize,
    content_length: Option<u64>,
    transfer_encoding: bool,
    chunked_count: usize,
    chunked_last: bool,
    other_coding: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    expect_other: bool,
}

/// Applies the framing rules to the fields of a syntactically valid head (`known_host`: the
/// connection's last valid `Host`).
pub(crate) fn analyze(
    head: &[u8],
    version: Version,
    fields: &[Field],
    known_host: &mut KnownHost,
) -> Result<Framing, HttpError> {
    let mut seen = Seen::default();
    for field in fields {
        let value = field.value.get(head);
        match field.kind {
            FieldKind::Host => {
                seen.hosts += 1;
                if seen.hosts > 1 {
                    return Err(HttpError::bad_request("more than one Host"));
                }
                if !known_host.check(value) {
                    return Err(HttpError::bad_request("invalid Host"));
                }
            }
            FieldKind::ContentLength => {
                if seen.content_length.is_some() {
                    return Err(HttpError::bad_request("more than one Content-Length"));
                }
                seen.content_length = Some(parse_content_length(value)?);
            }
            FieldKind::TransferEncoding => {
                if version == Version::Http10 {
                    return Err(HttpError::bad_request("Transfer-Encoding in HTTP/1.0"));
                }
                seen.transfer_encoding = true;
                transfer_codings(value, &mut seen)?;
            }
            FieldKind::Connection => {
                for option in list_elements(value) {
                    seen.close |= option.eq_ignore_ascii_case(b"close");
                    seen.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            FieldKind::Expect => {
                if value.eq_ignore_ascii_case(b"100-continue") {
                    seen.expect_continue = true;
                } else {
                    seen.expect_other = true;
                }
            }
            FieldKind::Other => {}
        }
    }
    decide(version, &seen)
}

fn decide(version: Version, seen: &Seen) -> Result<Framing, HttpError> {
    if version == Version::Http11 && seen.hosts == 0 {
        return Err(HttpError::bad_request(
            "missing Host (required in HTTP/1.1)",
        ));
    }
    if seen.transfer_encoding && seen.content_length.is_some() {
        return Err(HttpError::bad_request(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    let body = if seen.transfer_encoding {
        if seen.chunked_count > 1 || (seen.chunked_count == 1 && !seen.chunked_last) {
            return Err(HttpError::bad_request(
                "chunked must be the last transfer coding, once",
            ));
        }
        if seen.other_coding || seen.chunked_count == 0 {
            return Err(HttpError::unsupported_coding());
        }
        BodyKind::Chunked
    } else {
        match seen.content_length {
            None | Some(0) => BodyKind::None,
            Some(n) => BodyKind::Length(n),
        }
    };
    // RFC 9110 §10.1.1: an HTTP/1.0 server ignores expectations.
    let http11 = version == Version::Http11;
    if http11 && seen.expect_other {
        return Err(HttpError::expectation_failed());
    }
    Ok(Framing {
        body,
        keep_alive: !seen.close && (http11 || seen.keep_alive),
        expect_continue: http11 && seen.expect_continue && body != BodyKind::None,
    })
}

/// `1*DIGIT`, nothing else: no sign, no spaces inside, no list, no overflow.
fn parse_content_length(value: &[u8]) -> Result<u64, HttpError> {
    if value.is_empty() {
        return Err(HttpError::bad_request("empty Content-Length"));
    }
    value.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return Err(HttpError::bad_request("invalid Content-Length"));
        }
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(HttpError::bad_request("Content-Length overflows"))
    })
}

/// Records the codings of one `Transfer-Encoding` line (several lines form one list).
fn transfer_codings(value: &[u8], seen: &mut Seen) -> Result<(), HttpError> {
    for coding in list_elements(value) {
        // A coding may carry parameters (`;q=...` is for TE, not here): only bare tokens.
        if !is_token(coding) {
            return Err(HttpError::bad_request("invalid transfer coding"));
        }
        if coding.eq_ignore_ascii_case(b"chunked") {
            seen.chunked_count += 1;
            seen.chunked_last = true;
        } else {
            seen.other_coding = true;
            seen.chunked_last = false;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_values() {
        assert_eq!(parse_content_length(b"0"), Ok(0));
        assert_eq!(parse_content_length(b"007"), Ok(7));
        assert_eq!(parse_content_length(b"18446744073709551615"), Ok(u64::MAX));
        for bad in [
            &b""[..],
            b"+1",
            b"-1",
            b"0x10",
            b"1 2",
            b"1,1",
            b"18446744073709551616",
        ] {
            assert_eq!(
                parse_content_length(bad).map_err(|e| e.status),
                Err(400),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_remembered_host_gives_the_verdict_of_the_byte_classes() {
        let mut known = KnownHost::default();
        let base = b"127.0.0.1:18080-abc~".as_slice();
        let long = [b'a'; KnownHost::MAX + 1];
        for b in 0..=255u8 {
            for at in 0..base.len() {
                let mut value = base.to_vec();
                value[at] = b;
                // The valid base first, so that it is the one remembered, then each variant
                // twice (a valid variant is remembered in its turn), then the base again.
                assert!(known.check(base));
                assert_eq!(known.check(&value), is_host(&value), "{value:?}");
                assert_eq!(known.check(&value), is_host(&value), "{value:?}");
                assert!(known.check(base));
                // The prefix of the remembered value is not taken for it.
                assert_eq!(known.check(&value[..at]), is_host(&value[..at]));
            }
        }
        assert!(known.check(&long) && known.check(&long));
        let mut bad_long = long;
        bad_long[KnownHost::MAX] = b'/';
        assert!(!known.check(&bad_long) && !known.check(&bad_long));
        assert!(known.check(b""));
    }
}

//! Every bound the HTTP service enforces, in one struct.
//!
//! The parser and connection state machine enforce the byte and count limits themselves; the
//! time limits and the output bound are carried here so that one value configures the whole
//! service, and are enforced by the I/O layer that owns the clock and the socket.

use std::time::Duration;

/// Limits for one HTTP connection. [`Limits::default`] gives the values of
/// `RELIABILITY.md` (nginx/h2o/HAProxy-like).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line in bytes, its CRLF and any empty lines before it included;
    /// longer is answered `414 URI Too Long`. Default 8 KiB.
    pub max_request_line: usize,
    /// Largest header block in bytes (every field line with its CRLF, plus the final empty
    /// line), and likewise the largest trailer section of a chunked body; larger is answered
    /// `431 Request Header Fields Too Large`. Default 16 KiB.
    pub max_header_bytes: usize,
    /// Most header fields (and, separately, trailer fields); more is answered `431`.
    /// Default 100.
    pub max_headers: usize,
    /// Largest request body in bytes, declared (`Content-Length`) or decoded (chunked);
    /// larger is answered `413 Content Too Large`. Default 1 MiB.
    pub max_body: u64,
    /// Longest chunk-size line (size, extensions and CRLF) in a chunked body; longer is
    /// answered `400`. Default 4 KiB.
    pub max_chunk_line: usize,
    /// Most requests served on one connection: the last one is answered with
    /// `Connection: close` (R18). Default 1000.
    pub max_requests: u64,
    /// Output bytes above which [`Connection::serve`](crate::Connection::serve) stops taking
    /// further pipelined requests until the output drains (R17). Default 64 KiB.
    pub max_output: usize,
    /// I/O layer: time from the first byte of a request head to its end (R12). Default 10 s.
    pub header_timeout: Duration,
    /// I/O layer: how long a keep-alive connection may sit between requests (R18).
    /// Default 30 s.
    pub idle_timeout: Duration,
    /// I/O layer: how long pending output may make no progress before the connection is
    /// closed (R17). Default 10 s.
    pub write_timeout: Duration,
    /// I/O layer: the access log, one line per response (format in
    /// [`access_log`](crate::access_log)); `None` (the default) logs nothing and costs one
    /// branch per response.
    pub access_log: Option<crate::AccessLog>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_line: 8 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_body: 1024 * 1024,
            max_chunk_line: 4 * 1024,
            max_requests: 1000,
            max_output: 64 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            access_log: None,
        }
    }
}

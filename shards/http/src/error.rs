//! The one error type of the protocol core: a request that must be refused (or could not be
//! answered), with the status to answer it with. Every `HttpError` ends the connection after
//! its response.

use std::fmt;

/// A request the server refuses. The connection answers it with [`status`](Self::status)
/// (see [`write_error_response`](crate::write_error_response)) and then closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HttpError {
    /// 400, 408, 413, 414, 417, 431, 500, 501 or 505.
    pub status: u16,
    /// What was wrong, for logs and for the body of the error response.
    pub reason: &'static str,
}

impl HttpError {
    /// The one constructor: every refusal the service writes — the parser's, the limits',
    /// the header deadline's and a failed handler's — is built here, then written by
    /// [`write_error_response`](crate::write_error_response).
    pub const fn new(status: u16, reason: &'static str) -> Self {
        Self { status, reason }
    }

    /// A malformed or ambiguous request: `400 Bad Request`.
    pub const fn bad_request(reason: &'static str) -> Self {
        Self::new(400, reason)
    }

    /// A request head not complete within the header deadline: `408 Request Timeout`.
    pub const fn request_timeout() -> Self {
        Self::new(408, "request head not received in time")
    }

    /// A body over [`Limits::max_body`](crate::Limits::max_body): `413 Content Too Large`.
    pub const fn body_too_large() -> Self {
        Self::new(413, "request body too large")
    }

    /// A request line over [`Limits::max_request_line`](crate::Limits::max_request_line):
    /// `414 URI Too Long`.
    pub const fn line_too_long() -> Self {
        Self::new(414, "request line too long")
    }

    /// An `Expect` other than `100-continue`: `417 Expectation Failed`.
    pub const fn expectation_failed() -> Self {
        Self::new(417, "unsupported expectation")
    }

    /// A header block or trailer section over its byte or field limit:
    /// `431 Request Header Fields Too Large`.
    pub const fn headers_too_large(reason: &'static str) -> Self {
        Self::new(431, reason)
    }

    /// A handler that panicked: `500 Internal Server Error`.
    pub const fn handler_failed() -> Self {
        Self::new(500, "the handler failed")
    }

    /// A transfer coding other than `chunked`: `501 Not Implemented`.
    pub const fn unsupported_coding() -> Self {
        Self::new(501, "unsupported transfer coding")
    }

    /// A well-formed HTTP version other than 1.0 and 1.1: `505 HTTP Version Not Supported`.
    pub const fn version_not_supported() -> Self {
        Self::new(505, "unsupported HTTP version")
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status,
            reason_phrase(self.status),
            self.reason
        )
    }
}

impl std::error::Error for HttpError {}

/// The reason phrase written after `status` in a status line.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

//! The response writer: appends a complete HTTP/1.1 response to the connection's output
//! buffer, without allocating (integers are formatted on the stack; the output `Vec` keeps
//! its capacity between requests).
//!
//! The writer owns the framing headers — `Date`, `Content-Length`, `Connection` — so a
//! handler cannot get them wrong; fields it passes under those names, or that could split
//! the response (a name that is not a token, CR/LF or another control byte in a value), are
//! dropped.

use crate::{HttpError, Version, chars, error::reason_phrase};

/// A response to write: status, extra header fields, body.
#[derive(Clone, Copy, Debug)]
pub struct Response<'r> {
    /// 100..=999; anything else is written as 500.
    pub status: u16,
    /// Extra fields, e.g. `("Content-Type", "text/plain")`.
    pub headers: &'r [(&'r str, &'r str)],
    pub body: &'r [u8],
}

impl<'r> Response<'r> {
    /// A response with `status`, no extra fields, and `body`.
    pub const fn new(status: u16, body: &'r [u8]) -> Self {
        Self {
            status,
            headers: &[],
            body,
        }
    }
}

/// How a response must be framed for the request it answers; see
/// [`Request::response_framing`](crate::Request::response_framing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseFraming {
    /// `false` adds `Connection: close`; for an HTTP/1.0 client, `true` adds
    /// `Connection: keep-alive`.
    pub keep_alive: bool,
    /// The request was `HEAD`: headers as for `GET`, no body bytes.
    pub head_request: bool,
    pub version: Version,
}

/// The interim response that tells a client sending `Expect: 100-continue` to send its body.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Appends [`CONTINUE`] to `out`.
pub fn write_continue(out: &mut Vec<u8>) {
    out.extend_from_slice(CONTINUE);
}

/// Appends `response` to `out`, framed per `framing`, with `date` (an IMF-fixdate, see
/// [`http_date`](crate::http_date)) as its `Date`.
#[inline(always)]
pub fn write_response(
    out: &mut Vec<u8>,
    response: &Response<'_>,
    date: &[u8; 29],
    framing: ResponseFraming,
) {
    let fields = Fields {
        fixed: response.headers,
        owned: &[],
    };
    write_parts(out, response.status, fields, response.body, date, framing);
}

/// A response's extra fields: fixed ones, then computed ones (two plain slices rather than
/// one chained iterator, which the compiler does not unroll as well).
#[derive(Clone, Copy)]
pub(crate) struct Fields<'f> {
    pub(crate) fixed: &'f [(&'f str, &'f str)],
    pub(crate) owned: &'f [(&'static str, String)],
}

impl Fields<'_> {
    #[inline]
    fn len(&self) -> usize {
        let fixed: usize = self.fixed.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        let owned: usize = self.owned.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        fixed + owned
    }
}

/// [`write_response`] with fixed and computed fields. Inlined everywhere: with the computed
/// fields known to be none (a [`Response`]), their loop folds away.
#[inline(always)]
pub(crate) fn write_parts(
    out: &mut Vec<u8>,
    status: u16,
    fields: Fields<'_>,
    body: &[u8],
    date: &[u8; 29],
    framing: ResponseFraming,
) {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    // RFC 9110 §8.6, §15: no Content-Length on 1xx and 204; 304 has no body either.
    let bodyless = status < 200 || status == 204 || status == 304;
    let with_body = !bodyless && !framing.head_request;
    // One reservation for the whole response: the pieces below then copy without growing.
    let body_len = if with_body { body.len() } else { 0 };
    out.reserve(STATIC_HEAD_MAX + fields.len() + body_len);
    write_status_line_and_date(out, status, date);
    if !bodyless {
        out.extend_from_slice(b"\r\nContent-Length: ");
        write_u64(out, body.len() as u64);
    }
    out.extend_from_slice(b"\r\n");
    if !framing.keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if framing.version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    for &(name, value) in fields.fixed {
        if is_safe_field(name, value) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    for (name, value) in fields.owned {
        if is_safe_field(name, value) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    if with_body {
        out.extend_from_slice(body);
    }
}

/// Bytes of a response head besides its extra fields: the longest status line, `Date`,
/// `Content-Length` with 20 digits, `Connection: keep-alive`, the CRLFs.
const STATIC_HEAD_MAX: usize = 64 + 8 + 29 + 2 + 18 + 20 + 2 + 24 + 2;

/// `HTTP/1.1 <status> <reason>\r\nDate: <date>` (no CRLF after the date): the common
/// statuses as one constant piece.
#[inline]
fn write_status_line_and_date(out: &mut Vec<u8>, status: u16, date: &[u8; 29]) {
    // One copy per arm: each of a known length, which the compiler inlines, where one copy
    // of the chosen piece would be a `memcpy` call.
    match status {
        200 => out.extend_from_slice(b"HTTP/1.1 200 OK\r\nDate: "),
        204 => out.extend_from_slice(b"HTTP/1.1 204 No Content\r\nDate: "),
        304 => out.extend_from_slice(b"HTTP/1.1 304 Not Modified\r\nDate: "),
        400 => out.extend_from_slice(b"HTTP/1.1 400 Bad Request\r\nDate: "),
        404 => out.extend_from_slice(b"HTTP/1.1 404 Not Found\r\nDate: "),
        _ => {
            out.extend_from_slice(b"HTTP/1.1 ");
            write_u64(out, u64::from(status));
            out.push(b' ');
            out.extend_from_slice(reason_phrase(status).as_bytes());
            out.extend_from_slice(b"\r\nDate: ");
        }
    }
    out.extend_from_slice(date);
}

/// How the body of a streamed response is delimited on the wire (see
/// [`write_streaming_head`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamBody {
    /// The handler gave the length: `Content-Length`, then exactly that many bytes.
    Length(u64),
    /// HTTP/1.1, length unknown: `Transfer-Encoding: chunked`; each part is written with
    /// [`write_chunk`], the end with [`LAST_CHUNK`].
    Chunked,
    /// HTTP/1.0, length unknown: the body ends when the connection closes.
    CloseDelimited,
    /// No body bytes at all: a `HEAD` request, or a status without a body (1xx, 204, 304).
    Empty,
}

impl StreamBody {
    /// Whether the connection must close after this body (its end is the close).
    pub fn closes(self) -> bool {
        self == StreamBody::CloseDelimited
    }
}

/// The end of a chunked body: the zero-size chunk and an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends the head of a response whose body follows in parts, framed for the request per
/// `framing`: with `content_length` when the handler knows it, else chunked for HTTP/1.1
/// and close-delimited (with `Connection: close`) for HTTP/1.0. Returns how the body must be
/// written; a `HEAD` request gets the same head and no body.
pub fn write_streaming_head(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &str)],
    date: &[u8; 29],
    framing: ResponseFraming,
    content_length: Option<u64>,
) -> StreamBody {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    let bodyless = status < 200 || status == 204 || status == 304;
    let body = match (bodyless, content_length, framing.version) {
        (true, _, _) => StreamBody::Empty,
        (false, Some(n), _) => StreamBody::Length(n),
        (false, None, Version::Http11) => StreamBody::Chunked,
        (false, None, Version::Http10) => StreamBody::CloseDelimited,
    };
    write_status_line_and_date(out, status, date);
    out.extend_from_slice(b"\r\n");
    match body {
        StreamBody::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            write_u64(out, n);
            out.extend_from_slice(b"\r\n");
        }
        StreamBody::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        StreamBody::CloseDelimited | StreamBody::Empty => {}
    }
    if !framing.keep_alive || body.closes() {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if framing.version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    for &(name, value) in headers {
        if is_safe_field(name, value) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    if framing.head_request {
        StreamBody::Empty
    } else {
        body
    }
}

/// Appends `data` as one chunk of a chunked body (nothing for empty `data`: an empty chunk
/// would end the body).
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut digits = [0u8; 16];
    let mut start = digits.len();
    let mut n = data.len();
    loop {
        start -= 1;
        digits[start] = b"0123456789abcdef"[n % 16];
        n /= 16;
        if n == 0 {
            break;
        }
    }
    out.reserve(digits.len() - start + 4 + data.len());
    out.extend_from_slice(&digits[start..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the response to a refused request: its status, `Connection: close`, and the
/// reason as a short text body. The connection must close after it.
pub fn write_error_response(out: &mut Vec<u8>, error: HttpError, date: &[u8; 29]) {
    let response = Response {
        status: error.status,
        headers: &[("Content-Type", "text/plain")],
        body: error.reason.as_bytes(),
    };
    let framing = ResponseFraming {
        keep_alive: false,
        head_request: false,
        version: Version::Http11,
    };
    write_response(out, &response, date, framing);
}

#[inline]
fn is_safe_field(name: &str, value: &str) -> bool {
    // The names the writer owns all differ in length: one comparison at most.
    let owned: &str = match name.len() {
        4 => "date",
        10 => "connection",
        14 => "content-length",
        17 => "transfer-encoding",
        _ => "",
    };
    // `chars::is_token` without its early exit: a handler's names are nearly always valid,
    // and a loop without a branch per byte is one the compiler unrolls.
    let name_is_token =
        !name.is_empty() && name.bytes().fold(true, |ok, b| ok & chars::is_tchar(b));
    name_is_token && !owned.eq_ignore_ascii_case(name) && chars::is_field_value(value.as_bytes())
}

/// `00` to `99`: two digits per division.
static DIGIT_PAIRS: [[u8; 2]; 100] = {
    let mut pairs = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        pairs[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    pairs
};

/// Appends the decimal digits of `n`.
#[inline]
pub(crate) fn write_u64(out: &mut Vec<u8>, n: u64) {
    // Short bodies (most responses): one or two digits without the general loop.
    if n < 10 {
        out.push(b'0' + n as u8);
    } else if n < 100 {
        out.extend_from_slice(&DIGIT_PAIRS[n as usize]);
    } else {
        write_u64_long(out, n);
    }
}

#[inline(never)]
fn write_u64_long(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    while n >= 100 {
        start -= 2;
        digits[start..start + 2].copy_from_slice(&DIGIT_PAIRS[(n % 100) as usize]);
        n /= 100;
    }
    if n >= 10 {
        start -= 2;
        digits[start..start + 2].copy_from_slice(&DIGIT_PAIRS[n as usize]);
    } else {
        start -= 1;
        digits[start] = b'0' + n as u8;
    }
    // A few bytes pushed one by one beat a `memcpy` call for so short a copy (it showed in
    // profiles of pipelined requests).
    out.reserve(digits.len() - start);
    for &digit in &digits[start..] {
        out.push(digit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &[u8; 29] = b"Sun, 06 Nov 1994 08:49:37 GMT";
    const KEEP: ResponseFraming = ResponseFraming {
        keep_alive: true,
        head_request: false,
        version: Version::Http11,
    };

    fn written(response: &Response<'_>, framing: ResponseFraming) -> String {
        let mut out = Vec::new();
        write_response(&mut out, response, DATE, framing);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn integers() {
        let powers = (0..20).map(|e| 10u64.pow(e));
        let around_powers = powers.flat_map(|p| [p - 1, p, p + 1]);
        let extremes = [u64::MAX, u64::MAX - 1, 1234567890, 9876543210123456789];
        for n in (0..100_000).chain(around_powers).chain(extremes) {
            let mut out = Vec::new();
            write_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn keep_alive_response() {
        let response = Response {
            status: 200,
            headers: &[("Content-Type", "text/plain")],
            body: b"hi",
        };
        assert_eq!(
            written(&response, KEEP),
            "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 2\r\n\
             Content-Type: text/plain\r\n\r\nhi"
        );
    }

    #[test]
    fn head_close_and_http10() {
        let response = Response::new(404, b"nope");
        let head = ResponseFraming {
            keep_alive: false,
            head_request: true,
            ..KEEP
        };
        let text = written(&response, head);
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"));
        let http10 = ResponseFraming {
            version: Version::Http10,
            ..KEEP
        };
        assert!(written(&response, http10).ends_with("Connection: keep-alive\r\n\r\nnope"));
    }

    #[test]
    fn bodyless_statuses_and_unsafe_fields() {
        let response = Response {
            status: 204,
            headers: &[
                ("X-Evil", "a\r\nSet-Cookie: x"),
                ("Content-Length", "9"),
                ("DATE", "x"),
                ("transfer-Encoding", "chunked"),
                ("connection", "keep-alive"),
                ("Bad Name", "v"),
                ("X-Ok", "v"),
            ],
            body: b"ignored",
        };
        assert_eq!(
            written(&response, KEEP),
            "HTTP/1.1 204 No Content\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nX-Ok: v\r\n\r\n"
        );
        assert!(written(&Response::new(42, b""), KEEP).starts_with("HTTP/1.1 500 "));
    }

    #[test]
    fn a_field_name_is_written_only_if_it_is_a_token() {
        for c in (0..=255u8).map(char::from) {
            for at in 0..12 {
                let mut name: Vec<char> = "X-Custom-Abc".chars().collect();
                name[at] = c;
                let name: String = name.into_iter().collect();
                assert_eq!(
                    is_safe_field(&name, "v"),
                    chars::is_token(name.as_bytes()),
                    "{name:?}"
                );
            }
        }
        assert!(!is_safe_field("", "v"));
    }

    #[test]
    fn every_status_line_matches_its_reason_phrase() {
        for status in 100..=999u16 {
            let text = written(&Response::new(status, b""), KEEP);
            let line = format!(
                "HTTP/1.1 {status} {}\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
                reason_phrase(status)
            );
            assert!(text.starts_with(&line), "{text:?}");
        }
    }

    #[test]
    fn streaming_heads_and_chunks() {
        let head = |framing, length| {
            let mut out = Vec::new();
            let body = write_streaming_head(
                &mut out,
                200,
                &[("Content-Type", "text/plain"), ("Content-Length", "1")],
                DATE,
                framing,
                length,
            );
            (String::from_utf8(out).unwrap(), body)
        };
        let start = "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n";
        assert_eq!(
            head(KEEP, None),
            (
                format!("{start}Transfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"),
                StreamBody::Chunked
            )
        );
        assert_eq!(
            head(KEEP, Some(12)),
            (
                format!("{start}Content-Length: 12\r\nContent-Type: text/plain\r\n\r\n"),
                StreamBody::Length(12)
            )
        );
        let http10 = ResponseFraming {
            version: Version::Http10,
            ..KEEP
        };
        assert_eq!(
            head(http10, None),
            (
                format!("{start}Connection: close\r\nContent-Type: text/plain\r\n\r\n"),
                StreamBody::CloseDelimited
            )
        );
        assert_eq!(
            head(http10, Some(3)).0,
            format!(
                "{start}Content-Length: 3\r\nConnection: keep-alive\r\nContent-Type: text/plain\r\n\r\n"
            )
        );
        let head_request = ResponseFraming {
            head_request: true,
            ..KEEP
        };
        let (text, body) = head(head_request, None);
        assert!(text.contains("Transfer-Encoding: chunked\r\n"), "{text}");
        assert_eq!(body, StreamBody::Empty);
        let mut out = Vec::new();
        assert_eq!(
            write_streaming_head(&mut out, 204, &[], DATE, KEEP, None),
            StreamBody::Empty
        );
        assert!(!String::from_utf8(out).unwrap().contains("chunked"));

        let mut out = Vec::new();
        write_chunk(&mut out, b"hello");
        write_chunk(&mut out, b"");
        write_chunk(&mut out, &[b'x'; 300]);
        out.extend_from_slice(LAST_CHUNK);
        let want = [
            &b"5\r\nhello\r\n12c\r\n"[..],
            &[b'x'; 300],
            b"\r\n0\r\n\r\n",
        ]
        .concat();
        assert_eq!(out, want);
    }

    #[test]
    fn error_response_closes() {
        let mut out = Vec::new();
        write_error_response(&mut out, HttpError::line_too_long(), DATE);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 414 URI Too Long\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nrequest line too long"));
    }
}

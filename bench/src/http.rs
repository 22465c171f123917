//! `percore-bench http`: HTTP/1.1 load. Every request is the same bytes, built once; the
//! responses are cut apart by our own parser (`parse`), so pipelined answers are matched to
//! their requests in order, and a wrong status, a truncated body or bytes that are not HTTP
//! are each counted.

pub mod parse;

use std::net::SocketAddr;

use self::parse::{ResponseParser, StatusSet, Step};
use crate::load::{AtEof, Parsed, Protocol};

/// What to ask for.
#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// `Host` header value (default: the target address).
    pub host: Option<String>,
    /// Extra header lines, `Name: value`.
    pub headers: Vec<String>,
    pub body: Vec<u8>,
    /// Statuses that count as success.
    pub expect: StatusSet,
}

impl Default for HttpRequest {
    fn default() -> Self {
        HttpRequest {
            method: "GET".into(),
            path: "/".into(),
            host: None,
            headers: Vec::new(),
            body: Vec::new(),
            expect: StatusSet::default(),
        }
    }
}

/// The HTTP protocol for the load engine.
pub struct Http {
    request: Vec<u8>,
    head_requests: bool,
    expect: StatusSet,
}

impl Http {
    /// Builds the request bytes; checks the parts that could break the framing.
    pub fn new(target: SocketAddr, req: &HttpRequest) -> Result<Self, String> {
        let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        if !token(&req.method) {
            return Err(format!("bad method `{}`", req.method));
        }
        if !token(&req.path) {
            return Err(format!(
                "bad path `{}` (no spaces or control bytes)",
                req.path
            ));
        }
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            req.method,
            req.path,
            req.host.clone().unwrap_or_else(|| target.to_string())
        );
        for header in &req.headers {
            let Some((name, value)) = header.split_once(':') else {
                return Err(format!("bad header `{header}` (use `Name: value`)"));
            };
            if !token(name) || value.contains(['\r', '\n']) {
                return Err(format!("bad header `{header}`"));
            }
            if name.eq_ignore_ascii_case("content-length")
                || name.eq_ignore_ascii_case("transfer-encoding")
            {
                return Err(format!(
                    "`{name}` is set from --body; do not pass it as a header"
                ));
            }
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value.trim());
            head.push_str("\r\n");
        }
        if !req.body.is_empty() || matches!(req.method.as_str(), "POST" | "PUT" | "PATCH") {
            head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(&req.body);
        Ok(Http {
            request,
            head_requests: req.method.eq_ignore_ascii_case("HEAD"),
            expect: req.expect.clone(),
        })
    }

    /// The bytes of one request.
    pub fn request_bytes(&self) -> &[u8] {
        &self.request
    }
}

impl Protocol for Http {
    type Conn = ResponseParser;

    fn name(&self) -> &'static str {
        "http"
    }

    fn alpn(&self) -> &'static [&'static [u8]] {
        &[b"http/1.1"]
    }

    fn conn(&self, _id: usize) -> ResponseParser {
        ResponseParser::new(self.head_requests)
    }

    fn write_request(&self, _conn: &mut ResponseParser, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.request);
    }

    fn parse(&self, conn: &mut ResponseParser, data: &[u8]) -> (usize, Parsed) {
        let (consumed, step) = conn.parse(data, &self.expect);
        let parsed = match step {
            Step::More => Parsed::More,
            Step::Response { ok, close, .. } => Parsed::Response { ok, close },
            Step::Invalid => Parsed::Invalid,
        };
        (consumed, parsed)
    }

    fn at_eof(&self, conn: &mut ResponseParser, unconsumed: usize) -> AtEof {
        if let Some(ok) = conn.until_close() {
            return AtEof::Complete { ok };
        }
        if conn.at_boundary() && unconsumed == 0 {
            AtEof::Closed
        } else {
            AtEof::Truncated
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes_carry_host_headers_and_body_length() {
        let target: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let http = Http::new(
            target,
            &HttpRequest {
                method: "POST".into(),
                path: "/echo".into(),
                headers: vec!["X-A: 1".into()],
                body: b"hi".to_vec(),
                ..HttpRequest::default()
            },
        )
        .unwrap();
        assert_eq!(
            http.request_bytes(),
            b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nhi"
        );
        let get = Http::new(target, &HttpRequest::default()).unwrap();
        assert_eq!(
            get.request_bytes(),
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
        );
        for bad in [
            HttpRequest {
                path: "/a b".into(),
                ..HttpRequest::default()
            },
            HttpRequest {
                headers: vec!["NoColon".into()],
                ..HttpRequest::default()
            },
            HttpRequest {
                headers: vec!["Content-Length: 5".into()],
                ..HttpRequest::default()
            },
        ] {
            assert!(Http::new(target, &bad).is_err());
        }
    }
}

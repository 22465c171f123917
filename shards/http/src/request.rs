//! [`Request`]: a borrowed view of one complete request — head and body — as handed out by
//! [`Connection::feed`](crate::Connection::feed). Nothing in it is copied or allocated.

use std::fmt;

use crate::{
    BodyKind, PathParams, Version,
    framing::Framing,
    parser::{HeadParser, RequestLine},
    response::ResponseFraming,
};

/// One complete request. Field values are trimmed of surrounding whitespace; names keep the
/// client's case and are matched case-insensitively by [`header`](Self::header).
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub(crate) head: &'a [u8],
    /// The request line and the fields, as the connection's parser found them (one
    /// reference rather than two: a `Request` is moved several times per request).
    pub(crate) parser: &'a HeadParser,
    pub(crate) framing: &'a Framing,
    pub(crate) body: &'a [u8],
    pub(crate) keep_alive: bool,
    /// The path parameters of the matched route, set by the router.
    pub(crate) params: Option<&'a PathParams<'a, 'a>>,
    /// The client's address, as the connection knows it.
    pub(crate) client: Option<&'a std::net::SocketAddr>,
}

impl<'a> Request<'a> {
    fn line(&self) -> &'a RequestLine {
        &self.parser.line
    }

    /// The method token, e.g. `GET` (case-sensitive, any valid token).
    pub fn method(&self) -> &'a [u8] {
        self.line().method.get(self.head)
    }

    /// The request target as sent.
    pub fn target(&self) -> &'a [u8] {
        self.line().target.get(self.head)
    }

    /// The path of the target (`*` for asterisk-form; `/` for an absolute-form target with
    /// an empty path), without the query.
    pub fn path(&self) -> &'a [u8] {
        match self.line().path.get(self.head) {
            b"" => b"/",
            path => path,
        }
    }

    /// The query of the target, after `?`.
    pub fn query(&self) -> Option<&'a [u8]> {
        self.line().query.map(|span| span.get(self.head))
    }

    /// The authority of an absolute-form target (`http://authority/path`).
    pub fn authority(&self) -> Option<&'a [u8]> {
        self.line().authority.map(|span| span.get(self.head))
    }

    /// HTTP/1.0 or HTTP/1.1.
    pub fn version(&self) -> Version {
        self.line().version
    }

    /// Every header field, in order, as `(name, value)`.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let head = self.head;
        self.parser
            .fields
            .iter()
            .map(move |field| (field.name.get(head), field.value.get(head)))
    }

    /// The value of the first field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|(field, _)| field.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value)
    }

    /// How the body was delimited.
    pub fn body_kind(&self) -> BodyKind {
        self.framing.body
    }

    /// The body, decoded if it was chunked (trailers are checked and dropped).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Whether this is a `HEAD` request: its response carries no body.
    pub fn is_head(&self) -> bool {
        self.method() == b"HEAD"
    }

    /// Whether the client sent `Expect: 100-continue` (HTTP/1.1, with a body).
    pub fn expect_continue(&self) -> bool {
        self.framing.expect_continue
    }

    /// Whether the connection stays open after this request's response: the client asked
    /// for it and no server limit (max requests, drain) ends it.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// The percent-decoded value of the matched route's parameter `name` (`/users/{id}` →
    /// `id`); `None` outside a route with that parameter.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params?.get(name)
    }

    /// The client's address: the real client behind a trusted proxy that sent a PROXY
    /// protocol header (`--proxy-protocol`), else the peer of the connection; `None` when
    /// the request was parsed without a socket (a `Connection` fed by hand).
    pub fn client_addr(&self) -> Option<std::net::SocketAddr> {
        self.client.copied()
    }

    /// Every path parameter of the matched route, as `(name, percent-decoded value)`.
    pub fn params(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.params.into_iter().flat_map(|params| params.iter())
    }

    /// This request with the router's path parameters.
    pub(crate) fn with_params<'s>(&self, params: &'s PathParams<'s, 's>) -> Request<'s>
    where
        'a: 's,
    {
        Request {
            params: Some(params),
            ..*self
        }
    }

    /// How a response to this request must be framed.
    pub fn response_framing(&self) -> ResponseFraming {
        ResponseFraming {
            keep_alive: self.keep_alive,
            head_request: self.is_head(),
            version: self.version(),
        }
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &String::from_utf8_lossy(self.method()))
            .field("target", &String::from_utf8_lossy(self.target()))
            .field("version", &self.version())
            .field("headers", &self.parser.fields.len())
            .field("body_len", &self.body.len())
            .field("keep_alive", &self.keep_alive)
            .finish()
    }
}

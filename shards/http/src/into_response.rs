//! Owned responses: what a router handler returns. [`IntoResponse`] turns the usual return
//! values — a `String`, a `&'static str`, bytes, `(Status, body)`, [`Json`] with the `serde`
//! feature — into an [`OwnedResponse`], so a handler returns what it computed without
//! borrowing from anything. Fixed parts (a `&'static` body, `&'static` fields) stay borrowed:
//! a constant response allocates nothing.

use std::borrow::Cow;

use crate::{
    Response, ResponseFraming,
    response::{Fields, write_parts},
};

/// A response status code, e.g. [`Status::NOT_FOUND`]; `Status(418)` for any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Status(pub u16);

impl Status {
    pub const OK: Status = Status(200);
    pub const CREATED: Status = Status(201);
    pub const ACCEPTED: Status = Status(202);
    pub const NO_CONTENT: Status = Status(204);
    pub const MOVED_PERMANENTLY: Status = Status(301);
    pub const FOUND: Status = Status(302);
    pub const SEE_OTHER: Status = Status(303);
    pub const BAD_REQUEST: Status = Status(400);
    pub const UNAUTHORIZED: Status = Status(401);
    pub const FORBIDDEN: Status = Status(403);
    pub const NOT_FOUND: Status = Status(404);
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    pub const CONFLICT: Status = Status(409);
    pub const UNPROCESSABLE_CONTENT: Status = Status(422);
    pub const TOO_MANY_REQUESTS: Status = Status(429);
    pub const INTERNAL_SERVER_ERROR: Status = Status(500);
    pub const SERVICE_UNAVAILABLE: Status = Status(503);
}

/// A response body: fixed (`&'static`, no allocation) or owned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Body(Cow<'static, [u8]>);

impl Body {
    /// The body's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Self {
        Body(Cow::Borrowed(bytes))
    }
}

impl<const N: usize> From<&'static [u8; N]> for Body {
    fn from(bytes: &'static [u8; N]) -> Self {
        Body(Cow::Borrowed(bytes))
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Body(Cow::Borrowed(text.as_bytes()))
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body(Cow::Owned(bytes))
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Body(Cow::Owned(text.into_bytes()))
    }
}

/// A complete response that owns (or statically borrows) its parts: what router handlers,
/// sync or async, return through [`IntoResponse`].
#[derive(Clone, Debug)]
pub struct OwnedResponse {
    pub status: u16,
    /// Fields fixed at compile time, written first.
    pub static_headers: &'static [(&'static str, &'static str)],
    /// Fields computed per response, written after `static_headers`.
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl OwnedResponse {
    /// A response with `status`, no fields, and `body`.
    pub fn new(status: u16, body: impl Into<Body>) -> Self {
        OwnedResponse {
            status,
            static_headers: &[],
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a field computed at run time.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Appends the response to `out`.
    #[inline]
    pub(crate) fn write(&self, out: &mut Vec<u8>, date: &[u8; 29], framing: ResponseFraming) {
        let fields = Fields {
            fixed: self.static_headers,
            owned: &self.headers,
        };
        write_parts(
            out,
            self.status,
            fields,
            self.body.as_bytes(),
            date,
            framing,
        );
    }
}

const TEXT: &[(&str, &str)] = &[("Content-Type", "text/plain; charset=utf-8")];
const BYTES: &[(&str, &str)] = &[("Content-Type", "application/octet-stream")];

/// What a router handler may return: anything that becomes an [`OwnedResponse`].
///
/// | Returned | Response |
/// |---|---|
/// | `String`, `&'static str` | 200, `text/plain; charset=utf-8` |
/// | `Vec<u8>`, `&'static [u8]` | 200, `application/octet-stream` |
/// | `(Status, body)` | the body's response with that status |
/// | `Response<'static>` | as given (fixed fields and body, nothing copied) |
/// | `OwnedResponse` | as given |
/// | `Result<T, E>` | `T`'s or `E`'s response |
/// | `Json<T>` (feature `serde`) | 200, `application/json`; 500 if `T` fails to serialize |
pub trait IntoResponse: Sized {
    fn into_response(self) -> OwnedResponse;

    /// Appends the response to `out` for a request framed per `framing`; returns its
    /// status. What a sync route does with its handler's value: the default converts it
    /// first; constant responses and text write themselves without the conversion.
    #[inline]
    fn write_response(self, out: &mut Vec<u8>, date: &[u8; 29], framing: ResponseFraming) -> u16 {
        let response = self.into_response();
        response.write(out, date, framing);
        response.status
    }
}

impl IntoResponse for OwnedResponse {
    #[inline]
    fn into_response(self) -> OwnedResponse {
        self
    }
}

impl IntoResponse for Response<'static> {
    #[inline]
    fn into_response(self) -> OwnedResponse {
        OwnedResponse {
            status: self.status,
            static_headers: self.headers,
            headers: Vec::new(),
            body: Body::from(self.body),
        }
    }

    // Always inlined into the route's handler: a response built of constants (the usual
    // sync route) then has its header checks and status line folded at compile time.
    #[inline(always)]
    fn write_response(self, out: &mut Vec<u8>, date: &[u8; 29], framing: ResponseFraming) -> u16 {
        crate::write_response(out, &self, date, framing);
        self.status
    }
}

impl IntoResponse for String {
    fn into_response(self) -> OwnedResponse {
        text(self.into())
    }

    #[inline]
    fn write_response(self, out: &mut Vec<u8>, date: &[u8; 29], framing: ResponseFraming) -> u16 {
        let fields = Fields {
            fixed: TEXT,
            owned: &[],
        };
        write_parts(out, 200, fields, self.as_bytes(), date, framing);
        200
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> OwnedResponse {
        text(self.into())
    }

    #[inline]
    fn write_response(self, out: &mut Vec<u8>, date: &[u8; 29], framing: ResponseFraming) -> u16 {
        let fields = Fields {
            fixed: TEXT,
            owned: &[],
        };
        write_parts(out, 200, fields, self.as_bytes(), date, framing);
        200
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> OwnedResponse {
        bytes(self.into())
    }
}

impl IntoResponse for &'static [u8] {
    fn into_response(self) -> OwnedResponse {
        bytes(self.into())
    }
}

impl<B: IntoResponse> IntoResponse for (Status, B) {
    fn into_response(self) -> OwnedResponse {
        let mut response = self.1.into_response();
        response.status = self.0.0;
        response
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> OwnedResponse {
        match self {
            Ok(ok) => ok.into_response(),
            Err(err) => err.into_response(),
        }
    }
}

fn text(body: Body) -> OwnedResponse {
    OwnedResponse {
        static_headers: TEXT,
        ..OwnedResponse::new(200, body)
    }
}

fn bytes(body: Body) -> OwnedResponse {
    OwnedResponse {
        static_headers: BYTES,
        ..OwnedResponse::new(200, body)
    }
}

/// A JSON response body: `Json(value)` serializes `value` with `serde_json`.
#[cfg(feature = "serde")]
#[derive(Clone, Copy, Debug)]
pub struct Json<T>(pub T);

#[cfg(feature = "serde")]
impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> OwnedResponse {
        const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];
        match serde_json::to_vec(&self.0) {
            Ok(body) => OwnedResponse {
                static_headers: JSON,
                ..OwnedResponse::new(200, body)
            },
            Err(_) => OwnedResponse {
                static_headers: TEXT,
                ..OwnedResponse::new(500, "the response could not be serialized\n")
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Version, http_date_from_unix};

    /// The response as written, checking that writing it directly (what a sync route does)
    /// and converting it first (what an async one does) agree.
    fn written<R: IntoResponse + Clone>(response: R) -> String {
        let framing = ResponseFraming {
            keep_alive: true,
            head_request: false,
            version: Version::Http11,
        };
        let date = http_date_from_unix(0);
        let mut direct = Vec::new();
        let status = response.clone().write_response(&mut direct, &date, framing);
        let mut converted = Vec::new();
        let owned = response.into_response();
        owned.write(&mut converted, &date, framing);
        assert_eq!(direct, converted);
        assert_eq!(status, owned.status);
        String::from_utf8(direct).unwrap()
    }

    #[test]
    fn text_and_bytes_get_a_content_type_and_their_length() {
        let text = written(format!("user {}", 7));
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 6\r\n"), "{text}");
        assert!(text.contains("Content-Type: text/plain; charset=utf-8\r\n"));
        assert!(text.ends_with("\r\n\r\nuser 7"));
        let bytes = written(vec![1u8, 2, 3]);
        assert!(bytes.contains("Content-Type: application/octet-stream\r\n"));
        assert!(bytes.ends_with("\r\n\r\n\x01\x02\x03"));
    }

    #[test]
    fn constant_responses_are_written_as_given() {
        let text = written("constant");
        assert!(text.contains("Content-Type: text/plain; charset=utf-8\r\n"));
        assert!(text.ends_with("\r\n\r\nconstant"));
        let fixed = written(Response {
            status: 202,
            headers: &[("X-Fixed", "yes")],
            body: b"queued",
        });
        assert!(fixed.starts_with("HTTP/1.1 202 Accepted\r\n"), "{fixed}");
        assert!(fixed.contains("X-Fixed: yes\r\n"));
        assert!(fixed.ends_with("\r\n\r\nqueued"));
    }

    #[test]
    fn a_status_pair_overrides_the_status_and_keeps_the_body() {
        let created = written((Status::CREATED, "made"));
        assert!(created.starts_with("HTTP/1.1 201 Created\r\n"), "{created}");
        assert!(created.ends_with("made"));
        let err: Result<&'static str, (Status, String)> =
            Err((Status::NOT_FOUND, "no user 9".to_string()));
        let missing = written(err);
        assert!(missing.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(missing.ends_with("no user 9"));
    }

    #[test]
    fn fixed_and_computed_fields_are_both_written() {
        let response = OwnedResponse {
            static_headers: &[("X-Fixed", "1")],
            ..OwnedResponse::new(200, "ok")
        }
        .header("X-Computed", 2.to_string());
        let out = written(response);
        assert!(out.contains("X-Fixed: 1\r\nX-Computed: 2\r\n"), "{out}");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_is_serialized_with_its_content_type() {
        let out = written(Json(serde_json::json!({"id": 7})));
        assert!(out.contains("Content-Type: application/json\r\n"), "{out}");
        assert!(out.ends_with(r#"{"id":7}"#));
    }
}

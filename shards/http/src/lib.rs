//! percore's HTTP/1.1 protocol core, sans-IO: bytes in, requests and actions out, responses
//! appended to an output buffer. No sockets, no clock, no allocation per request on the
//! keep-alive path; the I/O layer drives it through `TcpStream::respond_with`:
//!
//! ```
//! use percore_http::{Connection, Limits, Response, http_date};
//!
//! let mut conn = Connection::new(Limits::default());
//! let date = http_date(std::time::SystemTime::now());
//! let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n";
//! let mut out = Vec::new();
//! // Inside `stream.respond_with(|input, out| ...)`: every request in the read is answered,
//! // in order, into one output buffer.
//! let consumed = conn.serve(input, &mut out, &date, |req| Response::new(200, req.path()));
//! assert_eq!(consumed, input.len());
//! assert_eq!(conn.requests_served(), 2);
//! assert!(!conn.should_close());
//! ```
//!
//! - [`Connection`]: the per-connection state machine ([`Connection::feed`] gives one
//!   [`Event`] at a time; [`Connection::serve`] answers a whole read with a handler).
//! - [`Request`]: a borrowed view of a complete request.
//! - [`write_response`], [`write_error_response`], [`write_continue`]: the response writer;
//!   [`write_streaming_head`] and [`write_chunk`] for a body sent in parts.
//! - [`Router`]: method + path (with parameters: `/users/{id}`, `/static/{*path}`) to sync,
//!   borrowing, async or streaming handlers ([`ResponseWriter`]); handlers return anything
//!   [`IntoResponse`] (`String`, `(Status, body)`, [`OwnedResponse`], `Json` with the
//!   `serde` feature).
//! - [`service`]: the I/O layer that serves a router on percore's shards.
//! - [`http_date`], [`DateCache`]: the `Date` value.
//! - [`Limits`]: every bound, with the defaults of `RELIABILITY.md`.
//!
//! Framing is strict (R14): anything two HTTP parsers could read differently is refused
//! with 400 (see the `framing` module's table), an unknown transfer coding with 501, and
//! oversized parts with 413/414/431. Every verdict is the same wherever the reads break
//! (R15), and after an error the connection writes nothing more.

#![forbid(unsafe_code)]

pub mod access_log;
mod chars;
mod chunked;
mod connection;
mod date;
pub mod demo;
mod error;
mod framing;
mod into_response;
mod limits;
mod offload;
mod params;
mod parser;
mod request;
mod response;
mod router;
pub mod service;
mod streaming;

pub use access_log::AccessLog;
/// The chunked body decoder on its own, for its fuzz target (`fuzz/fuzz_targets/chunked.rs`);
/// not a stable API: services get decoded bodies from [`Connection`].
#[doc(hidden)]
pub use chunked::ChunkedDecoder;
pub use connection::{Connection, Event};
pub use date::{DateCache, http_date, http_date_from_unix};
pub use error::{HttpError, reason_phrase};
pub use framing::BodyKind;
#[cfg(feature = "serde")]
pub use into_response::Json;
pub use into_response::{Body, IntoResponse, OwnedResponse, Status};
pub use limits::Limits;
pub use offload::{DEFAULT_BUDGET, Offload, OffloadStats, RETRY_AFTER};
pub use params::PathParams;
pub use parser::Version;
pub use request::Request;
pub use response::{
    CONTINUE, LAST_CHUNK, Response, ResponseFraming, StreamBody, write_chunk, write_continue,
    write_error_response, write_response, write_streaming_head,
};
pub use router::{
    AsyncHandler, Found, Handler, Match, OwnedRequest, RefHandler, RouteError, Router,
    StreamHandler, query_param,
};
pub use streaming::{ResponseWriter, StreamClosed};

/// The README's example, compiled and run as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

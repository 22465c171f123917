//! Dispatch: one pass over a read's input, each request to its route. Sync routes are
//! answered in place; the first request for an async or streaming route is handed to a task
//! and ends the pass (later pipelined requests wait for its response, so responses stay in
//! order); a panicking sync handler gets `500` and ends the connection.

use std::{
    cell::RefCell,
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    rc::Rc,
};

use percore::task::label::Label;

use crate::{
    AccessLog, Connection, Found, HttpError, Match, OwnedRequest, OwnedResponse, Request,
    ResponseFraming, ResponseWriter, Router,
    access_log::{Line, Started},
    connection::Responder,
    router::answer_in_place,
    streaming, write_error_response,
};

/// An async handler's response to come.
pub(super) type PendingResponse = Pin<Box<dyn Future<Output = OwnedResponse>>>;

/// A response a task will produce; the connection answers nothing else until it is written.
pub(super) enum Pending {
    /// An async handler's future, the framing its response needs, its route's label and
    /// what the access log keeps of the request (when it is on).
    Async(
        PendingResponse,
        ResponseFraming,
        Label,
        Option<Box<Started>>,
    ),
    /// A streaming handler's future, the state it shares with its writer, the framing and
    /// the route's label, and what the access log keeps of the request.
    Stream(
        Pin<Box<dyn Future<Output = ()>>>,
        Rc<RefCell<streaming::Shared>>,
        ResponseFraming,
        Label,
        Option<Box<Started>>,
    ),
}

/// How a pass over the input ended.
pub(super) enum PassEnd {
    /// Every complete request was answered (or the output is full, or the connection must
    /// close: [`Connection::should_close`] says which).
    Served,
    /// A request went to a task; the rest of the input waits for its response.
    Handoff(Pending),
    /// A sync handler panicked: it got `500`, and the connection closes.
    Panicked,
}

/// The router as the [`Responder`] of one pass.
struct Dispatch<'p, C> {
    router: &'p Router,
    count: &'p C,
    max_output: usize,
    end: PassEnd,
    /// The access log, when it is on, and the client for lines without a request.
    log: Option<(AccessLog, Option<std::net::SocketAddr>)>,
}

impl<C: Fn(u16)> Responder for Dispatch<'_, C> {
    #[inline]
    fn respond(&mut self, request: &Request<'_>, out: &mut Vec<u8>, date: &[u8; 29]) -> bool {
        let matched = self.router.find(request);
        match matched.found {
            Found::Async(handler, label) => {
                let future = handler(owned(request, &matched));
                let framing = request.response_framing();
                let started = self.log.as_ref().map(|_| Started::of(request));
                self.end = PassEnd::Handoff(Pending::Async(future, framing, label, started));
                false
            }
            Found::Stream(handler, label) => {
                let (writer, shared) = ResponseWriter::new(self.max_output);
                let future = handler(owned(request, &matched), writer);
                let framing = request.response_framing();
                let started = self.log.as_ref().map(|_| Started::of(request));
                self.end =
                    PassEnd::Handoff(Pending::Stream(future, shared, framing, label, started));
                false
            }
            _ => {
                let before = out.len();
                let respond = || answer_in_place(&matched, request, out, date);
                let (status, served) = match catch_unwind(AssertUnwindSafe(respond)) {
                    Ok(status) => (status.unwrap_or(500), true),
                    Err(_) => {
                        // The panic was already reported by the panic hook; answer and close.
                        let error = HttpError::handler_failed();
                        write_error_response(out, error, date);
                        self.end = PassEnd::Panicked;
                        (error.status, false)
                    }
                };
                (self.count)(status);
                if let Some((log, _)) = &self.log {
                    log.record(&Line::of(request, status, Some(out.len() - before)));
                }
                served
            }
        }
    }

    fn refused(&mut self, status: u16) {
        (self.count)(status);
        if let Some((log, client)) = &self.log {
            log.record(&Line::unparsed(*client, status));
        }
    }
}

/// The request, with its path parameters, copied for a task.
fn owned(request: &Request<'_>, matched: &Match<'_, '_>) -> OwnedRequest {
    match &matched.params {
        None => OwnedRequest::from_request(request),
        Some(params) => OwnedRequest::from_request(&request.with_params(params)),
    }
}

/// Answers every complete request in `input`, in order, into `out`; returns how much of
/// `input` is done with, and how the pass ended.
#[inline]
pub(super) fn serve_pass(
    conn: &mut Connection,
    router: &Router,
    count: &impl Fn(u16),
    date: &[u8; 29],
    input: &[u8],
    out: &mut Vec<u8>,
) -> (usize, PassEnd) {
    let mut dispatch = Dispatch {
        router,
        count,
        max_output: conn.limits().max_output,
        end: PassEnd::Served,
        log: conn
            .limits()
            .access_log
            .as_ref()
            .map(|log| (log.clone(), conn.client_addr())),
    };
    let mut consumed = conn.serve_with(input, out, date, &mut dispatch);
    if conn.should_close() || matches!(dispatch.end, PassEnd::Panicked) {
        // Nothing more will be read from this connection: what is left is discarded, which
        // also tells `respond_with` that this pass is done.
        consumed = input.len();
    }
    (consumed, dispatch.end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limits, Response};

    const DATE: &[u8; 29] = b"Thu, 01 Jan 1970 00:00:00 GMT";

    /// A body larger than a connection keeps between requests.
    const BIG: usize = 100 * 1024;

    fn echo_len_router() -> Router {
        Router::new().route("POST", "/", |_| Response::new(200, b"ok"))
    }

    /// Serves `reads` one after another, as the I/O layer offers them (what a pass leaves
    /// unconsumed is offered again before the next read); returns the output.
    fn serve_reads(conn: &mut Connection, router: &Router, reads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut pending = Vec::new();
        for read in reads {
            pending.extend_from_slice(read);
            let (consumed, end) = serve_pass(conn, router, &|_| {}, DATE, &pending, &mut out);
            assert!(matches!(end, PassEnd::Served));
            pending.drain(..consumed);
        }
        assert!(pending.is_empty(), "input left unconsumed");
        out
    }

    #[test]
    fn a_large_buffered_body_is_released_once_its_request_is_answered() {
        let router = echo_len_router();
        let mut conn = Connection::new(Limits::default());
        let head = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {BIG}\r\n\r\n");
        let body = vec![b'a'; BIG];
        // The body spans two reads, so it is buffered by the connection.
        let first = [head.as_bytes(), &body[..BIG / 2]].concat();
        let out = serve_reads(&mut conn, &router, &[&first, &body[BIG / 2..]]);
        assert!(
            out.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(conn.requests_served(), 1);
        assert!(!conn.in_request() && !conn.should_close());
        // Idle now, between requests: the large buffer is gone.
        assert_eq!(conn.body_capacity(), 0);
    }

    #[test]
    fn a_large_chunked_body_in_one_read_is_released_once_its_request_is_answered() {
        let router = echo_len_router();
        let mut conn = Connection::new(Limits::default());
        let mut input =
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        input.extend_from_slice(format!("{BIG:x}\r\n").as_bytes());
        input.extend(std::iter::repeat_n(b'a', BIG));
        input.extend_from_slice(b"\r\n0\r\n\r\n");
        let out = serve_reads(&mut conn, &router, &[&input]);
        assert!(
            out.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(conn.body_capacity(), 0);
        // The connection goes on: the next request is answered as usual.
        let out = serve_reads(
            &mut conn,
            &router,
            &[b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"],
        );
        assert!(out.starts_with(b"HTTP/1.1 200"));
        assert_eq!(conn.requests_served(), 2);
    }

    #[test]
    fn a_small_body_buffer_is_kept_for_the_next_request() {
        let router = echo_len_router();
        let mut conn = Connection::new(Limits::default());
        let head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n";
        let body = [b'a'; 1000];
        let first = [&head[..], &body[..500]].concat();
        serve_reads(&mut conn, &router, &[&first, &body[500..]]);
        assert!(conn.body_capacity() >= 1000);
    }
}

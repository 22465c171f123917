//! [`Connection`]: the state machine of one HTTP/1.1 connection, sans-IO.
//!
//! The I/O layer offers it all unconsumed input (the `respond_with` contract: what `feed`
//! did not consume is offered again, followed by new bytes) and acts on the [`Event`]s:
//!
//! ```text
//!            head parsed, no body               Request handed out
//!   Head ──────────────────────────────────▶ Served ──(next feed)──▶ Head
//!    │  head parsed, body follows                ▲
//!    ▼                                           │ body complete
//!   Body (head still in the input) ──────────────┤
//!    │  body incomplete: head copied             │
//!    ▼                                           │
//!   Buffered (input is body only) ───────────────┘
//!
//!   any error, or a request answered with Connection: close ──▶ Closed (for good)
//! ```
//!
//! A request whose head and body are in one read is handed out borrowing the input: no copy.
//! When a body spans reads, the head is copied into a buffer kept by the connection and the
//! body accumulates in another (chunked bodies are always decoded there); both keep their
//! capacity across requests, so a keep-alive connection allocates nothing per request after
//! warm-up. After an [`Event::Error`] the connection is [`Closed`](Event::Closed): at most
//! one error response is ever written, and nothing after it.

use crate::{
    BodyKind, HttpError, Limits, Request,
    chunked::ChunkedDecoder,
    framing::{self, Framing, KnownHost},
    parser::HeadParser,
    response::{Response, write_continue, write_error_response, write_response},
};

/// A body buffer above this capacity is released after its request instead of kept.
const KEEP_BODY_CAPACITY: usize = 64 * 1024;

/// What the caller must do next.
#[derive(Debug)]
pub enum Event<'a> {
    /// Nothing more can be done with the input given: read more and call again.
    NeedMore,
    /// Write [`CONTINUE`](crate::CONTINUE) now (the client sent `Expect: 100-continue`),
    /// then call again.
    Continue,
    /// A complete request: write its response now (framed per
    /// [`Request::response_framing`]), then call again with the rest of the input.
    Request(Request<'a>),
    /// A refused request: write [`write_error_response`] and close. Later calls return
    /// [`Event::Closed`].
    Error(HttpError),
    /// The connection is done: flush what was written and close it.
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    Body {
        head_len: usize,
        continue_sent: bool,
    },
    Buffered,
    Served,
    Closed,
}

/// One HTTP/1.1 connection's protocol state.
#[derive(Debug)]
pub struct Connection {
    limits: Limits,
    state: State,
    parser: HeadParser,
    framing: Option<Framing>,
    chunked: ChunkedDecoder,
    /// Body bytes still to come for a `Content-Length` body being buffered.
    remaining: u64,
    head_buf: Vec<u8>,
    body_buf: Vec<u8>,
    /// Bytes of the current head seen so far (for the header deadline).
    head_seen: usize,
    requests_served: u64,
    draining: bool,
    /// The client's address, for requests (`Request::client_addr`).
    client: Option<std::net::SocketAddr>,
    /// The last valid `Host` of this connection's requests.
    known_host: KnownHost,
}

impl Connection {
    /// A connection enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            parser: HeadParser::new(&limits),
            limits,
            state: State::Head,
            framing: None,
            chunked: ChunkedDecoder::default(),
            remaining: 0,
            head_buf: Vec::new(),
            body_buf: Vec::new(),
            head_seen: 0,
            requests_served: 0,
            draining: false,
            client: None,
            known_host: KnownHost::default(),
        }
    }

    /// Sets the client's address its requests report (`Request::client_addr`).
    pub fn set_client_addr(&mut self, addr: std::net::SocketAddr) {
        self.client = Some(addr);
    }

    /// The client's address set by [`set_client_addr`](Self::set_client_addr).
    pub fn client_addr(&self) -> Option<std::net::SocketAddr> {
        self.client
    }

    /// The limits this connection enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Requests handed out so far.
    pub fn requests_served(&self) -> u64 {
        self.requests_served
    }

    /// Whether part of a request head has arrived but not all of it: the header deadline
    /// (R12) runs while this holds.
    pub fn reading_head(&self) -> bool {
        matches!(self.state, State::Head) && self.head_seen > 0
    }

    /// Whether a request has begun and not yet been handed out (head or body in progress);
    /// when this is false the connection is idle between requests.
    pub fn in_request(&self) -> bool {
        self.reading_head() || matches!(self.state, State::Body { .. } | State::Buffered)
    }

    /// Whether the connection must be closed once its output is flushed.
    pub fn should_close(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Starts a graceful close (R19): a connection idle between requests closes now; a
    /// request in progress is still answered, with `Connection: close`, and so is the first
    /// request of a connection that has not sent one yet (it was accepted just before or
    /// during the stop, e.g. in a hot restart: its client is about to send, and closing it
    /// would fail that request).
    pub fn drain(&mut self) {
        self.draining = true;
        if !self.in_request() && self.requests_served > 0 {
            self.state = State::Closed;
        }
    }

    /// Advances on `input` (all unconsumed input, starting where the last call's consumed
    /// bytes ended). Returns how many bytes of `input` were consumed, and the next event.
    #[inline]
    pub fn feed<'a>(&'a mut self, input: &'a [u8]) -> (usize, Event<'a>) {
        match self.advance(input) {
            Ok(Step::Wait(consumed)) => (consumed, Event::NeedMore),
            Ok(Step::Continue) => (0, Event::Continue),
            Ok(Step::Closed) => (0, Event::Closed),
            Ok(Step::Ready {
                consumed,
                head,
                body,
            }) => {
                let head = match head {
                    HeadAt::Input(len) => &input[..len],
                    HeadAt::Buffer => &self.head_buf[..],
                };
                let body = match body {
                    BodyAt::Empty => &[][..],
                    BodyAt::Input(start, end) => &input[start..end],
                    BodyAt::Buffer => &self.body_buf[..],
                };
                (consumed, Event::Request(self.request(head, body)))
            }
            Err(error) => {
                self.state = State::Closed;
                (0, Event::Error(error))
            }
        }
    }

    /// Feeds `input` and answers every complete request in it, in order, into `out`, with
    /// `handler` producing each response; `100 Continue` and error responses are written
    /// too. Stops early when `out` holds [`Limits::max_output`] bytes. Returns how many bytes
    /// of `input` were consumed; check [`should_close`](Self::should_close) after.
    pub fn serve<H>(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        date: &[u8; 29],
        handler: H,
    ) -> usize
    where
        H: for<'r> FnMut(&Request<'r>) -> Response<'r>,
    {
        self.serve_with(input, out, date, &mut WithHandler(handler))
    }

    /// The loop of [`serve`](Self::serve), with a [`Responder`] that may also stop the pass
    /// (the I/O layer's, when a request goes to a task). The one place where a read's
    /// requests are parsed and answered in order.
    #[inline]
    pub(crate) fn serve_with(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        date: &[u8; 29],
        responder: &mut impl Responder,
    ) -> usize {
        let mut consumed = 0;
        while out.len() < self.limits.max_output {
            let (n, event) = self.feed(&input[consumed..]);
            consumed += n;
            match event {
                Event::NeedMore | Event::Closed => break,
                Event::Continue => write_continue(out),
                Event::Request(request) => {
                    if !responder.respond(&request, out, date) {
                        break;
                    }
                    if consumed == input.len() {
                        // Feeding the empty rest would only find `NeedMore` (or `Closed`):
                        // skip it, releasing what it would release.
                        self.input_exhausted();
                        break;
                    }
                }
                Event::Error(error) => {
                    write_error_response(out, error, date);
                    responder.refused(error.status);
                    break;
                }
            }
        }
        consumed
    }

    fn request<'a>(&'a self, head: &'a [u8], body: &'a [u8]) -> Request<'a> {
        Request {
            head,
            parser: &self.parser,
            framing: self.framing.as_ref().unwrap_or(&Framing {
                body: BodyKind::None,
                keep_alive: false,
                expect_continue: false,
            }),
            body,
            keep_alive: !matches!(self.state, State::Closed),
            params: None,
            client: self.client.as_ref(),
        }
    }

    // Not recursive (a served request starts the next one in place), so it can be inlined
    // into `feed`: called once per request.
    #[inline]
    fn advance(&mut self, input: &[u8]) -> Result<Step, HttpError> {
        // `matches!`, not `==`: the derived comparison of the whole enum is a call.
        if matches!(self.state, State::Served) {
            self.start_next();
        }
        match self.state {
            State::Closed => Ok(Step::Closed),
            State::Served | State::Head => self.head(input),
            State::Body {
                head_len,
                continue_sent,
            } => self.body(input, head_len, continue_sent),
            State::Buffered => self.buffered(input),
        }
    }

    /// After a request's response is written and no input is left: releases what
    /// [`start_next`](Self::start_next) would (a body buffer over [`KEEP_BODY_CAPACITY`]),
    /// so an idle keep-alive connection does not hold it, without the empty `feed` that
    /// would otherwise do it. The rest of `start_next` waits for the next input.
    fn input_exhausted(&mut self) {
        if self.body_buf.capacity() > KEEP_BODY_CAPACITY && matches!(self.state, State::Served) {
            self.start_next();
        }
    }

    /// The body buffer's capacity (what a connection keeps between requests).
    #[cfg(test)]
    pub(crate) fn body_capacity(&self) -> usize {
        self.body_buf.capacity()
    }

    fn start_next(&mut self) {
        self.parser.reset();
        self.framing = None;
        self.chunked = ChunkedDecoder::default();
        self.head_buf.clear();
        self.body_buf.clear();
        if self.body_buf.capacity() > KEEP_BODY_CAPACITY {
            self.body_buf = Vec::new();
        }
        self.head_seen = 0;
        self.state = State::Head;
    }

    fn head(&mut self, input: &[u8]) -> Result<Step, HttpError> {
        self.head_seen = input.len();
        let Some(head_len) = self.parser.parse(input, &self.limits)? else {
            return Ok(Step::Wait(0));
        };
        let framing = framing::analyze(
            input,
            self.parser.line.version,
            &self.parser.fields,
            &mut self.known_host,
        )?;
        if let BodyKind::Length(n) = framing.body
            && n > self.limits.max_body
        {
            return Err(HttpError::body_too_large());
        }
        self.framing = Some(framing);
        if framing.body == BodyKind::None && !framing.expect_continue {
            // No body and nothing to send first (what `body` would find): the request is
            // complete now.
            return Ok(self.ready(head_len, HeadAt::Input(head_len), BodyAt::Empty));
        }
        self.state = State::Body {
            head_len,
            continue_sent: false,
        };
        self.body(input, head_len, false)
    }

    /// The head is `input[..head_len]`; the body starts after it.
    fn body(
        &mut self,
        input: &[u8],
        head_len: usize,
        continue_sent: bool,
    ) -> Result<Step, HttpError> {
        let framing = self
            .framing
            .ok_or(HttpError::bad_request("internal: no framing"))?;
        if framing.expect_continue && !continue_sent {
            self.state = State::Body {
                head_len,
                continue_sent: true,
            };
            return Ok(Step::Continue);
        }
        let Some(rest) = input.get(head_len..) else {
            return Err(HttpError::bad_request(
                "internal: unconsumed input was not offered again",
            ));
        };
        match framing.body {
            BodyKind::None => Ok(self.ready(head_len, HeadAt::Input(head_len), BodyAt::Empty)),
            BodyKind::Length(n) => {
                // `n` ≤ max_body was checked; past `usize` it cannot be in memory anyway.
                let n_usize = usize::try_from(n).unwrap_or(usize::MAX);
                if rest.len() >= n_usize {
                    let end = head_len + n_usize;
                    return Ok(self.ready(
                        end,
                        HeadAt::Input(head_len),
                        BodyAt::Input(head_len, end),
                    ));
                }
                self.head_buf.extend_from_slice(&input[..head_len]);
                self.body_buf.extend_from_slice(rest);
                self.remaining = n - rest.len() as u64;
                self.state = State::Buffered;
                Ok(Step::Wait(input.len()))
            }
            BodyKind::Chunked => {
                let (used, done) = self
                    .chunked
                    .decode(rest, &mut self.body_buf, &self.limits)?;
                if done {
                    return Ok(self.ready(
                        head_len + used,
                        HeadAt::Input(head_len),
                        BodyAt::Buffer,
                    ));
                }
                self.head_buf.extend_from_slice(&input[..head_len]);
                self.state = State::Buffered;
                Ok(Step::Wait(input.len()))
            }
        }
    }

    /// The head is in `head_buf`; `input` continues the body.
    fn buffered(&mut self, input: &[u8]) -> Result<Step, HttpError> {
        let framing = self
            .framing
            .ok_or(HttpError::bad_request("internal: no framing"))?;
        if framing.body == BodyKind::Chunked {
            let (used, done) = self
                .chunked
                .decode(input, &mut self.body_buf, &self.limits)?;
            return Ok(if done {
                self.ready(used, HeadAt::Buffer, BodyAt::Buffer)
            } else {
                Step::Wait(used)
            });
        }
        let take = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(input.len());
        self.body_buf.extend_from_slice(&input[..take]);
        self.remaining -= take as u64;
        if self.remaining == 0 {
            Ok(self.ready(take, HeadAt::Buffer, BodyAt::Buffer))
        } else {
            Ok(Step::Wait(take))
        }
    }

    /// Hands out the current request: decides whether the connection outlives it.
    fn ready(&mut self, consumed: usize, head: HeadAt, body: BodyAt) -> Step {
        self.requests_served += 1;
        let client_keep_alive = self.framing.is_some_and(|f| f.keep_alive);
        let keep_alive =
            client_keep_alive && !self.draining && self.requests_served < self.limits.max_requests;
        self.state = if keep_alive {
            State::Served
        } else {
            State::Closed
        };
        Step::Ready {
            consumed,
            head,
            body,
        }
    }
}

/// The outcome of one step, before borrowing the request out of the connection.
enum Step {
    Wait(usize),
    Continue,
    Closed,
    Ready {
        consumed: usize,
        head: HeadAt,
        body: BodyAt,
    },
}

enum HeadAt {
    Input(usize),
    Buffer,
}

enum BodyAt {
    Empty,
    Input(usize, usize),
    Buffer,
}

/// What answers the requests of one pass of [`Connection::serve_with`].
pub(crate) trait Responder {
    /// Writes the response to `request` into `out`; `false` ends the pass before the next
    /// request (what is left of the input waits to be offered again).
    fn respond(&mut self, request: &Request<'_>, out: &mut Vec<u8>, date: &[u8; 29]) -> bool;

    /// The connection refused a request: its error response (`status`) is written.
    fn refused(&mut self, status: u16);
}

/// A plain handler as a [`Responder`]: every request answered, none stops the pass.
struct WithHandler<H>(H);

impl<H> Responder for WithHandler<H>
where
    H: for<'r> FnMut(&Request<'r>) -> Response<'r>,
{
    #[inline]
    fn respond(&mut self, request: &Request<'_>, out: &mut Vec<u8>, date: &[u8; 29]) -> bool {
        let response = (self.0)(request);
        write_response(out, &response, date, request.response_framing());
        true
    }

    fn refused(&mut self, _status: u16) {}
}

//! The I/O layer of the HTTP service: one task per connection on the kernel's `TcpStream`,
//! driving the sans-IO [`Connection`] and enforcing the limits that need a clock or a
//! socket.
//!
//! - **Header deadline** (R12): a request head must be complete `header_timeout` after its
//!   first byte, or the client gets `408` and the connection closes (slowloris).
//! - **Idle keep-alive** (R18): a connection with no request for `idle_timeout` is closed.
//! - **Output bound and write progress** (R17): reading stops while the unsent output is at
//!   `max_output`; if it makes no progress for `write_timeout` the connection is dropped.
//! - **Graceful stop** (R19): on the server's drain an idle connection closes at once and a
//!   request in progress is answered with `Connection: close`.
//! - **Handler panics**: the panicking request gets `500` and the connection closes; the
//!   shard and its other connections go on.
//!
//! Closing after an error response half-closes first and reads what the client still sends
//! for a moment, so the response is not destroyed by a reset.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    net::SocketAddr,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    rc::Rc,
    time::{Duration, Instant, SystemTime},
};

use percore::{
    Error, ServerBuilder, ServerHandle, TcpStream,
    future::{Either, select},
    metrics::{Counter, counter},
    shutdown_requested, shutdown_signal, spawn,
    time::{sleep, timeout},
};

use crate::{
    Connection, DateCache, Event, Found, HttpError, Limits, OwnedRequest, OwnedResponse, Response,
    ResponseFraming, Router, write_continue, write_error_response, write_response,
};

/// How long a closing connection keeps reading (and discarding) after its last response.
const LINGER: Duration = Duration::from_millis(500);

/// Serves HTTP on `addr` on every shard of `builder`; `make_router` builds each shard's
/// router (routers hold `!Send` handlers, so each shard has its own).
pub fn serve<R>(
    builder: ServerBuilder,
    addr: SocketAddr,
    limits: Limits,
    make_router: R,
) -> Result<ServerHandle, Error>
where
    R: Fn() -> Router + Send + Sync + Clone + 'static,
{
    builder.serve(addr, move |stream| {
        let router = ROUTER.with(|cell| {
            cell.borrow_mut()
                .get_or_insert_with(|| Rc::new(make_router()))
                .clone()
        });
        handle(stream, router, limits.clone())
    })
}

thread_local! {
    /// Each shard's router, built on first use.
    static ROUTER: RefCell<Option<Rc<Router>>> = const { RefCell::new(None) };
    static DATE: RefCell<DateCache> = RefCell::new(DateCache::default());
}

/// Requests answered, by status class, as shard-local counters.
struct StatusCounters([Counter; 5]);

impl StatusCounters {
    fn new() -> Self {
        let class = |c: &'static str| {
            counter(
                "percore_http_responses_total",
                "HTTP responses by status class.",
                &[("class", c)],
            )
        };
        StatusCounters([
            class("1xx"),
            class("2xx"),
            class("3xx"),
            class("4xx"),
            class("5xx"),
        ])
    }

    fn count(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.0[class].inc();
    }
}

/// An async handler's response to come.
type PendingResponse = Pin<Box<dyn Future<Output = OwnedResponse>>>;

/// What one pass over the input found.
#[derive(Default)]
struct Pass {
    panicked: bool,
    /// An async handler's future and the framing its response needs; the connection
    /// answers nothing else until it has written this response.
    pending: Option<(PendingResponse, ResponseFraming)>,
}

/// Serves one connection until it closes.
pub async fn handle(mut stream: TcpStream, router: Rc<Router>, limits: Limits) {
    let mut conn = Connection::new(limits.clone());
    let counters = StatusCounters::new();
    let head_started: Cell<Option<Instant>> = Cell::new(None);
    let mut last_activity = Instant::now();
    let mut draining = false;
    loop {
        if !draining && shutdown_requested() {
            draining = true;
            conn.drain();
        }
        if conn.should_close() {
            break;
        }
        if stream.pending_output() >= limits.max_output
            && !matches!(
                timeout(limits.write_timeout, stream.writable()).await,
                Ok(Ok(()))
            )
        {
            stream.abort(); // No write progress (R17): its output will never leave.
            return;
        }
        let now = Instant::now();
        let deadline = match head_started.get() {
            Some(started) => started + limits.header_timeout,
            None => (last_activity + limits.idle_timeout).min(now + limits.header_timeout),
        };
        if now >= deadline {
            if head_started.get().is_some() {
                let mut error = HttpError::bad_request("request head not received in time");
                error.status = 408;
                let date = DATE.with(|d| *d.borrow_mut().get(SystemTime::now()));
                let _ = stream.write_with(|out| write_error_response(out, error, &date));
                counters.count(408);
                break;
            }
            if now >= last_activity + limits.idle_timeout {
                return; // Idle keep-alive connection: close quietly.
            }
            continue;
        }
        let read = stream.respond_with(|input, out| {
            let date = DATE.with(|d| *d.borrow_mut().get(SystemTime::now()));
            let (consumed, pass) = serve_input(&mut conn, &router, &counters, &date, input, out);
            head_started.set(match (conn.in_request(), head_started.get()) {
                (true, None) => Some(Instant::now()),
                (true, started) => started,
                (false, _) => None,
            });
            (consumed, pass)
        });
        let read = timeout(deadline - now, read);
        let outcome = if draining {
            Either::Left(read.await)
        } else {
            select(read, shutdown_signal()).await
        };
        match outcome {
            Either::Left(Ok(Ok(Some(pass)))) => {
                last_activity = Instant::now();
                if pass.panicked {
                    break;
                }
                if let Some((future, framing)) = pass.pending
                    && !answer_async(&mut stream, &mut conn, &counters, future, framing).await
                {
                    break;
                }
            }
            Either::Left(Ok(Ok(None))) => break, // The client closed its side.
            Either::Left(Ok(Err(_))) => return,  // Reset or I/O error: nothing to answer.
            Either::Left(Err(_elapsed)) => {}    // A deadline: re-examined at the loop top.
            Either::Right(()) => {}              // Drain: handled at the loop top.
        }
    }
    close_gracefully(stream, limits.write_timeout).await;
}

/// Answers every complete request in `input`, in order, into `out`.
fn serve_input(
    conn: &mut Connection,
    router: &Router,
    counters: &StatusCounters,
    date: &[u8; 29],
    input: &[u8],
    out: &mut Vec<u8>,
) -> (usize, Pass) {
    let mut consumed = 0;
    let mut pass = Pass::default();
    while out.len() < conn.limits().max_output {
        let (n, event) = conn.feed(&input[consumed..]);
        consumed += n;
        match event {
            Event::NeedMore | Event::Closed => break,
            Event::Continue => write_continue(out),
            Event::Request(request) => {
                // The sync handler, or the router's fixed 404/405 answer.
                let route = match router.find(&request) {
                    Found::Async(handler) => {
                        // Copied out, run as a task; later pipelined requests wait for it.
                        let future = handler(OwnedRequest::from_request(&request));
                        pass.pending = Some((future, request.response_framing()));
                        break;
                    }
                    Found::Sync(handler) => Ok(handler),
                    Found::Fixed(response) => Err(response),
                };
                let respond = || match route {
                    Ok(handler) => handler(&request),
                    Err(fixed) => fixed,
                };
                match catch_unwind(AssertUnwindSafe(respond)) {
                    Ok(response) => {
                        counters.count(response.status);
                        write_response(out, &response, date, request.response_framing());
                    }
                    Err(_) => {
                        // The panic was already reported by the panic hook; answer and close.
                        let mut error = HttpError::bad_request("the handler failed");
                        error.status = 500;
                        write_error_response(out, error, date);
                        counters.count(500);
                        pass.panicked = true;
                        break;
                    }
                }
            }
            Event::Error(error) => {
                counters.count(error.status);
                write_error_response(out, error, date);
                break;
            }
        }
    }
    if conn.should_close() || pass.panicked {
        // Nothing more will be read from this connection: what is left is discarded, which
        // also tells `respond_with` that this pass is done.
        consumed = input.len();
    }
    (consumed, pass)
}

/// Runs an async handler's future as a task (so a panic is contained) and writes its
/// response. False when the handler panicked: it got a 500 and the connection must close.
async fn answer_async(
    stream: &mut TcpStream,
    conn: &mut Connection,
    counters: &StatusCounters,
    future: PendingResponse,
    framing: ResponseFraming,
) -> bool {
    let result = spawn(future).await;
    let date = DATE.with(|d| *d.borrow_mut().get(SystemTime::now()));
    match result {
        Ok(owned) => {
            let headers: Vec<(&str, &str)> = owned
                .headers
                .iter()
                .map(|(n, v)| (*n, v.as_str()))
                .collect();
            let response = Response {
                status: owned.status,
                headers: &headers,
                body: &owned.body,
            };
            counters.count(response.status);
            stream
                .write_with(|out| write_response(out, &response, &date, framing))
                .is_ok()
        }
        Err(_) => {
            let mut error = HttpError::bad_request("the handler failed");
            error.status = 500;
            let _ = stream.write_with(|out| write_error_response(out, error, &date));
            counters.count(500);
            conn.drain();
            false
        }
    }
}

/// Sends what is pending, half-closes, and reads (discarding) until the client closes or
/// the linger time ends, so that a reset does not destroy the last response.
async fn close_gracefully(mut stream: TcpStream, write_timeout: Duration) {
    if !matches!(timeout(write_timeout, stream.flush()).await, Ok(Ok(()))) {
        stream.abort();
        return;
    }
    if stream.shutdown().await.is_err() {
        return;
    }
    let linger = sleep(LINGER);
    let discard =
        async { while let Ok(Some(())) = stream.read_with(|input| (input.len(), ())).await {} };
    let _ = select(discard, linger).await;
}

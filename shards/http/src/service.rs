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
    cell::RefCell,
    future::{Future, poll_fn},
    net::SocketAddr,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::{Pin, pin},
    rc::Rc,
    task::Poll,
    time::{Duration, Instant},
};

use percore::{
    Error, ServerBuilder, ServerHandle, TcpStream,
    future::select,
    metrics::{Counter, counter},
    shutdown_requested, shutdown_signal, spawn,
    time::{Sleep, sleep, timeout},
};

use crate::{
    Connection, DateCache, Event, Found, HttpError, Limits, OwnedRequest, OwnedResponse, Response,
    ResponseFraming, ResponseWriter, Router,
    streaming::{self, StreamEnd},
    write_continue, write_error_response, write_response,
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

/// Requests answered, by status class, as shard-local counters (one set per shard, shared
/// by its connections: registering them per connection would format label strings each time).
struct StatusCounters([Counter; 5]);

thread_local! {
    static STATUS_COUNTERS: RefCell<Option<Rc<StatusCounters>>> = const { RefCell::new(None) };
}

impl StatusCounters {
    /// This shard's counters.
    fn shard() -> Rc<Self> {
        STATUS_COUNTERS.with(|cell| {
            cell.borrow_mut()
                .get_or_insert_with(|| Rc::new(Self::register()))
                .clone()
        })
    }

    fn register() -> Self {
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

/// The current `Date` value for a monotonic reading taken by the caller.
fn date_at(now: Instant) -> [u8; 29] {
    DATE.with(|d| *d.borrow_mut().at(now))
}

/// An async handler's response to come.
type PendingResponse = Pin<Box<dyn Future<Output = OwnedResponse>>>;

/// A response a task will produce; the connection answers nothing else until it is written.
enum Pending {
    /// An async handler's future and the framing its response needs.
    Async(PendingResponse, ResponseFraming),
    /// A streaming handler's future, the state it shares with its writer, and the framing.
    Stream(
        Pin<Box<dyn Future<Output = ()>>>,
        Rc<RefCell<streaming::Shared>>,
        ResponseFraming,
    ),
}

/// What one pass over the input found.
#[derive(Default)]
struct Pass {
    panicked: bool,
    pending: Option<Pending>,
}

/// What ended a wait of the connection task.
enum Woken {
    Read(std::io::Result<Option<Pass>>),
    Deadline,
    Drain,
}

/// The connection's two deadlines (R12, R18) on one timer that is moved rarely.
///
/// The real deadline is the header deadline while a request is in progress, else the idle
/// deadline; it moves later with every request. Re-arming a timer per request costs a clock
/// read and a wheel update, so the timer stays armed at or *before* the real deadline: when it
/// fires early, it is re-armed for what is left; when a request starts (the header deadline
/// may be earlier), it is pulled in. Nothing fires late.
struct Deadlines {
    limits_header: Duration,
    limits_idle: Duration,
    last_activity: Instant,
    head_started: Option<Instant>,
    timer: Sleep,
    /// When the timer fires (to the millisecond it rounds up to).
    armed: Instant,
    /// Whether the timer has been polled with this task's waker since it was last armed.
    registered: bool,
}

impl Deadlines {
    fn new(limits: &Limits, now: Instant) -> Self {
        let first = limits.idle_timeout.min(limits.header_timeout);
        Self {
            limits_header: limits.header_timeout,
            limits_idle: limits.idle_timeout,
            last_activity: now,
            head_started: None,
            timer: sleep(first),
            armed: now + first,
            registered: false,
        }
    }

    fn real(&self) -> Instant {
        match self.head_started {
            Some(started) => started + self.limits_header,
            None => self.last_activity + self.limits_idle,
        }
    }

    fn arm(&mut self, now: Instant, at: Instant) {
        let wait = at.saturating_duration_since(now);
        self.timer.reset(wait);
        self.armed = now + wait;
        self.registered = false;
    }

    /// After a pass over the input at `now`: whether a request is now in progress.
    fn passed(&mut self, now: Instant, in_request: bool) {
        self.head_started = match (in_request, self.head_started) {
            (true, None) => Some(now),
            (true, started) => started,
            (false, _) => None,
        };
    }

    /// Pulls the timer in if the real deadline is now before it.
    #[inline]
    fn pull_in(&mut self) {
        let real = self.real();
        if real < self.armed {
            self.arm(Instant::now(), real);
        }
    }
}

/// Serves one connection until it closes.
///
/// The hot path (a request arrives, is answered, the task waits again) reads no clock (it
/// takes the loop's reading, `percore::time::now`) and touches neither the timer wheel nor
/// the drain waiters: both were registered with this task's waker before and stay
/// registered.
pub async fn handle(mut stream: TcpStream, router: Rc<Router>, limits: Limits) {
    let mut conn = Connection::new(limits.clone());
    let counters = StatusCounters::shard();
    let mut deadlines = Deadlines::new(&limits, Instant::now());
    let mut drain = pin!(shutdown_signal());
    let mut drain_registered = false;
    let mut draining = false;
    // Whether the task has run without a break since its last pass over the input: then no
    // timers phase of the shard loop has run since `last_activity` was read.
    let mut fresh = false;
    loop {
        if !draining && shutdown_requested() {
            draining = true;
            conn.drain();
        }
        if conn.should_close() {
            break;
        }
        if stream.pending_output() >= limits.max_output {
            fresh = false;
            if !matches!(
                timeout(limits.write_timeout, stream.writable()).await,
                Ok(Ok(()))
            ) {
                stream.abort(); // No write progress (R17): its output will never leave.
                return;
            }
        }
        let mut seen_at = None;
        let woken = poll_fn(|cx| {
            let read = stream.poll_respond_with(cx, &mut |input, out| {
                // The loop's reading for this iteration: the input arrived before it.
                let now = percore::time::now();
                seen_at = Some(now);
                let date = date_at(now);
                let count = |status| counters.count(status);
                let (consumed, pass) = serve_input(&mut conn, &router, &count, &date, input, out);
                deadlines.passed(now, conn.in_request());
                (consumed, pass)
            });
            if let Poll::Ready(read) = read {
                return Poll::Ready(Woken::Read(read));
            }
            deadlines.pull_in();
            // Right after a pass, with the timer and the drain waiter registered before and
            // the timer not yet due at that pass (so not fired: timers fire in the loop's
            // timers phase, and none ran since), there is nothing to poll: skip two wheel
            // and waiter look-ups and a clock read per request.
            let skip = fresh
                && deadlines.registered
                && deadlines.last_activity < deadlines.armed
                && (draining || drain_registered);
            fresh = false;
            if skip {
                return Poll::Pending;
            }
            if !draining {
                if drain.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Woken::Drain);
                }
                drain_registered = true;
            }
            if Pin::new(&mut deadlines.timer).poll(cx).is_ready() {
                deadlines.registered = false;
                return Poll::Ready(Woken::Deadline);
            }
            deadlines.registered = true;
            Poll::Pending
        })
        .await;
        match woken {
            Woken::Read(Ok(Some(pass))) => {
                deadlines.last_activity = seen_at.unwrap_or_else(Instant::now);
                fresh = seen_at.is_some();
                if pass.panicked {
                    break;
                }
                match pass.pending {
                    None => {}
                    Some(Pending::Async(future, framing)) => {
                        fresh = false;
                        if !answer_async(&mut stream, &mut conn, &counters, future, framing).await {
                            break;
                        }
                    }
                    Some(Pending::Stream(future, shared, framing)) => {
                        fresh = false;
                        let count = |status| counters.count(status);
                        let end = streaming::answer_stream(
                            &mut stream,
                            future,
                            shared,
                            framing,
                            &limits,
                            date_at,
                            count,
                        )
                        .await;
                        match end {
                            StreamEnd::KeepAlive => {}
                            StreamEnd::Close => break,
                            StreamEnd::Abort => {
                                stream.abort();
                                return;
                            }
                        }
                    }
                }
            }
            Woken::Read(Ok(None)) => break, // The client closed its side.
            Woken::Read(Err(_)) => return,  // Reset or I/O error: nothing to answer.
            Woken::Drain => {
                // Handled at the loop top; the drain future is done and never polled again.
                draining = true;
                conn.drain();
            }
            Woken::Deadline => {
                let now = Instant::now();
                let real = deadlines.real();
                if now < real {
                    deadlines.arm(now, real); // Fired early (activity since): re-arm.
                    continue;
                }
                if deadlines.head_started.is_some() {
                    let mut error = HttpError::bad_request("request head not received in time");
                    error.status = 408;
                    let date = date_at(now);
                    let _ = stream.write_with(|out| write_error_response(out, error, &date));
                    counters.count(408);
                    break;
                }
                return; // Idle keep-alive connection: close quietly.
            }
        }
    }
    close_gracefully(stream, limits.write_timeout).await;
}

/// Answers every complete request in `input`, in order, into `out`.
fn serve_input(
    conn: &mut Connection,
    router: &Router,
    count: &impl Fn(u16),
    date: &[u8; 29],
    input: &[u8],
    out: &mut Vec<u8>,
) -> (usize, Pass) {
    let mut consumed = 0;
    let mut pass = Pass::default();
    let max_output = conn.limits().max_output;
    while out.len() < max_output {
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
                        pass.pending = Some(Pending::Async(future, request.response_framing()));
                        break;
                    }
                    Found::Stream(handler) => {
                        let (writer, shared) = ResponseWriter::new(max_output);
                        let future = handler(OwnedRequest::from_request(&request), writer);
                        let framing = request.response_framing();
                        pass.pending = Some(Pending::Stream(future, shared, framing));
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
                        count(response.status);
                        write_response(out, &response, date, request.response_framing());
                        if consumed == input.len() {
                            // Feeding the empty rest would only find `NeedMore` (or
                            // `Closed`): skip it, releasing what it would release.
                            conn.input_exhausted();
                            break;
                        }
                    }
                    Err(_) => {
                        // The panic was already reported by the panic hook; answer and close.
                        let mut error = HttpError::bad_request("the handler failed");
                        error.status = 500;
                        write_error_response(out, error, date);
                        count(500);
                        pass.panicked = true;
                        break;
                    }
                }
            }
            Event::Error(error) => {
                count(error.status);
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
    let date = date_at(Instant::now());
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

#[cfg(test)]
mod tests {
    use super::*;

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
            let (consumed, pass) = serve_input(conn, router, &|_| {}, DATE, &pending, &mut out);
            assert!(!pass.panicked && pass.pending.is_none());
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

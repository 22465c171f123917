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
//! # The connection task as one state machine
//!
//! [`handle`] runs one loop: the current `State` does its step, the step ends with an
//! `Event`, and `HttpConn::next` — the only place that decides transitions — picks the
//! next state. Parse → dispatch → respond happen inside `Read` for sync routes (a whole
//! read's pipelined requests in one pass); a request for an async or streaming route hands
//! over to `Respond`.
//!
//! ```text
//!                 ┌───────────── Answered (keep-alive) ─────────────┐
//!                 ▼                                                  │
//!   start ──▶  Read ── parse → dispatch → respond (sync routes) ────┤ Answered
//!              │ │ │                                                 │
//!              │ │ └── Handoff (async/streaming route) ──▶ Respond ──┤ Answered
//!              │ │                                                   │
//!              │ └── Answered, output at max_output ──▶ Backpressure ┘ Writable → Read
//!              │
//!   any state ─┼── Close: Connection: close, drain, peer EOF, 408, 500 ──▶ Close ──▶ end
//!              ├── Drop: idle timeout, reset, I/O error ─────────────────▶ Drop ───▶ end
//!              └── Abort: no write progress, stream cut ─────────────────▶ Abort ──▶ end
//! ```
//!
//! `Close` sends what is pending, half-closes and reads (discarding) for a moment, so the
//! last response is not destroyed by a reset; `Drop` closes without that; `Abort` resets.

mod counters;
mod deadlines;
mod dispatch;

use std::{
    cell::RefCell,
    future::{Future, poll_fn},
    net::SocketAddr,
    pin::{Pin, pin},
    rc::Rc,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use counters::{StatusCounters, date_at};
use deadlines::{Deadlines, Expired};
use dispatch::{PassEnd, Pending, PendingResponse, serve_pass};
use percore::{
    Error, ServerBuilder, ServerHandle, ShutdownFlag, TcpStream,
    future::select,
    shutdown_signal, spawn,
    time::{sleep, timeout},
};

use crate::{
    Connection, HttpError, Limits, ResponseFraming, Router,
    access_log::{Line, Started},
    offload::RouteStates,
    router::Labelled,
    streaming::{self, StreamEnd},
    write_error_response,
};

/// How long a closing connection keeps reading (and discarding) after its last response.
const LINGER: Duration = Duration::from_millis(500);

/// Serves HTTP on `addr` on every shard of `builder`; `make_router` builds each shard's
/// router (routers hold `!Send` handlers, so each shard has its own).
///
/// `make_router` is called once first, here on the calling thread, to check the routes: a
/// refused route ([`Router::check`]) is an [`Error::Config`] naming it, and nothing starts.
/// So building a router must not need a shard: per-shard state, metrics and periodic tasks
/// belong in the builder's init hook ([`ServerBuilder::on_shard_start`], run once on every
/// shard before it serves; see [`percore::PerShard`]), or are created on first use.
///
/// On a graceful stop, idle connections close at once, a request in progress is answered
/// with `Connection: close`, and the init hook's tasks are cancelled (see
/// [`percore::spawn_background`]).
pub fn serve<R>(
    builder: ServerBuilder,
    addr: SocketAddr,
    limits: Limits,
    make_router: R,
) -> Result<ServerHandle, Error>
where
    R: Fn() -> Router + Send + Sync + Clone + 'static,
{
    make_router()
        .check()
        .map_err(|error| Error::Config(error.to_string()))?;
    // What one shard learns of a route's cost (adaptive offload) the others know at once.
    let route_states = Arc::new(RouteStates::default());
    builder.serve(addr, move |stream| {
        let router = ROUTER.with(|cell| {
            cell.borrow_mut()
                .get_or_insert_with(|| {
                    RouteStates::enter(&route_states);
                    Rc::new(make_router())
                })
                .clone()
        });
        handle(stream, router, limits.clone())
    })
}

thread_local! {
    /// Each shard's router, built on first use.
    static ROUTER: RefCell<Option<Rc<Router>>> = const { RefCell::new(None) };
}

/// Serves one connection until it closes: the driver of the state machine (see the module
/// docs).
///
/// The hot path (a request arrives, is answered, the task waits again) reads no clock (it
/// takes the loop's reading, `percore::time::now`) and touches neither the timer wheel nor
/// the drain waiters: both were registered with this task's waker before and stay
/// registered.
pub async fn handle(stream: TcpStream, router: Rc<Router>, limits: Limits) {
    let drain = pin!(shutdown_signal());
    let mut conn = HttpConn::new(stream, router, limits, drain);
    // A connection accepted during a drain closes at once: the checks made after any answer.
    let mut state = conn.next(Event::Answered);
    loop {
        let event = match state {
            State::Read => poll_fn(|cx| conn.poll_read(cx)).await,
            State::Backpressure => conn.wait_writable().await,
            State::Respond(pending) => conn.respond(pending).await,
            State::Close => return conn.close_gracefully().await,
            State::Drop => return,
            State::Abort => return conn.stream.abort(),
        };
        state = conn.next(event);
    }
}

/// Where the connection task is.
enum State {
    /// Waiting for input, a deadline or the drain; each read is parsed and its requests for
    /// sync routes answered in one pass.
    Read,
    /// The unsent output is at `max_output`: no reading until the client reads.
    Backpressure,
    /// A task (async or streaming handler) produces the next response.
    Respond(Pending),
    /// Done: flush, half-close, linger.
    Close,
    /// Done, without a goodbye (the peer reset, or a keep-alive connection idled out).
    Drop,
    /// Done, with a reset: the output cannot leave.
    Abort,
}

/// How a state's step ended.
enum Event {
    /// What was asked is answered (or a drain or an early timer was handled).
    Answered,
    /// The output drained below its bound.
    Writable,
    /// A request went to a task.
    Handoff(Pending),
    /// The connection ends gracefully: `Connection: close` was answered, the client closed
    /// its side, or an error response (408, 500) was written.
    Close,
    /// The connection ends quietly.
    Drop,
    /// The connection ends with a reset.
    Abort,
}

/// Whether the task waits for the server's drain, as one of three legal states (two flags
/// would allow a fourth).
#[derive(Clone, Copy, PartialEq, Eq)]
enum DrainWatch {
    /// The drain waiter was not polled yet.
    Unregistered,
    /// The drain waiter holds this task's waker.
    Registered,
    /// The drain began and the connection knows: the waiter is done.
    Started,
}

/// One connection's task state: the socket, the protocol state and what enforces the limits.
struct HttpConn<'d, D> {
    stream: TcpStream,
    conn: Connection,
    router: Rc<Router>,
    limits: Limits,
    counters: Rc<StatusCounters>,
    deadlines: Deadlines,
    drain: Pin<&'d mut D>,
    drain_watch: DrainWatch,
    /// The shard's stop flag, read after every answer without a thread-local look-up.
    stopping: ShutdownFlag,
    /// Whether the task has run without a break since its last pass over the input: then no
    /// timers phase of the shard loop has run since `last_activity` was read.
    fresh: bool,
}

impl<'d, D: Future<Output = ()>> HttpConn<'d, D> {
    fn new(stream: TcpStream, router: Rc<Router>, limits: Limits, drain: Pin<&'d mut D>) -> Self {
        let mut conn = Connection::new(limits.clone());
        // The real client behind a trusted proxy, else the peer: what handlers see.
        if let Ok(client) = stream.client_addr() {
            conn.set_client_addr(client);
        }
        Self {
            stream,
            conn,
            router,
            counters: StatusCounters::shard(),
            deadlines: Deadlines::new(&limits, Instant::now()),
            limits,
            drain,
            drain_watch: DrainWatch::Unregistered,
            stopping: ShutdownFlag::current(),
            fresh: false,
        }
    }

    /// The transitions, all of them (see the diagram in the module docs).
    #[inline]
    fn next(&mut self, event: Event) -> State {
        match event {
            Event::Answered => {
                if self.drain_watch != DrainWatch::Started && self.stopping.is_set() {
                    self.start_drain();
                }
                if self.conn.should_close() {
                    State::Close
                } else if self.stream.pending_output() >= self.limits.max_output {
                    State::Backpressure
                } else {
                    State::Read
                }
            }
            Event::Writable => State::Read,
            Event::Handoff(pending) => State::Respond(pending),
            Event::Close => State::Close,
            Event::Drop => State::Drop,
            Event::Abort => State::Abort,
        }
    }

    fn start_drain(&mut self) {
        self.drain_watch = DrainWatch::Started;
        self.conn.drain();
    }

    /// `Read`: waits for input, a deadline or the drain; answers what arrived.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        let mut seen_at = None;
        let read = self.stream.poll_respond_with(cx, &mut |input, out| {
            // The loop's reading for this iteration: the input arrived before it.
            let now = percore::time::now();
            seen_at = Some(now);
            let date = date_at(now);
            let counters = &self.counters;
            let count = |status| counters.count(status);
            let pass = serve_pass(&mut self.conn, &self.router, &count, &date, input, out);
            self.deadlines.passed(now, self.conn.in_request());
            pass
        });
        if let Poll::Ready(read) = read {
            let event = self.read_done(read, seen_at);
            // The usual end of a pass: everything was answered and the connection stays in
            // `Read`. The next poll of `Read` would find nothing to read and only register
            // what is registered, so its transition and its checks run here, in this poll.
            let stays = matches!(event, Event::Answered)
                && self.stream.read_would_wait(cx)
                && matches!(self.next(Event::Answered), State::Read);
            if !stays {
                return Poll::Ready(event);
            }
        }
        self.deadlines.pull_in();
        // Right after a pass, with the timer and the drain waiter registered before and the
        // timer not yet due at that pass (so not fired: timers fire in the loop's timers
        // phase, and none ran since), there is nothing to poll: skip two wheel and waiter
        // look-ups and a clock read per request.
        let skip = self.fresh
            && self.deadlines.registered
            && self.deadlines.last_activity < self.deadlines.armed
            && self.drain_watch != DrainWatch::Unregistered;
        self.fresh = false;
        if skip {
            return Poll::Pending;
        }
        if self.drain_watch != DrainWatch::Started {
            if self.drain.as_mut().poll(cx).is_ready() {
                // The drain future is done and never polled again.
                self.start_drain();
                return Poll::Ready(Event::Answered);
            }
            self.drain_watch = DrainWatch::Registered;
        }
        if Pin::new(&mut self.deadlines.timer).poll(cx).is_ready() {
            self.deadlines.registered = false;
            return Poll::Ready(self.deadline_passed());
        }
        self.deadlines.registered = true;
        Poll::Pending
    }

    /// A read ended: a pass answered what arrived (`seen_at` the loop's time reading), or
    /// the client closed its side, or the connection failed.
    #[inline]
    fn read_done(
        &mut self,
        read: std::io::Result<Option<PassEnd>>,
        seen_at: Option<Instant>,
    ) -> Event {
        match read {
            Ok(Some(end)) => {
                self.deadlines.last_activity = seen_at.unwrap_or_else(Instant::now);
                self.fresh = seen_at.is_some();
                match end {
                    PassEnd::Served => Event::Answered,
                    PassEnd::Handoff(pending) => Event::Handoff(pending),
                    PassEnd::Panicked => Event::Close,
                }
            }
            Ok(None) => Event::Close, // The client closed its side.
            Err(_) => Event::Drop,    // Reset or I/O error: nothing to answer.
        }
    }

    /// The timer fired: re-arm it, answer 408, or end an idle connection.
    fn deadline_passed(&mut self) -> Event {
        let now = Instant::now();
        match self.deadlines.expired(now) {
            Expired::Early => Event::Answered,
            Expired::Head => {
                let error = HttpError::request_timeout();
                let date = date_at(now);
                let _ = self
                    .stream
                    .write_with(|out| write_error_response(out, error, &date));
                self.counters.count(error.status);
                if let Some(log) = &self.limits.access_log {
                    log.record(&Line::unparsed(self.conn.client_addr(), error.status));
                }
                Event::Close
            }
            Expired::Idle => Event::Drop, // Idle keep-alive connection: close quietly.
        }
    }

    /// `Backpressure`: waits for write progress (R17); none within `write_timeout` resets.
    async fn wait_writable(&mut self) -> Event {
        self.fresh = false;
        match timeout(self.limits.write_timeout, self.stream.writable()).await {
            Ok(Ok(())) => Event::Writable,
            _ => Event::Abort, // No write progress: its output will never leave.
        }
    }

    /// `Respond`: runs an async or streaming handler as a task (so a panic is contained)
    /// and writes its response.
    async fn respond(&mut self, pending: Pending) -> Event {
        self.fresh = false;
        match pending {
            Pending::Async(future, framing, label, started) => {
                let future = self.router.labelled(label, future);
                self.answer_async(future, framing, started).await
            }
            Pending::Stream(future, shared, framing, label, started) => {
                let future = self.router.labelled(label, future);
                let counters = &self.counters;
                let log = self.limits.access_log.as_ref();
                let count = |status| {
                    counters.count(status);
                    if let (Some(log), Some(started)) = (log, &started) {
                        log.record(&started.line(status, None));
                    }
                };
                let end = streaming::answer_stream(
                    &mut self.stream,
                    future,
                    shared,
                    framing,
                    &self.limits,
                    date_at,
                    count,
                )
                .await;
                match end {
                    StreamEnd::KeepAlive => Event::Answered,
                    StreamEnd::Close => Event::Close,
                    StreamEnd::Abort => Event::Abort,
                }
            }
        }
    }

    async fn answer_async(
        &mut self,
        future: Labelled<PendingResponse>,
        framing: ResponseFraming,
        started: Option<Box<Started>>,
    ) -> Event {
        let result = spawn(future).await;
        let date = date_at(Instant::now());
        let Ok(owned) = result else {
            let error = HttpError::handler_failed();
            let written = self.stream.write_with(|out| {
                let before = out.len();
                write_error_response(out, error, &date);
                out.len() - before
            });
            self.counters.count(error.status);
            self.log_task_response(started.as_deref(), error.status, written.ok());
            self.conn.drain();
            return Event::Close;
        };
        self.counters.count(owned.status);
        let written = self.stream.write_with(|out| {
            let before = out.len();
            owned.write(out, &date, framing);
            out.len() - before
        });
        self.log_task_response(
            started.as_deref(),
            owned.status,
            written.as_ref().ok().copied(),
        );
        match written {
            Ok(_) => Event::Answered,
            Err(_) => Event::Close,
        }
    }

    /// The access log's line for a response a task produced (when the log is on).
    fn log_task_response(&self, started: Option<&Started>, status: u16, bytes: Option<usize>) {
        if let (Some(log), Some(started)) = (&self.limits.access_log, started) {
            log.record(&started.line(status, bytes));
        }
    }

    /// `Close`: sends what is pending, half-closes, and reads (discarding) until the client
    /// closes or the linger time ends, so that a reset does not destroy the last response.
    async fn close_gracefully(self) {
        let mut stream = self.stream;
        if !matches!(
            timeout(self.limits.write_timeout, stream.flush()).await,
            Ok(Ok(()))
        ) {
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
}

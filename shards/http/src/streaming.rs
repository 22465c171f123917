//! Streamed responses: a handler sends its body in parts through a [`ResponseWriter`], as it
//! produces them, instead of returning it whole.
//!
//! The handler runs as its own task (so a panic is contained) and the connection task is the
//! only one that touches the socket. They share one small state:
//!
//! - the **writer** (handler side) sets the status and fields, then [`send`]s parts; each part
//!   is copied into a buffer of at most `cap` bytes (the connection's
//!   [`max_output`](crate::Limits::max_output)); `send` waits while it is full, so a slow
//!   reader slows the handler down instead of growing memory (R17). Dropping the writer (the
//!   handler returning) ends the body.
//! - the **connection** writes the head at the first `send` (or at the end), then moves the
//!   buffered parts to the socket's output, framed as [`write_streaming_head`] chose
//!   (`Content-Length`, chunked, or close-delimited for HTTP/1.0), waiting while that output
//!   is at `max_output` for at most the write-progress timeout. When the connection gives up
//!   (no progress, reset), it marks the state gone and `send` returns [`StreamClosed`].
//!
//! Both sides run on one shard: the state is an `Rc<RefCell<…>>`, never borrowed across an
//! `await`. Wakers: the writer registers while the buffer is full, the connection while it
//! is empty and the body not finished; each side wakes the other after changing the state.
//!
//! [`send`]: ResponseWriter::send

use std::{
    cell::RefCell,
    fmt,
    future::{Future, poll_fn},
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
    time::Instant,
};

use percore::{JoinError, TcpStream, spawn, time::timeout};

use crate::{
    HttpError, Limits, ResponseFraming, StreamBody, response::LAST_CHUNK, write_chunk,
    write_error_response, write_streaming_head,
};

/// The connection closed (or gave up on a reader that made no progress) before the response
/// was complete; later parts cannot be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamClosed;

impl fmt::Display for StreamClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the connection closed before the streamed response was complete")
    }
}

impl std::error::Error for StreamClosed {}

pub(crate) struct Shared {
    status: u16,
    headers: Vec<(&'static str, String)>,
    content_length: Option<u64>,
    /// The head is fixed: the first `send` happened, or the writer was dropped.
    started: bool,
    /// Body bytes sent by the handler and not yet taken by the connection.
    buf: Vec<u8>,
    cap: usize,
    /// The writer was dropped: the body is complete.
    finished: bool,
    /// The connection is gone: sends fail.
    gone: bool,
    conn_waker: Option<Waker>,
    writer_waker: Option<Waker>,
}

impl Shared {
    fn wake_conn(&mut self) {
        if let Some(waker) = self.conn_waker.take() {
            waker.wake();
        }
    }

    fn wake_writer(&mut self) {
        if let Some(waker) = self.writer_waker.take() {
            waker.wake();
        }
    }
}

/// The handler's end of a streamed response: set the head, then [`send`](Self::send) the
/// body in parts; drop it (return from the handler) to end the body.
///
/// Without [`content_length`](Self::content_length) the body is chunked (HTTP/1.1) or ends
/// with the connection (HTTP/1.0). With it, exactly that many bytes must be sent: a shorter
/// body closes the connection at its end, and bytes past the length are dropped (and close
/// it too). `HEAD` requests get the head only; what is sent for them is discarded.
pub struct ResponseWriter {
    shared: Rc<RefCell<Shared>>,
}

impl ResponseWriter {
    /// A writer and the connection's handle on the same state; `cap` bounds the bytes sent and
    /// not yet taken by the connection.
    pub(crate) fn new(cap: usize) -> (Self, Rc<RefCell<Shared>>) {
        let shared = Rc::new(RefCell::new(Shared {
            status: 200,
            headers: Vec::new(),
            content_length: None,
            started: false,
            buf: Vec::new(),
            cap: cap.max(1),
            finished: false,
            gone: false,
            conn_waker: None,
            writer_waker: None,
        }));
        (
            ResponseWriter {
                shared: shared.clone(),
            },
            shared,
        )
    }

    /// Sets the status (default 200). No effect once the head is sent (at the first `send`).
    pub fn status(&mut self, status: u16) -> &mut Self {
        {
            let mut shared = self.shared.borrow_mut();
            if !shared.started {
                shared.status = status;
            }
        }
        self
    }

    /// Adds a header field (the writer owns `Content-Length`, `Transfer-Encoding`,
    /// `Connection` and `Date`: such fields are dropped). No effect once the head is sent.
    pub fn header(&mut self, name: &'static str, value: impl Into<String>) -> &mut Self {
        {
            let mut shared = self.shared.borrow_mut();
            if !shared.started {
                shared.headers.push((name, value.into()));
            }
        }
        self
    }

    /// Announces the body's length: `Content-Length` instead of chunked framing. No effect
    /// once the head is sent.
    pub fn content_length(&mut self, length: u64) -> &mut Self {
        {
            let mut shared = self.shared.borrow_mut();
            if !shared.started {
                shared.content_length = Some(length);
            }
        }
        self
    }

    /// Sends `data` as the next part of the body (the head goes first, at the first call;
    /// `send(b"")` sends just the head). Waits while the connection holds `cap` unsent bytes
    /// of this response: a slow reader slows the handler down. Fails once the connection is
    /// gone.
    pub async fn send(&mut self, data: &[u8]) -> Result<(), StreamClosed> {
        let mut sent = 0;
        poll_fn(|cx| self.poll_send(cx, data, &mut sent)).await
    }

    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        data: &[u8],
        sent: &mut usize,
    ) -> Poll<Result<(), StreamClosed>> {
        let mut shared = self.shared.borrow_mut();
        if shared.gone {
            return Poll::Ready(Err(StreamClosed));
        }
        if !shared.started {
            shared.started = true;
            shared.wake_conn();
        }
        while *sent < data.len() {
            let room = shared.cap.saturating_sub(shared.buf.len());
            if room == 0 {
                shared.writer_waker = Some(cx.waker().clone());
                shared.wake_conn();
                return Poll::Pending;
            }
            let take = room.min(data.len() - *sent);
            shared.buf.extend_from_slice(&data[*sent..*sent + take]);
            *sent += take;
            shared.wake_conn();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for ResponseWriter {
    fn drop(&mut self) {
        if let Ok(mut shared) = self.shared.try_borrow_mut() {
            shared.started = true;
            shared.finished = true;
            shared.wake_conn();
        }
    }
}

/// How a streamed response ended, for the connection.
pub(crate) enum StreamEnd {
    /// Complete and framed: the connection may serve its next request.
    KeepAlive,
    /// Complete (or cut at a point the client can detect) and the connection must close
    /// after its output is flushed.
    Close,
    /// No write progress: drop the connection without flushing.
    Abort,
}

/// Marks the state gone when the connection side stops, however it stops (a dropped
/// connection task included), so the handler's `send` fails instead of waiting forever.
struct GoneOnDrop(Rc<RefCell<Shared>>);

impl Drop for GoneOnDrop {
    fn drop(&mut self) {
        if let Ok(mut shared) = self.0.try_borrow_mut() {
            shared.gone = true;
            shared.buf = Vec::new();
            shared.wake_writer();
        }
    }
}

/// Runs the handler's `future` as a task and writes the response it streams through the
/// writer sharing `shared`. `date_at` gives the `Date` value; `count` records the status.
pub(crate) async fn answer_stream(
    stream: &mut TcpStream,
    future: impl Future<Output = ()> + 'static,
    shared: Rc<RefCell<Shared>>,
    framing: ResponseFraming,
    limits: &Limits,
    date_at: impl Fn(Instant) -> [u8; 29],
    count: impl Fn(u16),
) -> StreamEnd {
    let mut task = spawn(future);
    let _gone = GoneOnDrop(shared.clone());
    let mut body: Option<StreamBody> = None;
    let mut written: u64 = 0;
    let mut parts = Vec::new();
    loop {
        if stream.pending_output() >= limits.max_output
            && !matches!(
                timeout(limits.write_timeout, stream.writable()).await,
                Ok(Ok(()))
            )
        {
            return StreamEnd::Abort; // No write progress (R17).
        }
        let finished = poll_fn(|cx| {
            let mut s = shared.borrow_mut();
            if (s.started && body.is_none()) || !s.buf.is_empty() || s.finished {
                return Poll::Ready(s.finished);
            }
            s.conn_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        // The executor records a panic before it drops the task's future (and the writer).
        let panicked = finished
            && matches!(
                poll_fn(|cx| Poll::Ready(Pin::new(&mut task).poll(cx))).await,
                Poll::Ready(Err(JoinError::Panicked(_)))
            );
        if panicked && body.is_none() {
            let error = HttpError::handler_failed();
            let date = date_at(Instant::now());
            let _ = stream.write_with(|out| write_error_response(out, error, &date));
            count(error.status);
            return StreamEnd::Close;
        }
        if panicked {
            return StreamEnd::Close; // Cut short: no last chunk, too few bytes, or the close.
        }
        let mut s = shared.borrow_mut();
        std::mem::swap(&mut parts, &mut s.buf);
        s.wake_writer();
        let kind = match body {
            Some(kind) => kind,
            None => {
                let headers: Vec<(&str, &str)> =
                    s.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                let date = date_at(Instant::now());
                let (status, length) = (s.status, s.content_length);
                let kind = stream
                    .write_with(|out| {
                        write_streaming_head(out, status, &headers, &date, framing, length)
                    })
                    .unwrap_or(StreamBody::Empty);
                count(status);
                body = Some(kind);
                kind
            }
        };
        drop(s);
        let mut overflow = false;
        let result = stream.write_with(|out| match kind {
            StreamBody::Chunked => {
                write_chunk(out, &parts);
                if finished {
                    out.extend_from_slice(LAST_CHUNK);
                }
            }
            StreamBody::Length(length) => {
                let room = usize::try_from(length - written).unwrap_or(usize::MAX);
                let take = room.min(parts.len());
                out.extend_from_slice(&parts[..take]);
                written += take as u64;
                overflow = take < parts.len();
            }
            StreamBody::CloseDelimited => out.extend_from_slice(&parts),
            StreamBody::Empty => {}
        });
        parts.clear();
        if result.is_err() {
            return StreamEnd::Abort;
        }
        if overflow {
            return StreamEnd::Close; // The handler sent more than it announced.
        }
        if finished {
            let complete = match kind {
                StreamBody::Length(length) => written == length,
                StreamBody::CloseDelimited => false,
                StreamBody::Chunked | StreamBody::Empty => true,
            };
            return if complete && framing.keep_alive {
                StreamEnd::KeepAlive
            } else {
                StreamEnd::Close
            };
        }
    }
}

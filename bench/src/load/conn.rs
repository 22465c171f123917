//! One client connection: connect, send requests (as fast as answers come in closed loop,
//! on the schedule in open loop) with at most `pipeline` in flight, cut the answers into
//! responses in order, and reconnect after a failure until the window closes.

use std::{
    collections::VecDeque,
    future::poll_fn,
    pin::Pin,
    rc::Rc,
    task::Poll,
    time::{Duration, Instant},
};

use percore::{
    TcpStream,
    time::{Sleep, sleep},
};

use super::{AtEof, ErrorKind, Parsed, Protocol, ShardState, schedule::Schedule};
use crate::{
    connect::{RECONNECT_BACKOFF, connect_maybe_tls},
    measure::Phase,
};

/// Unsent output above which the writer stops adding requests (large bodies × pipeline).
const WRITE_BACKLOG: usize = 256 * 1024;
/// How long an idle open-loop connection sleeps at most before it looks at the phase again.
const IDLE_CHECK: Duration = Duration::from_millis(50);

/// A request on the wire: when its latency starts (sent, or intended in open loop) and the
/// phase it was sent in.
struct InFlight {
    start: Instant,
    phase: Phase,
}

/// How a connection ended.
enum End {
    /// The window closed and nothing is in flight (or the drain deadline passed).
    Finished,
    /// Failed or closed by the server; open another one.
    Reconnect { backoff: bool },
}

/// Runs connection `id` until the window has closed.
pub(crate) async fn run_connection<P: Protocol>(id: usize, shard: Rc<ShardState<P>>) {
    let cfg = shard.cfg.clone();
    let mut schedule = cfg
        .rate
        .map(|rate| Schedule::new(shard.start, id, cfg.connections, rate));
    loop {
        let phase = shard.phase();
        if phase == Phase::Done {
            return;
        }
        let stream = match connect_maybe_tls(cfg.target, cfg.timeout, cfg.tls.as_ref()).await {
            Ok(stream) => stream,
            Err(failure) => {
                // The error is counted in the phase in which the attempt began.
                shard.error(phase, failure.into());
                continue;
            }
        };
        shard.counts(phase).connects += 1;
        let mut driver = Driver {
            shard: &shard,
            proto: &*shard.proto,
            conn: shard.proto.conn(id),
            in_flight: VecDeque::with_capacity(cfg.pipeline),
            timer: sleep(cfg.timeout),
            sent_here: 0,
        };
        match driver.drive(stream, schedule.as_mut()).await {
            End::Finished => return,
            End::Reconnect { backoff: true } => sleep(RECONNECT_BACKOFF).await,
            End::Reconnect { backoff: false } => {}
        }
    }
}

struct Driver<'a, P: Protocol> {
    shard: &'a ShardState<P>,
    proto: &'a P,
    conn: P::Conn,
    in_flight: VecDeque<InFlight>,
    /// One timer per connection, moved for each wait (no timer allocated per request).
    timer: Sleep,
    /// Requests sent on this connection (`new_conn` mode sends one).
    sent_here: u64,
}

/// What one batch of response bytes held.
#[derive(Default)]
struct Batch {
    /// The server announced the close of the connection after a response.
    closing: bool,
    invalid: bool,
    /// When the batch's responses were taken (`None` if none was whole).
    at: Option<Instant>,
}

impl<P: Protocol> Driver<'_, P> {
    async fn drive(&mut self, mut stream: TcpStream, mut schedule: Option<&mut Schedule>) -> End {
        let cfg = self.shard.cfg.clone();
        // One clock read per wake-up: the time responses were parsed is also the send time of
        // the requests that follow them in the same poll.
        let mut now = Instant::now();
        // Response bytes must come within `timeout` of the last progress.
        let mut last_progress = now;
        loop {
            let phase = self.shard.phase();
            if cfg.new_conn && self.sent_here > 0 && self.in_flight.is_empty() {
                // Answered: the next request opens a new connection.
                return End::Reconnect { backoff: false };
            }
            if phase != Phase::Done {
                if self.in_flight.is_empty() {
                    last_progress = now;
                }
                if let Err(e) = self.send_due(&mut stream, phase, schedule.as_deref_mut(), now) {
                    self.fail(ErrorKind::of_io(&e));
                    return End::Reconnect { backoff: true };
                }
            }
            let drain = self.shard.drain_deadline();
            if self.in_flight.is_empty() && phase == Phase::Done {
                return End::Finished;
            }
            // The next moment something must happen even if no byte comes (bounded, so a
            // connection waiting on a silent server still notices the window closing).
            let mut wake = now + IDLE_CHECK;
            if !self.in_flight.is_empty() {
                wake = wake.min(last_progress + cfg.timeout);
            }
            if let Some(s) = schedule.as_deref()
                && phase != Phase::Done
                && self.in_flight.len() < cfg.pipeline
            {
                wake = wake.min(s.next());
            }
            if let Some(d) = drain {
                wake = wake.min(d);
            }
            let read = self
                .wait(&mut stream, wake.saturating_duration_since(now))
                .await;
            match read {
                None => {
                    now = Instant::now();
                    if let Some(d) = drain
                        && now >= d
                    {
                        self.at_end();
                        return End::Finished;
                    }
                    if !self.in_flight.is_empty() && now >= last_progress + cfg.timeout {
                        self.fail(ErrorKind::Timeout);
                        return End::Reconnect { backoff: true };
                    }
                }
                Some(Ok(Some(batch))) => {
                    now = batch.at.unwrap_or_else(Instant::now);
                    last_progress = now;
                    if batch.invalid {
                        self.fail(ErrorKind::Parse);
                        return End::Reconnect { backoff: true };
                    }
                    if batch.closing {
                        // Requests pipelined behind the last response will not be answered.
                        self.fail(ErrorKind::Aborted);
                        return End::Reconnect { backoff: false };
                    }
                }
                Some(Ok(None)) => {
                    let unconsumed = stream.buffered_len();
                    let kind = match self.proto.at_eof(&mut self.conn, unconsumed) {
                        AtEof::Complete { ok } => {
                            self.complete(ok);
                            if self.in_flight.is_empty() {
                                return End::Reconnect { backoff: false };
                            }
                            ErrorKind::Closed
                        }
                        AtEof::Truncated => ErrorKind::Truncated,
                        AtEof::Closed => ErrorKind::Closed,
                    };
                    self.fail(kind);
                    return End::Reconnect { backoff: true };
                }
                Some(Err(e)) => {
                    self.fail(ErrorKind::of_io(&e));
                    return End::Reconnect { backoff: true };
                }
            }
        }
    }

    /// Writes the requests that may go now: up to the pipeline depth, and in open loop only
    /// those whose time has come.
    fn send_due(
        &mut self,
        stream: &mut TcpStream,
        phase: Phase,
        mut schedule: Option<&mut Schedule>,
        now: Instant,
    ) -> std::io::Result<()> {
        let pipeline = if self.shard.cfg.new_conn {
            1
        } else {
            self.shard.cfg.pipeline
        };
        if self.in_flight.len() >= pipeline
            || stream.pending_output() >= WRITE_BACKLOG
            || (self.shard.cfg.new_conn && self.sent_here > 0)
        {
            return Ok(());
        }
        let mut sent = 0u64;
        let (proto, conn, in_flight) = (self.proto, &mut self.conn, &mut self.in_flight);
        let result = stream.write_with(|out| {
            while in_flight.len() < pipeline {
                let start = match schedule.as_deref_mut() {
                    None => now,
                    Some(s) => match s.take_due(now) {
                        Some(intended) => intended,
                        None => break,
                    },
                };
                proto.write_request(conn, out);
                in_flight.push_back(InFlight { start, phase });
                sent += 1;
            }
        });
        self.shard.counts(phase).sent += sent;
        self.sent_here += sent;
        result
    }

    /// Waits at most `wait` for response bytes and parses what came. `None`: the time ran
    /// out.
    async fn wait(
        &mut self,
        stream: &mut TcpStream,
        wait: Duration,
    ) -> Option<std::io::Result<Option<Batch>>> {
        if self.in_flight.is_empty() {
            // Nothing to read for: just wait (open loop between requests, or drain).
            self.timer.reset(wait);
            (&mut self.timer).await;
            return None;
        }
        self.timer.reset(wait);
        let Driver {
            shard,
            proto,
            conn,
            in_flight,
            timer,
            ..
        } = self;
        let mut parse = |data: &[u8]| parse_batch(*shard, *proto, conn, in_flight, data);
        poll_fn(|cx| {
            if let Poll::Ready(r) = stream.poll_read_with(cx, &mut parse) {
                return Poll::Ready(Some(r));
            }
            match Pin::new(&mut *timer).poll(cx) {
                Poll::Ready(()) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// One response completed at the end of the stream (outside a parse batch).
    fn complete(&mut self, ok: bool) {
        if let Some(request) = self.in_flight.pop_front() {
            record(self.shard, request, ok, Instant::now());
        }
    }

    /// Counts the oldest in-flight request as failed for `kind` and the ones behind it as
    /// aborted (the connection is dropped, so their answers will never be read).
    fn fail(&mut self, kind: ErrorKind) {
        let mut requests = self.in_flight.drain(..);
        if let Some(first) = requests.next() {
            self.shard.error(first.phase, kind);
        }
        for request in requests {
            self.shard.error(request.phase, ErrorKind::Aborted);
        }
    }

    /// The drain deadline passed: what is still in flight is reported as such.
    fn at_end(&mut self) {
        for request in self.in_flight.drain(..) {
            self.shard.counts(request.phase).in_flight_at_end += 1;
        }
    }
}

/// Cuts `data` into responses for the requests in flight, in order, recording each.
/// Consumes everything on a parse error (the connection is dropped anyway), so the batch is
/// always returned rather than waiting for more bytes.
fn parse_batch<P: Protocol>(
    shard: &ShardState<P>,
    proto: &P,
    conn: &mut P::Conn,
    in_flight: &mut VecDeque<InFlight>,
    data: &[u8],
) -> (usize, Batch) {
    let mut batch = Batch::default();
    let mut offset = 0;
    while !in_flight.is_empty() && offset < data.len() {
        let (consumed, parsed) = proto.parse(conn, &data[offset..]);
        offset += consumed;
        match parsed {
            Parsed::More => break,
            Parsed::Invalid => {
                batch.invalid = true;
                return (data.len(), batch);
            }
            Parsed::Response { ok, close } => {
                let at = *batch.at.get_or_insert_with(Instant::now);
                if let Some(request) = in_flight.pop_front() {
                    record(shard, request, ok, at);
                }
                if close {
                    batch.closing = true;
                    return (data.len(), batch);
                }
            }
        }
    }
    (offset, batch)
}

fn record<P: Protocol>(shard: &ShardState<P>, request: InFlight, ok: bool, at: Instant) {
    if !ok {
        shard.error(request.phase, ErrorKind::Status);
        return;
    }
    shard.counts(request.phase).ok += 1;
    shard
        .live()
        .ok
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if request.phase == Phase::Measure {
        let ns = u64::try_from(at.saturating_duration_since(request.start).as_nanos())
            .unwrap_or(u64::MAX);
        shard.record_latency_ns(ns);
    }
}

//! The access log: one line per response, off by default ([`Limits::access_log`]).
//!
//! # Format
//!
//! The Common Log Format's fields, the date in the HTTP date form, then the duration and the
//! shard:
//!
//! ```text
//! 203.0.113.7 - - [Mon, 07 Dec 2026 01:50:00 GMT] "GET /ip HTTP/1.1" 200 147 83 1
//! client      ident user  [date]                    "request line"     status bytes µs shard
//! ```
//!
//! - **client**: the client's IP address: the one a trusted proxy's PROXY protocol header
//!   names when there is one (`--proxy-protocol`), else the peer's; `-` when unknown.
//! - **ident**, **user**: always `-` (kept so Common Log Format tools parse the line).
//! - **date**: when the response was finished, in UTC (the HTTP `Date` form, cached per
//!   second).
//! - **request line**: method, target (path and query as sent; bytes outside printable
//!   ASCII, `"` and `\` are written `\xHH`) and version; `"-"` for a request that could
//!   not be parsed (a 400/408/413/414/431 answered before a request line was known).
//! - **status**: the response status.
//! - **bytes**: bytes of the response (head and body) as written; `-` for a streamed body.
//! - **µs**: microseconds from the shard's loop iteration that read the request's last
//!   bytes to the response being complete in the connection's output (the server's own
//!   time; not the client's round trip, not the time to send).
//! - **shard**: the shard that answered.
//!
//! # Cost, and why the shard never blocks on it
//!
//! Off (the default), it costs one branch per response. On, a shard formats the line into
//! its own buffer (no lock, no syscall). The buffer goes to the log's writer thread, which
//! does the blocking `write`, when it reaches 16 KiB or 50 ms after its first line (a
//! background task of the shard), and when the shard's thread ends (a stop). The hand-over
//! is a non-blocking send on a bounded channel: if the writer cannot keep up (a stalled
//! pipe), the batch is dropped and counted ([`AccessLog::dropped_lines`]), the shard does
//! not wait. [`AccessLog::flush`] waits for everything handed over so far to be written.

use std::{
    cell::RefCell,
    fmt,
    io::{self, Write},
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering::Relaxed},
        mpsc::{self, Receiver, SyncSender, TrySendError},
    },
    thread,
    time::{Duration, Instant},
};

use crate::{DateCache, Request, Version};

/// A shard hands its buffer to the writer once it holds this many bytes.
const FLUSH_BYTES: usize = 16 * 1024;
/// ... or this long after its first line, whichever comes first.
const FLUSH_AFTER: Duration = Duration::from_millis(50);
/// Batches that may wait for the writer; more are dropped (counted).
const QUEUE: usize = 1024;

enum Msg {
    Lines(Vec<u8>),
    Flush(mpsc::Sender<()>),
}

/// The writer's end, until its thread starts.
type Pending = (Receiver<Msg>, Box<dyn Write + Send>);

struct Inner {
    id: u64,
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
    /// The writer thread starts on the first line (from a shard, whose thread has the
    /// server's signals blocked: a thread started before `serve` would inherit an open
    /// mask and take the process's SIGTERM with the default action).
    writer: Mutex<Option<Pending>>,
}

impl Inner {
    fn start_writer(&self) {
        let pending = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some((rx, out)) = pending else {
            return;
        };
        let spawned = thread::Builder::new()
            .name("percore-access-log".to_owned())
            .spawn(move || write_loop(rx, out));
        if let Err(err) = spawned {
            // The receiver is gone with the closure: every batch is counted as dropped.
            eprintln!("percore: the access log's writer thread did not start ({err})");
        }
    }
}

/// Where the access log goes: a cheap, cloneable handle to one writer thread. Set it in
/// [`Limits::access_log`](crate::Limits::access_log) to log every response of a service;
/// see the [module docs](self) for the line format.
#[derive(Clone)]
pub struct AccessLog {
    inner: Arc<Inner>,
}

impl fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLog")
            .field("id", &self.inner.id)
            .finish()
    }
}

impl PartialEq for AccessLog {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for AccessLog {}

impl AccessLog {
    /// A log written to the process's standard output.
    pub fn stdout() -> Self {
        Self::to_writer(io::stdout())
    }

    /// A log written to `out` by a thread of its own (named `percore-access-log`).
    ///
    /// The thread starts with the first line; a failure to start it is reported on stderr
    /// and the lines are dropped (counted).
    pub fn to_writer(out: impl Write + Send + 'static) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        AccessLog {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Relaxed),
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
                writer: Mutex::new(Some((rx, Box::new(out)))),
            }),
        }
    }

    /// Lines dropped because the writer fell behind by more than 1024 batches.
    pub fn dropped_lines(&self) -> u64 {
        self.inner.dropped.load(Relaxed)
    }

    /// Waits (up to `deadline`) until every line handed to the writer so far is written and
    /// the output flushed; true when it was. Lines still in a running shard's buffer are
    /// not included: call it after the server has stopped (its shards hand over what they
    /// hold as they end).
    pub fn flush(&self, deadline: Duration) -> bool {
        self.inner.start_writer();
        let (ack_tx, ack_rx) = mpsc::channel();
        if self.inner.tx.send(Msg::Flush(ack_tx)).is_err() {
            return false;
        }
        ack_rx.recv_timeout(deadline).is_ok()
    }

    /// Logs one response (on a shard).
    #[inline(never)]
    pub(crate) fn record(&self, line: &Line<'_>) {
        SHARD_BUFFERS.with(|cell| {
            let mut buffers = cell.borrow_mut();
            let at = match buffers.iter().position(|b| b.id == self.inner.id) {
                Some(at) => at,
                None => {
                    self.inner.start_writer();
                    buffers.push(ShardBuffer {
                        id: self.inner.id,
                        tx: self.inner.tx.clone(),
                        dropped: Arc::clone(&self.inner.dropped),
                        text: Vec::new(),
                        lines: 0,
                        armed: false,
                    });
                    buffers.len() - 1
                }
            };
            let buffer = &mut buffers[at];
            line.write(&mut buffer.text);
            buffer.lines += 1;
            if buffer.text.len() >= FLUSH_BYTES {
                buffer.hand_over();
            } else if !buffer.armed {
                buffer.armed = true;
                let id = self.inner.id;
                percore::spawn_background(async move {
                    percore::time::sleep(FLUSH_AFTER).await;
                    flush_shard(id);
                });
            }
        });
    }
}

/// A finished response, as the log sees it.
pub(crate) struct Line<'a> {
    pub(crate) client: Option<SocketAddr>,
    /// Method, target and version; `None` when no request line was parsed.
    pub(crate) request: Option<(&'a [u8], &'a [u8], Version)>,
    pub(crate) status: u16,
    /// Response bytes; `None` for a streamed body.
    pub(crate) bytes: Option<usize>,
    /// When the shard started on the request (the loop's reading).
    pub(crate) started: Instant,
}

impl<'a> Line<'a> {
    /// A response to `request`, started at the loop's current reading.
    pub(crate) fn of(request: &Request<'a>, status: u16, bytes: Option<usize>) -> Self {
        Line {
            client: request.client_addr(),
            request: Some((request.method(), request.target(), request.version())),
            status,
            bytes,
            started: percore::time::now(),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        let now = Instant::now();
        let micros = now.saturating_duration_since(self.started).as_micros();
        match self.client {
            Some(addr) => {
                let _ = write!(out, "{}", addr.ip());
            }
            None => out.push(b'-'),
        }
        out.extend_from_slice(b" - - [");
        DATE.with(|d| out.extend_from_slice(d.borrow_mut().at(now)));
        out.extend_from_slice(b"] \"");
        match self.request {
            Some((method, target, version)) => {
                escaped(out, method);
                out.push(b' ');
                escaped(out, target);
                out.extend_from_slice(match version {
                    Version::Http10 => b" HTTP/1.0",
                    Version::Http11 => b" HTTP/1.1",
                });
            }
            None => out.push(b'-'),
        }
        let _ = write!(out, "\" {} ", self.status);
        match self.bytes {
            Some(bytes) => {
                let _ = write!(out, "{bytes}");
            }
            None => out.push(b'-'),
        }
        let _ = writeln!(out, " {micros} {}", percore::mesh::shard_id());
    }
}

/// Writes `bytes`, with anything outside printable ASCII, `"` and `\` as `\xHH`.
fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'"' && b != b'\\' {
            out.push(b);
        } else {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
}

/// One shard's unsent lines for one log.
struct ShardBuffer {
    id: u64,
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
    text: Vec<u8>,
    lines: u64,
    /// A flush task waits.
    armed: bool,
}

impl ShardBuffer {
    /// Hands the buffer to the writer without waiting; a full queue drops it (counted).
    fn hand_over(&mut self) {
        if self.text.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.text);
        let lines = std::mem::take(&mut self.lines);
        match self.tx.try_send(Msg::Lines(text)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(lines, Relaxed);
            }
        }
    }
}

impl Drop for ShardBuffer {
    fn drop(&mut self) {
        // The shard's thread ends: nothing of the shard waits any more, so wait for room.
        if !self.text.is_empty() {
            let text = std::mem::take(&mut self.text);
            let _ = self.tx.send(Msg::Lines(text));
        }
    }
}

thread_local! {
    static SHARD_BUFFERS: RefCell<Vec<ShardBuffer>> = const { RefCell::new(Vec::new()) };
    static DATE: RefCell<DateCache> = RefCell::new(DateCache::default());
}

fn flush_shard(id: u64) {
    SHARD_BUFFERS.with(|cell| {
        if let Some(buffer) = cell.borrow_mut().iter_mut().find(|b| b.id == id) {
            buffer.armed = false;
            buffer.hand_over();
        }
    });
}

fn write_loop(rx: Receiver<Msg>, mut out: Box<dyn Write + Send>) {
    let mut failed = false;
    for msg in rx {
        match msg {
            Msg::Lines(text) => {
                if let Err(err) = out.write_all(&text) {
                    if !failed {
                        eprintln!("percore: access log write failed ({err}); its lines are lost");
                    }
                    failed = true;
                }
            }
            Msg::Flush(ack) => {
                let _ = out.flush();
                let _ = ack.send(());
            }
        }
    }
    let _ = out.flush();
}

/// What the log keeps of a request answered by a task (async or streaming handler) until
/// its response is finished. Made only when the log is on.
pub(crate) struct Started {
    client: Option<SocketAddr>,
    method: Vec<u8>,
    target: Vec<u8>,
    version: Version,
    at: Instant,
}

impl Started {
    pub(crate) fn of(request: &Request<'_>) -> Box<Self> {
        Box::new(Started {
            client: request.client_addr(),
            method: request.method().to_vec(),
            target: request.target().to_vec(),
            version: request.version(),
            at: percore::time::now(),
        })
    }

    pub(crate) fn line(&self, status: u16, bytes: Option<usize>) -> Line<'_> {
        Line {
            client: self.client,
            request: Some((&self.method, &self.target, self.version)),
            status,
            bytes,
            started: self.at,
        }
    }
}

impl Line<'static> {
    /// A response sent before any request line was known (a refused or timed-out head).
    pub(crate) fn unparsed(client: Option<SocketAddr>, status: u16) -> Self {
        Line {
            client,
            request: None,
            status,
            bytes: None,
            started: percore::time::now(),
        }
    }
}

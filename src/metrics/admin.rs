//! The admin listener: `GET /metrics` (Prometheus text, every shard), `GET /healthz`,
//! `GET /debug/shards` and `POST /drain`, served by a thread of its own, so that it answers while any shard,
//! shard 0 included, is held by a handler that never returns.
//!
//! `/metrics` gathers each shard's counters through its inbox; a shard that does not answer
//! within a second (stalled) is reported with `percore_shard_up 0` instead of holding the
//! scrape. The stall gauges (`percore_shard_stalled_seconds`, `percore_shards_stuck`),
//! `/healthz` and `/debug/shards` read the stall detector's shared state and never wait for
//! a shard.
//!
//! `/healthz` is the health check of services that speak no HTTP (echo, kv): `200` while
//! serving, `503` while starting, stuck, or draining. `POST /drain` announces a stop, as
//! SIGTERM does: `/healthz` answers 503 at once, the listeners stay open for the drain
//! delay, then the server drains and exits. Bind the admin listener to loopback or a
//! private address: anyone who reaches it can stop the server.
//!
//! The listener socket is non-blocking: during a hot restart the old and the new process
//! share it for a moment, and a connection announced by `poll` may be taken by the other.
//!
//! The request reader is deliberately small and strict: one request per connection, the head
//! bounded to 8 KiB and 5 s, anything else answered with an error status, then the
//! connection closes. Each connection gets a short-lived thread, at most
//! [`MAX_CONNECTIONS`] at once (more are closed unanswered), so a slow client delays no probe.

use std::{
    fmt::Write as _,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use super::{ShardStats, health, health::Readiness, prometheus, stats};
use crate::mesh::MeshShared;

/// What the admin thread needs from the server above it.
pub(crate) struct AdminHooks {
    /// The server's lifecycle, for `/healthz`.
    pub readiness: Readiness,
    /// `POST /drain`: announce a stop (the drain delay, then the drain). Returns the line
    /// the caller gets.
    pub drain: Box<dyn Fn() -> String + Send + Sync>,
    /// False once the admin thread must end (the server stopped, or a successor process
    /// took the admin listener over).
    pub running: Box<dyn Fn() -> bool + Send + Sync>,
}

const MAX_HEAD_BYTES: usize = 8 * 1024;
const HEAD_DEADLINE: Duration = Duration::from_secs(5);
const GATHER_DEADLINE: Duration = Duration::from_secs(1);
/// Admin connections served at once.
pub(crate) const MAX_CONNECTIONS: usize = 16;
/// How often the accept loop looks whether the server still runs.
const STOP_POLL_MS: i32 = 100;

/// Starts the admin thread on `listener`; it ends once `running` answers false.
pub(crate) fn spawn_admin(
    listener: TcpListener,
    mesh: Arc<MeshShared>,
    hooks: AdminHooks,
) -> std::io::Result<thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let hooks = Arc::new(hooks);
    thread::Builder::new()
        .name("percore-admin".into())
        .spawn(move || {
            let live = Arc::new(AtomicUsize::new(0));
            let mut ready = Vec::with_capacity(1);
            let fd = listener.as_raw_fd();
            while (hooks.running)() {
                match crate::sys::steer::poll_readable(&[fd], STOP_POLL_MS, &mut ready) {
                    Ok(()) if ready.first() == Some(&true) => {}
                    Ok(()) => continue,
                    Err(e) => {
                        tracing::warn!("admin listener: poll failed: {e}");
                        thread::sleep(Duration::from_millis(STOP_POLL_MS as u64));
                        continue;
                    }
                }
                let stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    // Taken by the other process sharing the listener (hot restart).
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => {
                        tracing::warn!("admin listener: accept failed: {e}");
                        continue;
                    }
                };
                if live.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    live.fetch_sub(1, Ordering::AcqRel);
                    continue; // Closed unanswered: too many admin connections at once.
                }
                // Accepted sockets do not inherit O_NONBLOCK on Linux, but say so explicitly.
                let _ = stream.set_nonblocking(false);
                let (mesh, live, hooks) = (mesh.clone(), live.clone(), hooks.clone());
                let spawned = thread::Builder::new()
                    .name("percore-admin-conn".into())
                    .spawn({
                        let live = live.clone();
                        move || {
                            handle(stream, &mesh, &hooks);
                            live.fetch_sub(1, Ordering::AcqRel);
                        }
                    });
                if let Err(e) = spawned {
                    live.fetch_sub(1, Ordering::AcqRel);
                    tracing::warn!("admin listener: spawning a connection thread failed: {e}");
                }
            }
        })
}

/// What the request head asked for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    Healthz,
    DebugShards,
    Drain,
    NotFound,
    MethodNotAllowed,
    BadRequest,
    HeadTooLarge,
}

const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const JSON: &str = "application/json";

fn handle(mut stream: TcpStream, mesh: &MeshShared, hooks: &AdminHooks) {
    let _ = stream.set_write_timeout(Some(HEAD_DEADLINE));
    let Some(route) = read_head(&mut stream) else {
        return;
    };
    let (status, content_type, body) = match route {
        Route::Metrics => ("200 OK", TEXT, gather(mesh)),
        Route::Healthz => {
            let (code, body) = health::check_of(mesh.remotes(), hooks.readiness.get());
            let status = if code == 200 {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            (status, JSON, body)
        }
        Route::DebugShards => {
            let mut body = String::new();
            health::debug_shards(mesh.remotes(), &mut body);
            ("200 OK", TEXT, body)
        }
        Route::Drain => ("202 Accepted", TEXT, (hooks.drain)()),
        Route::NotFound => (
            "404 Not Found",
            TEXT,
            "served here: GET /metrics, GET /healthz, GET /debug/shards, POST /drain\n".to_string(),
        ),
        Route::MethodNotAllowed => (
            "405 Method Not Allowed",
            TEXT,
            "use GET (POST for /drain)\n".to_string(),
        ),
        Route::BadRequest => ("400 Bad Request", TEXT, "malformed request\n".to_string()),
        Route::HeadTooLarge => (
            "431 Request Header Fields Too Large",
            TEXT,
            "request head over 8 KiB\n".to_string(),
        ),
    };
    let mut response = String::with_capacity(body.len() + 160);
    let _ = write!(
        response,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// Reads until the end of the request head, within [`HEAD_DEADLINE`]; `None` if the peer
/// left or the deadline passed first.
fn read_head(stream: &mut TcpStream) -> Option<Route> {
    let deadline = Instant::now() + HEAD_DEADLINE;
    let mut input = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        input.extend_from_slice(&buf[..n]);
        if let Some(end) = head_end(&input) {
            return Some(route(&input[..end]));
        }
        if input.len() >= MAX_HEAD_BYTES {
            return Some(Route::HeadTooLarge);
        }
    }
}

fn head_end(input: &[u8]) -> Option<usize> {
    input
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

fn route(head: &[u8]) -> Route {
    let Some(line_end) = head.windows(2).position(|w| w == b"\r\n") else {
        return Route::BadRequest;
    };
    let mut parts = head[..line_end].split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if version != b"HTTP/1.1" && version != b"HTTP/1.0" {
        return Route::BadRequest;
    }
    let path = target.split(|b| *b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/metrics") => Route::Metrics,
        (b"GET", b"/healthz") => Route::Healthz,
        (b"GET", b"/debug/shards") => Route::DebugShards,
        (b"POST", b"/drain") => Route::Drain,
        (b"GET", _) => Route::NotFound,
        _ => Route::MethodNotAllowed,
    }
}

/// Asks every shard for its counters at once and renders what came back in time, with the
/// stall gauges read from the detector's shared state.
fn gather(mesh: &MeshShared) -> String {
    let count = mesh.remotes().len();
    let (tx, rx) = mpsc::channel();
    let mut asked = Vec::with_capacity(count);
    for target in 0..count {
        let tx = tx.clone();
        let posted = mesh.post_from_outside(
            target,
            Box::new(move || {
                let _ = tx.send(stats());
            }),
        );
        if posted {
            asked.push(target);
        }
    }
    drop(tx);
    let deadline = Instant::now() + GATHER_DEADLINE;
    let mut answered: Vec<ShardStats> = Vec::with_capacity(asked.len());
    while answered.len() < asked.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(stats) => answered.push(stats),
            Err(_) => break,
        }
    }
    answered.sort_by_key(|s| s.shard);
    let missing: Vec<usize> = (0..count)
        .filter(|id| !answered.iter().any(|s| s.shard == *id))
        .collect();
    let mut out = String::with_capacity(32 * 1024);
    prometheus::render(&answered, &missing, &mut out);
    prometheus::render_stalls(&health::health_of(mesh.remotes()), &mut out);
    prometheus::render_stalls_by_route(&health::stalls_by_route(mesh.remotes()), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_admin_routes_are_served() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /healthz HTTP/1.1\r\n\r\n"), Route::Healthz);
        assert_eq!(
            route(b"GET /debug/shards HTTP/1.1\r\n\r\n"),
            Route::DebugShards
        );
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(
            route(b"POST /drain HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            Route::Drain
        );
        assert_eq!(route(b"GET /drain HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET  /metrics HTTP/1.1\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"GET /metrics HTTP/2\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"garbage\r\n\r\n"), Route::BadRequest);
    }

    #[test]
    fn the_head_ends_at_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}

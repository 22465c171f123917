//! The admin listener: `GET /metrics` in the Prometheus text format, served by shard 0 with
//! figures gathered from every shard through the mesh. A shard that does not answer within
//! a second (stalled) is reported with `percore_shard_up 0` instead of holding the scrape.
//!
//! The request reader is deliberately small and strict: one request per connection, the head
//! bounded to 8 KiB and 5 s, anything but `GET /metrics` answered with an error status, then
//! the connection closes.

use std::{fmt::Write, time::Duration};

use super::{ShardStats, prometheus, stats};
use crate::{
    mesh,
    net::{TcpListener, TcpStream},
    task::spawn,
    time::timeout,
};

const MAX_HEAD_BYTES: usize = 8 * 1024;
const HEAD_DEADLINE: Duration = Duration::from_secs(5);
const GATHER_DEADLINE: Duration = Duration::from_secs(1);

/// Accepts admin connections until the listener stops (graceful stop).
pub(crate) async fn serve_admin(listener: TcpListener) {
    while let Ok(stream) = listener.accept().await {
        spawn(handle(stream));
    }
}

/// What the request head asked for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    MethodNotAllowed,
    BadRequest,
    HeadTooLarge,
}

async fn handle(mut stream: TcpStream) {
    let route = match timeout(HEAD_DEADLINE, read_head(&mut stream)).await {
        Ok(Some(route)) => route,
        Ok(None) | Err(_) => return,
    };
    let (status, body) = match route {
        Route::Metrics => ("200 OK", gather().await),
        Route::NotFound => ("404 Not Found", "only /metrics lives here\n".to_string()),
        Route::MethodNotAllowed => ("405 Method Not Allowed", "use GET\n".to_string()),
        Route::BadRequest => ("400 Bad Request", "malformed request\n".to_string()),
        Route::HeadTooLarge => (
            "431 Request Header Fields Too Large",
            "request head over 8 KiB\n".to_string(),
        ),
    };
    let mut response = String::with_capacity(body.len() + 160);
    let _ = write!(
        response,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(response.as_bytes()).await.is_ok() {
        let _ = timeout(HEAD_DEADLINE, stream.flush()).await;
    }
}

/// Reads until the end of the request head; `None` if the peer left first.
async fn read_head(stream: &mut TcpStream) -> Option<Route> {
    stream
        .read_with(|input| match head_end(input) {
            Some(end) => (end, route(&input[..end])),
            None if input.len() >= MAX_HEAD_BYTES => (input.len(), Route::HeadTooLarge),
            None => (0, Route::BadRequest),
        })
        .await
        .ok()
        .flatten()
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
        (b"GET", _) => Route::NotFound,
        _ => Route::MethodNotAllowed,
    }
}

/// Asks every shard for its counters at once and renders what came back in time.
async fn gather() -> String {
    let count = mesh::shard_count();
    let asks: Vec<_> = (0..count)
        .map(|id| spawn(async move { mesh::submit_to(id, stats).await }))
        .collect();
    let mut answered: Vec<ShardStats> = Vec::with_capacity(count);
    let mut missing = Vec::new();
    let deadline = crate::time::sleep(GATHER_DEADLINE);
    let mut deadline = std::pin::pin!(deadline);
    for (id, ask) in asks.into_iter().enumerate() {
        match crate::future::select(ask, deadline.as_mut()).await {
            crate::future::Either::Left(Ok(Ok(stats))) => answered.push(stats),
            _ => missing.push(id),
        }
    }
    let mut out = String::with_capacity(32 * 1024);
    prometheus::render(&answered, &missing, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
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

//! Streamed responses over real sockets: curl receives every part (chunked, HTTP/1.0
//! close-delimited, with a Content-Length); the chunked framing on the wire is exact and the
//! next pipelined response follows it; HEAD gets the head only; a client that never reads
//! holds the handler back (bounded memory) and is dropped after the write-progress timeout.

mod server_support;

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    thread,
    time::{Duration, Instant},
};

use percore::ServerHandle;
use percore_http::{
    Limits, OwnedRequest, ResponseWriter, Router,
    demo::{self, stream_body},
};
use server_support::{curl, have, stop};

/// Bytes `/flood` managed to hand to its writer, and whether a send failed.
static FLOODED: AtomicU64 = AtomicU64::new(0);
static FLOOD_REFUSED: AtomicBool = AtomicBool::new(false);

/// Streams up to 1 GiB in 64 KiB parts, counting what `send` accepted.
async fn flood(_: OwnedRequest, mut writer: ResponseWriter) {
    let part = vec![b'f'; 64 * 1024];
    for _ in 0..16 * 1024 {
        if writer.send(&part).await.is_err() {
            FLOOD_REFUSED.store(true, Ordering::SeqCst);
            return;
        }
        FLOODED.fetch_add(part.len() as u64, Ordering::SeqCst);
    }
}

/// Sends a part, then panics.
async fn half_then_panic(_: OwnedRequest, mut writer: ResponseWriter) {
    let _ = writer.send(b"first part").await;
    percore::time::sleep(Duration::from_millis(20)).await;
    panic!("streaming handler failure on purpose");
}

async fn panic_first(_: OwnedRequest, _writer: ResponseWriter) {
    panic!("streaming handler failure before its head, on purpose");
}

fn router() -> Router {
    demo::router()
        .route_stream("GET", "/flood", flood)
        .route_stream("GET", "/half", half_then_panic)
        .route_stream("GET", "/panic-first", panic_first)
}

fn start(limits: Limits) -> (ServerHandle, SocketAddr) {
    server_support::start(limits, router)
}

/// Writes `request`, reads until `done(bytes)` or the server closes; returns the bytes and
/// whether the server closed.
fn exchange(addr: SocketAddr, request: &[u8], done: impl Fn(&[u8]) -> bool) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let closed = loop {
        if done(&bytes) {
            break false;
        }
        match stream.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
            Err(e) => panic!("read: {e} after {} bytes", bytes.len()),
        }
    };
    (bytes, closed)
}

/// Splits a response head off `bytes`.
fn head(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    (
        String::from_utf8_lossy(&bytes[..end + 4]).into_owned(),
        &bytes[end + 4..],
    )
}

/// Decodes a chunked body strictly (lower-case hex sizes, CRLFs, no extensions, an empty
/// trailer section); returns the body and what follows it.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, &[u8]) {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk-size line");
        let size_text = std::str::from_utf8(&rest[..line_end]).unwrap();
        assert!(
            !size_text.is_empty() && size_text.bytes().all(|b| b.is_ascii_hexdigit()),
            "chunk size {size_text:?}"
        );
        let size = usize::from_str_radix(size_text, 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            assert!(rest.starts_with(b"\r\n"), "empty trailer section");
            return (body, &rest[2..]);
        }
        body.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n", "CRLF after chunk data");
        rest = &rest[size + 2..];
    }
}

const HELLO: &[u8] = b"Hello, World!";

#[test]
fn chunked_framing_is_exact_and_the_next_pipelined_response_follows() {
    let (server, addr) = start(Limits::default());
    let request = b"GET /stream?chunks=30&size=1000&delay_ms=1 HTTP/1.1\r\nHost: a\r\n\r\n\
                    GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let (bytes, closed) = exchange(addr, request, |b| b.ends_with(HELLO));
    assert!(!closed);
    let (text, rest) = head(&bytes);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("\r\nTransfer-Encoding: chunked\r\n"),
        "{text}"
    );
    assert!(!text.contains("Content-Length"), "{text}");
    let (body, after) = dechunk(rest);
    assert_eq!(body, stream_body(30, 1000));
    let (next, next_body) = head(after);
    assert!(next.starts_with("HTTP/1.1 200 OK\r\n"), "{next}");
    assert_eq!(next_body, HELLO);

    // Content-Length known: exact bytes, then the next response.
    let request = b"GET /stream?chunks=3&size=5&length=1 HTTP/1.1\r\nHost: a\r\n\r\n\
                    GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let (bytes, _) = exchange(addr, request, |b| b.ends_with(HELLO));
    let (text, rest) = head(&bytes);
    assert!(text.contains("\r\nContent-Length: 15\r\n"), "{text}");
    assert!(!text.contains("chunked"), "{text}");
    assert!(rest.starts_with(b"aaaaabbbbbcccccHTTP/1.1 200 OK\r\n"));

    // HEAD: the head a GET gets, no body, and the next response right after it.
    let request = b"HEAD /stream?chunks=3&size=5 HTTP/1.1\r\nHost: a\r\n\r\n\
                    GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let (bytes, _) = exchange(addr, request, |b| b.ends_with(HELLO));
    let (text, rest) = head(&bytes);
    assert!(
        text.contains("\r\nTransfer-Encoding: chunked\r\n"),
        "{text}"
    );
    assert!(rest.starts_with(b"HTTP/1.1 200 OK\r\n"), "{rest:?}");

    // HTTP/1.0: no chunked coding; the body ends with the connection.
    let request = b"GET /stream?chunks=2&size=3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    let (bytes, closed) = exchange(addr, request, |_| false);
    assert!(closed);
    let (text, rest) = head(&bytes);
    assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
    assert!(
        !text.contains("chunked") && !text.contains("Content-Length"),
        "{text}"
    );
    assert_eq!(rest, b"aaabbb");
    stop(server);
}

#[test]
fn a_handler_panic_gives_500_before_the_head_and_a_cut_body_after() {
    let (server, addr) = start(Limits::default());
    let (bytes, closed) = exchange(
        addr,
        b"GET /panic-first HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        |_| false,
    );
    assert!(closed);
    let (text, _) = head(&bytes);
    assert!(text.starts_with("HTTP/1.1 500 "), "{text}");
    assert!(!bytes.ends_with(HELLO), "no response after the failure");

    // After the head: the connection closes without the last chunk; the client can tell.
    let (bytes, closed) = exchange(addr, b"GET /half HTTP/1.1\r\nHost: a\r\n\r\n", |_| false);
    assert!(closed);
    let (text, rest) = head(&bytes);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(rest.starts_with(b"a\r\nfirst part\r\n"), "{rest:?}");
    assert!(!rest.ends_with(b"0\r\n\r\n"), "no last chunk: {rest:?}");
    stop(server);
}

#[test]
fn curl_receives_every_part_of_a_streamed_body() {
    if !have("curl") {
        return;
    }
    let (server, addr) = start(Limits::default());
    let base = format!("http://{addr}");
    let url = format!("{base}/stream?chunks=200&size=4000&delay_ms=1");
    assert_eq!(curl(&[&url]), stream_body(200, 4000));
    assert_eq!(curl(&["--http1.0", &url]), stream_body(200, 4000));
    let known = format!("{base}/stream?chunks=64&size=65536&length=1");
    assert_eq!(curl(&[&known]), stream_body(64, 65536));
    // Reused connection: two streamed bodies and a plain one on one curl connection.
    let both = curl(&[&url, &known, &format!("{base}/")]);
    let mut want = stream_body(200, 4000);
    want.extend(stream_body(64, 65536));
    want.extend_from_slice(HELLO);
    assert_eq!(both.len(), want.len());
    assert!(both == want);
    stop(server);
}

#[test]
fn a_client_that_never_reads_holds_the_streaming_handler_back_then_is_dropped() {
    let limits = Limits {
        write_timeout: Duration::from_millis(700),
        ..Limits::default()
    };
    let (server, addr) = start(limits);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /flood HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    // The handler wants to send 1 GiB; the client reads nothing. Socket buffers (a few MiB on
    // loopback) fill, then the connection's output (max_output) and the writer's buffer (as
    // much again), and `send` waits: what it accepted stops growing, far below 1 GiB.
    let started = Instant::now();
    let mut last = 0;
    let settled = loop {
        thread::sleep(Duration::from_millis(150));
        let now = FLOODED.load(Ordering::SeqCst);
        if now == last && now > 0 {
            break now;
        }
        last = now;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the handler kept sending: {now} bytes"
        );
    };
    assert!(
        settled < 64 << 20,
        "a reader that never reads let the handler send {settled} bytes"
    );
    // No write progress for write_timeout: the connection is dropped and `send` fails.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !FLOOD_REFUSED.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the handler was never told");
        thread::sleep(Duration::from_millis(20));
    }
    // A late drain of the socket buffers may have let a few more parts through; no more.
    let total = FLOODED.load(Ordering::SeqCst);
    assert!(
        total <= settled + (1 << 20),
        "{total} after settling at {settled}"
    );
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut sink = vec![0u8; 1 << 20];
    let ended = loop {
        match stream.read(&mut sink) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    assert!(ended, "the connection was closed by the server");
    drop(stream);
    stop(server);
}

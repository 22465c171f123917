//! The HTTP service over real sockets: ≥60 bad requests against a running server (status,
//! close, no second response), curl and wrk as clients, slowloris, idle and max-requests
//! limits, a slow reader, and a panicking handler.

mod bad_cases;
mod server_support;

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use percore::{Server, ServerHandle};
use percore_http::{Limits, Response, Router, demo, service};
use server_support::{have, stop};

fn explode<'r>(_: &percore_http::Request<'r>) -> Response<'r> {
    panic!("handler failure on purpose")
}

fn router() -> Router {
    demo::router().route_ref("GET", "/panic", explode)
}

fn start(limits: Limits) -> (ServerHandle, SocketAddr) {
    server_support::start(limits, router)
}

fn curl(args: &[&str]) -> String {
    String::from_utf8_lossy(&server_support::curl(args)).into_owned()
}

/// Sends `request`, reads until the server closes (or 5 s pass).
fn exchange(addr: SocketAddr, request: &[u8]) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let request = request.to_vec();
        // The server may close before reading everything: a failed write is expected then.
        thread::spawn(move || {
            let _ = stream.write_all(&request);
        })
    };
    let mut response = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let closed = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let _ = writer.join();
    (response, closed)
}

/// Splits `bytes` into complete responses (by Content-Length).
fn responses(bytes: &[u8]) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let total = (end + 4 + length).min(rest.len());
        out.push((status, head));
        rest = &rest[total..];
    }
    out
}

#[test]
fn every_bad_request_gets_its_status_once_and_the_connection_closes() {
    let (server, addr) = start(Limits::default());
    let cases = bad_cases::cases();
    assert!(
        cases.len() >= 60,
        "at least 60 raw cases, have {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for (name, request, status) in &cases {
        let (bytes, closed) = exchange(addr, request);
        let got = responses(&bytes);
        // Good requests pipelined before the bad one are answered; the error is the last
        // response, the only non-2xx one, and closes the connection.
        let last = got.last();
        let ok = closed
            && last.is_some_and(|(s, head)| s == status && head.contains("Connection: close"))
            && got[..got.len() - 1].iter().all(|(s, _)| *s == 200);
        if !ok {
            failures.push(format!(
                "{name}: want {status}, closed={closed}, got {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    stop(server);
}

#[test]
fn pipelined_requests_are_answered_in_order_in_one_go() {
    let (server, addr) = start(Limits::default());
    let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /json HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let (bytes, closed) = exchange(addr, request);
    let got = responses(&bytes);
    assert!(closed);
    assert_eq!(
        got.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![200, 200, 200]
    );
    let text = String::from_utf8_lossy(&bytes);
    let hello = text.find("Hello, World!").unwrap();
    let json = text.find(r#"{"message":"Hello, World!"}"#).unwrap();
    let ok = text.find("ok\n").unwrap();
    assert!(hello < json && json < ok, "responses in request order");
    stop(server);
}

#[test]
fn a_panicking_handler_gets_500_and_closes_only_its_connection() {
    let (server, addr) = start(Limits::default());
    let (bytes, closed) = exchange(
        addr,
        b"GET /panic HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let got = responses(&bytes);
    assert!(closed, "the connection of the panicking request closes");
    assert_eq!(got.len(), 1, "nothing after the 500: {got:?}");
    assert_eq!(got[0].0, 500);
    let (bytes, _) = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(responses(&bytes)[0].0, 200, "the shard still serves");
    let stats = server.shard_stats(Duration::from_secs(2));
    let responses_5xx: u64 = stats
        .iter()
        .flat_map(|s| s.service.iter())
        .filter(|c| c.name == "percore_http_responses_total" && c.labels.contains("5xx"))
        .map(|c| c.value)
        .sum();
    assert_eq!(responses_5xx, 1, "counted as one 5xx");
    stop(server);
}

#[test]
fn slowloris_gets_408_at_the_header_deadline_while_others_are_served() {
    let limits = Limits {
        header_timeout: Duration::from_millis(800),
        ..Limits::default()
    };
    let (server, addr) = start(limits);
    let trickler = thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let started = Instant::now();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap();
        // One header line every 200 ms: never finishing the head.
        for i in 0..20 {
            thread::sleep(Duration::from_millis(200));
            if stream
                .write_all(format!("X-{i}: y\r\n").as_bytes())
                .is_err()
            {
                break;
            }
        }
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        (responses(&response), started.elapsed())
    });
    // A normal client meanwhile is answered promptly.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let asked = Instant::now();
        let (bytes, _) = exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(responses(&bytes)[0].0, 200);
        slowest = slowest.max(asked.elapsed());
        thread::sleep(Duration::from_millis(30));
    }
    let (got, after) = trickler.join().unwrap();
    assert_eq!(got.first().map(|r| r.0), Some(408), "{got:?}");
    assert!(
        after >= Duration::from_millis(800) && after < Duration::from_millis(3000),
        "408 after {after:?}"
    );
    assert!(
        slowest < Duration::from_millis(500),
        "normal requests held up: {slowest:?}"
    );
    stop(server);
}

#[test]
fn keep_alive_stops_after_max_requests_and_idle_time() {
    let limits = Limits {
        max_requests: 5,
        idle_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let (server, addr) = start(limits);
    let six = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".repeat(6);
    let (bytes, closed) = exchange(addr, &six);
    let got = responses(&bytes);
    assert!(closed);
    assert_eq!(got.len(), 5, "five answers, then close");
    assert!(got[4].1.contains("Connection: close"), "the fifth says so");

    let mut idle = TcpStream::connect(addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut bytes = Vec::new();
    let _ = idle.read_to_end(&mut bytes);
    let waited = started.elapsed();
    assert_eq!(responses(&bytes).len(), 1);
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
        "idle close after {waited:?}"
    );
    stop(server);
}

/// The service keeps one timer per connection armed at or before its real deadline and moves
/// it only when it fires: a busy connection outlives many idle and header periods, a head
/// started late on it still gets its header deadline, and an idle one still closes on time.
#[test]
fn deadlines_follow_activity_on_a_long_keep_alive_connection() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        header_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let (server, addr) = start(limits);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let mut answered = 0;
    // 1.2 s of requests 60 ms apart: 4 idle and 6 header periods.
    while started.elapsed() < Duration::from_millis(1200) {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        while !got.ends_with(b"Hello, World!") {
            let n = stream.read(&mut chunk).unwrap();
            assert!(
                n > 0,
                "closed after {answered} answers, at {:?}",
                started.elapsed()
            );
            got.extend_from_slice(&chunk[..n]);
        }
        answered += 1;
        thread::sleep(Duration::from_millis(60));
    }
    assert!(answered >= 10, "{answered}");
    // A head begun and never finished: 408 at the header deadline, not the idle one.
    stream.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    let begun = Instant::now();
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let waited = begun.elapsed();
    assert!(
        String::from_utf8_lossy(&bytes).starts_with("HTTP/1.1 408 "),
        "{bytes:?}"
    );
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_millis(1500),
        "408 after {waited:?}"
    );
    // And a quiet connection is closed at the idle deadline.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let opened = Instant::now();
    let mut none = Vec::new();
    let _ = idle.read_to_end(&mut none);
    let waited = opened.elapsed();
    assert!(none.is_empty());
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(1500),
        "idle close after {waited:?}"
    );
    stop(server);
}

#[test]
fn a_client_that_never_reads_is_pushed_back_then_dropped() {
    let limits = Limits {
        write_timeout: Duration::from_millis(700),
        // Never reached here: at the default cap (1000) the server would end the connection
        // and discard its input while lingering, which is not the slow-reader path tested.
        max_requests: u64::MAX,
        ..Limits::default()
    };
    let (server, addr) = start(limits);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nonblocking(true).unwrap();
    let requests = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".repeat(1000);
    let mut written = 0usize;
    let started = Instant::now();
    // Write until the server stops reading (TCP pushes back), bounded at 256 MiB or 10 s.
    // Loopback socket buffers autotune up to tens of MiB, so the kernel alone holds a lot.
    while written < 256 << 20 && started.elapsed() < Duration::from_secs(10) {
        match stream.write(&requests) {
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(50));
                if stream.write(&requests[..1]).is_err() {
                    break;
                }
                written += 1;
            }
            Err(_) => break,
        }
    }
    assert!(
        written < 256 << 20,
        "the server kept reading {written} bytes from a client that never reads"
    );
    // The server stopped taking input: what it received no longer grows.
    let received = |server: &ServerHandle| -> u64 {
        server
            .shard_stats(Duration::from_secs(2))
            .iter()
            .map(|s| s.net.bytes_in)
            .sum()
    };
    // Bytes already in flight on loopback may still land for a moment after the client's
    // last accepted write; then the count must settle (bounded wait, no event exists).
    let settle_deadline = Instant::now() + Duration::from_secs(5);
    let mut before = received(&server);
    loop {
        thread::sleep(Duration::from_millis(300));
        let now = received(&server);
        if now == before {
            break;
        }
        assert!(
            Instant::now() < settle_deadline,
            "server input is bounded while its output cannot leave (still reading: {before} -> {now})"
        );
        before = now;
    }
    assert!(
        before <= written as u64,
        "received {before} of {written} bytes written"
    );
    // No write progress for write_timeout: the server drops the connection.
    thread::sleep(Duration::from_millis(1500));
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut sink = [0u8; 64 * 1024];
    let ended = loop {
        match stream.read(&mut sink) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    assert!(ended, "the connection was closed by the server");
    // And released on the server, although its output never left (bounded poll: no event).
    let deadline = Instant::now() + Duration::from_secs(3);
    let open = loop {
        let open: usize = server
            .shard_stats(Duration::from_secs(2))
            .iter()
            .map(|s| s.net.open)
            .sum();
        if open == 0 || Instant::now() > deadline {
            break open;
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(open, 0, "the stuck connection was released");
    stop(server);
}

#[test]
fn curl_gets_heads_posts_chunks_reuses_and_continues() {
    if !have("curl") {
        return;
    }
    let (server, addr) = start(Limits::default());
    let base = format!("http://{addr}");
    assert_eq!(curl(&[&format!("{base}/")]), "Hello, World!");
    let head = curl(&["-I", &format!("{base}/json")]);
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("Content-Length: 27"),
        "{head}"
    );
    assert_eq!(
        curl(&["--data-binary", "posted body", &format!("{base}/echo")]),
        "posted body"
    );
    let chunked = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "in chunks",
        &format!("{base}/echo"),
    ]);
    assert_eq!(chunked, "in chunks");
    let big = std::env::temp_dir().join(format!("percore-http-body-{}", std::process::id()));
    std::fs::write(&big, "0123456789".repeat(20_000)).unwrap();
    let body_arg = format!("@{}", big.display());
    let continued = curl(&[
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &body_arg,
        &format!("{base}/echo"),
    ]);
    let _ = std::fs::remove_file(&big);
    assert_eq!(continued.len(), 200_000);
    let verbose = Command::new("curl")
        .args([
            "-sv",
            "--max-time",
            "10",
            &format!("{base}/"),
            &format!("{base}/healthz"),
        ])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&verbose.stderr);
    assert!(
        log.contains("Re-using existing connection") || log.contains("Reusing existing"),
        "keep-alive reuse: {log}"
    );
    assert_eq!(
        String::from_utf8_lossy(&verbose.stdout),
        "Hello, World!ok\n"
    );
    stop(server);
}

#[test]
fn wrk_runs_without_errors_or_non_2xx() {
    if !have("wrk") {
        return;
    }
    let (server, addr) = start(Limits::default());
    let output = Command::new("wrk")
        .args(["-t1", "-c50", "-d2s", &format!("http://{addr}/")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(!text.contains("Non-2xx"), "{text}");
    assert!(!text.contains("Socket errors"), "{text}");
    let requests: u64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0);
    assert!(requests > 1000, "{text}");
    stop(server);
}

#[test]
fn async_handlers_answer_in_order_and_offloaded_work_leaves_the_shard_free() {
    let (server, addr) = service::serve(
        Server::builder().shards(1),
        "127.0.0.1:0".parse().unwrap(),
        Limits::default(),
        router,
    )
    .map(|s| {
        let a = s.listen_addr().unwrap();
        (s, a)
    })
    .unwrap();
    // An async request between two sync ones: answered in request order.
    let (bytes, _) = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /work?ms=20&offload=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&bytes);
    let (hello, work, ok) = (
        text.find("Hello, World!"),
        text.find("burned"),
        text.find("ok\n"),
    );
    assert!(
        hello < work && work < ok && ok.is_some(),
        "order kept: {text}"
    );
    assert!(text.contains("on the blocking pool"), "{text}");
    let (bytes, _) = exchange(addr, b"GET /work?ms=zero HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        responses(&bytes)[0].0,
        400,
        "bad parameter answered, not a panic"
    );

    // With the work offloaded, the one shard keeps answering other connections.
    let heavy = thread::spawn(move || {
        exchange(
            addr,
            b"GET /work?ms=400&offload=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
    });
    thread::sleep(Duration::from_millis(50));
    let asked = Instant::now();
    let (bytes, _) = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let light = asked.elapsed();
    assert_eq!(responses(&bytes)[0].0, 200);
    assert!(
        light < Duration::from_millis(200),
        "light request waited {light:?} behind offloaded work"
    );
    let (bytes, _) = heavy.join().unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("burned"));
    stop(server);
}

/// The builder's init hook (issue 24) with the HTTP service: it runs once on every shard
/// before the shard serves, its state is what that shard's routes see, and what it spawns
/// is cancelled at the drain start (a loop that ignores the stop does not hold it).
#[test]
fn the_init_hook_builds_each_shards_state_for_the_http_service() {
    use std::{
        cell::Cell,
        sync::{Arc, Mutex},
    };

    static TICKS: percore::PerShard<Cell<u64>> = percore::PerShard::new();
    let ran: Arc<Mutex<Vec<usize>>> = Arc::default();
    let record = ran.clone();
    let builder = Server::builder()
        .shards(2)
        .drain_timeout(Duration::from_secs(30))
        .on_shard_start(move |shard| {
            record.lock().unwrap().push(shard.id);
            TICKS.set(Cell::new(0));
            percore::spawn(async {
                loop {
                    percore::sleep(Duration::from_millis(5)).await;
                    TICKS.with(|t| t.set(t.get() + 1));
                }
            });
            Ok(())
        });
    let server = service::serve(
        builder,
        "127.0.0.1:0".parse().unwrap(),
        Limits::default(),
        || {
            Router::new().route("GET", "/ticks", |_| {
                format!("{} {}", percore::mesh::shard_id(), TICKS.get().get())
            })
        },
    )
    .unwrap();
    let addr = server.listen_addr().unwrap();
    let mut ids = ran.lock().unwrap().clone();
    ids.sort_unstable();
    assert_eq!(ids, vec![0, 1], "once on every shard");
    let request = b"GET /ticks HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let (response, _) = exchange(addr, request);
    let text = String::from_utf8_lossy(&response).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let began = Instant::now();
    server.stop();
    server.join().unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(ran.lock().unwrap().len(), 2);
}

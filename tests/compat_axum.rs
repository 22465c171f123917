//! The axum example on percore (`examples/axum_app.rs`), driven over loopback by curl and by
//! a strict HTTP/1.1 client: every route, axum's rejections, the body limit, the request
//! timeout, pipelining, drain under load, the connection cap, tokio-runtime misuse, metrics.

#[allow(dead_code)]
#[path = "../examples/axum_app.rs"]
mod axum_app;
#[path = "support/compat_client.rs"]
mod compat_client;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use axum::{Router, routing::get};
use compat_client::{Client, curl};
use percore::{
    Server, ServerHandle,
    compat::{HttpConfig, HttpServer},
};

fn start(request_timeout: Duration) -> (ServerHandle, SocketAddr) {
    let handle = axum_app::serve("127.0.0.1:0".parse().unwrap(), 1, request_timeout, false)
        .expect("serve the axum app");
    let addr = handle.listen_addr().expect("a listen address");
    (handle, addr)
}

/// Stops the server and waits (bounded) for it to finish draining.
fn stop_within(handle: ServerHandle, limit: Duration) -> Duration {
    let began = Instant::now();
    handle.stop();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(handle.join()).unwrap());
    let result = rx
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("the server did not stop within {limit:?}"));
    result.expect("a clean stop");
    began.elapsed()
}

#[test]
fn every_route_with_curl() {
    let (handle, addr) = start(Duration::from_secs(10));
    let url = |path: &str| format!("http://{addr}{path}");
    let Some(hello) = curl(&[&url("/")]) else {
        return;
    };
    assert_eq!(hello, "Hello, World!");
    assert_eq!(
        curl(&[&url("/users/42")]).unwrap(),
        r#"{"id":42,"name":"user-42"}"#
    );
    assert_eq!(
        curl(&[&url("/search?q=uring&limit=3")]).unwrap(),
        r#"{"q":"uring","limit":3}"#
    );
    let created = curl(&[
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"name":"disk","quantity":2}"#,
        "-w",
        " %{http_code}",
        &url("/items"),
    ])
    .unwrap();
    assert_eq!(created, r#"{"name":"disk","quantity":2,"id":1} 201"#);
    assert_eq!(curl(&["-X", "POST", &url("/counter")]).unwrap(), "1");
    assert_eq!(curl(&["-X", "POST", &url("/counter")]).unwrap(), "2");
    assert_eq!(curl(&[&url("/counter")]).unwrap(), "2");
    assert_eq!(
        curl(&["--data-binary", "abc", &url("/upload")]).unwrap(),
        r#"{"bytes":3,"checksum":96354}"#
    );
    assert_eq!(
        curl(&[&url("/stream?chunks=3&delay_ms=20")]).unwrap(),
        "chunk 0\nchunk 1\nchunk 2\n"
    );
    assert_eq!(curl(&[&url("/slow?ms=30")]).unwrap(), "slept 30 ms");
    let big = curl(&["--compressed", &url("/big")]).unwrap();
    assert_eq!(big.len(), 53 * 1260);
    let gzip_headers = curl(&[
        "-H",
        "accept-encoding: gzip",
        "-o",
        "/dev/null",
        "-D",
        "-",
        &url("/big"),
    ])
    .unwrap()
    .to_ascii_lowercase();
    assert!(
        gzip_headers.contains("content-encoding: gzip"),
        "{gzip_headers}"
    );
    stop_within(handle, Duration::from_secs(10));
}

#[test]
fn extractors_answer_axums_rejections() {
    let (handle, addr) = start(Duration::from_secs(10));
    let mut client = Client::connect(addr);
    let bad_path = client.get("/users/abc").unwrap();
    assert_eq!(bad_path.status, 400);
    assert!(
        bad_path.text().contains("Cannot parse `abc`"),
        "{}",
        bad_path.text()
    );
    let bad_query = client.get("/search?limit=3").unwrap();
    assert_eq!(bad_query.status, 400);
    assert!(
        bad_query.text().contains("missing field `q`"),
        "{}",
        bad_query.text()
    );
    let syntax = client
        .post("/items", "application/json", b"{\"name\":")
        .unwrap();
    assert_eq!(syntax.status, 400);
    assert!(
        syntax
            .text()
            .starts_with("Failed to parse the request body as JSON"),
        "{}",
        syntax.text()
    );
    let data = client
        .post("/items", "application/json", br#"{"name":"x"}"#)
        .unwrap();
    assert_eq!(data.status, 422);
    assert!(
        data.text().contains("missing field `quantity`"),
        "{}",
        data.text()
    );
    let media = client
        .post("/items", "text/plain", br#"{"name":"x","quantity":1}"#)
        .unwrap();
    assert_eq!(media.status, 415);
    let ok = client
        .post(
            "/items",
            "application/json",
            br#"{"name":"x","quantity":1}"#,
        )
        .unwrap();
    assert_eq!(ok.status, 201);
    assert_eq!(client.get("/nowhere").unwrap().status, 404);
    stop_within(handle, Duration::from_secs(10));
}

#[test]
fn oversized_bodies_get_413() {
    let (handle, addr) = start(Duration::from_secs(10));
    let big = vec![b'x'; axum_app::BODY_LIMIT + 1];
    // Declared too large: refused before the handler reads a byte.
    let mut client = Client::connect(addr);
    let declared = client
        .post("/upload", "application/octet-stream", &big)
        .unwrap();
    assert_eq!(declared.status, 413);
    // Chunked, so only reading finds out.
    let mut client = Client::connect(addr);
    let mut raw =
        b"POST /upload HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for piece in big.chunks(8192) {
        raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    client.send(&raw);
    let streamed = client.read_response().unwrap();
    assert_eq!(streamed.status, 413, "{}", streamed.text());
    // Exactly at the limit is fine.
    let mut client = Client::connect(addr);
    let at_limit = client
        .post(
            "/upload",
            "application/octet-stream",
            &big[..axum_app::BODY_LIMIT],
        )
        .unwrap();
    assert_eq!(at_limit.status, 200);
    assert!(
        at_limit
            .text()
            .contains(&format!("\"bytes\":{}", axum_app::BODY_LIMIT))
    );
    stop_within(handle, Duration::from_secs(10));
}

#[test]
fn a_slow_body_hits_the_request_timeout() {
    let (handle, addr) = start(Duration::from_millis(300));
    let mut client = Client::connect(addr);
    let began = Instant::now();
    client.send(b"POST /upload HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\n0123456789");
    let response = client.read_response().unwrap();
    let took = began.elapsed();
    assert_eq!(response.status, 408);
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(5),
        "408 after {took:?}"
    );
    // A request inside the time is unaffected.
    let mut client = Client::connect(addr);
    assert_eq!(client.get("/slow?ms=50").unwrap().status, 200);
    assert_eq!(client.get("/slow?ms=1000").unwrap().status, 408);
    stop_within(handle, Duration::from_secs(10));
}

#[test]
fn pipelined_keep_alive_requests_are_answered_in_order() {
    let (handle, addr) = start(Duration::from_secs(10));
    let mut client = Client::connect(addr);
    for round in 0..3 {
        let mut raw = Vec::new();
        for i in 0..16 {
            raw.extend_from_slice(
                format!(
                    "GET /users/{} HTTP/1.1\r\nhost: test\r\n\r\n",
                    round * 16 + i
                )
                .as_bytes(),
            );
        }
        client.send(&raw);
        for i in 0..16 {
            let response = client.read_response().unwrap();
            assert_eq!(response.status, 200);
            let id = round * 16 + i;
            assert_eq!(
                response.text(),
                format!(r#"{{"id":{id},"name":"user-{id}"}}"#)
            );
        }
    }
    stop_within(handle, Duration::from_secs(10));
}

#[test]
fn drain_under_load_truncates_no_response() {
    let (handle, addr) = start(Duration::from_secs(10));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                let (mut answered, mut closes_announced) = (0u32, 0u32);
                let deadline = Instant::now() + Duration::from_secs(20);
                while Instant::now() < deadline {
                    client.send(b"GET /slow?ms=20 HTTP/1.1\r\nhost: test\r\n\r\n");
                    match client.read_response_or_closed() {
                        Ok(Some(response)) => {
                            assert_eq!(response.status, 200);
                            assert_eq!(response.text(), "slept 20 ms");
                            answered += 1;
                            if response.header("connection") == Some("close") {
                                closes_announced += 1;
                                assert!(client.at_eof(), "no EOF after connection: close");
                                return (answered, closes_announced);
                            }
                        }
                        Ok(None) => return (answered, closes_announced),
                        Err(e) => panic!("a truncated response: {e}"),
                    }
                    if stop.load(Ordering::Relaxed) && answered > 1000 {
                        panic!("the server kept serving after the drain began");
                    }
                }
                panic!("the connection was not closed by the drain");
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let took = stop_within(handle, Duration::from_secs(10));
    let (mut total, mut announced) = (0, 0);
    for client in clients {
        let (answered, closes) = client.join().expect("a client found a truncated response");
        assert!(answered > 0, "a client got no response before the drain");
        total += answered;
        announced += closes;
    }
    eprintln!("{total} responses; {announced} of 8 connections ended by `connection: close`");
    assert!(total >= 8, "{total} responses");
    // Requests in flight when the drain began were answered, with `connection: close`.
    assert!(
        announced >= 1,
        "no in-flight request finished during the drain"
    );
    assert!(took < Duration::from_secs(5), "the drain took {took:?}");
}

#[test]
fn drain_closes_idle_keep_alive_connections_at_once() {
    let (handle, addr) = start(Duration::from_secs(10));
    let mut idle: Vec<Client> = (0..4).map(|_| Client::connect(addr)).collect();
    for client in &mut idle {
        assert_eq!(client.get("/").unwrap().status, 200);
    }
    // The drain timeout is 30 s: only closing idle connections at once ends it sooner.
    let took = stop_within(handle, Duration::from_secs(10));
    assert!(took < Duration::from_secs(3), "the drain took {took:?}");
    for client in &mut idle {
        assert!(client.at_eof(), "an idle connection was left open");
    }
}

#[test]
fn tokio_runtime_calls_get_a_500_naming_the_fix() {
    let app = Router::new()
        .route(
            "/spawn",
            get(|| async {
                tokio::spawn(async {});
                "unreachable"
            }),
        )
        .route("/ok", get(|| async { "ok" }));
    let handle = HttpServer::new(Server::builder().shards(1))
        .serve("127.0.0.1:0".parse().unwrap(), move || app.clone())
        .unwrap();
    let mut client = Client::connect(handle.listen_addr().unwrap());
    let response = client.get("/spawn").unwrap();
    assert_eq!(response.status, 500);
    assert!(
        response.text().contains("percore::spawn"),
        "{}",
        response.text()
    );
    // The connection and the shard go on.
    assert_eq!(client.get("/ok").unwrap().text(), "ok");
    let panics: u64 = handle
        .shard_stats(Duration::from_secs(5))
        .iter()
        .flat_map(|s| s.service.iter())
        .filter(|s| s.name == "percore_compat_http_panics_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(panics, 1);
    stop_within(handle, Duration::from_secs(10));
}

#[test]
fn connections_past_the_cap_get_503() {
    let app = axum_app::app(Duration::from_secs(10));
    let handle = HttpServer::new(Server::builder().shards(1))
        .config(HttpConfig {
            max_connections_per_shard: 2,
            ..HttpConfig::default()
        })
        .serve("127.0.0.1:0".parse().unwrap(), move || app.clone())
        .unwrap();
    let addr = handle.listen_addr().unwrap();
    let mut admitted: Vec<Client> = (0..2).map(|_| Client::connect(addr)).collect();
    for client in &mut admitted {
        assert_eq!(client.get("/").unwrap().status, 200);
    }
    let mut refused = Client::connect(addr);
    let response = refused.get("/").unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(response.header("connection"), Some("close"));
    // A slot frees when a connection closes.
    drop(admitted.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut client = Client::connect(addr);
        let status = client.get("/").unwrap().status;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no slot freed after a close");
        thread::sleep(Duration::from_millis(20));
    }
    stop_within(handle, Duration::from_secs(10));
}

#[test]
fn responses_are_counted_by_status_class() {
    let (handle, addr) = start(Duration::from_secs(10));
    let mut client = Client::connect(addr);
    for _ in 0..5 {
        assert_eq!(client.get("/").unwrap().status, 200);
    }
    assert_eq!(client.get("/users/x").unwrap().status, 400);
    let stats = handle.shard_stats(Duration::from_secs(5));
    let count = |class: &str| -> u64 {
        stats
            .iter()
            .flat_map(|s| s.service.iter())
            .filter(|s| {
                s.name == "percore_compat_http_responses_total"
                    && s.labels.contains(&format!("class=\"{class}\""))
            })
            .map(|s| s.value)
            .sum()
    };
    assert_eq!(count("2xx"), 5);
    assert_eq!(count("4xx"), 1);
    let net: u64 = stats.iter().map(|s| s.net.accepted).sum();
    assert_eq!(net, 1);
    stop_within(handle, Duration::from_secs(10));
}

/// One `GET /healthz` on a new connection: its status and body.
fn healthz_once(addr: SocketAddr) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("a whole response");
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn healthz_is_503_naming_a_stuck_shard_and_200_once_it_is_back() {
    let builder = Server::builder()
        .shards(2)
        .unhealthy_after(Duration::from_millis(300));
    let handle = axum_app::serve_on(
        builder,
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_secs(10),
    )
    .expect("serve the axum app");
    let addr = handle.listen_addr().expect("a listen address");
    assert_eq!(healthz_once(addr), (200, "ok\n".to_owned()));

    // Shard 1 blocks for 2 s; new connections go to shard 0, which must report it.
    assert!(handle.run_on_shard(1, || thread::sleep(Duration::from_secs(2))));
    let deadline = Instant::now() + Duration::from_secs(4);
    let stuck_body = loop {
        let (status, body) = healthz_once(addr);
        if status == 503 {
            break body;
        }
        assert!(Instant::now() < deadline, "no 503 while shard 1 was stuck");
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        stuck_body.contains("\"shard\":1"),
        "the 503 names the stuck shard: {stuck_body}"
    );

    let deadline = Instant::now() + Duration::from_secs(5);
    while healthz_once(addr).0 != 200 {
        assert!(Instant::now() < deadline, "health did not recover");
        thread::sleep(Duration::from_millis(50));
    }
    stop_within(handle, Duration::from_secs(10));
}

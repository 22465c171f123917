//! hyper on percore: the `hyper_hello` example under curl, percore's hyper client against
//! local servers (from a plain task and from inside an axum handler), hyper's header-read
//! timeout on the shard's timer, and the executor and timer themselves.

#[allow(dead_code)]
#[path = "../examples/axum_app.rs"]
mod axum_app;
#[path = "support/compat_client.rs"]
mod compat_client;
#[allow(dead_code)]
#[path = "../examples/hyper_hello.rs"]
mod hyper_hello;

use std::{
    cell::Cell,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    rc::Rc,
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

use axum::{Router, extract::State, routing::get};
use bytes::Bytes;
use compat_client::{Client, curl};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{
    rt::{Executor, Timer},
    service::service_fn,
};
use percore::{
    Server, ServerHandle,
    compat::{HttpConfig, HttpServer, ShardExecutor, ShardTimer, client, on_shard},
};

fn hello_server(config: HttpConfig) -> (ServerHandle, SocketAddr) {
    let handle = HttpServer::new(Server::builder().shards(1))
        .config(config)
        .serve_hyper("127.0.0.1:0".parse().unwrap(), || {
            service_fn(hyper_hello::hello)
        })
        .expect("serve hyper_hello");
    let addr = handle.listen_addr().unwrap();
    (handle, addr)
}

fn stop(handle: ServerHandle) {
    handle.stop();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(handle.join()).unwrap());
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the server stopped within 10 s")
        .expect("a clean stop");
}

/// Runs `work` as the main task of a one-shard server and returns its output.
fn on_test_shard<T, F, Fut>(work: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    let (tx, rx) = mpsc::channel();
    let work = Arc::new(Mutex::new(Some((work, tx))));
    let handle = Server::builder()
        .shards(1)
        .start(move |_| {
            let (work, tx) = work.lock().unwrap().take().expect("one shard");
            Ok(async move {
                let _ = tx.send(work().await);
                percore::stop_server();
            })
        })
        .expect("start the client shard");
    let out = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the client shard finished within 20 s");
    stop(handle);
    out
}

#[test]
fn hyper_hello_answers_curl_on_one_keep_alive_connection() {
    let (handle, addr) = hello_server(HttpConfig::default());
    let url = format!("http://{addr}/");
    // curl reuses one connection for the three URLs.
    let Some(out) = curl(&["-w", " %{num_connects}", &url, &url, &url]) else {
        stop(handle);
        return;
    };
    assert_eq!(out, "Hello, World! 1Hello, World! 0Hello, World! 0");
    let head = curl(&["-D", "-", "-o", "/dev/null", &url])
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok"), "{head}");
    assert!(head.contains("content-type: text/plain"), "{head}");
    assert!(head.contains("content-length: 13"), "{head}");
    assert!(head.contains("date: "), "{head}");
    stop(handle);
}

type Body = Full<Bytes>;

async fn call(
    sender: &mut hyper::client::conn::http1::SendRequest<Body>,
    request: Request<Body>,
) -> (StatusCode, String) {
    let response = sender.send_request(request).await.expect("a response");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn hyper_client_calls_a_local_axum_server() {
    let server = axum_app::serve(
        "127.0.0.1:0".parse().unwrap(),
        1,
        Duration::from_secs(10),
        false,
    )
    .unwrap();
    let addr = server.listen_addr().unwrap();
    let results = on_test_shard(move || async move {
        let mut sender = client::connect::<Body>(addr).await.expect("connect");
        let mut results = Vec::new();
        for id in 0..3 {
            let request = Request::get(format!("/users/{id}"))
                .header("host", "test")
                .body(Body::default())
                .unwrap();
            results.push(call(&mut sender, request).await);
        }
        let request = Request::post("/items")
            .header("host", "test")
            .header("content-type", "application/json")
            .body(Body::new(Bytes::from_static(
                br#"{"name":"fan","quantity":3}"#,
            )))
            .unwrap();
        results.push(call(&mut sender, request).await);
        let request = Request::get("/stream?chunks=4&delay_ms=10")
            .header("host", "test")
            .body(Body::default())
            .unwrap();
        results.push(call(&mut sender, request).await);
        results
    });
    assert_eq!(
        results[0],
        (StatusCode::OK, r#"{"id":0,"name":"user-0"}"#.into())
    );
    assert_eq!(
        results[2],
        (StatusCode::OK, r#"{"id":2,"name":"user-2"}"#.into())
    );
    assert_eq!(
        results[3],
        (
            StatusCode::CREATED,
            r#"{"name":"fan","quantity":3,"id":1}"#.into()
        )
    );
    assert_eq!(
        results[4],
        (
            StatusCode::OK,
            "chunk 0\nchunk 1\nchunk 2\nchunk 3\n".into()
        )
    );
    // All five requests went over one connection.
    let accepted: u64 = server
        .shard_stats(Duration::from_secs(5))
        .iter()
        .map(|s| s.net.accepted)
        .sum();
    assert_eq!(accepted, 1);
    stop(server);
}

#[test]
fn an_axum_handler_calls_an_upstream_through_on_shard() {
    let (upstream, upstream_addr) = hello_server(HttpConfig::default());
    let front = Router::new()
        .route(
            "/via",
            get(|State(upstream): State<SocketAddr>| async move {
                on_shard(async move {
                    let mut sender = client::connect::<Body>(upstream)
                        .await
                        .map_err(|e| e.to_string())?;
                    let request = Request::get("/")
                        .header("host", "upstream")
                        .body(Body::default())
                        .unwrap();
                    let (status, body) = call(&mut sender, request).await;
                    Ok::<_, String>(format!("upstream said {status}: {body}"))
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r)
                .unwrap_or_else(|e| format!("upstream failed: {e}"))
            }),
        )
        .with_state(upstream_addr);
    let handle = HttpServer::new(Server::builder().shards(1))
        .serve("127.0.0.1:0".parse().unwrap(), move || front.clone())
        .unwrap();
    let mut client = Client::connect(handle.listen_addr().unwrap());
    for _ in 0..3 {
        let response = client.get("/via").unwrap();
        assert_eq!(response.text(), "upstream said 200 OK: Hello, World!");
    }
    stop(handle);
    stop(upstream);
}

#[test]
fn header_read_timeout_closes_slow_heads_and_idle_keep_alive() {
    let (handle, addr) = hello_server(HttpConfig {
        header_read_timeout: Some(Duration::from_millis(300)),
        ..HttpConfig::default()
    });
    // A head that never completes.
    let mut slow = Client::connect(addr);
    let began = Instant::now();
    slow.send(b"GET / HTTP/1.1\r\nhost: te");
    assert!(slow.at_eof() || slow.read_response().is_ok_and(|r| r.status == 408));
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
    // Requests 200 ms apart: the timer restarts for each request, so none times out.
    let mut client = Client::connect(addr);
    for _ in 0..4 {
        assert_eq!(client.get("/").unwrap().text(), "Hello, World!");
        thread::sleep(Duration::from_millis(200));
    }
    // Then idle: closed once the timeout passes.
    let began = Instant::now();
    assert!(client.at_eof());
    assert!(began.elapsed() < Duration::from_secs(3));
    stop(handle);
}

#[test]
fn executor_and_timer_run_on_the_shard() {
    let (spawned, slept, reset) = on_test_shard(|| async {
        // A `!Send` future is fine: it stays on this shard.
        let seen = Rc::new(Cell::new(0));
        let set = seen.clone();
        ShardExecutor.execute(async move { set.set(7) });
        for _ in 0..100 {
            if seen.get() != 0 {
                break;
            }
            percore::yield_now().await;
        }
        let spawned = seen.get();
        let began = Instant::now();
        ShardTimer.sleep(Duration::from_millis(50)).await;
        let slept = began.elapsed();
        let began = Instant::now();
        let mut sleep: Pin<Box<dyn hyper::rt::Sleep>> = ShardTimer.sleep(Duration::from_secs(5));
        ShardTimer.reset(&mut sleep, Instant::now() + Duration::from_millis(30));
        sleep.await;
        (spawned, slept, began.elapsed())
    });
    assert_eq!(spawned, 7);
    assert!(slept >= Duration::from_millis(50), "slept {slept:?}");
    assert!(slept < Duration::from_secs(2), "slept {slept:?}");
    assert!(reset >= Duration::from_millis(30), "reset sleep {reset:?}");
    assert!(reset < Duration::from_secs(2), "reset sleep {reset:?}");
}

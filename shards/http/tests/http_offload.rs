//! Adaptive offload over loopback: a sync route that overruns its budget runs on the
//! blocking pool from its next call on, while the shard goes on serving its other
//! connections; a heavy route fast again is retried inline; routes declared heavy or
//! inline-only keep to it; the counters follow.

mod server_support;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    thread,
    time::{Duration, Instant},
};

use percore::{Server, ServerHandle};
use percore_http::{Limits, Offload, OwnedRequest, RETRY_AFTER, Router, demo, service};
use server_support::stop;

/// One shard, so that every request meets the same route state.
fn start_one_shard(make_router: fn() -> Router) -> (ServerHandle, SocketAddr) {
    let server = service::serve(
        Server::builder().shards(1),
        "127.0.0.1:0".parse().unwrap(),
        Limits::default(),
        make_router,
    )
    .unwrap();
    let addr = server.listen_addr().unwrap();
    (server, addr)
}

/// `GET path` on a new connection; the body.
fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{path}: {response}");
    response.split_once("\r\n\r\n").unwrap().1.to_owned()
}

fn demo_with_stats() -> Router {
    demo::router().route("GET", "/work-stats", |_| {
        let s = demo::work_stats();
        format!(
            "inline={} pool={} overruns={} heavy={}",
            s.inline_runs, s.offloaded_runs, s.overruns, s.heavy
        )
    })
}

#[test]
fn an_overrunning_route_moves_to_the_pool_and_the_shard_keeps_serving() {
    let (server, addr) = start_one_shard(demo_with_stats);
    // A light burn stays on the shard.
    assert_eq!(get(addr, "/work?ms=0"), "burned 0 ms on the shard\n");
    // The first heavy one runs inline too (nothing known yet), and overruns the 5 ms budget.
    assert!(get(addr, "/work?ms=60").ends_with("on the shard\n"));
    assert_eq!(
        get(addr, "/work-stats"),
        "inline=2 pool=0 overruns=1 heavy=true"
    );
    // Its next call goes to the pool, and meanwhile the one shard answers another connection.
    let heavy = thread::spawn(move || get(addr, "/work?ms=400"));
    thread::sleep(Duration::from_millis(50));
    let asked = Instant::now();
    assert_eq!(get(addr, "/"), "Hello, World!");
    let light = asked.elapsed();
    assert!(
        light < Duration::from_millis(200),
        "a light request waited {light:?} behind offloaded work"
    );
    assert!(heavy.join().unwrap().ends_with("on the blocking pool\n"));
    // The flags force each path whatever the state.
    assert!(get(addr, "/work?ms=0&inline=1").ends_with("on the shard\n"));
    assert!(get(addr, "/work?ms=0&offload=1").ends_with("on the blocking pool\n"));
    // (A run of 0 ms could still overrun on a loaded machine: the overruns are at least 1.)
    let stats = get(addr, "/work-stats");
    assert!(
        stats.starts_with("inline=3 pool=2 overruns=") && stats.ends_with(" heavy=true"),
        "{stats}"
    );
    stop(server);
}

/// Where the handler ran: a shard thread or the pool.
fn place(_: OwnedRequest) -> String {
    let on_shard = thread::current()
        .name()
        .is_some_and(|n| n.starts_with("percore-shard"));
    if on_shard { "shard" } else { "pool" }.to_owned()
}

fn spin_then_place(request: OwnedRequest) -> String {
    let ms: u64 = request
        .query_param("ms")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(ms) {
        std::hint::spin_loop();
    }
    place(request)
}

fn policies() -> Router {
    Router::new()
        .route_offload(
            "GET",
            "/adaptive",
            Offload::adaptive().budget(Duration::from_millis(20)),
            spin_then_place,
        )
        .route_offload("GET", "/heavy", Offload::heavy(), place)
        .route_offload("GET", "/inline", Offload::inline_only(), spin_then_place)
}

#[test]
fn a_heavy_route_fast_again_is_retried_inline_and_declared_policies_hold() {
    let (server, addr) = start_one_shard(policies);
    assert_eq!(get(addr, "/adaptive?ms=40"), "shard"); // Overruns 20 ms: heavy.
    assert_eq!(get(addr, "/adaptive?ms=40"), "pool"); // Slow on the pool: stays heavy.
    for _ in 0..RETRY_AFTER {
        assert_eq!(get(addr, "/adaptive?ms=0"), "pool");
    }
    // RETRY_AFTER fast pool runs in a row: tried inline again.
    assert_eq!(get(addr, "/adaptive?ms=0"), "shard");

    assert_eq!(get(addr, "/heavy"), "pool");
    assert_eq!(get(addr, "/heavy"), "pool");
    assert_eq!(get(addr, "/inline?ms=30"), "shard");
    assert_eq!(get(addr, "/inline?ms=30"), "shard");
    stop(server);
}

//! Adaptive offload over loopback: a sync route that overruns its budget runs on the
//! blocking pool from its next call on, while the shard goes on serving its other
//! connections; what one shard learned the other knows (its first call of the route goes to
//! the pool); a call that starts while another shard's inline run of its route is already
//! over budget goes to the pool (no second first burn), and a run that ended by panicking
//! leaves no such mark behind; a heavy route fast again is retried inline; routes declared
//! heavy or inline-only keep to it; the per-route counters follow, in the metrics exposition.

mod server_support;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{Condvar, Mutex},
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

/// Two shards with an admin listener: the server, its address and the admin address.
fn start_two_shards(make_router: fn() -> Router) -> (ServerHandle, SocketAddr, SocketAddr) {
    let server = service::serve(
        Server::builder()
            .shards(2)
            .admin("127.0.0.1:0".parse().unwrap()),
        "127.0.0.1:0".parse().unwrap(),
        Limits::default(),
        make_router,
    )
    .unwrap();
    let addr = server.listen_addr().unwrap();
    let admin = server.report().admin_addr.unwrap();
    (server, addr, admin)
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

/// A keep-alive client: its requests all go to the shard that took the connection.
struct KeepAlive {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl KeepAlive {
    fn connect(addr: SocketAddr) -> KeepAlive {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        KeepAlive {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    /// `GET path`; the body (the response must say its `Content-Length`).
    fn get(&mut self, path: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
        self.writer.write_all(request.as_bytes()).unwrap();
        let mut length = None;
        let mut status = String::new();
        self.reader.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{path}: {status}");
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = Some(value.trim().parse::<usize>().unwrap());
            }
        }
        let mut body = vec![0; length.expect("Content-Length")];
        self.reader.read_exact(&mut body).unwrap();
        String::from_utf8(body).unwrap()
    }
}

/// One keep-alive connection on each of two shards (the kernel's hash decides: connect
/// until both are covered).
fn one_per_shard(addr: SocketAddr) -> [KeepAlive; 2] {
    let mut found: [Option<KeepAlive>; 2] = [None, None];
    for _ in 0..200 {
        let mut client = KeepAlive::connect(addr);
        let shard: usize = client.get("/shard").parse().unwrap();
        if found[shard].is_none() {
            found[shard] = Some(client);
        }
        if found.iter().all(Option::is_some) {
            return found.map(Option::unwrap);
        }
    }
    panic!("200 connections all landed on one shard");
}

fn two_shard_routes() -> Router {
    Router::new()
        .route("GET", "/shard", |_| percore::mesh::shard_id().to_string())
        .route_offload(
            "GET",
            "/spin",
            Offload::adaptive().budget(Duration::from_millis(20)),
            spin_then_place,
        )
}

/// The sum over shards of `name{route="GET /spin",shard="N"}` in `metrics`, and the value of
/// shard `shard`'s sample (`None` when absent).
fn spin_counter(metrics: &str, name: &str, shard: usize) -> Option<u64> {
    let prefix = format!("{name}{{route=\"GET /spin\",shard=\"{shard}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
}

/// `GET /metrics` from the admin listener.
fn scrape(admin: SocketAddr) -> String {
    get(admin, "/metrics")
}

#[test]
fn what_one_shard_learned_of_a_route_the_other_knows_and_the_counters_say_so() {
    let (server, addr, admin) = start_two_shards(two_shard_routes);
    let [mut on0, mut on1] = one_per_shard(addr);
    // Shard 0 runs the unknown route inline, and it overruns its 20 ms budget.
    assert_eq!(on0.get("/spin?ms=60"), "shard");
    // Shard 1 never ran it: its first call goes to the pool all the same. (30 ms is over half
    // the budget: the pool run keeps the route heavy.)
    assert_eq!(on1.get("/spin?ms=30"), "pool");
    assert_eq!(on0.get("/spin?ms=30"), "pool");

    let metrics = scrape(admin);
    let count = |name: &str, shard| spin_counter(&metrics, name, shard);
    let inline = "percore_http_offload_inline_runs_total";
    let pool = "percore_http_offload_pool_runs_total";
    let overruns = "percore_http_offload_overruns_total";
    let pool_us = "percore_http_offload_pool_time_us_total";
    assert_eq!(count(inline, 0), Some(1), "{metrics}");
    assert_eq!(count(overruns, 0), Some(1), "{metrics}");
    assert_eq!(count(pool, 0), Some(1), "{metrics}");
    assert_eq!(count(inline, 1), Some(0), "{metrics}");
    assert_eq!(count(overruns, 1), Some(0), "{metrics}");
    assert_eq!(count(pool, 1), Some(1), "{metrics}");
    for shard in [0, 1] {
        let us = count(pool_us, shard).unwrap_or(0);
        assert!(
            us >= 30_000,
            "shard {shard}: {us} us on the pool\n{metrics}"
        );
    }
    stop(server);
}

/// Where `/hold?hold=1` is: not started, holding (since when), or released.
#[derive(Clone, Copy, PartialEq)]
enum Hold {
    Idle,
    Holding(Instant),
    Released,
}

static HOLD: (Mutex<Hold>, Condvar) = (Mutex::new(Hold::Idle), Condvar::new());

/// `GET /hold?hold=1` runs until the test releases it; `GET /hold` returns at once; both say
/// where they ran.
fn hold_then_place(request: OwnedRequest) -> String {
    if request.query_param("hold") == Some(b"1") {
        let (lock, changed) = &HOLD;
        *lock.lock().unwrap() = Hold::Holding(Instant::now());
        changed.notify_all();
        let mut hold = lock.lock().unwrap();
        while *hold != Hold::Released {
            hold = changed.wait(hold).unwrap();
        }
    }
    place(request)
}

fn panic_then_place(request: OwnedRequest) -> String {
    if request.query_param("panic") == Some(b"1") {
        panic!("the handler panics (expected by the test)");
    }
    place(request)
}

const HOLD_BUDGET: Duration = Duration::from_millis(20);

fn overlap_routes() -> Router {
    Router::new()
        .route("GET", "/shard", |_| percore::mesh::shard_id().to_string())
        .route_offload(
            "GET",
            "/hold",
            Offload::adaptive().budget(HOLD_BUDGET),
            hold_then_place,
        )
        .route_offload(
            "GET",
            "/panic",
            Offload::adaptive().budget(HOLD_BUDGET),
            panic_then_place,
        )
}

#[test]
fn a_call_meeting_another_shards_overrunning_first_run_goes_to_the_pool() {
    let (server, addr, admin) = start_two_shards(overlap_routes);
    let [mut on0, mut on1] = one_per_shard(addr);

    // Shard 0's first call of /hold runs inline (nothing known) and stays inside the handler.
    let held = thread::spawn(move || on0.get("/hold?hold=1"));
    let (lock, changed) = &HOLD;
    let since = {
        let mut hold = lock.lock().unwrap();
        loop {
            if let Hold::Holding(since) = *hold {
                break since;
            }
            hold = changed.wait(hold).unwrap();
        }
    };
    // Once that run is past its budget (time passing is what is tested), shard 1's first
    // call of the route does not start a second inline run: it goes to the pool.
    thread::sleep((since + 2 * HOLD_BUDGET).saturating_duration_since(Instant::now()));
    assert_eq!(on1.get("/hold"), "pool");
    *lock.lock().unwrap() = Hold::Released;
    changed.notify_all();
    assert_eq!(held.join().unwrap(), "shard");

    let metrics = scrape(admin);
    let count = |name: &str, shard| {
        let prefix = format!("{name}{{route=\"GET /hold\",shard=\"{shard}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix)?.parse::<u64>().ok())
    };
    let inline = "percore_http_offload_inline_runs_total";
    let pool = "percore_http_offload_pool_runs_total";
    let overruns = "percore_http_offload_overruns_total";
    assert_eq!(count(inline, 0), Some(1), "{metrics}");
    assert_eq!(count(overruns, 0), Some(1), "{metrics}");
    assert_eq!(count(pool, 1), Some(1), "{metrics}");
    assert_eq!(count(inline, 1), Some(0), "{metrics}");
    stop(server);
}

#[test]
fn an_inline_run_that_panicked_leaves_no_overrun_mark_for_the_other_shards() {
    let (server, addr, _admin) = start_two_shards(overlap_routes);
    let [mut on0, mut on1] = one_per_shard(addr);
    // Shard 0's inline run panics at once (the server answers 500 and closes; a panicking
    // run is no overrun).
    let mut stream = on0.writer.try_clone().unwrap();
    stream
        .write_all(b"GET /panic?panic=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    let _ = on0.reader.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 500"), "{response}");
    // Well past the budget later, shard 1 still runs the route inline: no run is in progress.
    thread::sleep(2 * HOLD_BUDGET);
    assert_eq!(on1.get("/panic"), "shard");
    assert_eq!(on1.get("/panic"), "shard");
    stop(server);
}

/// `GET /block?ms=N`: an async handler that blocks its shard in a syscall for N ms (what a
/// handler calling blocking I/O does).
async fn block(request: OwnedRequest) -> String {
    let ms: u64 = request
        .query_param("ms")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0);
    percore::time::sleep(Duration::from_millis(1)).await; // Runs over a later iteration too.
    thread::sleep(Duration::from_millis(ms));
    "blocked".to_owned()
}

#[test]
fn an_async_handler_that_blocks_is_named_in_the_stall_metric() {
    let server = service::serve(
        Server::builder()
            .shards(2)
            .stall_threshold(Duration::from_millis(30))
            .admin("127.0.0.1:0".parse().unwrap()),
        "127.0.0.1:0".parse().unwrap(),
        Limits::default(),
        || {
            Router::new()
                .route("GET", "/", |_| "light")
                .route_async("GET", "/block", block)
        },
    )
    .unwrap();
    let addr = server.listen_addr().unwrap();
    let admin = server.report().admin_addr.unwrap();
    assert_eq!(get(addr, "/block?ms=120"), "blocked");
    let deadline = Instant::now() + Duration::from_secs(5);
    let stalls = |metrics: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("percore_stalls_by_route_total{route=\"GET /block\","))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
            .sum()
    };
    let mut metrics = scrape(admin);
    while stalls(&metrics) == 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        metrics = scrape(admin);
    }
    assert_eq!(stalls(&metrics), 1, "{metrics}");
    // Light requests do not stall: nothing else is blamed on the route.
    for _ in 0..20 {
        assert_eq!(get(addr, "/"), "light");
    }
    assert_eq!(stalls(&scrape(admin)), 1);
    stop(server);
}

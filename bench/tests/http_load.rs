//! `percore-bench http` against small servers with known behaviour: the books reconcile
//! exactly with what the server did, pipelined responses of mixed framings are cut apart in
//! order, and every kind of bad answer is counted as its own error in bounded time.

mod common;

use std::{
    io::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use common::{assert_reconciled, config, run, serve_heads, spawn_server};
use percore_bench::{
    http::{Http, HttpRequest},
    load::report::LoadReport,
};

const HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";

fn http(target: std::net::SocketAddr) -> Http {
    Http::new(target, &HttpRequest::default()).expect("request")
}

/// How long a run may take at most: warm-up + window + drain + the engine's margin.
fn bound(cfg: &percore_bench::load::LoadConfig) -> Duration {
    cfg.warmup + cfg.duration + cfg.drain_grace + cfg.timeout + Duration::from_secs(4)
}

/// A run against `target` with the test configuration, which must end within [`bound`]
/// and whose books must reconcile.
fn run_within_bound(target: std::net::SocketAddr) -> LoadReport {
    let cfg = config(target);
    let started = Instant::now();
    let report = run(cfg.clone(), http(target));
    assert!(
        started.elapsed() < bound(&cfg),
        "took {:?}",
        started.elapsed()
    );
    assert_reconciled(&report);
    report
}

#[test]
fn pipelined_mixed_framings_reconcile_exactly_with_the_server() {
    // Per connection, request k gets: k % 3 == 2 → 503 (counted `status`), otherwise 200,
    // alternating Content-Length and chunked framing; the server counts what it answers
    // *before* writing, so its counts are final when the client has read everything.
    let answered_ok = Arc::new(AtomicU64::new(0));
    let answered_503 = Arc::new(AtomicU64::new(0));
    let (ok2, bad2) = (answered_ok.clone(), answered_503.clone());
    let target = spawn_server(move |stream| {
        let mut k = 0u64;
        serve_heads(stream, |out| {
            match k % 3 {
                0 => out.extend_from_slice(HELLO),
                1 => out.extend_from_slice(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                      5\r\nHello\r\n8\r\n, World!\r\n0\r\n\r\n",
                ),
                _ => out.extend_from_slice(
                    b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\nRetry-After: 1\r\n\r\nbusy",
                ),
            }
            if k % 3 == 2 {
                bad2.fetch_add(1, Ordering::Relaxed);
            } else {
                ok2.fetch_add(1, Ordering::Relaxed);
            }
            k += 1;
            true
        })
    });
    let mut cfg = config(target);
    cfg.pipeline = 4;
    let report = run(cfg, http(target));
    assert_reconciled(&report);
    let all = report.whole_run();
    assert!(all.ok > 100, "{}", report.to_text());
    assert_eq!(all.in_flight_at_end, 0, "{}", report.to_text());
    assert_eq!(
        all.ok,
        answered_ok.load(Ordering::Relaxed),
        "{}",
        report.to_text()
    );
    assert_eq!(
        all.status,
        answered_503.load(Ordering::Relaxed),
        "{}",
        report.to_text()
    );
    assert_eq!(all.errors(), all.status, "only 503s: {}", report.to_text());
    assert_eq!(all.connects, 8);
    assert!(report.latency_us.p50 > 0.0 && report.latency_us.p999 >= report.latency_us.p50);
}

#[test]
fn a_wrong_status_counts_as_an_error_unless_expected() {
    let target = spawn_server(|stream| {
        serve_heads(stream, |out| {
            out.extend_from_slice(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            true
        })
    });
    let report = run(config(target), http(target));
    assert_reconciled(&report);
    assert_eq!(report.total_ok(), 0, "{}", report.to_text());
    assert!(report.measured.status > 10, "{}", report.to_text());
    assert_eq!(report.measured.errors(), report.measured.status);

    let expect_404 = HttpRequest {
        expect: percore_bench::http::parse::StatusSet::parse("404").unwrap(),
        ..HttpRequest::default()
    };
    let report = run(config(target), Http::new(target, &expect_404).unwrap());
    assert_reconciled(&report);
    assert_eq!(report.errors(), 0, "{}", report.to_text());
    assert!(report.measured.ok > 10);
}

#[test]
fn a_truncated_body_is_counted_and_the_run_ends_on_time() {
    // Promises 100 bytes, sends 10, closes.
    let target = spawn_server(|stream| {
        serve_heads(stream, |out| {
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
            false
        })
    });
    let report = run_within_bound(target);
    let all = report.whole_run();
    assert_eq!(all.ok, 0, "{}", report.to_text());
    assert!(all.truncated > 8, "{}", report.to_text());
    // One request per connection, each cut short.
    assert_eq!(all.truncated, all.sent, "{}", report.to_text());
}

#[test]
fn closing_mid_head_before_any_byte_and_garbage_are_each_counted() {
    // Connection n: n % 3 == 0 closes mid-head, 1 closes before answering, 2 answers garbage.
    let n = Arc::new(AtomicU64::new(0));
    let target = spawn_server(move |mut stream| {
        let which = n.fetch_add(1, Ordering::Relaxed) % 3;
        let mut first = true;
        serve_heads(stream.try_clone().unwrap(), |out| {
            if !first {
                return false;
            }
            first = false;
            match which {
                0 => out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Len"),
                1 => {}
                _ => out.extend_from_slice(b"SSH-2.0-OpenSSH_9.2\r\n"),
            }
            false
        });
        let _ = stream.flush();
    });
    let report = run_within_bound(target);
    let all = report.whole_run();
    assert_eq!(all.ok, 0, "{}", report.to_text());
    for (name, count) in [
        ("truncated", all.truncated),
        ("closed", all.closed),
        ("parse", all.parse),
    ] {
        assert!(count > 2, "{name}: {}", report.to_text());
    }
    // Nothing else happened, and nothing was left over.
    assert_eq!(
        all.request_errors(),
        all.truncated + all.closed + all.parse + all.reset,
        "{}",
        report.to_text()
    );
}

#[test]
fn a_silent_server_gives_timeouts_and_in_flight_at_end_not_a_hang() {
    let target = spawn_server(|stream| serve_heads(stream, |_| true));
    let report = run_within_bound(target);
    assert_eq!(report.total_ok(), 0);
    assert!(
        report.warmup.timeout + report.measured.timeout > 0,
        "{}",
        report.to_text()
    );
}

#[test]
fn the_open_loop_holds_the_offered_rate_at_the_server() {
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = arrivals.clone();
    let target = spawn_server(move |stream| {
        let seen = seen.clone();
        serve_heads(stream, move |out| {
            seen.lock().unwrap().push(Instant::now());
            out.extend_from_slice(HELLO);
            true
        })
    });
    let rate = 2000.0;
    let mut cfg = config(target);
    cfg.connections = 20;
    cfg.rate = Some(rate);
    cfg.warmup = Duration::from_millis(500);
    cfg.duration = Duration::from_secs(3);
    let report = run(cfg, http(target));
    assert_reconciled(&report);
    assert_eq!(report.errors(), 0, "{}", report.to_text());
    // What the server received over 2.5 s in the middle of the run. (A late request is still
    // sent, so a stall of the shared machine moves arrivals but loses none: the tolerance is
    // for such a shift across the edges of the count.)
    let arrivals = arrivals.lock().unwrap();
    let first = arrivals[0];
    let (from, to) = (
        first + Duration::from_millis(500),
        first + Duration::from_millis(3000),
    );
    let received = arrivals.iter().filter(|&&t| t >= from && t < to).count();
    let received_rate = received as f64 / 2.5;
    assert!(
        (received_rate - rate).abs() / rate < 0.04,
        "server received {received_rate:.0} req/s, offered {rate}\n{}",
        report.to_text()
    );
    // The client's own view agrees.
    let sent_rate = report.measured.sent as f64 / report.window_secs;
    assert!(
        (sent_rate - rate).abs() / rate < 0.04,
        "{}",
        report.to_text()
    );
}

#[test]
fn open_loop_latency_includes_the_wait_behind_a_stall() {
    // The server stalls 300 ms once, early in the window. A closed-loop client would record
    // one slow request per connection; the open loop times every request that was due
    // during the stall from its intended time, so p90 sees the stall too.
    let stalled = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let target = spawn_server(move |stream| {
        let stalled = stalled.clone();
        serve_heads(stream, move |out| {
            if start.elapsed() > Duration::from_millis(400)
                && stalled.fetch_add(1, Ordering::Relaxed) == 0
            {
                std::thread::sleep(Duration::from_millis(300));
            }
            out.extend_from_slice(HELLO);
            true
        })
    });
    let mut cfg = config(target);
    cfg.connections = 1;
    cfg.rate = Some(500.0);
    cfg.timeout = Duration::from_secs(1);
    let report = run(cfg, http(target));
    assert_reconciled(&report);
    assert_eq!(report.errors(), 0, "{}", report.to_text());
    // 300 ms at 500/s: ~150 requests were due during the stall, of ~400 in the window, so
    // more than 10% waited at least 100 ms.
    assert!(
        report.latency_us.p90 > 100_000.0,
        "p90 {} µs\n{}",
        report.latency_us.p90,
        report.to_text()
    );
}

//! The echo load generator's books must balance: every request sent ends as one success or
//! one counted error, and a server that corrupts bytes, stays silent or is absent shows up
//! in the error counts, in bounded time.

use std::{
    net::{SocketAddr, TcpListener},
    time::{Duration, Instant},
};

use percore::{
    Server, ServerHandle, TcpStream,
    future::{Either, select},
    shutdown_signal,
};
use percore_bench::echo::{self, EchoConfig};
use percore_bench::report::EchoReport;

fn config(target: SocketAddr) -> EchoConfig {
    EchoConfig {
        target,
        connections: 8,
        message_size: 100,
        pipeline: 2,
        duration: Duration::from_millis(800),
        warmup: Duration::from_millis(200),
        shards: 1,
        timeout: Duration::from_millis(500),
        server_pid: Some(std::process::id()),
        clk_tck: 100,
    }
}

fn assert_balanced(report: &EchoReport) {
    for (phase, c) in [("measured", &report.measured), ("warm-up", &report.warmup)] {
        assert_eq!(
            c.sent,
            c.ok + c.request_errors(),
            "{phase}: sent = ok + request errors\n{}",
            report.to_text()
        );
    }
}

/// A graceful stop. (`stop_within(Duration::ZERO)` would be quicker, but a forced stop of a
/// shard that still has a listener panics in `net::listener::close_all`: see bench/RESULTS.md.)
fn stop(server: ServerHandle) {
    server.stop();
    server.join().expect("server stops cleanly");
}

fn echo_server<H, F>(handler: H) -> ServerHandle
where
    H: Fn(TcpStream) -> F + Send + Sync + Clone + 'static,
    F: Future<Output = ()> + 'static,
{
    Server::builder()
        .shards(1)
        .drain_timeout(Duration::from_secs(1))
        .serve("127.0.0.1:0".parse().unwrap(), handler)
        .expect("start server")
}

#[test]
fn a_correct_echo_server_gives_requests_and_no_errors() {
    let server = echo_server(percore_echo::handle);
    let report = echo::run(config(server.listen_addr().unwrap())).expect("run");
    stop(server);
    assert_balanced(&report);
    assert!(report.requests > 100, "{}", report.to_text());
    assert_eq!(report.errors(), 0, "{}", report.to_text());
    assert!(report.latency_us.p50 > 0.0);
    assert!(report.server_cpu_secs.is_some(), "{}", report.to_text());
}

/// Echoes, but flips the first byte of every fifth batch it echoes; ends when the server
/// drains.
async fn corrupting_echo(mut stream: TcpStream) {
    let mut batches = 0u64;
    loop {
        let echoed = select(
            stream.respond_with(|input, output| {
                batches += 1;
                let start = output.len();
                output.extend_from_slice(input);
                if batches.is_multiple_of(5) {
                    output[start] ^= 0x55;
                }
                (input.len(), ())
            }),
            shutdown_signal(),
        )
        .await;
        if !matches!(echoed, Either::Left(Ok(Some(())))) {
            return;
        }
    }
}

#[test]
fn a_server_that_corrupts_bytes_is_counted_as_mismatches() {
    let server = echo_server(corrupting_echo);
    let report = echo::run(config(server.listen_addr().unwrap())).expect("run");
    stop(server);
    assert_balanced(&report);
    assert!(report.measured.mismatch > 0, "{}", report.to_text());
    // Four batches in five are intact, so requests still succeed between the failures.
    assert!(report.measured.ok > 0, "{}", report.to_text());
}

#[test]
fn a_server_that_never_answers_ends_in_timeouts_not_a_hang() {
    // Listening (so connects succeed through the backlog) but never accepting or reading.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = config(listener.local_addr().unwrap());
    let started = Instant::now();
    let report = echo::run(cfg.clone()).expect("run");
    let bound = cfg.warmup + cfg.duration + cfg.timeout * 2 + Duration::from_secs(8);
    assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
    assert_balanced(&report);
    assert_eq!(report.requests, 0);
    assert!(
        report.measured.timeout + report.warmup.timeout > 0,
        "{}",
        report.to_text()
    );
    drop(listener);
}

#[test]
fn no_server_gives_connect_errors_and_no_requests() {
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let report = echo::run(config(port)).expect("run");
    assert_balanced(&report);
    assert_eq!(report.measured.sent + report.warmup.sent, 0);
    assert!(report.measured.connect_refused > 0, "{}", report.to_text());
}

//! `percore serve --offload-after-ms`: the budget of the demo's `/work` route. A burn over
//! a 1 ms budget sends the route's next call to the blocking pool (the response says where
//! it ran, the per-route counters in /metrics agree); under a 1 s budget the same burns stay
//! on the shard; a budget of 0 is refused with a message. An async handler that blocks its
//! shard is named in the stall warning and in `percore_stalls_by_route_total`.

#[path = "support/process.rs"]
mod process;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use process::{free_addr, sigterm, wait_exit, wait_until_listening};

/// `percore serve` on one shard (every request meets the same route state), with its
/// metrics on a second address.
fn serve(offload_after_ms: &str) -> (Child, String, String) {
    let (addr, admin) = (free_addr(), free_addr());
    let mut child = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args([
            "serve", "--listen", &addr, "--admin", &admin, "--shards", "1",
        ])
        .args([
            "--drain-timeout-secs",
            "1",
            "--offload-after-ms",
            offload_after_ms,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_listening(&mut child);
    (child, addr, admin)
}

/// `GET path` on a new connection: the whole response.
fn get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{path}: {response}");
    response
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").unwrap().1
}

/// The value of `name{...route="GET /work"...}` in the admin's /metrics (0 when absent).
fn work_counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains("route=\"GET /work\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum()
}

/// The metrics once `want` holds of them (they are gathered from the shards, not read in
/// place), within 5 s.
fn metrics_when(admin: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = body(&get(admin, "/metrics")).to_owned();
        if want(&metrics) || Instant::now() > deadline {
            return metrics;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(child: &mut Child) {
    sigterm(child);
    assert_eq!(wait_exit(child, Duration::from_secs(10)), Some(0));
}

#[test]
fn a_burn_over_a_1_ms_budget_sends_the_next_call_to_the_blocking_pool() {
    let (mut child, addr, admin) = serve("1");
    assert!(body(&get(&addr, "/work?ms=20")).ends_with("on the shard\n"));
    assert!(
        body(&get(&addr, "/work?ms=20")).ends_with("on the blocking pool\n"),
        "the second call of a route that overran 1 ms ran on the shard"
    );
    let metrics = metrics_when(&admin, |m| {
        work_counter(m, "percore_http_offload_pool_runs_total") == 1
    });
    assert_eq!(
        work_counter(&metrics, "percore_http_offload_inline_runs_total"),
        1,
        "{metrics}"
    );
    assert_eq!(
        work_counter(&metrics, "percore_http_offload_overruns_total"),
        1,
        "{metrics}"
    );
    assert_eq!(
        work_counter(&metrics, "percore_http_offload_pool_runs_total"),
        1,
        "{metrics}"
    );
    assert!(work_counter(&metrics, "percore_http_offload_pool_time_us_total") >= 20_000);
    stop(&mut child);
}

#[test]
fn burns_under_a_1_s_budget_stay_on_the_shard() {
    let (mut child, addr, admin) = serve("1000");
    for _ in 0..3 {
        assert!(body(&get(&addr, "/work?ms=20")).ends_with("on the shard\n"));
    }
    let metrics = metrics_when(&admin, |m| {
        work_counter(m, "percore_http_offload_inline_runs_total") == 3
    });
    assert_eq!(
        work_counter(&metrics, "percore_http_offload_inline_runs_total"),
        3,
        "{metrics}"
    );
    assert_eq!(
        work_counter(&metrics, "percore_http_offload_overruns_total"),
        0,
        "{metrics}"
    );
    assert_eq!(
        work_counter(&metrics, "percore_http_offload_pool_runs_total"),
        0,
        "{metrics}"
    );
    stop(&mut child);
}

#[test]
fn a_zero_budget_is_refused_with_a_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args(["serve", "--listen", &free_addr(), "--offload-after-ms", "0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--offload-after-ms"), "{stderr}");
}

#[test]
fn a_blocking_async_handler_is_named_in_the_stall_warning_and_metric() {
    let (addr, admin) = (free_addr(), free_addr());
    let mut child = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args([
            "serve", "--listen", &addr, "--admin", &admin, "--shards", "2",
        ])
        .args(["--drain-timeout-secs", "1", "--stall-ms", "40"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Every line of stderr after the startup report, as it comes.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains(" listening on ") {
            break;
        }
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // `/work?block=1` is the demo's async route that sleeps in a syscall on the shard.
    assert!(body(&get(&addr, "/work?ms=150&block=1")).starts_with("blocked the shard"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let warning = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("a stall warning within 5 s");
        if line.contains("shard stalled") {
            break line;
        }
    };
    assert!(warning.contains("GET /work"), "{warning}");
    let stalls = |m: &str| -> u64 {
        m.lines()
            .filter(|l| l.starts_with("percore_stalls_by_route_total{route=\"GET /work\","))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
            .sum()
    };
    let metrics = metrics_when(&admin, |m| stalls(m) >= 1);
    assert_eq!(stalls(&metrics), 1, "{metrics}");
    stop(&mut child);
}

//! A shard that does not come back, through the binary (`percore serve --shards 2 --admin`):
//! a handler that holds its shard (spinning, or blocked in a syscall) makes both health
//! checks answer 503 naming it within `--unhealthy-after` + 1 s, shows in the stall gauges
//! and `/debug/shards` while it lasts, leaves other connections served at once, and leaves
//! no trace once it returns; with `--abort-after` the process exits with status 75.

#[path = "support/process.rs"]
mod process;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use process::{free_addr, wait_exit};

/// The exit status of a process that a stuck shard ended (`--abort-after`).
const EXIT_SHARD_STUCK: i32 = 75;

/// A running `percore serve`: its addresses and its stderr, line by line.
struct Served {
    child: Child,
    listen: String,
    admin: String,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(extra: &[&str]) -> Served {
    let (listen, admin) = (free_addr(), free_addr());
    let mut child = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args([
            "serve",
            "--listen",
            &listen,
            "--shards",
            "2",
            "--admin",
            &admin,
            "--unhealthy-after",
            "1",
        ])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("percore runs");
    let (tx, stderr) = mpsc::channel();
    let lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
    thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let served = Served {
        child,
        listen,
        admin,
        stderr,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = served
            .stderr
            .recv_timeout(left)
            .expect("percore printed its listening line in time");
        if line.contains(" listening on ") {
            return served;
        }
    }
}

/// One request on a fresh connection: status, body, and how long it took.
fn get(addr: &str, path: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let took = started.elapsed();
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body, took)
}

fn sample(metrics: &str, line_start: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

/// Starts `path` (a request that holds its shard) on its own connection; the handle gives
/// its status and body once it returns.
fn hold(addr: &str, path: &str) -> thread::JoinHandle<(u16, String, Duration)> {
    let (addr, path) = (addr.to_string(), path.to_string());
    thread::spawn(move || get(&addr, &path))
}

/// Polls `check` every 20 ms until it holds or `limit` has passed; the time it took.
fn within(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return Some(started.elapsed());
        }
        thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The shard a stuck report names: its `"shard":N` in the health body.
fn stuck_shard(body: &str) -> usize {
    let at = body.find("\"shard\":").expect("names a shard") + 8;
    body[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a shard number")
}

/// The whole story of one stuck shard, with `path` holding it for about `hold_ms`.
fn a_stuck_shard_is_reported_and_recovers(path: &str, hold_ms: u64) {
    let server = serve(&[]);
    let (status, body, _) = get(&server.admin, "/healthz");
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ok\"}\n"));
    assert_eq!(get(&server.listen, "/healthz").0, 200);

    let asked = Instant::now();
    let holder = hold(&server.listen, path);
    // Within --unhealthy-after (1 s) + 1 s, the admin health check names the stuck shard.
    let mut admin_health = String::new();
    within(Duration::from_secs(2), || {
        let (status, body, _) = get(&server.admin, "/healthz");
        admin_health = body;
        status == 503
    })
    .unwrap_or_else(|| panic!("admin /healthz not 503 within 2 s: {admin_health}"));
    assert!(asked.elapsed() < Duration::from_secs(2));
    assert!(
        admin_health.contains("\"status\":\"unhealthy\"")
            && admin_health.contains("\"task\":\"GET /work\""),
        "{admin_health}"
    );
    let shard = stuck_shard(&admin_health);

    // The service's own /healthz, answered by the other shard, says the same.
    let (status, body, _) = get(&server.listen, "/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&format!("\"shard\":{shard}")), "{body}");

    // The gauges, while the handler still runs.
    let (_, metrics, _) = get(&server.admin, "/metrics");
    let stalled = sample(
        &metrics,
        &format!("percore_shard_stalled_seconds{{shard=\"{shard}\"}}"),
    )
    .expect("stalled gauge of the stuck shard");
    assert!(stalled >= 1.0, "stalled {stalled} s:\n{metrics}");
    assert_eq!(sample(&metrics, "percore_shards_stuck"), Some(1.0));
    let other = 1 - shard;
    assert_eq!(
        sample(
            &metrics,
            &format!("percore_shard_stalled_seconds{{shard=\"{other}\"}}")
        ),
        Some(0.0)
    );

    // /debug/shards names the state, the iteration time and the route.
    let (status, page, _) = get(&server.admin, "/debug/shards");
    assert_eq!(status, 200);
    let line = page
        .lines()
        .find(|l| l.starts_with(&format!("shard {shard}:")))
        .unwrap_or_else(|| panic!("{page}"));
    assert!(
        line.contains("stuck") && line.contains("GET /work"),
        "{page}"
    );

    // Other connections are served at once by the other shard.
    let mut times: Vec<Duration> = (0..5).map(|_| get(&server.listen, "/").2).collect();
    times.sort();
    assert!(
        times[2] < Duration::from_millis(100),
        "median of five requests took {:?} ({times:?})",
        times[2]
    );

    // The stall is logged while it lasts, naming the route.
    let logged = server
        .stderr
        .try_iter()
        .map(|l| without_colours(&l))
        .any(|l| l.contains("shard stalled") && l.contains("task=\"GET /work\""));
    assert!(logged, "the stall log line names the route");

    // Once the handler returns: 200 again and the gauge back to 0.
    let (status, body, _) = holder.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(asked.elapsed() >= Duration::from_millis(hold_ms));
    within(Duration::from_secs(1), || {
        get(&server.admin, "/healthz").0 == 200 && get(&server.listen, "/healthz").0 == 200
    })
    .expect("health back to 200 within 1 s of the handler's return");
    let (_, metrics, _) = get(&server.admin, "/metrics");
    assert_eq!(
        sample(
            &metrics,
            &format!("percore_shard_stalled_seconds{{shard=\"{shard}\"}}")
        ),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "percore_shards_stuck"), Some(0.0));
}

#[test]
fn a_spinning_handler_makes_health_fail_until_it_returns() {
    a_stuck_shard_is_reported_and_recovers("/work?ms=3500", 3500);
}

#[test]
fn a_handler_blocked_in_a_syscall_is_detected_like_one_that_computes() {
    a_stuck_shard_is_reported_and_recovers("/work?ms=3500&block=1", 3500);
}

#[test]
fn abort_after_ends_the_process_with_its_own_status_and_one_line() {
    let mut server = serve(&["--abort-after", "3"]);
    let asked = Instant::now();
    // The connection dies with the process: its outcome is not looked at.
    let listen = server.listen.clone();
    thread::spawn(move || {
        let mut stream = TcpStream::connect(listen).unwrap();
        let _ = stream.write_all(b"GET /work?ms=10000 HTTP/1.1\r\nHost: test\r\n\r\n");
        let _ = stream.read(&mut [0u8; 64]);
    });
    let status = wait_exit(&mut server.child, Duration::from_secs(4));
    assert_eq!(
        status,
        Some(EXIT_SHARD_STUCK),
        "exit status within 4 s of the stuck request"
    );
    assert!(asked.elapsed() >= Duration::from_secs(3), "not before 3 s");
    let lines: Vec<String> = server
        .stderr
        .iter()
        .map(|l| without_colours(&l))
        .filter(|l| l.contains("--abort-after"))
        .collect();
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    assert!(
        lines[0].contains("shard=") && lines[0].contains("GET /work"),
        "{}",
        lines[0]
    );
}

/// `line` without its ANSI colour sequences.
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn bad_durations_are_refused_with_one_line() {
    let output = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args(["serve", "--unhealthy-after", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("not a number of seconds"), "{err}");
}

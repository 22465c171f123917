//! Graceful stop of `percore echo` on SIGTERM: listeners close at once, open connections are
//! still served until their clients close or the drain deadline passes, exit status 0.

#[path = "support/process.rs"]
mod process;

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use process::{free_addr, sigterm, wait_exit, wait_until_listening};

/// Starts `percore echo` on a free port and waits until it listens.
fn start_echo(extra: &[&str]) -> (Child, String) {
    let addr = free_addr();
    let mut child = Command::new(env!("CARGO_BIN_EXE_percore"))
        // No drain delay: these tests are about the drain itself (the delay has its own).
        .args([
            "echo",
            "--listen",
            &addr,
            "--shards",
            "2",
            "--drain-delay",
            "0",
        ])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_listening(&mut child);
    (child, addr)
}

fn round_trip(stream: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).unwrap();
    let mut got = vec![0; data.len()];
    stream.read_exact(&mut got).unwrap();
    got
}

#[test]
fn sigterm_keeps_serving_open_connections_then_exits_zero_when_they_close() {
    let (mut child, addr) = start_echo(&[]);
    let mut open = TcpStream::connect(&addr).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(round_trip(&mut open, b"before"), b"before");

    sigterm(&child);
    // The listener closes: new connections are refused (poll: the signal is asynchronous).
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(&addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "listener still accepting 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The open connection is still served, in full, while the server drains.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
    assert_eq!(
        round_trip(&mut open, &big),
        big,
        "in-flight echo completes during the drain"
    );
    assert_eq!(
        child.try_wait().unwrap(),
        None,
        "still draining while a connection is open"
    );

    drop(open);
    let code = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "exit 0 once the last connection closed");
}

#[test]
fn a_connection_left_open_is_closed_at_the_drain_deadline() {
    let (mut child, addr) = start_echo(&["--drain-timeout-secs", "1"]);
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(round_trip(&mut idle, b"ping"), b"ping");
    let started = Instant::now();
    sigterm(&child);
    let code = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(
        code,
        Some(0),
        "a forced close at the deadline is still a clean exit"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "waited for the drain deadline: {waited:?}"
    );
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing unexpected arrived: {rest:?}");
}

#[test]
fn a_second_sigterm_stops_at_once() {
    let (mut child, addr) = start_echo(&["--drain-timeout-secs", "30"]);
    let _held = TcpStream::connect(&addr).unwrap();
    sigterm(&child);
    std::thread::sleep(Duration::from_millis(100));
    sigterm(&child);
    let started = Instant::now();
    let code = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "second signal skipped the 30 s drain"
    );
}

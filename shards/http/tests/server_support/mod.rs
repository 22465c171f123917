//! Shared by the tests that run the HTTP service over real sockets: a server on port 0 with
//! two shards, its stop, and the real `curl` client (required under CI).

#![allow(dead_code)]

use std::{net::SocketAddr, process::Command, time::Duration};

use percore::{Server, ServerHandle};
use percore_http::{Limits, Router, service};

/// Serves `make_router`'s routes with `limits` on two shards, on a free loopback port.
pub fn start(limits: Limits, make_router: fn() -> Router) -> (ServerHandle, SocketAddr) {
    let server = service::serve(
        Server::builder().shards(2),
        "127.0.0.1:0".parse().unwrap(),
        limits,
        make_router,
    )
    .unwrap();
    let addr = server.listen_addr().unwrap();
    (server, addr)
}

pub fn stop(server: ServerHandle) {
    server.stop_within(Duration::from_millis(200));
    server.join().unwrap();
}

/// Whether a real client is installed; under CI its absence fails the test.
pub fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "{tool} is required under CI (tests/run.sh installs it)"
        );
        eprintln!("skipped: {tool} is not installed");
    }
    found
}

/// Runs curl (silent, errors shown, bounded in time) and returns its output; a failing
/// curl fails the test.
pub fn curl(args: &[&str]) -> Vec<u8> {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

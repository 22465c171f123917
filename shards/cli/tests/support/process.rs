//! Test support: running the `percore` binary as a child process.

#![allow(dead_code)]

#[path = "../../../../tests/support/ports.rs"]
mod ports;

use std::{
    io::{BufRead, BufReader},
    process::Child,
    time::{Duration, Instant},
};

/// A loopback address whose port is free now (outside the ephemeral range, see `ports`).
pub fn free_addr() -> String {
    ports::free_loopback_addr().to_string()
}

/// Reads the child's stderr until its "... listening" line and returns what it printed
/// (the startup report); the rest of stderr is drained in the background so the child
/// never blocks on a full pipe. The child must have been spawned with a piped stderr.
pub fn wait_until_listening(child: &mut Child) -> String {
    let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
    let mut report = String::new();
    loop {
        let line = lines
            .next()
            .expect("percore printed its report before exiting")
            .unwrap();
        report.push_str(&line);
        report.push('\n');
        if line.contains(" listening on ") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    report
}

pub fn sigterm(child: &Child) {
    // SAFETY: plain kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
}

/// The exit status within `limit`, or `None` (the child is then killed).
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    None
}

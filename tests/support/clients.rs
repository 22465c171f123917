//! Test support: real external clients (curl, redis-cli, openssl, ...) found on the host
//! and run with a bound. Standalone: std only, so any crate's tests can include it.
//!
//! Under `CI=true` a missing client fails the test (tests/run.sh installs them); locally
//! the test is skipped with the reason printed.

#![allow(dead_code)]

use std::{
    io::Write,
    process::{Command, Output, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

/// The path of client `name` (from the Debian `package`), or `None` (skip) when it is
/// missing outside CI.
pub fn client(name: &str, package: &str) -> Option<String> {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{name} is missing under CI: install the {package} package");
        }
        eprintln!("skipped: {name} is not installed (apt-get install {package})");
    }
    found
}

/// Runs `cmd` with `stdin` (then closed) and returns its output; kills it and fails the
/// test if it runs past `limit`.
pub fn run_bounded(cmd: &mut Command, stdin: &[u8], limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the client");
    let pid = child.id();
    let mut input = child.stdin.take().expect("stdin is piped");
    // A client may exit before reading all of it (an error answer): not a failure here.
    let _ = input.write_all(stdin);
    drop(input);
    let (tx, rx) = mpsc::channel();
    // The output is read while waiting, so a child with much to say never blocks on a pipe.
    thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("the client's output"),
        Err(_) => {
            // Not reaped yet (its waiter is still blocked), so the pid is still this child.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{cmd:?} ran past {limit:?}");
        }
    }
}

//! The `percore-bench` binary end to end: a refused target is one clear line and a
//! non-zero exit, at once; `--json` and `--plot` write what they promise.

mod common;

use std::{
    net::TcpListener,
    process::Command,
    time::{Duration, Instant},
};

use common::{serve_heads, spawn_server};

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_percore-bench"))
}

#[test]
fn a_refused_target_exits_non_zero_with_a_clear_message_at_once() {
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    for mode in ["http", "resp"] {
        let started = Instant::now();
        let out = bench()
            .args([mode, "--target", &port.to_string(), "-d", "5", "-q"])
            .output()
            .expect("run percore-bench");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("cannot connect") && stderr.contains("refused"),
            "{stderr}"
        );
    }
}

#[test]
fn json_and_plot_outputs() {
    let target = spawn_server(|stream| {
        serve_heads(stream, |out| {
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            true
        })
    });
    let dir = std::env::temp_dir().join(format!("percore-bench-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plot = dir.join("latency.svg");
    let out = bench()
        .args([
            "http",
            "--target",
            &target.to_string(),
            "-c",
            "4",
            "-d",
            "500ms",
            "-w",
            "100ms",
        ])
        .args(["--json", "--plot"])
        .arg(&plot)
        .output()
        .expect("run percore-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let json = stdout.trim();
    assert!(
        json.starts_with('{') && json.ends_with('}') && !json.contains('\n'),
        "{json}"
    );
    for key in [
        "\"mode\":\"http\"",
        "\"requests_per_sec\":",
        "\"p99_9\":",
        "\"in_flight_at_end\":",
    ] {
        assert!(json.contains(key), "{key} in {json}");
    }
    // Not a terminal: progress comes as plain lines.
    assert!(stderr.contains("percore-bench: measure"), "{stderr}");
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_target_that_refuses_after_the_preflight_is_counted_and_exits_non_zero() {
    // Only refusals after the pre-flight connect: the run goes on, counts them, and exits
    // non-zero because nothing succeeded.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepter = std::thread::spawn(move || {
        // Accept the pre-flight connection, then close the listener.
        let _ = listener.accept();
    });
    let out = bench()
        .args([
            "http",
            "--target",
            &addr.to_string(),
            "-c",
            "2",
            "-d",
            "300ms",
            "-w",
            "0",
            "-q",
        ])
        .output()
        .expect("run percore-bench");
    accepter.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("no request succeeded"), "{stderr}");
    assert!(stdout.contains("connect_refused"), "{stdout}");
}

#[test]
fn bad_settings_are_refused_before_any_connection() {
    for args in [
        &["http", "--rate", "0"][..],
        &["http", "--rate", "-5"],
        &["http", "-c", "0"],
        &["http", "--expect-status", "abc"],
        &["http", "--path", "a b"],
        &["resp", "--set-ratio", "2"],
    ] {
        let out = bench().args(args).args(["-q", "-d", "1"]).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("percore-bench:") || stderr.contains("error"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

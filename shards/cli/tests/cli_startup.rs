//! How `percore` fails to start: io_uring denied, port in use, bad arguments. Each ends in one
//! clear line and a distinct exit status, never a panic.

#[path = "support/process.rs"]
mod process;
#[path = "../../../tests/support/seccomp.rs"]
mod seccomp;

use process::{free_addr, sigterm, wait_until_listening};
use std::{
    os::unix::process::CommandExt,
    process::{Command, Output},
};

fn percore() -> Command {
    Command::new(env!("CARGO_BIN_EXE_percore"))
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_no_panic(output: &Output) {
    let err = stderr_of(output);
    assert!(
        !err.contains("panicked"),
        "no panic expected, stderr: {err}"
    );
}

/// `percore` under a seccomp filter that fails every io_uring syscall with `errno`.
fn with_io_uring_denied(errno: i32, args: &[&str]) -> Command {
    let mut cmd = percore();
    cmd.args(args);
    // SAFETY: the closure runs between fork and exec; `deny_io_uring` only builds a filter
    // on the stack and makes two prctl calls, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || seccomp::deny_io_uring(errno));
    }
    cmd
}

/// The strict driver choice where io_uring is denied: the start must fail.
fn run_with_io_uring_denied(errno: i32) -> Output {
    with_io_uring_denied(
        errno,
        &[
            "echo",
            "--listen",
            "127.0.0.1:0",
            "--shards",
            "1",
            "--driver",
            "io_uring",
        ],
    )
    .output()
    .expect("percore runs")
}

/// `--driver auto` where io_uring is denied with `errno`: the server starts on epoll, says
/// why in its report, and serves HTTP. Returns the report.
fn serves_http_on_epoll_when_io_uring_is_denied(errno: i32) -> String {
    use std::io::{Read, Write};
    let listen = free_addr();
    let mut child = with_io_uring_denied(
        errno,
        &[
            "serve", "--listen", &listen, "--shards", "2", "--driver", "auto",
        ],
    )
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("percore runs");
    let report = wait_until_listening(&mut child);
    let mut stream = std::net::TcpStream::connect(&listen).expect("connects");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a response");
    sigterm(&child);
    let status = process::wait_exit(&mut child, std::time::Duration::from_secs(10));
    assert!(
        response.starts_with("HTTP/1.1 200 OK") && response.ends_with("Hello, World!"),
        "{response}"
    );
    assert_eq!(status, Some(0), "SIGTERM stops it cleanly");
    let driver_lines: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("driver: epoll (io_uring unavailable:"))
        .collect();
    assert_eq!(
        driver_lines.len(),
        1,
        "one line says which driver and why:\n{report}"
    );
    report
}

#[test]
fn auto_serves_http_on_epoll_under_a_seccomp_eperm_and_names_the_fix() {
    let report = serves_http_on_epoll_when_io_uring_is_denied(libc::EPERM);
    assert!(
        report.contains("io_uring is blocked") && report.contains("docker-seccomp.json"),
        "the reason and the fix:\n{report}"
    );
}

#[test]
fn auto_serves_http_on_epoll_under_a_seccomp_enosys() {
    let report = serves_http_on_epoll_when_io_uring_is_denied(libc::ENOSYS);
    assert!(
        report.contains("ENOSYS") && report.contains("CONFIG_IO_URING"),
        "the reason:\n{report}"
    );
}

#[test]
fn io_uring_denied_by_seccomp_ends_in_one_line_and_exit_3() {
    let output = run_with_io_uring_denied(libc::EPERM);
    assert_no_panic(&output);
    assert_eq!(
        output.status.code(),
        Some(3),
        "distinct exit status for io_uring unavailable"
    );
    let err = stderr_of(&output);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one line: {err}");
    assert!(
        lines[0].contains("io_uring is blocked"),
        "names the cause: {err}"
    );
    assert!(lines[0].contains("seccomp"), "names seccomp: {err}");
    assert!(
        lines[0].contains("docker-seccomp.json"),
        "names the fix: {err}"
    );
}

#[test]
fn io_uring_missing_enosys_names_the_kernel() {
    let output = run_with_io_uring_denied(libc::ENOSYS);
    assert_no_panic(&output);
    assert_eq!(output.status.code(), Some(3));
    let err = stderr_of(&output);
    assert!(
        err.contains("ENOSYS") && err.contains("CONFIG_IO_URING"),
        "{err}"
    );
}

#[test]
fn a_port_in_use_is_reported_clearly_with_exit_4() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = percore()
        .args(["echo", "--listen", &addr, "--shards", "1", "--quiet"])
        .output()
        .unwrap();
    assert_no_panic(&output);
    assert_eq!(output.status.code(), Some(4));
    let err = stderr_of(&output);
    assert!(
        err.contains("already in use") && err.contains(&addr),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn bad_arguments_get_clap_errors() {
    let output = percore()
        .args(["echo", "--shards", "many"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("invalid value 'many'"));
    let output = percore()
        .args(["echo", "--shards", "0", "--quiet"])
        .output()
        .unwrap();
    assert_no_panic(&output);
    assert_eq!(
        output.status.code(),
        Some(2),
        "zero shards is a configuration error"
    );
    assert!(stderr_of(&output).contains("at least 1"));
    let output = percore()
        .args(["echo", "--cores", "4096", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("affinity mask"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn taskset_places_the_single_shard_on_the_allowed_cpu() {
    let allowed = std::fs::read_to_string("/proc/self/status").unwrap();
    let cpus = allowed
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list"))
        .unwrap_or("")
        .to_string();
    if !cpus.contains('1') {
        eprintln!("skipped: CPU 1 is not available to this test ({cpus})");
        return;
    }
    let mut child = Command::new("taskset")
        .args([
            "-c",
            "1",
            env!("CARGO_BIN_EXE_percore"),
            "echo",
            "--listen",
            "127.0.0.1:0",
            "--shards",
            "1",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("taskset is installed (util-linux)");
    let report = wait_until_listening(&mut child);
    sigterm(&child);
    let status = child.wait().unwrap();
    assert!(
        report.contains("shards: 0→cpu1"),
        "report shows shard 0 on CPU 1:\n{report}"
    );
    // The feature line is the driver's: io_uring's flags, or epoll's line.
    let epoll = std::env::var("PERCORE_DRIVER").is_ok_and(|d| d == "epoll");
    let features = if epoll {
        "driver: epoll"
    } else {
        "DEFER_TASKRUN"
    };
    assert!(
        report.contains(features),
        "report lists features:\n{report}"
    );
    assert_eq!(status.code(), Some(0), "SIGTERM stops it cleanly");
}

#[test]
fn the_admin_flag_serves_prometheus_metrics_of_every_shard() {
    use std::io::{Read, Write};
    let (listen, admin) = (free_addr(), free_addr());
    let mut child = percore()
        .args([
            "echo", "--listen", &listen, "--shards", "2", "--admin", &admin,
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let report = wait_until_listening(&mut child);
    let mut stream = std::net::TcpStream::connect(&admin).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    sigterm(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(
        report.contains(&format!("metrics: http://{admin}/metrics")),
        "{report}"
    );
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("percore_shard_up{shard=\"0\"} 1"));
    assert!(response.contains("percore_shard_up{shard=\"1\"} 1"));
}

/// A second `percore` on a port the first listens on is refused (exit 4, one line naming the
/// address) instead of silently taking half the connections; `--reuse-port-shared` joins
/// on purpose.
#[test]
fn a_second_server_on_a_listened_port_fails_unless_opted_in() {
    let addr = free_addr();
    let mut first = percore()
        .args(["echo", "--listen", &addr, "--shards", "2"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_listening(&mut first);

    let output = percore()
        .args(["echo", "--listen", &addr, "--shards", "1", "--quiet"])
        .output()
        .unwrap();
    assert_no_panic(&output);
    assert_eq!(output.status.code(), Some(4), "{}", stderr_of(&output));
    let err = stderr_of(&output);
    assert!(
        err.contains("already in use")
            && err.contains(&addr)
            && err.contains("--reuse-port-shared"),
        "{err}"
    );

    let mut shared = percore()
        .args([
            "echo",
            "--listen",
            &addr,
            "--shards",
            "1",
            "--reuse-port-shared",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_listening(&mut shared);
    for child in [&mut shared, &mut first] {
        sigterm(child);
        assert_eq!(
            process::wait_exit(child, std::time::Duration::from_secs(20)),
            Some(0)
        );
    }
}

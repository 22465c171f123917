//! Socket activation through the `percore` binary: listening sockets passed by systemd
//! (`LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES`) or named with `--listen-fd N` are served
//! by every shard (shared by them), an `admin`-named socket becomes the admin listener,
//! and a descriptor that is not a listening TCP socket stops the start with one clear line
//! and exit status 2.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/deploy.rs"]
mod deploy;

use std::{
    net::{TcpListener, UdpSocket},
    os::fd::{AsRawFd, RawFd},
    process::{Command, Stdio},
    time::Duration,
};

use binary::{Server, binary, free_addr};
use deploy::{Service, one_shot};

/// Lets children inherit `fd` (std opens everything close-on-exec).
fn inheritable(fd: RawFd) {
    // SAFETY: fcntl on a descriptor this test owns; it only changes its flags.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    assert_eq!(rc, 0);
}

/// Runs `percore ARGS` (no --listen) and returns its exit code and stderr.
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("percore runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn listen_fd_serves_a_socket_bound_by_someone_else_on_every_shard() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    inheritable(listener.as_raw_fd());
    let fd = listener.as_raw_fd().to_string();
    // --listen names another address: the inherited socket wins, and the report says so.
    let mut server = Server::start_on("echo", free_addr(), &["--shards", "2", "--listen-fd", &fd])
        .unwrap_or_else(|e| panic!("{e}"));
    drop(listener);
    assert!(
        server.log().contains(&format!(
            "listeners: 1 socket(s) from --listen-fd ({addr}), spread over 2 shards"
        )),
        "{}",
        server.log()
    );
    // The line that said it listens reaches the log right after the start returned.
    assert!(
        deploy::wait_until(Duration::from_secs(2), || server
            .log()
            .contains(&format!("echo listening on {addr}"))),
        "{}",
        server.log()
    );
    for seq in 0..50 {
        match one_shot(Service::Echo, addr, seq) {
            deploy::Outcome::Ok => {}
            other => panic!("request {seq}: {other:?}\n{}", server.log()),
        }
    }
    // Every connection was accepted by one of the shards sharing the socket.
    let metrics = server.metrics();
    let per_shard: Vec<f64> = (0..2)
        .map(|s| {
            metrics.sum_with(
                "percore_connections_accepted_total",
                &format!("shard=\"{s}\""),
            )
        })
        .collect();
    assert_eq!(per_shard.iter().sum::<f64>(), 50.0, "{per_shard:?}");
    assert!(server.is_running());
    assert_eq!(server.stop(Duration::from_secs(10)), Some(0));
}

#[test]
fn systemd_sockets_are_served_and_the_admin_named_one_is_the_admin_listener() {
    let service = TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").unwrap();
    let (addr, admin_addr) = (service.local_addr().unwrap(), admin.local_addr().unwrap());
    inheritable(service.as_raw_fd());
    inheritable(admin.as_raw_fd());
    // bash execs percore in its own process (same pid), so LISTEN_PID=$$ names it; the
    // redirections put the sockets at 3 and 4, as systemd does.
    let script = format!(
        "export LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=web:admin; exec \"$0\" \"$@\" 3<&{} 4<&{}",
        service.as_raw_fd(),
        admin.as_raw_fd()
    );
    let mut command = Command::new("bash");
    command.args(["-c", &script]).arg(binary());
    let mut server = Server::start_with(command, "serve", free_addr(), &["--shards", "2"])
        .unwrap_or_else(|e| panic!("{e}"));
    server.addr = addr;
    server.admin = admin_addr;
    drop((service, admin));
    assert!(
        server.log().contains("from systemd socket activation"),
        "{}",
        server.log()
    );
    assert!(matches!(
        one_shot(Service::Http, addr, 0),
        deploy::Outcome::Ok
    ));
    let (status, body) = deploy::http_call(admin_addr, "GET", "/healthz").unwrap();
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ok\"}\n"));
    assert!(server.metrics().sum("percore_connections_accepted_total") >= 1.0);
    assert_eq!(server.stop(Duration::from_secs(10)), Some(0));
}

#[test]
fn systemd_variables_for_another_process_are_ignored() {
    // LISTEN_PID of some other process (a parent that was activated): not ours; percore
    // binds --listen as usual.
    let addr = free_addr();
    let mut command = Command::new(binary());
    command.env("LISTEN_PID", "1").env("LISTEN_FDS", "1");
    let server = Server::start_with(command, "echo", addr, &["--shards", "1"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!server.log().contains("listeners:"), "{}", server.log());
    assert!(matches!(
        one_shot(Service::Echo, addr, 1),
        deploy::Outcome::Ok
    ));
}

#[test]
fn descriptors_that_are_not_listening_tcp_sockets_stop_the_start_with_one_line() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    inheritable(udp.as_raw_fd());
    let fd = udp.as_raw_fd().to_string();
    let (code, stderr) = run_to_exit(&["echo", "--quiet", "--listen-fd", &fd]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        format!(
            "percore: --listen-fd: fd {fd} is an IPv4 socket of type 2 (datagram or raw), not a stream (TCP) socket"
        )
    );

    let bound_only = std::net::TcpStream::connect(
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap(),
    )
    .unwrap();
    inheritable(bound_only.as_raw_fd());
    let fd = bound_only.as_raw_fd().to_string();
    let (code, stderr) = run_to_exit(&["echo", "--quiet", "--listen-fd", &fd]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("TCP socket that is not listening"),
        "{stderr}"
    );

    let (code, stderr) = run_to_exit(&["echo", "--quiet", "--listen-fd", "900"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "percore: --listen-fd: fd 900 is not an open descriptor"
    );

    let (code, stderr) = run_to_exit(&["echo", "--quiet", "--listen-fd", "0"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("fd 0 is not a socket"), "{stderr}");
}

#[test]
fn cpu_steering_on_one_shared_socket_falls_back_and_says_so() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    inheritable(listener.as_raw_fd());
    let fd = listener.as_raw_fd().to_string();
    let mut server = Server::start_on(
        "echo",
        free_addr(),
        &["--unpinned", "2", "--steer", "cpu", "--listen-fd", &fd],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    drop(listener);
    let log = server.log();
    assert!(
        log.contains("cpu steering: 1 inherited socket(s) for 2 shards"),
        "{log}"
    );
    assert!(log.contains("steering: reuseport"), "{log}");
    assert!(matches!(
        one_shot(Service::Echo, addr, 3),
        deploy::Outcome::Ok
    ));
    assert!(server.is_running());
}

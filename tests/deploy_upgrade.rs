//! Hot restart through the `percore` binary (docs/deploy.md): a successor started with
//! `--upgrade-from` takes every listening socket over from the running process, which
//! drains and exits; clients connecting in a tight loop meanwhile see no refused
//! connection and no failed request, for `serve`, `echo` and `kv`. A successor that fails
//! to start leaves the old process serving, and a later one still takes over. `SIGUSR2`
//! starts the successor from the old process itself.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/deploy.rs"]
mod deploy;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use binary::{Server, binary, free_addr};
use deploy::{Service, spawn_load, wait_until};

/// Load runs at most this long, whatever happens.
const LOAD_LIMIT: Duration = Duration::from_secs(40);

fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "percore-upgrade-{}-{name}.sock",
        std::process::id()
    ))
}

/// Starts the old process of `service` with hot restart on.
fn start_old(service: Service, socket: &Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "--shards",
        "2",
        "--upgrade-socket",
        socket.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::start(service.name(), &args)
}

/// Starts a successor taking over from `socket`; it says it listens once it took over.
fn start_successor(
    service: Service,
    old: &Server,
    socket: &Path,
    extra: &[&str],
) -> Result<Server, String> {
    let mut args = vec![
        "--shards",
        "2",
        "--upgrade-socket",
        socket.to_str().unwrap(),
        "--upgrade-from",
        socket.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut successor = Server::start_on(service.name(), old.addr, &args)?;
    // The admin listener came over with the others.
    successor.admin = old.admin;
    Ok(successor)
}

fn hot_restart_under_load(service: Service) {
    let socket = socket_path(service.name());
    let mut old = start_old(service, &socket, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, clients) = spawn_load(service, old.addr, 4, stop.clone(), LOAD_LIMIT);
    assert!(
        wait_until(Duration::from_secs(10), || tally.ok() >= 200),
        "the old process serves before the restart ({} ok)",
        tally.ok()
    );
    let mut new = start_successor(service, &old, &socket, &[]).unwrap_or_else(|e| panic!("{e}"));
    let served_before = tally.ok();
    // The old process drains and exits by itself.
    let code = old.exit_within(Duration::from_secs(20));
    assert_eq!(
        code,
        Some(0),
        "the old process exits 0 after its drain:\n{}",
        old.log()
    );
    let after_exit = tally.ok();
    assert!(
        wait_until(Duration::from_secs(10), || tally.ok() >= after_exit + 200),
        "the successor serves after the old process left"
    );
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    assert_eq!(
        (tally.refused(), tally.failed()),
        (0, 0),
        "{} ok; problems: {:?}\nold:\n{}\nnew:\n{}",
        tally.ok(),
        tally.problems(),
        old.log(),
        new.log()
    );
    assert!(tally.ok() > served_before);
    // The successor took the admin listener too, and is healthy.
    let (status, body) = deploy::http_call(new.admin, "GET", "/healthz").unwrap();
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ok\"}\n"));
    assert!(new.log().contains("hot restart from pid"), "{}", new.log());
    assert!(new.is_running());
    assert_eq!(new.stop(Duration::from_secs(15)), Some(0));
}

#[test]
fn http_hot_restart_refuses_no_connection_and_fails_no_request() {
    hot_restart_under_load(Service::Http);
}

#[test]
fn echo_hot_restart_refuses_no_connection_and_fails_no_request() {
    hot_restart_under_load(Service::Echo);
}

#[test]
fn kv_hot_restart_refuses_no_connection_and_fails_no_request() {
    hot_restart_under_load(Service::Kv);
}

#[test]
fn a_successor_that_fails_to_start_leaves_the_old_process_serving() {
    let service = Service::Http;
    let socket = socket_path("failed");
    let mut old = start_old(service, &socket, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, clients) = spawn_load(service, old.addr, 2, stop.clone(), LOAD_LIMIT);
    assert!(wait_until(Duration::from_secs(10), || tally.ok() >= 100));
    // Takes the sockets, then cannot place its shards: exit 2, nothing accepted.
    let failed = Command::new(binary())
        .args(["serve", "--cores", "4096", "--quiet", "--upgrade-from"])
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(2), "{failed:?}");
    assert!(
        wait_until(Duration::from_secs(5), || old
            .log()
            .contains("did not take over")),
        "the old process saw the failure:\n{}",
        old.log()
    );
    // A successor that is not even percore's: the handshake fails on its side only.
    let before = tally.ok();
    assert!(wait_until(Duration::from_secs(10), || tally.ok() >= before + 100));
    assert!(old.is_running(), "the old process still serves");
    let (status, _) = deploy::http_call(old.admin, "GET", "/healthz").unwrap();
    assert_eq!(status, 200, "and is still healthy");
    // The upgrade socket still works: a good successor takes over.
    let new = start_successor(service, &old, &socket, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(old.exit_within(Duration::from_secs(20)), Some(0));
    let after = tally.ok();
    assert!(wait_until(Duration::from_secs(10), || tally.ok() >= after + 100));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    assert_eq!(
        (tally.refused(), tally.failed()),
        (0, 0),
        "problems: {:?}",
        tally.problems()
    );
    assert_eq!(new.stop(Duration::from_secs(15)), Some(0));
}

#[test]
fn sigusr2_starts_the_successor_which_takes_over() {
    let service = Service::Echo;
    let socket = socket_path("usr2");
    let addr = free_addr();
    let mut command = Command::new(binary());
    command.env("RUST_LOG", "percore=info");
    let mut old = Server::start_with(
        command,
        service.name(),
        addr,
        &[
            "--shards",
            "2",
            "--upgrade-socket",
            socket.to_str().unwrap(),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, clients) = spawn_load(service, addr, 2, stop.clone(), LOAD_LIMIT);
    assert!(wait_until(Duration::from_secs(10), || tally.ok() >= 100));
    old.signal(libc::SIGUSR2);
    assert_eq!(
        old.exit_within(Duration::from_secs(30)),
        Some(0),
        "the old process hands over and exits:\n{}",
        old.log()
    );
    let log = old.log();
    // The successor writes to the same stderr: its pid is in the old process's line.
    let pid: i32 = log
        .split("to take over")
        .next()
        .and_then(|head| head.rsplit("(pid ").next())
        .and_then(|tail| tail.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no successor pid in:\n{log}"));
    let after = tally.ok();
    let served = wait_until(Duration::from_secs(10), || tally.ok() >= after + 100);
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    // SAFETY: kill(2) on the successor's pid (a child of our child, re-parented); no memory.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(
        alive,
        "the successor runs after the old process left:\n{log}"
    );
    assert!(served, "the successor serves:\n{log}");
    assert_eq!(
        (tally.refused(), tally.failed()),
        (0, 0),
        "problems: {:?}\n{log}",
        tally.problems()
    );
    thread::sleep(Duration::from_millis(10));
}

#[test]
fn a_successor_with_as_many_shards_keeps_cpu_steering() {
    let service = Service::Echo;
    let socket = socket_path("cpu");
    let mut old = start_old(service, &socket, &["--steer", "cpu"]);
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, clients) = spawn_load(service, old.addr, 2, stop.clone(), LOAD_LIMIT);
    assert!(wait_until(Duration::from_secs(10), || tally.ok() >= 100));
    let new = start_successor(service, &old, &socket, &["--steer", "cpu"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(old.exit_within(Duration::from_secs(20)), Some(0));
    let after = tally.ok();
    assert!(wait_until(Duration::from_secs(10), || tally.ok() >= after + 100));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    assert_eq!(
        (tally.refused(), tally.failed()),
        (0, 0),
        "{:?}",
        tally.problems()
    );
    // The two sockets of the old group came over in shard order: the program is attached
    // again, no fallback (unless the kernel refused it to the old process too).
    let (old_log, new_log) = (old.log(), new.log());
    if old_log.contains("steering: cpu") {
        assert!(new_log.contains("steering: cpu"), "{new_log}");
        assert!(!new_log.contains("cpu steering:"), "{new_log}");
    }
    assert!(
        new_log.contains("listeners: 2 socket(s) from hot restart"),
        "{new_log}"
    );
    assert_eq!(new.stop(Duration::from_secs(15)), Some(0));
}

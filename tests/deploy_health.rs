//! Health that leads the drain (docs/deploy.md): on SIGTERM or `POST /drain` on the admin
//! listener, `/healthz` answers 503 at once while the listeners stay open for
//! `--drain-delay`, then the server drains and exits 0; during the start, health checks
//! answer 503 until every shard runs.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/deploy.rs"]
mod deploy;

use std::{
    net::TcpStream,
    sync::mpsc,
    time::{Duration, Instant},
};

use binary::Server;
use deploy::{Outcome, Service, http_call, one_shot, wait_until};

const DRAIN_BODY: &str = "{\"status\":\"draining\"}\n";

/// After the stop was announced: health is already 503 and a new connection is still
/// served; then the listener closes no sooner than `delay` after `announced` and the
/// process exits 0.
fn health_leads_the_drain(
    mut server: Server,
    service: Service,
    health: impl Fn() -> (u16, String),
    announced: Instant,
    delay: Duration,
) {
    assert!(
        wait_until(Duration::from_secs(2), || health().0 == 503),
        "health turns 503 at once:\n{}",
        server.log()
    );
    assert_eq!(health().1, DRAIN_BODY);
    // 503 came first, and the listener still accepts and serves.
    match one_shot(service, server.addr, 7) {
        Outcome::Ok => {}
        other => panic!("served during the drain delay: {other:?}\n{}", server.log()),
    }
    assert!(
        announced.elapsed() < delay,
        "the checks above ran within the delay (the machine is too slow for this test)"
    );
    assert!(
        wait_until(delay + Duration::from_secs(5), || TcpStream::connect(
            server.addr
        )
        .is_err()),
        "the listener closes after the delay"
    );
    let closed_after = announced.elapsed();
    assert!(
        closed_after >= delay - Duration::from_millis(100),
        "listeners stayed open for the delay ({closed_after:?} < {delay:?})"
    );
    assert_eq!(
        server.exit_within(Duration::from_secs(15)),
        Some(0),
        "{}",
        server.log()
    );
}

#[test]
fn sigterm_fails_the_admin_health_check_while_echo_still_accepts() {
    let delay = Duration::from_secs(3);
    let server = Server::start("echo", &["--shards", "2", "--drain-delay", "3"]);
    let admin = server.admin;
    assert_eq!(http_call(admin, "GET", "/healthz").unwrap().0, 200);
    let announced = Instant::now();
    server.signal(libc::SIGTERM);
    health_leads_the_drain(
        server,
        Service::Echo,
        || http_call(admin, "GET", "/healthz").unwrap_or((0, String::new())),
        announced,
        delay,
    );
}

#[test]
fn sigterm_fails_the_http_services_own_healthz() {
    let delay = Duration::from_secs(3);
    let server = Server::start("serve", &["--shards", "2", "--drain-delay", "3"]);
    let addr = server.addr;
    let (status, body) = http_call(addr, "GET", "/healthz").unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let announced = Instant::now();
    server.signal(libc::SIGTERM);
    health_leads_the_drain(
        server,
        Service::Http,
        || http_call(addr, "GET", "/healthz").unwrap_or((0, String::new())),
        announced,
        delay,
    );
}

#[test]
fn post_drain_on_the_admin_listener_leads_the_drain_of_kv() {
    let delay = Duration::from_secs(3);
    let server = Server::start("kv", &["--shards", "2", "--drain-delay", "3"]);
    let admin = server.admin;
    assert_eq!(
        http_call(admin, "GET", "/drain").unwrap().0,
        404,
        "GET does not drain"
    );
    assert_eq!(http_call(admin, "GET", "/healthz").unwrap().0, 200);
    let announced = Instant::now();
    let (status, body) = http_call(admin, "POST", "/drain").unwrap();
    assert_eq!(status, 202, "{body}");
    assert!(
        body.starts_with("draining: /healthz answers 503; listeners close in 3s"),
        "{body}"
    );
    let (status, body) = http_call(admin, "POST", "/drain").unwrap();
    assert_eq!((status, body.as_str()), (202, "already stopping\n"));
    health_leads_the_drain(
        server,
        Service::Kv,
        || http_call(admin, "GET", "/healthz").unwrap_or((0, String::new())),
        announced,
        delay,
    );
}

#[test]
fn health_answers_503_until_every_shard_runs() {
    use percore::{Server as Kernel, metrics::Lifecycle};
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    let (seen_tx, seen_rx) = mpsc::channel::<(u16, String)>();
    let seen_tx = std::sync::Mutex::new(seen_tx);
    let starting = std::thread::spawn(move || {
        Kernel::builder()
            .placement(percore::Placement::Unpinned(2))
            .drain_delay(Duration::ZERO)
            .start(move |info| {
                if info.id == 1 {
                    // Shard 1 is still starting until the test lets it go.
                    let _ = release_rx
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(20));
                }
                let seen = seen_tx.lock().unwrap().clone();
                Ok(async move {
                    if info.id == 0 {
                        let _ = seen.send(percore::metrics::health_check());
                    }
                })
            })
    });
    let (status, body) = seen_rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(
        (status, body.as_str()),
        (503, "{\"status\":\"starting\"}\n")
    );
    release_tx.send(()).unwrap();
    let server = starting.join().unwrap().expect("the server starts");
    assert_eq!(server.lifecycle(), Lifecycle::Serving);
    let (tx, rx) = mpsc::channel();
    assert!(server.run_on_shard(0, move || {
        let _ = tx.send(percore::metrics::health_check());
    }));
    let (status, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(status, 200);
    // An announced stop with no delay stops at once; health says draining meanwhile.
    assert!(server.announce_stop() || server.lifecycle() == Lifecycle::Draining);
    assert_eq!(server.lifecycle(), Lifecycle::Draining);
    server.join().unwrap();
}

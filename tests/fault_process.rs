//! Process faults under load (R22), through the `percore` binary:
//! - `kill -9` while clients are busy, then a new server on the same port binds at its first
//!   try (no `EADDRINUSE` from the dead one's sockets) and the same clients are served again;
//! - `SIGSTOP` for 2 s while clients send, then `SIGCONT`: every request that waited, on open
//!   connections and on connections made during the pause, is answered, and a response paced
//!   by timers that came due during the pause completes in order.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/http_client.rs"]
mod http_client;

use std::{
    io::{BufReader, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use binary::Server;
use http_client::{Framing, body_for, echo_request, read_response};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Keep-alive echo requests in a loop until `stop`; after any failure it reconnects (every
/// 20 ms at most, bounded by `stop`). Counts the correct answers.
fn load(addr: SocketAddr, seed: u64, stop: Arc<AtomicBool>, served: Arc<AtomicU64>) {
    let mut id = seed << 32;
    while !stop.load(Ordering::Relaxed) {
        let Ok(stream) = TcpStream::connect(addr) else {
            thread::sleep(Duration::from_millis(20));
            continue;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut reader = BufReader::new(stream);
        while !stop.load(Ordering::Relaxed) {
            id += 1;
            let body = body_for(id, 64);
            let request = echo_request(&body, Framing::ContentLength, false);
            if reader.get_mut().write_all(&request).is_err() {
                break;
            }
            match read_response(&mut reader) {
                Ok(Some(r)) if r.status == 200 && r.body == body => {
                    served.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Some(r)) => panic!("a wrong answer: status {} to request {id:x}", r.status),
                _ => break,
            }
        }
    }
}

/// Waits (bounded) until `served` reaches `target`.
fn wait_served(served: &AtomicU64, target: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while served.load(Ordering::Relaxed) < target {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

#[test]
fn kill_9_under_load_then_a_restart_on_the_same_port_binds_at_once() {
    let server = Server::start("serve", &["--shards", "2"]);
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..8)
        .map(|seed| {
            let (stop, served) = (stop.clone(), served.clone());
            thread::spawn(move || load(addr, seed, stop, served))
        })
        .collect();
    assert!(
        wait_served(&served, 500, Duration::from_secs(10)),
        "load got going"
    );

    server.kill9();
    let killed_at = Instant::now();
    let at_kill = served.load(Ordering::Relaxed);
    // One try, no retry loop: the first bind must succeed.
    let restarted = Server::start_on("serve", addr, &["--shards", "2"])
        .unwrap_or_else(|e| panic!("restart on {addr} right after kill -9 failed: {e}"));
    let rebind = killed_at.elapsed();
    assert!(
        !restarted.log().contains("in use"),
        "no EADDRINUSE: {}",
        restarted.log()
    );

    // The same clients are served by the new process.
    let recovered = wait_served(&served, at_kill + 500, Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }
    assert!(
        recovered,
        "clients served after the restart: {} then {}",
        at_kill,
        served.load(Ordering::Relaxed)
    );
    eprintln!("rebound {rebind:?} after kill -9");
    assert_eq!(restarted.stop(Duration::from_secs(10)), Some(0));
}

#[test]
fn sigstop_for_two_seconds_then_sigcont_answers_every_connection_that_waited() {
    let server = Server::start("serve", &["--shards", "2"]);
    let addr = server.addr;
    let connect = || {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        BufReader::new(s)
    };
    // Open and warmed connections: each answered once before the pause.
    let mut open: Vec<_> = (0..32u64)
        .map(|i| {
            let mut conn = connect();
            let body = body_for(i, 40);
            conn.get_mut()
                .write_all(&echo_request(&body, Framing::ContentLength, false))
                .unwrap();
            let r = read_response(&mut conn).unwrap().expect("warm-up response");
            assert_eq!(r.body, body);
            conn
        })
        .collect();

    // A response paced by the shard's timers: 4 parts 300 ms apart, due during the pause.
    let mut paced = connect();
    paced
        .get_mut()
        .write_all(b"GET /stream?chunks=4&size=8&delay_ms=300&length=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let paced_sent = Instant::now();

    server.signal(libc::SIGSTOP);
    let mut waiting = Vec::new();
    for (i, conn) in open.iter_mut().enumerate() {
        let body = body_for(1000 + i as u64, 100);
        conn.get_mut()
            .write_all(&echo_request(&body, Framing::ContentLength, false))
            .unwrap();
        waiting.push(body);
    }
    // New connections during the pause: the kernel completes their handshakes.
    let mut fresh: Vec<_> = (0..16u64)
        .map(|i| {
            let mut conn = connect();
            let body = body_for(2000 + i, 100);
            conn.get_mut()
                .write_all(&echo_request(&body, Framing::ContentLength, true))
                .unwrap();
            (conn, body)
        })
        .collect();
    // The fault itself: the process stays stopped for 2 s.
    thread::sleep(Duration::from_secs(2));
    server.signal(libc::SIGCONT);

    for (conn, body) in open.iter_mut().zip(&waiting) {
        let r = read_response(conn)
            .expect("the waiting request is answered after SIGCONT")
            .expect("not closed");
        assert_eq!((r.status, &r.body), (200, body));
    }
    for (conn, body) in fresh.iter_mut() {
        let r = read_response(conn)
            .expect("a connection made during the pause is answered")
            .expect("not closed");
        assert_eq!((r.status, &r.body), (200, &*body));
    }
    let r = read_response(&mut paced)
        .expect("the paced response completes")
        .expect("not closed");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body, b"aaaaaaaabbbbbbbbccccccccdddddddd",
        "every part, in order"
    );
    assert!(
        paced_sent.elapsed() >= Duration::from_secs(2),
        "the paced response could not finish before the pause ended"
    );

    // Still serving, and nothing was lost or panicked.
    let metrics = server.metrics();
    assert_eq!(metrics.sum("percore_panics_total"), 0.0);
    assert_eq!(server.stop(Duration::from_secs(10)), Some(0));
}

//! Out of file descriptors under HTTP load (R10, and R11's "never accepted and left
//! hanging"): `percore serve` with a tiny open-files limit and more clients than fds. While
//! the fds are exhausted the server backs off instead of spinning (its CPU stays near zero);
//! the clients that could not be accepted wait in the listen backlog, and once fds are free
//! again every one of them is accepted and answered. The exhaustion is counted.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/http_client.rs"]
mod http_client;

use std::{
    io::{BufReader, Write},
    net::TcpStream,
    process::Command,
    thread,
    time::Duration,
};

use binary::{Server, binary, cpu_ticks, free_addr};
use http_client::{Framing, body_for, echo_request, read_response};

/// The open-files limit: stdio, the ring, eventfds, two listeners and a few spare.
const NOFILE: u32 = 40;
const HOLDERS: u64 = 48;
const WAITERS: u64 = 64;

fn request(conn: &mut BufReader<TcpStream>, id: u64) -> std::io::Result<()> {
    let body = body_for(id, 64);
    conn.get_mut()
        .write_all(&echo_request(&body, Framing::ContentLength, false))?;
    let r = read_response(conn)?.ok_or(std::io::ErrorKind::UnexpectedEof)?;
    assert_eq!((r.status, r.body), (200, body), "request {id}");
    Ok(())
}

#[test]
fn exhausted_fds_back_off_without_spinning_and_every_waiting_client_is_answered() {
    let mut prlimit = Command::new("prlimit");
    prlimit
        .arg(format!("--nofile={NOFILE}:{NOFILE}"))
        .arg(binary());
    let server = match Server::start_with(prlimit, "serve", free_addr(), &["--shards", "1"]) {
        Ok(server) => server,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") && e.contains("cannot run") => {
            eprintln!("skipped: prlimit (util-linux) is missing: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let addr = server.addr;

    // Holders take every fd the server has left; each is answered once it is accepted.
    let mut holders = Vec::new();
    let mut waiting = Vec::new();
    for id in 0..HOLDERS + WAITERS {
        let stream = TcpStream::connect(addr).expect("the backlog takes the connection");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let mut conn = BufReader::new(stream);
        let body = body_for(id, 64);
        conn.get_mut()
            .write_all(&echo_request(&body, Framing::ContentLength, false))
            .unwrap();
        if id < HOLDERS {
            holders.push((conn, body));
        } else {
            waiting.push((conn, body));
        }
    }
    // Out of fds now; let it sit there and see that it does not spin.
    thread::sleep(Duration::from_millis(200));
    let before = cpu_ticks(server.pid());
    thread::sleep(Duration::from_millis(1000));
    let used = cpu_ticks(server.pid()) - before;
    assert!(
        used <= 10,
        "the server used {used} ticks (10 ms each) in 1 s while out of fds: spinning"
    );

    // Free the fds: the clients accepted so far go away.
    let mut answered_before = 0;
    for (mut conn, body) in holders {
        conn.get_mut()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        if let Ok(Some(r)) = read_response(&mut conn) {
            assert_eq!(r.body, body);
            answered_before += 1;
        }
    }
    assert!(
        answered_before < HOLDERS + WAITERS,
        "the limit did not bite: {answered_before} answered"
    );

    // Every client that waited in the backlog is accepted and answered, in its turn: each
    // one leaves after its answers, which frees the fd for the next.
    for (i, (mut conn, body)) in waiting.into_iter().enumerate() {
        let r = read_response(&mut conn)
            .unwrap_or_else(|e| panic!("waiting client {i} not answered: {e}"))
            .unwrap_or_else(|| panic!("waiting client {i} closed unanswered"));
        assert_eq!((r.status, &r.body), (200, &body));
        // And its connection goes on working.
        request(&mut conn, 10_000 + i as u64).unwrap();
    }

    let metrics = server.metrics();
    assert!(
        metrics.sum("percore_accept_fd_exhausted_total") >= 1.0,
        "the exhaustion is counted"
    );
    assert_eq!(server.stop(Duration::from_secs(10)), Some(0));
}

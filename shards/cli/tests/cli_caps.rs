//! The server-wide connection cap from the command line (R11): `percore serve
//! --max-connections 4` on 2 shards with twice as many HTTP clients, each keeping its
//! connection a while: never more than 4 held at once, every client answered in its turn
//! (the policy "stop accepting and let the listen backlog hold"), and the startup report
//! names the cap.

#[path = "support/process.rs"]
mod process;

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use process::{free_addr, sigterm, wait_exit, wait_until_listening};

const CAP: usize = 4;

/// Kills the server if the test fails before stopping it (a panicking client).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
const CLIENTS: usize = 2 * CAP;

/// One keep-alive `GET /`; returns the status line once the whole response is in.
fn get(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: caps\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    loop {
        let n = stream.read(&mut buf).expect("an answer, not a hang");
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .expect("a content-length");
            if got.len() >= end + 4 + length {
                return text.lines().next().unwrap_or_default().to_string();
            }
        }
    }
}

#[test]
fn serve_with_max_connections_answers_twice_as_many_http_clients_in_turn() {
    let addr = free_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args([
            "serve",
            "--listen",
            &addr,
            "--shards",
            "2",
            "--max-connections",
            &CAP.to_string(),
            "--drain-timeout-secs",
            "1",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("percore runs");
    let mut child = KillOnDrop(child);
    let report = wait_until_listening(&mut child.0);
    assert!(
        report.contains(&format!("connections: max {CAP} in all")),
        "the startup report names the cap:\n{report}"
    );

    let open = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (addr, open, most) = (addr.clone(), open.clone(), most.clone());
            thread::spawn(move || {
                let mut stream = TcpStream::connect(&addr).expect("the backlog takes it");
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let status = get(&mut stream);
                assert!(status.starts_with("HTTP/1.1 200"), "client {i}: {status}");
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Keep-alive: the connection stays held while it is used again.
                thread::sleep(Duration::from_millis(200));
                let again = get(&mut stream);
                assert!(again.starts_with("HTTP/1.1 200"), "client {i}: {again}");
                open.fetch_sub(1, Ordering::SeqCst);
                drop(stream);
                started.elapsed()
            })
        })
        .collect();
    let finished: Vec<Duration> = clients
        .into_iter()
        .map(|c| c.join().expect("every client answered"))
        .collect();
    sigterm(&child.0);
    assert_eq!(wait_exit(&mut child.0, Duration::from_secs(10)), Some(0));

    let most = most.load(Ordering::SeqCst);
    assert!(most <= CAP, "{most} connections held at once, cap {CAP}");
    let first = finished.iter().min().unwrap();
    let last = finished.iter().max().unwrap();
    assert!(
        *last >= *first + Duration::from_millis(200),
        "no client waited its turn: {finished:?}"
    );
}

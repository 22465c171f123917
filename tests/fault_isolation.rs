//! Shard isolation (R24), through the public API: a connection handler that panics takes
//! down its own connection and nothing else. The panic is counted on its shard, the
//! connection is closed (its peer sees the end at once, not a hang), every other connection
//! on both shards keeps its byte stream intact, and afterwards no connection, buffer or
//! operation is left behind.
//!
//! The HTTP service's part of R24 (a `500` when nothing was sent yet, counted as a 5xx) is in
//! `shards/http/tests/http_server.rs`; the full mesh inbox and the stalled shard are in
//! `mesh_messages.rs`, `mesh_batches.rs` and `steering_stall.rs`.

#[path = "support/common.rs"]
mod common;

use std::{
    io::{Read, Write},
    net::TcpStream as StdStream,
    sync::mpsc,
    thread,
    time::Duration,
};

use common::{Pattern, wait_for_stats};
use percore::{Server, TcpStream};

/// Echoes what it reads; panics on input that contains `PANIC`.
async fn echo_or_panic(mut stream: TcpStream) {
    while let Ok(Some(())) = stream
        .respond_with(|input, output| {
            if input.windows(5).any(|w| w == b"PANIC") {
                panic!("connection handler failure on purpose");
            }
            output.extend_from_slice(input);
            (input.len(), ())
        })
        .await
    {}
}

const GOOD: u64 = 32;
const BAD: u64 = 16;
const ROUNDS: u64 = 40;

#[test]
fn a_panicking_handler_closes_only_its_connection_and_is_counted() {
    let server = Server::builder()
        .shards(2)
        .serve("127.0.0.1:0".parse().unwrap(), echo_or_panic)
        .expect("server starts");
    let addr = server.listen_addr().unwrap();

    // Good connections: per-connection patterns echoed round after round, while the bad
    // ones panic in the middle of it.
    let (tx, rx) = mpsc::channel();
    let mut good = Vec::new();
    let mut resume = Vec::new();
    for seed in 0..GOOD {
        let tx = tx.clone();
        let (resume_tx, resume_rx) = mpsc::channel::<()>();
        resume.push(resume_tx);
        good.push(thread::spawn(move || {
            let mut stream = StdStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut rng = Pattern::new(seed);
            for round in 0..ROUNDS {
                if round == ROUNDS / 2 {
                    // Halfway through: hold the connection open while the others panic.
                    let _ = tx.send(());
                    resume_rx
                        .recv_timeout(Duration::from_secs(20))
                        .expect("resumed after the panics");
                }
                let len = 1 + rng.below(2048) as usize;
                let out = rng.bytes(len);
                stream.write_all(&out).unwrap();
                let mut back = vec![0; out.len()];
                stream.read_exact(&mut back).unwrap();
                assert!(back == out, "connection {seed}, round {round}: echo intact");
            }
        }));
    }
    drop(tx);
    // Wait until every good connection is mid-stream, then make the bad ones panic.
    for _ in 0..GOOD {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a good connection reached halfway");
    }
    let bad: Vec<_> = (0..BAD)
        .map(|_| {
            thread::spawn(move || {
                let mut stream = StdStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                stream.write_all(b"hello").unwrap();
                let mut back = [0u8; 5];
                stream.read_exact(&mut back).unwrap();
                stream.write_all(b"PANIC").unwrap();
                // The connection ends: EOF or a reset, not a timeout.
                let mut rest = Vec::new();
                match stream.read_to_end(&mut rest) {
                    Ok(_) => assert!(rest.is_empty(), "nothing after the panic: {rest:?}"),
                    Err(e) => assert!(
                        !matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ),
                        "the panicking connection was left hanging: {e}"
                    ),
                }
            })
        })
        .collect();
    for b in bad {
        b.join().expect("panicking connection ended");
    }
    for r in resume {
        let _ = r.send(());
    }
    for g in good {
        g.join().expect("good connection intact");
    }

    let stats = wait_for_stats(&server, Duration::from_secs(5), |s| {
        s.net.open == 0 && s.recv_buffers_lent == 0
    });
    let panics: u64 = stats.iter().map(|s| s.panics).sum();
    assert_eq!(panics, BAD, "each panic counted once");
    for s in &stats {
        assert_eq!(s.net.open, 0, "shard {}: connections left open", s.shard);
        assert_eq!(s.recv_buffers_lent, 0, "shard {}: buffers lent", s.shard);
        assert_eq!(s.ops_in_flight, 0, "shard {}: ops in flight", s.shard);
    }
    server.stop();
    server.join().expect("server stops cleanly");
}

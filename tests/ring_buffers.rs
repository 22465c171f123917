//! Provided-buffer exhaustion (R7): a ring of 8 receive buffers serving 256 connections.
//! Everything is echoed intact, ENOBUFS happens and is recovered from, every buffer comes
//! back, and the shards do not spin once the load is over.

#[path = "support/common.rs"]
mod common;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream as StdStream},
    sync::{Arc, Barrier, mpsc},
    thread,
    time::Duration,
};

use common::{Pattern, shard_cpu_ticks, wait_for_stats};
use percore::{RingConfig, Server};

/// Runs `client` on `conns` connections at once (each on its own thread, all released
/// together by a barrier after connecting) and fails the test with the first error.
fn run_clients(
    addr: SocketAddr,
    conns: usize,
    client: fn(u64, &mut StdStream) -> Result<(), String>,
) {
    let start = Arc::new(Barrier::new(conns));
    let (tx, rx) = mpsc::channel();
    for conn in 0..conns as u64 {
        let (tx, start) = (tx.clone(), start.clone());
        thread::spawn(move || {
            let result = StdStream::connect(addr)
                .map_err(|e| e.to_string())
                .and_then(|mut stream| {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(30)))
                        .unwrap();
                    start.wait();
                    client(conn, &mut stream).map_err(|e| format!("conn {conn}: {e}"))
                });
            tx.send(result).unwrap();
        });
    }
    drop(tx);
    for _ in 0..conns {
        rx.recv_timeout(Duration::from_secs(60))
            .expect("client finished")
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The CPU check reads every shard thread of the process: tests here run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn eight_buffers_serve_256_connections_without_loss_or_spin() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let server = Server::builder()
        .shards(2)
        .ring(RingConfig {
            recv_buffers: 8,
            recv_buffer_size: 1024,
            ..RingConfig::default()
        })
        .serve("127.0.0.1:0".parse().unwrap(), percore_echo::handle)
        .expect("server with a tiny buffer ring starts");
    let addr = server.listen_addr().unwrap();
    const CONNS: usize = 256;
    const BYTES: usize = 4096;
    // All clients send at once, so the 8 buffers per shard are certainly exhausted.
    run_clients(addr, CONNS, |conn, stream| {
        let sent = Pattern::new(conn + 1).bytes(BYTES);
        stream.write_all(&sent).map_err(|e| e.to_string())?;
        let mut got = vec![0; BYTES];
        stream.read_exact(&mut got).map_err(|e| e.to_string())?;
        if got != sent {
            return Err("echoed bytes differ".into());
        }
        Ok(())
    });
    let stats = wait_for_stats(&server, Duration::from_secs(10), |s| s.net.open == 0);
    let enobufs: u64 = stats.iter().map(|s| s.net.enobufs).sum();
    assert!(
        enobufs > 0,
        "the tiny ring ran dry at least once: {stats:?}"
    );
    for s in &stats {
        assert_eq!(
            s.recv_buffers_lent, 0,
            "shard {} got every buffer back",
            s.shard
        );
        assert_eq!(s.recv_buffers_total, 8);
        assert_eq!(s.net.open, 0, "every connection closed");
    }
    let bytes_in: u64 = stats.iter().map(|s| s.net.bytes_in).sum();
    assert_eq!(bytes_in, (CONNS * BYTES) as u64);

    // Idle afterwards: the shards sleep in io_uring_enter instead of retrying receives.
    let before = shard_cpu_ticks();
    thread::sleep(Duration::from_millis(500));
    let used = shard_cpu_ticks() - before;
    assert!(
        used <= 3,
        "idle shards used {used} ticks (10 ms each) in 500 ms: spinning"
    );
    server.stop();
    server.join().unwrap();
}

/// A tiny submission queue (R5) and completion queue (R4): SQEs are submitted early when the
/// SQ is full, completions beyond the CQ wait in the kernel's overflow list; nothing is lost.
/// The queues are io_uring's, so this one runs on io_uring whatever `PERCORE_DRIVER` says.
#[test]
fn tiny_submission_and_completion_queues_lose_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let server = Server::builder()
        .shards(1)
        .driver(percore::DriverChoice::IoUring)
        .ring(RingConfig {
            sq_entries: 4,
            cq_entries: 8,
            ..RingConfig::default()
        })
        .serve("127.0.0.1:0".parse().unwrap(), percore_echo::handle)
        .expect("server with tiny queues starts");
    let addr = server.listen_addr().unwrap();
    const CONNS: usize = 128;
    run_clients(addr, CONNS, |conn, stream| {
        let mut pattern = Pattern::new(conn + 77);
        for round in 0..20 {
            // Many small writes back to back: many receive completions at once.
            let sent = pattern.bytes(64 + round * 13);
            for piece in sent.chunks(16) {
                stream.write_all(piece).map_err(|e| e.to_string())?;
            }
            let mut got = vec![0; sent.len()];
            stream.read_exact(&mut got).map_err(|e| e.to_string())?;
            if got != sent {
                return Err(format!("round {round}: bytes differ"));
            }
        }
        Ok(())
    });
    let stats = wait_for_stats(&server, Duration::from_secs(10), |s| s.net.open == 0);
    let ring = stats[0].ring;
    assert!(
        ring.sq_full > 0,
        "the 4-entry SQ filled and was submitted early: {ring:?}"
    );
    assert!(
        ring.cq_overflows > 0,
        "the 8-entry CQ overflowed into the kernel backlog: {ring:?}"
    );
    assert_eq!(stats[0].recv_buffers_lent, 0);
    server.stop();
    server.join().unwrap();
}

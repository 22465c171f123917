//! Echo over loopback on 2 shards: many concurrent connections, every byte checked against a
//! pattern unique to each connection (R9), outbound connects, cancellation-safe reads.

#[path = "support/common.rs"]
mod common;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream as StdStream},
    sync::mpsc,
    thread,
    time::Duration,
};

use common::Pattern;
use percore::{Server, ServerHandle, TcpStream, time::timeout};

fn echo_server(shards: usize) -> (ServerHandle, SocketAddr) {
    let server = Server::builder()
        .shards(shards)
        .serve("127.0.0.1:0".parse().unwrap(), percore_echo::handle)
        .expect("echo server starts");
    let addr = server.listen_addr().expect("serve knows its address");
    (server, addr)
}

/// One client connection: `rounds` writes of random sizes, each read back and compared.
fn echo_client(addr: SocketAddr, seed: u64, rounds: usize) -> Result<u64, String> {
    let mut stream = StdStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut pattern = Pattern::new(seed);
    let mut sizes = Pattern::new(seed ^ 0xabcdef);
    let mut total = 0;
    for round in 0..rounds {
        let len = 1 + sizes.below(16 * 1024) as usize;
        let sent = pattern.bytes(len);
        stream.write_all(&sent).map_err(|e| format!("write: {e}"))?;
        let mut got = vec![0; len];
        stream
            .read_exact(&mut got)
            .map_err(|e| format!("conn {seed} round {round}: read: {e}"))?;
        if got != sent {
            let at = got.iter().zip(&sent).position(|(a, b)| a != b).unwrap_or(0);
            return Err(format!("conn {seed} round {round}: byte {at} differs"));
        }
        total += len as u64;
    }
    Ok(total)
}

#[test]
fn every_byte_of_256_concurrent_connections_comes_back_to_its_sender() {
    let (server, addr) = echo_server(2);
    let (tx, rx) = mpsc::channel();
    for conn in 0..256u64 {
        let tx = tx.clone();
        thread::spawn(move || tx.send(echo_client(addr, conn + 1, 12)).unwrap());
    }
    drop(tx);
    let mut bytes = 0;
    for _ in 0..256 {
        let result = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("client finished in time");
        bytes += result.unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(bytes > 256 * 12, "every connection moved data");
    let stats = server.shard_stats(Duration::from_secs(2));
    assert_eq!(stats.len(), 2);
    let accepted: u64 = stats.iter().map(|s| s.net.accepted).sum();
    assert_eq!(
        accepted, 256,
        "each client connection was accepted exactly once"
    );
    assert!(
        stats.iter().all(|s| s.net.accepted > 0),
        "SO_REUSEPORT spread connections over both shards: {stats:?}"
    );
    let echoed: u64 = stats.iter().map(|s| s.net.bytes_out).sum();
    assert_eq!(
        echoed, bytes,
        "server sent exactly what the clients received"
    );
    server.stop();
    server.join().expect("clean stop");
}

#[test]
fn a_shard_connects_out_and_reads_what_it_sent() {
    let (echo, addr) = echo_server(1);
    let (tx, rx) = mpsc::channel();
    let client = Server::builder()
        .shards(1)
        .start(move |_| {
            let tx = tx.clone();
            Ok(async move {
                let result = async {
                    let mut stream = TcpStream::connect(addr).await?;
                    let mut pattern = Pattern::new(7);
                    let sent = pattern.bytes(200_000);
                    let mut got = Vec::with_capacity(sent.len());
                    stream.write_all(&sent).await?;
                    while got.len() < sent.len() {
                        let mut chunk = [0u8; 8192];
                        let n = stream.read(&mut chunk).await?;
                        if n == 0 {
                            break;
                        }
                        got.extend_from_slice(&chunk[..n]);
                    }
                    std::io::Result::Ok(got == sent)
                }
                .await;
                tx.send(result.map_err(|e| e.to_string())).unwrap();
            })
        })
        .expect("client shard starts");
    let outcome = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("client finished");
    assert_eq!(
        outcome,
        Ok(true),
        "200 kB echoed intact through an outbound connection"
    );
    client.stop();
    client.join().unwrap();
    echo.stop();
    echo.join().unwrap();
}

#[test]
fn connecting_to_a_closed_port_fails_with_connection_refused() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let (tx, rx) = mpsc::channel();
    let client = Server::builder()
        .shards(1)
        .start(move |_| {
            let tx = tx.clone();
            Ok(async move {
                let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
                let result = TcpStream::connect(addr)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.kind());
                tx.send(result).unwrap();
            })
        })
        .unwrap();
    let result = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(result, Err(std::io::ErrorKind::ConnectionRefused));
    client.stop();
    client.join().unwrap();
}

/// Reads that are dropped over and over (a 1 ms timeout around each) lose nothing: received
/// bytes wait in the connection's queue for the next read.
#[test]
fn dropped_read_futures_lose_no_bytes() {
    let server = Server::builder()
        .shards(2)
        .serve(
            "127.0.0.1:0".parse().unwrap(),
            |mut stream: TcpStream| async move {
                let mut buf = vec![0u8; 1500];
                loop {
                    match timeout(Duration::from_millis(1), stream.read(&mut buf)).await {
                        Err(_elapsed) => continue,
                        Ok(Ok(0)) | Ok(Err(_)) => break,
                        Ok(Ok(n)) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = stream.flush().await;
            },
        )
        .unwrap();
    let addr = server.listen_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    for conn in 0..16u64 {
        let tx = tx.clone();
        thread::spawn(move || {
            let result = (|| {
                let mut stream = StdStream::connect(addr).map_err(|e| e.to_string())?;
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                let mut pattern = Pattern::new(conn + 100);
                for round in 0..40 {
                    let sent = pattern.bytes(1 + (round * 97) % 3000);
                    // Trickle so reads time out between pieces.
                    for piece in sent.chunks(700) {
                        stream.write_all(piece).map_err(|e| e.to_string())?;
                        thread::sleep(Duration::from_micros(1500));
                    }
                    let mut got = vec![0; sent.len()];
                    stream.read_exact(&mut got).map_err(|e| e.to_string())?;
                    if got != sent {
                        return Err(format!("conn {conn} round {round}: data differs"));
                    }
                }
                Ok(())
            })();
            tx.send(result).unwrap();
        });
    }
    drop(tx);
    for _ in 0..16 {
        rx.recv_timeout(Duration::from_secs(60)).unwrap().unwrap();
    }
    server.stop();
    server.join().unwrap();
}

#[test]
fn stopping_at_once_closes_listeners_and_open_connections_and_joins_cleanly() {
    let (server, addr) = echo_server(2);
    let mut open = StdStream::connect(addr).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    open.write_all(b"hello").unwrap();
    let mut got = [0u8; 5];
    open.read_exact(&mut got).unwrap();
    server.stop_within(Duration::ZERO);
    server.join().expect("a forced stop is still a clean stop");
    // The server closed the connection: the read ends (EOF or reset) long before its timeout.
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = open.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "connection left open after a forced stop"
    );
    assert!(rest.is_empty());
    assert!(
        StdStream::connect(addr).is_err(),
        "nothing listens any more"
    );
}

/// `TcpStream::read_would_wait` says when a read would only re-register the task's waker:
/// not before any read registered it, yes once input was consumed, no with unseen input.
#[test]
fn read_would_wait_only_when_a_read_would_change_nothing() {
    let server = Server::builder()
        .shards(1)
        .serve(
            "127.0.0.1:0".parse().unwrap(),
            |mut stream: TcpStream| async move {
                let before_any_read =
                    std::future::poll_fn(|cx| std::task::Poll::Ready(stream.read_would_wait(cx)))
                        .await;
                // The client sends only after "go", so this read waits (and registers).
                let _ = stream.write_all(b"go").await;
                let consumed = stream.read_with(|input| (input.len(), ())).await;
                let after_consuming =
                    std::future::poll_fn(|cx| std::task::Poll::Ready(stream.read_would_wait(cx)))
                        .await;
                let _ = stream.write_all(b"!").await;
                // The client sends again after "!": wait until it is there, unread.
                let readable = stream.readable().await;
                let with_unseen_input =
                    std::future::poll_fn(|cx| std::task::Poll::Ready(stream.read_would_wait(cx)))
                        .await;
                let report = format!(
                    "{before_any_read} {} {after_consuming} {readable:?} {with_unseen_input}",
                    consumed.is_ok()
                );
                let _ = stream.write_all(report.as_bytes()).await;
                let _ = stream.flush().await;
            },
        )
        .unwrap();
    let addr = server.listen_addr().unwrap();
    let mut client = StdStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut go = [0u8; 2];
    client.read_exact(&mut go).unwrap();
    assert_eq!(&go, b"go");
    client.write_all(b"a").unwrap();
    let mut bang = [0u8; 1];
    client.read_exact(&mut bang).unwrap();
    assert_eq!(&bang, b"!");
    client.write_all(b"b").unwrap();
    let mut report = String::new();
    client.read_to_string(&mut report).unwrap();
    assert_eq!(report, "false true true Ok(true) false");
    server.stop();
    server.join().unwrap();
}

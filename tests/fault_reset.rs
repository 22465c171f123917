//! Connections that reset at random moments (R8): during the handshake's aftermath, mid-
//! request, mid-response. Afterwards the process is back to its baseline: open fds, receive
//! buffers, operations in flight, connections.

#[path = "support/common.rs"]
mod common;

use std::{
    io::{Read, Write},
    net::TcpStream as StdStream,
    os::fd::AsRawFd,
    sync::mpsc,
    thread,
    time::Duration,
};

use common::{Pattern, open_fds, wait_for_stats};
use percore::{RingConfig, Server};

/// Closing with SO_LINGER {on, 0} sends RST instead of FIN.
fn reset(stream: StdStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `stream` owns a valid socket fd; `linger` is a valid `struct linger` that
    // outlives the call, and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
    drop(stream);
}

#[test]
fn resets_at_random_moments_leave_no_fd_buffer_or_op_behind() {
    let server = Server::builder()
        .shards(2)
        .ring(RingConfig {
            recv_buffers: 64,
            ..RingConfig::default()
        })
        .serve("127.0.0.1:0".parse().unwrap(), percore_echo::handle)
        .unwrap();
    let addr = server.listen_addr().unwrap();
    let baseline = open_fds();

    const THREADS: u64 = 16;
    const PER_THREAD: u64 = 1250;
    let (tx, rx) = mpsc::channel();
    for t in 0..THREADS {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut rng = Pattern::new(t + 1000);
            let mut completed = 0u32;
            let mut connected = 0u64;
            for _ in 0..PER_THREAD {
                let Ok(mut stream) = StdStream::connect(addr).inspect(|_| connected += 1) else {
                    continue;
                };
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let len = 1 + rng.below(64 * 1024) as usize;
                let payload = rng.bytes(len);
                match rng.below(4) {
                    // Reset right after connecting.
                    0 => reset(stream),
                    // Reset mid-request: part of the payload sent, nothing read.
                    1 => {
                        let _ = stream.write_all(&payload[..payload.len() / 2]);
                        reset(stream);
                    }
                    // Reset mid-response: everything sent, part of the echo read.
                    2 => {
                        let _ = stream.write_all(&payload);
                        let mut half = vec![0; payload.len() / 2];
                        let _ = stream.read_exact(&mut half);
                        reset(stream);
                    }
                    // A normal, complete exchange, checked.
                    _ => {
                        stream.write_all(&payload).unwrap();
                        let mut got = vec![0; payload.len()];
                        stream.read_exact(&mut got).unwrap();
                        assert_eq!(got, payload);
                        completed += 1;
                    }
                }
            }
            tx.send((completed, connected)).unwrap();
        });
    }
    drop(tx);
    let (completed, connected) = (0..THREADS)
        .map(|_| {
            rx.recv_timeout(Duration::from_secs(120))
                .expect("client thread finished")
        })
        .fold((0u32, 0u64), |(c, n), (c2, n2)| (c + c2, n + n2));
    assert!(
        completed > 0,
        "some exchanges ran to completion between the resets"
    );

    let stats = wait_for_stats(&server, Duration::from_secs(10), |s| {
        s.net.open == 0 && s.recv_buffers_lent == 0
    });
    let accepted: u64 = stats.iter().map(|s| s.net.accepted).sum();
    let closed: u64 = stats.iter().map(|s| s.net.closed).sum();
    assert_eq!(
        accepted,
        connected,
        "every connection the clients made was accepted (of {} attempts)",
        THREADS * PER_THREAD
    );
    assert_eq!(closed, accepted, "and every one was closed: {stats:#?}");
    for s in &stats {
        assert_eq!(s.net.open, 0, "shard {}: no connection left open", s.shard);
        assert_eq!(
            s.recv_buffers_lent, 0,
            "shard {}: every receive buffer returned",
            s.shard
        );
        assert_eq!(
            s.ops_in_flight, 0,
            "shard {}: no operation in flight",
            s.shard
        );
        assert_eq!(
            s.tasks, 1,
            "shard {}: only the accept loop remains",
            s.shard
        );
    }
    // Closes go through the ring; give the last close completions one poll round to land.
    let fds_after = (0..100)
        .map(|_| {
            let n = open_fds();
            if n > baseline {
                thread::sleep(Duration::from_millis(20));
            }
            n
        })
        .find(|n| *n <= baseline)
        .unwrap_or_else(open_fds);
    assert_eq!(fds_after, baseline, "open fds back to the baseline");
    server.stop();
    server.join().unwrap();
}

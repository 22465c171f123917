//! Multishot receives that end are re-armed at once (R6), and a dry buffer ring recovers
//! without spinning (R7), through the `percore` binary: `percore serve` with 8 provided
//! receive buffers per shard and 128 connections pipelining request bodies. The kernel ends a
//! multishot receive without `IORING_CQE_F_MORE` each time the ring runs dry (`ENOBUFS`);
//! every such end must be re-armed, or its connection would stall. Every request is
//! answered, the ends and re-arms are counted, and the idle server then uses no CPU.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/http_client.rs"]
mod http_client;

use std::{
    io::{BufReader, Write},
    net::TcpStream,
    thread,
    time::Duration,
};

use binary::{Server, cpu_ticks};
use http_client::{Framing, body_for, echo_request, read_response};

const CONNECTIONS: u64 = 128;
const ROUNDS: u64 = 10;
const DEPTH: u64 = 8;

#[test]
fn receives_ended_by_a_dry_buffer_ring_are_rearmed_and_nothing_stalls() {
    let server = Server::start(
        "serve",
        &[
            "--shards",
            "2",
            "--recv-buffers",
            "8",
            "--recv-buffer-size",
            "1024",
        ],
    );
    let before = server.metrics();
    let addr = server.addr;
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            thread::spawn(move || {
                let stream = TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(15)))
                    .unwrap();
                let mut conn = BufReader::new(stream);
                for round in 0..ROUNDS {
                    let bodies: Vec<_> = (0..DEPTH)
                        .map(|k| {
                            let id = (c << 32) | (round << 8) | k;
                            body_for(id, 900 + (id as usize * 37) % 3000)
                        })
                        .collect();
                    let wire: Vec<u8> = bodies
                        .iter()
                        .flat_map(|b| echo_request(b, Framing::ContentLength, false))
                        .collect();
                    conn.get_mut().write_all(&wire).unwrap();
                    for b in bodies {
                        let r = read_response(&mut conn)
                            .unwrap_or_else(|e| panic!("connection {c} stalled: {e}"))
                            .expect("answered");
                        assert!(
                            r.status == 200 && r.body == b,
                            "connection {c}: echo intact"
                        );
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("every request answered");
    }

    let after = server.metrics();
    let delta = |name: &str| after.sum(name) - before.sum(name);
    let (enobufs, rearms) = (
        delta("percore_recv_enobufs_total"),
        delta("percore_multishot_rearms_total"),
    );
    assert!(enobufs > 0.0, "the buffer ring ran dry ({enobufs} ENOBUFS)");
    assert!(
        rearms >= enobufs,
        "every receive ended by ENOBUFS was re-armed: {rearms} re-arms, {enobufs} ENOBUFS"
    );
    assert_eq!(after.sum("percore_recv_buffers_lent"), 0.0);

    // Idle again: no spinning on the dry ring's aftermath.
    let ticks = cpu_ticks(server.pid());
    thread::sleep(Duration::from_millis(500));
    let idle = cpu_ticks(server.pid()) - ticks;
    assert!(idle <= 5, "{idle} ticks (10 ms each) in 500 ms idle");
    assert_eq!(server.stop(Duration::from_secs(10)), Some(0));
}

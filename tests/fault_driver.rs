//! Faults injected in the driver (feature `fault-injection`): the ring promises R4–R7 and
//! R10 under faults made on demand, and submission errors that surface as errors.
//!
//! Every test runs on the driver `PERCORE_DRIVER` names (`tests/run.sh` runs this file on
//! io_uring and again with `PERCORE_DRIVER=epoll`); each prints which one it ran on. The
//! server is one shard of echo; clients check every byte that comes back.

#[path = "support/common.rs"]
mod common;
#[path = "support/shards.rs"]
mod shards;

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream as StdStream},
    sync::{Arc, Barrier, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

use common::{Pattern, shard_cpu_ticks, wait_for_stats};
use percore::{
    DriverKind, NetConfig, NetStats, RingConfig, Server, ServerHandle, ShardStats, TcpListener,
    fault::{EndAs, FaultInjector, Ops},
};

/// A one-shard echo server and its shard's fault injector.
struct Echo {
    server: ServerHandle,
    addr: SocketAddr,
    faults: FaultInjector,
}

fn echo_server(ring: RingConfig, net: NetConfig) -> Echo {
    echo_server_with(ring, net, |_| {})
}

/// The same, with `faults` applied on the shard before its listener accepts anything.
fn echo_server_with(ring: RingConfig, net: NetConfig, faults: fn(&FaultInjector)) -> Echo {
    let addr = shards::free_loopback_addr();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let server = shards::start(
        Server::builder().shards(1).ring(ring).net(net),
        move |_info| {
            let injector = percore::fault::current().expect("the shard's driver has an injector");
            faults(&injector);
            let _ = shards::lock(&tx).send(injector);
            let listener =
                TcpListener::bind(addr).map_err(|source| percore::Error::Bind { addr, source })?;
            Ok(async move {
                while let Ok(stream) = listener.accept().await {
                    percore::spawn(percore_echo::handle(stream));
                }
            })
        },
    );
    let faults = shards::recv(&rx, "the shard's fault injector");
    let driver = stats(&server).driver;
    eprintln!("driver: {driver}");
    match std::env::var("PERCORE_DRIVER").as_deref() {
        Ok("epoll") => assert_eq!(driver, DriverKind::Epoll),
        Ok("io_uring") => assert_eq!(driver, DriverKind::IoUring),
        _ => {}
    }
    Echo {
        server,
        addr,
        faults,
    }
}

fn stats(server: &ServerHandle) -> ShardStats {
    server
        .shard_stats(Duration::from_secs(2))
        .pop()
        .expect("the shard answers")
}

/// Waits until every connection is closed and every buffer and op is back, and fails the
/// test naming what is left otherwise.
fn settled(server: &ServerHandle) -> ShardStats {
    let stats = wait_for_stats(server, Duration::from_secs(10), |s| {
        s.net.open == 0 && s.recv_buffers_lent == 0
    })
    .pop()
    .unwrap();
    assert_eq!(stats.net.open, 0, "every connection closed: {stats:?}");
    assert_eq!(stats.recv_buffers_lent, 0, "every buffer back: {stats:?}");
    stats
}

fn stop(echo: Echo) {
    shards::stop(echo.server);
}

/// `conns` clients at once (released together), each sending `rounds` rounds of
/// `pipeline` pieces of its own pattern back to back, then reading the round's echo and
/// checking every byte. Fails the test with the first client's error.
fn echo_load(addr: SocketAddr, conns: usize, rounds: usize, pipeline: usize) {
    let start = Arc::new(Barrier::new(conns));
    let (tx, rx) = mpsc::channel();
    for conn in 0..conns as u64 {
        let (tx, start) = (tx.clone(), start.clone());
        thread::spawn(move || {
            let result = StdStream::connect(addr)
                .map_err(|e| format!("connect: {e}"))
                .and_then(|mut stream| {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(20)))
                        .unwrap();
                    start.wait();
                    let mut pattern = Pattern::new(conn * 7919 + 1);
                    for round in 0..rounds {
                        let mut sent = Vec::new();
                        for piece in 0..pipeline {
                            let bytes = pattern.bytes(16 + (round * 31 + piece * 17) % 300);
                            stream
                                .write_all(&bytes)
                                .map_err(|e| format!("round {round}: write: {e}"))?;
                            sent.extend_from_slice(&bytes);
                        }
                        let mut got = vec![0; sent.len()];
                        stream
                            .read_exact(&mut got)
                            .map_err(|e| format!("round {round}: read: {e}"))?;
                        if got != sent {
                            return Err(format!("round {round}: echoed bytes differ"));
                        }
                    }
                    Ok(())
                })
                .map_err(|e| format!("conn {conn}: {e}"));
            let _ = tx.send(result);
        });
    }
    drop(tx);
    for _ in 0..conns {
        rx.recv_timeout(Duration::from_secs(60))
            .expect("a client finished within 60 s")
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// How one client's single request ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    Echoed,
    /// The server closed the connection (EOF or reset) before echoing.
    Closed,
}

/// `n` clients, one message each: echoed, or closed by the server; a client that sees
/// neither within 5 s (a hang) fails the test.
fn one_message_each(addr: SocketAddr, n: usize) -> Vec<Outcome> {
    let clients: Vec<_> = (0..n)
        .map(|i| {
            thread::spawn(move || {
                let mut stream = StdStream::connect(addr).expect("connect");
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let message = format!("message {i:04}");
                if stream.write_all(message.as_bytes()).is_err() {
                    return Outcome::Closed;
                }
                let mut back = vec![0; message.len()];
                match stream.read_exact(&mut back) {
                    Ok(()) => {
                        assert_eq!(back, message.as_bytes(), "client {i}: bytes differ");
                        Outcome::Echoed
                    }
                    Err(e)
                        if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut =>
                    {
                        panic!("client {i} hangs: neither an echo nor a close in 5 s")
                    }
                    Err(_) => Outcome::Closed,
                }
            })
        })
        .collect();
    clients
        .into_iter()
        .map(|c| c.join().expect("client"))
        .collect()
}

fn delta(after: &NetStats, before: &NetStats, f: fn(&NetStats) -> u64) -> u64 {
    f(after) - f(before)
}

/// R4, R5: the SQ counts as full at one entry and one completion is taken per iteration (on
/// io_uring the kernel's CQ of 2 overflows into its backlog): every byte of 32 pipelining
/// connections still comes back, and both faults happened.
#[test]
fn a_one_entry_sq_and_cq_lose_nothing() {
    let _serial = shards::serial();
    let echo = echo_server(
        RingConfig {
            sq_entries: 2,
            cq_entries: 2,
            ..RingConfig::default()
        },
        NetConfig::default(),
    );
    echo.faults.shrink_queues(1, 1);
    echo_load(echo.addr, 32, 10, 4);
    let stats = settled(&echo.server);
    let counts = echo.faults.counts();
    assert!(
        counts.sq_flushed > 0 && stats.ring.sq_full > 0,
        "the one-entry SQ was submitted early: {counts:?} {:?}",
        stats.ring
    );
    assert!(
        counts.cq_held > 0 && stats.ring.cq_overflows > 0,
        "completions waited beyond the CQ: {counts:?} {:?}",
        stats.ring
    );
    assert_eq!(stats.ops_in_flight, 0, "no op left behind: {stats:?}");
    stop(echo);
}

/// R6: multishot receives ended early, every second completion with `F_MORE`, in each of the
/// three ways a kernel ends one (`-ECANCELED`, `-ENOBUFS`, last data without `F_MORE`): each
/// is re-armed (one per connection may end at its EOF instead) and every byte comes back.
#[test]
fn multishot_receives_ended_early_are_rearmed_and_lose_nothing() {
    let _serial = shards::serial();
    let echo = echo_server(RingConfig::default(), NetConfig::default());
    const CONNS: u64 = 32;
    for how in [EndAs::Cancelled, EndAs::NoBuffers, EndAs::LastData] {
        let before = stats(&echo.server).net;
        let ended_before = echo.faults.counts().ended_early;
        echo.faults.end_multishot_early(Ops::RECV, 2, how);
        echo_load(echo.addr, CONNS as usize, 20, 4);
        let after = settled(&echo.server).net;
        echo.faults.clear();
        let ended = echo.faults.counts().ended_early - ended_before;
        let rearms = delta(&after, &before, |s| s.rearms);
        eprintln!("{how:?}: {ended} receives ended early, {rearms} re-arms");
        assert!(ended >= 100, "{how:?}: receives were ended early: {ended}");
        assert!(
            rearms + CONNS >= ended,
            "{how:?}: every receive ended early was re-armed: {ended} ended, {rearms} re-arms"
        );
        if how == EndAs::NoBuffers {
            let enobufs = delta(&after, &before, |s| s.enobufs);
            assert!(
                enobufs + CONNS >= ended,
                "every injected ENOBUFS was seen: {enobufs} of {ended}"
            );
        }
    }
    stop(echo);
}

/// R6 for accepts: every second accept is cancelled in the kernel, then 16 accepts fail with
/// `ENOMEM`: each is replaced at once, and every client is answered.
#[test]
fn accepts_cancelled_or_failed_are_rearmed_and_every_client_is_answered() {
    let _serial = shards::serial();
    let echo = echo_server(RingConfig::default(), NetConfig::default());
    let before = stats(&echo.server).net;
    echo.faults.cancel_every(Ops::ACCEPT, 2);
    for _ in 0..4 {
        let outcomes = one_message_each(echo.addr, 16);
        assert!(
            outcomes.iter().all(|o| *o == Outcome::Echoed),
            "{outcomes:?}"
        );
    }
    let cancelled = echo.faults.counts().cancelled;
    assert!(cancelled >= 8, "accepts were cancelled: {cancelled}");
    echo.faults.clear();
    echo.faults.fail_next(Ops::ACCEPT, libc::ENOMEM, 16);
    let outcomes = one_message_each(echo.addr, 32);
    assert!(
        outcomes.iter().all(|o| *o == Outcome::Echoed),
        "{outcomes:?}"
    );
    assert_eq!(echo.faults.failures_left(), 0, "the 16 failures happened");
    let after = settled(&echo.server).net;
    assert_eq!(delta(&after, &before, |s| s.accepted), 4 * 16 + 32);
    assert!(
        delta(&after, &before, |s| s.rearms) >= 16,
        "failed accepts were re-armed: {after:?}"
    );
    stop(echo);
}

/// R7: receives that end with `ENOBUFS` (a live multishot ended so, every third completion)
/// and receives whose arming finds no buffer (50 failed with `ENOBUFS`) all recover: every
/// byte comes back, every buffer returns, and the idle shard does not spin afterwards.
#[test]
fn enobufs_ends_and_failed_arms_recover_without_spinning() {
    let _serial = shards::serial();
    let echo = echo_server(RingConfig::default(), NetConfig::default());
    let before = stats(&echo.server).net;
    echo.faults
        .end_multishot_early(Ops::RECV, 3, EndAs::NoBuffers);
    echo.faults.fail_next(Ops::RECV, libc::ENOBUFS, 50);
    echo_load(echo.addr, 32, 10, 4);
    echo.faults.clear();
    let after = settled(&echo.server).net;
    let counts = echo.faults.counts();
    let enobufs = delta(&after, &before, |s| s.enobufs);
    assert_eq!(counts.failed, 50, "every arm meant to fail did: {counts:?}");
    assert!(
        enobufs + 32 >= counts.ended_early + counts.failed && enobufs >= 50,
        "ENOBUFS seen {enobufs}, injected {counts:?}"
    );
    let idle = shard_cpu_ticks();
    thread::sleep(Duration::from_millis(500));
    let used = shard_cpu_ticks() - idle;
    assert!(
        used <= 5,
        "the idle shard used {used} ticks in 500 ms: spinning"
    );
    stop(echo);
}

/// R10: every accept fails with `EMFILE` until the fault is cleared. The listener backs off
/// (at most one attempt per 100 ms back-off, little CPU), no client is answered meanwhile,
/// and once descriptors are back every client that waited in the backlog is answered.
#[test]
fn emfile_on_accept_backs_off_then_every_waiting_client_is_answered() {
    let _serial = shards::serial();
    // From the start: an accept already in flight would take a client.
    let echo = echo_server_with(RingConfig::default(), NetConfig::default(), |faults| {
        faults.fail_next(Ops::ACCEPT, libc::EMFILE, u64::MAX)
    });
    let addr = echo.addr;
    let waiting: Vec<_> = (0..16)
        .map(|i| {
            let mut stream = StdStream::connect(addr).expect("the backlog takes it");
            stream
                .write_all(format!("waiting {i:04}").as_bytes())
                .unwrap();
            stream
        })
        .collect();
    // Past the first failures (the accepts in flight when the fault began), measure a window.
    thread::sleep(Duration::from_millis(250));
    let (t0, n0, cpu0) = (
        Instant::now(),
        stats(&echo.server).net.accept_fd_exhausted,
        shard_cpu_ticks(),
    );
    thread::sleep(Duration::from_millis(1000));
    let (n1, cpu1) = (
        stats(&echo.server).net.accept_fd_exhausted,
        shard_cpu_ticks(),
    );
    let window = t0.elapsed();
    let attempts = n1 - n0;
    let most = window.as_millis() as u64 / 100 + 2;
    assert!(
        (3..=most).contains(&attempts),
        "{attempts} failed accepts in {window:?}: one per 100 ms back-off expected (≤ {most})"
    );
    assert!(
        cpu1 - cpu0 <= 10,
        "the shard used {} ticks in {window:?} while out of descriptors",
        cpu1 - cpu0
    );
    for (i, stream) in waiting.iter().enumerate() {
        stream.set_nonblocking(true).unwrap();
        let mut byte = [0; 1];
        let read = (&*stream).read(&mut byte);
        assert!(
            matches!(&read, Err(e) if e.kind() == ErrorKind::WouldBlock),
            "client {i} was answered while every accept failed: {read:?}"
        );
        stream.set_nonblocking(false).unwrap();
    }
    echo.faults.clear();
    for (i, mut stream) in waiting.into_iter().enumerate() {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let message = format!("waiting {i:04}");
        let mut back = vec![0; message.len()];
        stream
            .read_exact(&mut back)
            .unwrap_or_else(|e| panic!("client {i} never answered after the fault: {e}"));
        assert_eq!(back, message.as_bytes());
    }
    settled(&echo.server);
    stop(echo);
}

/// Submissions that fail surface as errors on their connection, never as a hang: 8 sends
/// failing with `EIO` close exactly their 8 connections (the other clients are echoed), and
/// so do 4 receives whose arming fails with `ECONNRESET`; each is counted as an error close.
#[test]
fn failed_submissions_close_their_connections_and_nothing_hangs() {
    let _serial = shards::serial();
    let echo = echo_server(RingConfig::default(), NetConfig::default());
    let before = stats(&echo.server).net;
    for (ops, errno, n) in [(Ops::SEND, libc::EIO, 8), (Ops::RECV, libc::ECONNRESET, 4)] {
        echo.faults.fail_next(ops, errno, n);
        let outcomes = one_message_each(echo.addr, 24);
        assert_eq!(
            echo.faults.failures_left(),
            0,
            "{ops:?}: every failure happened"
        );
        let closed = outcomes.iter().filter(|o| **o == Outcome::Closed).count();
        assert_eq!(
            closed, n as usize,
            "{ops:?}: exactly the connections whose submission failed were closed: {outcomes:?}"
        );
    }
    let after = settled(&echo.server).net;
    assert!(
        delta(&after, &before, |s| s.closed_on_error) >= 12,
        "the failed connections closed on error: {after:?}"
    );
    stop(echo);
}

/// Completions of accepts, receives and sends reach the shard 30 ms late: every byte still
/// comes back in order, and the delay really applied (no round trip is faster than it).
#[test]
fn delayed_completions_arrive_in_order_and_lose_nothing() {
    let _serial = shards::serial();
    let echo = echo_server(RingConfig::default(), NetConfig::default());
    let delay = Duration::from_millis(30);
    echo.faults
        .delay(Ops::ACCEPT | Ops::RECV | Ops::SEND, delay);
    let started = Instant::now();
    echo_load(echo.addr, 16, 5, 4);
    let took = started.elapsed();
    let mut stream = StdStream::connect(echo.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let round = Instant::now();
    stream.write_all(b"ping").unwrap();
    let mut back = [0; 4];
    stream.read_exact(&mut back).unwrap();
    let round_trip = round.elapsed();
    drop(stream);
    echo.faults.clear();
    settled(&echo.server);
    let counts = echo.faults.counts();
    assert!(counts.delayed > 0, "{counts:?}");
    assert_eq!(&back, b"ping");
    // Its receive and its send completions each came 30 ms late.
    assert!(
        round_trip >= 2 * delay,
        "a round trip took {round_trip:?} with every completion {delay:?} late"
    );
    assert!(took >= 5 * 2 * delay, "5 rounds took {took:?}");
    stop(echo);
}

/// Failed kernel entries (`io_uring_enter`, `epoll_wait`). Transient ones are retried and lose
/// nothing: `EINTR` on both drivers, and on io_uring `EAGAIN` (the kernel lacked resources
/// for now), injected every few milliseconds under load. A fatal one (`EBADF`) stops the
/// server with an error naming the shard, and its client sees the connection close: an
/// error, never a hang.
#[test]
fn failed_kernel_entries_are_retried_or_stop_the_server_with_an_error() {
    let _serial = shards::serial();
    let echo = echo_server(RingConfig::default(), NetConfig::default());
    let transient: &[i32] = match stats(&echo.server).driver {
        DriverKind::IoUring => &[libc::EINTR, libc::EAGAIN],
        DriverKind::Epoll => &[libc::EINTR],
    };
    for &errno in transient {
        let failed_before = echo.faults.counts().enters_failed;
        let addr = echo.addr;
        let load = thread::spawn(move || echo_load(addr, 16, 100, 4));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !load.is_finished() && Instant::now() < deadline {
            echo.faults.fail_enters(errno, 2);
            thread::sleep(Duration::from_millis(2));
        }
        load.join()
            .expect("every byte came back while entries failed");
        let failed = echo.faults.counts().enters_failed - failed_before;
        assert!(failed >= 20, "errno {errno}: {failed} entries failed");
    }
    echo.faults.clear();
    settled(&echo.server);

    let mut client = StdStream::connect(echo.addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut back = [0; 5];
    client.write_all(b"hello").unwrap();
    client.read_exact(&mut back).unwrap();
    echo.faults.fail_enters(libc::EBADF, 1);
    // The shard waits in the kernel; input wakes it, and its next entry fails.
    client.write_all(b"again").unwrap();
    let ended = shards::join_within(echo.server, Duration::from_secs(5))
        .expect("the server stopped within 5 s of the failed entry");
    let error = ended.expect_err("a failed entry is an error").to_string();
    assert!(
        error.contains("shard 0")
            && error.contains(&std::io::Error::from_raw_os_error(libc::EBADF).to_string()),
        "the error names the shard and the cause: {error}"
    );
    let mut rest = Vec::new();
    match client.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
            panic!("the client's connection was left open by the stopped server")
        }
        Err(_) => {} // reset: closed too
    }
}

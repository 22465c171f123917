//! The readiness driver on its own: each op turned into the completions io_uring would post.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::{fd::AsRawFd, unix::net::UnixStream},
    time::{Duration, Instant},
};

use super::*;
use crate::{
    driver::{
        Kind,
        uring::op::{EventFdRead, Send, Timeout},
    },
    sys::eventfd::EventFd,
};

const WAIT: Wait = Wait::Timeout(Duration::from_secs(5));

fn driver(recv_buffers: u16) -> Epoll {
    Epoll::new(&RingConfig {
        recv_buffers,
        recv_buffer_size: 64,
        ..RingConfig::default()
    })
    .expect("epoll driver")
}

/// Enters until at least one completion arrived (bounded), and returns them.
fn completions(driver: &mut Epoll, wait: Wait) -> Vec<Completion> {
    let mut out = Vec::new();
    for _ in 0..50 {
        driver.enter(wait).expect("enter");
        driver.take_completions(&mut out);
        if !out.is_empty() || wait == Wait::No {
            break;
        }
    }
    out
}

#[test]
fn a_receive_fills_buffers_as_multishot_recv_does_and_eof_ends_it() {
    let mut d = driver(8);
    let (ours, mut peer) = UnixStream::pair().unwrap();
    let token = Token::new(Kind::Recv, 3, 1);
    d.submit(
        RecvMulti {
            fd: ours.as_raw_fd(),
        },
        token,
    );
    assert!(completions(&mut d, Wait::No).is_empty(), "nothing sent yet");
    peer.write_all(b"hello").unwrap();
    let got = completions(&mut d, WAIT);
    assert_eq!(got.len(), 1, "{got:?}");
    let c = got[0];
    assert_eq!((c.token, c.result, c.more()), (token, 5, true));
    let bid = c.buffer_id().expect("names its buffer");
    d.bufs.mark_lent(bid);
    assert_eq!(d.bufs.bytes(bid, 0, 5), b"hello");
    d.bufs.recycle(bid);
    // 150 bytes fill two 64-byte buffers and part of a third: read until drained.
    peer.write_all(&[7; 150]).unwrap();
    let got = completions(&mut d, WAIT);
    let sizes: Vec<i32> = got.iter().map(|c| c.result).collect();
    assert_eq!(sizes, [64, 64, 22], "{got:?}");
    for c in &got {
        d.bufs.mark_lent(c.buffer_id().unwrap());
        d.bufs.recycle(c.buffer_id().unwrap());
    }
    drop(peer);
    let got = completions(&mut d, WAIT);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].result, got[0].more()), (0, false), "EOF ends it");
    assert_eq!(d.bufs.lent(), 0);
}

#[test]
fn a_cancelled_receive_ends_with_ecanceled_and_is_no_longer_watched() {
    let mut d = driver(8);
    let (ours, mut peer) = UnixStream::pair().unwrap();
    let token = Token::new(Kind::Recv, 1, 0);
    d.submit(
        RecvMulti {
            fd: ours.as_raw_fd(),
        },
        token,
    );
    d.enter(Wait::No).unwrap();
    d.submit(Cancel { target: token }, Token::IGNORE);
    let got = completions(&mut d, Wait::No);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].token, got[0].result, got[0].more()),
        (token, -libc::ECANCELED, false)
    );
    // Unread input wakes no one once the receive ended (level-triggered interest removed).
    peer.write_all(b"late").unwrap();
    let start = Instant::now();
    d.enter(Wait::Timeout(Duration::from_millis(30))).unwrap();
    let mut out = Vec::new();
    d.take_completions(&mut out);
    assert!(out.is_empty(), "{out:?}");
    assert!(start.elapsed() >= Duration::from_millis(29), "it slept");
}

#[test]
fn no_free_buffer_ends_the_receive_with_enobufs() {
    let mut d = driver(1);
    let (ours, mut peer) = UnixStream::pair().unwrap();
    let token = Token::new(Kind::Recv, 1, 0);
    d.submit(
        RecvMulti {
            fd: ours.as_raw_fd(),
        },
        token,
    );
    peer.write_all(b"one").unwrap();
    let got = completions(&mut d, WAIT);
    assert_eq!((got[0].result, got[0].more()), (3, true));
    d.bufs.mark_lent(got[0].buffer_id().unwrap());
    peer.write_all(b"two").unwrap();
    let got = completions(&mut d, WAIT);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].result, got[0].more()), (-libc::ENOBUFS, false));
}

#[test]
fn each_accept_takes_one_waiting_connection() {
    let mut d = driver(8);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let token = Token::new(Kind::Accept, 0, 0);
    for _ in 0..3 {
        d.submit(
            Accept {
                listener_fd: listener.as_raw_fd(),
            },
            token,
        );
    }
    d.enter(Wait::No).unwrap();
    // One more client than accepts: the fourth waits in the backlog.
    let clients: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut accepted = Vec::new();
    for _ in 0..50 {
        accepted.extend(completions(&mut d, WAIT));
        if accepted.len() >= 3 {
            break;
        }
    }
    assert_eq!(
        accepted.len(),
        3,
        "{accepted:?} ({} clients)",
        clients.len()
    );
    d.enter(Wait::Timeout(Duration::from_millis(50))).unwrap();
    let mut late = Vec::new();
    d.take_completions(&mut late);
    assert!(
        late.is_empty(),
        "no accept was left for the fourth client: {late:?}"
    );
    for c in &accepted {
        assert_eq!((c.token, c.more()), (token, false));
        let fd = c.accepted_fd().expect("a socket");
        assert!(crate::sys::socket::peer_addr(fd.as_raw_fd()).is_ok());
    }
}

#[test]
fn a_send_that_would_block_waits_for_writability_then_completes() {
    let mut d = driver(8);
    let (ours, mut peer) = UnixStream::pair().unwrap();
    let route = Token::new(Kind::Send, 1, 0);
    let big = vec![1u8; 4 << 20];
    let first = d.submit_owned(
        Send {
            fd: ours.as_raw_fd(),
            buf: big.clone(),
            offset: 0,
        },
        Route::To(route),
    );
    let got = completions(&mut d, Wait::No);
    assert_eq!(got[0].token, first);
    let written = got[0].result;
    assert!(
        written > 0 && (written as usize) < big.len(),
        "short: {written}"
    );
    // The socket is full: the next send waits, and completes once the peer reads.
    let second = d.submit_owned(
        Send {
            fd: ours.as_raw_fd(),
            buf: big,
            offset: written as usize,
        },
        Route::To(route),
    );
    assert!(completions(&mut d, Wait::No).is_empty(), "would block");
    // Everything the first send wrote is buffered for the peer: reading it frees the room.
    let mut sink = vec![0; written as usize];
    peer.read_exact(&mut sink).unwrap();
    let got = completions(&mut d, WAIT);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].token, second);
    assert!(got[0].result > 0, "{got:?}");
    for token in [first, second] {
        assert!(matches!(
            d.ops.complete(token, 0),
            crate::driver::uring::lifecycle::Done::Routed { .. }
        ));
    }
}

#[test]
fn a_timeout_fires_after_its_duration_and_a_cancelled_one_never_does() {
    let mut d = driver(8);
    let start = Instant::now();
    let fires = d.submit_owned(Timeout::new(Duration::from_millis(20)), Route::Await);
    let cancelled = d.submit_owned(Timeout::new(Duration::from_millis(10)), Route::Await);
    d.submit(Cancel { target: cancelled }, Token::IGNORE);
    let got = completions(&mut d, Wait::No);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].token, got[0].result), (cancelled, -libc::ECANCELED));
    let got = completions(&mut d, Wait::Forever);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].token, got[0].result), (fires, -libc::ETIME));
    assert!(start.elapsed() >= Duration::from_millis(20));
    for token in [fires, cancelled] {
        d.ops.park(token);
    }
}

/// An idle driver sleeps in `epoll_wait` until another thread writes its eventfd: one
/// wait, no spinning.
#[test]
fn an_idle_driver_sleeps_until_its_eventfd_is_written() {
    let mut d = driver(8);
    let eventfd = std::sync::Arc::new(EventFd::new().unwrap());
    let route = Token::new(Kind::Wake, 0, 0);
    let read = d.submit_owned(EventFdRead::new(eventfd.as_raw_fd()), Route::To(route));
    d.enter(Wait::No).unwrap();
    let enters = d.stats.enters;
    let writer = eventfd.clone();
    let start = Instant::now();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        writer.notify();
    });
    d.enter(Wait::Forever).unwrap();
    let mut got = Vec::new();
    d.take_completions(&mut got);
    thread.join().unwrap();
    assert_eq!(d.stats.enters, enters + 1, "one epoll_wait");
    assert!(start.elapsed() >= Duration::from_millis(45));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].token, got[0].result), (read, 8));
    assert!(matches!(
        d.ops.complete(read, 8),
        crate::driver::uring::lifecycle::Done::Routed { .. }
    ));
}

#[test]
fn a_connect_completes_once_the_socket_is_writable() {
    let mut d = driver(8);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let socket = crate::sys::socket::tcp_socket_for(&addr).unwrap();
    let token = d.submit_owned(
        crate::driver::uring::op::Connect::new(socket, &addr),
        Route::Await,
    );
    let got = completions(&mut d, WAIT);
    assert_eq!((got[0].token, got[0].result), (token, 0), "{got:?}");
    assert!(listener.accept().is_ok());
    d.ops.park(token);
    // A refused connect completes with its errno.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let socket = crate::sys::socket::tcp_socket_for(&closed).unwrap();
    let token = d.submit_owned(
        crate::driver::uring::op::Connect::new(socket, &closed),
        Route::Await,
    );
    let got = completions(&mut d, WAIT);
    assert_eq!((got[0].token, got[0].result), (token, -libc::ECONNREFUSED));
    d.ops.park(token);
}

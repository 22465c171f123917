//! `TcpStream` through the ecosystem's I/O traits (tokio's and futures-io's): byte-exact
//! echo of a megabyte, reads cancelled mid-wait losing nothing, and writes bounded by the
//! high watermark while the peer reads slowly. `TcpStream`'s own `read`/`write_all`/
//! `shutdown` would shadow the extension traits' methods, so the traits are called by name.

#[path = "support/common.rs"]
mod common;

use std::{
    future::poll_fn,
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpStream as StdStream},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

use common::Pattern;
use percore::{NetConfig, Server, ServerHandle, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn serve<H, Fut>(net: NetConfig, handler: H) -> (ServerHandle, SocketAddr)
where
    H: Fn(TcpStream) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let handle = Server::builder()
        .shards(1)
        .net(net)
        .serve("127.0.0.1:0".parse().unwrap(), handler)
        .expect("serve");
    let addr = handle.listen_addr().unwrap();
    (handle, addr)
}

fn stop(handle: ServerHandle) {
    handle.stop_within(Duration::from_secs(5));
    handle.join().expect("a clean stop");
}

/// Sends `data` and half-closes on one thread, reads everything back on this one.
fn round_trip(addr: SocketAddr, data: Vec<u8>, pause_every: usize) -> Vec<u8> {
    let stream = StdStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        for (i, piece) in data.chunks(100).enumerate() {
            writer.write_all(piece).unwrap();
            if pause_every > 0 && i % pause_every == pause_every - 1 {
                thread::sleep(Duration::from_millis(5));
            }
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    (&stream).read_to_end(&mut back).expect("read the echo");
    sender.join().unwrap();
    back
}

#[test]
fn tokio_traits_echo_a_megabyte() {
    let (handle, addr) = serve(NetConfig::default(), |mut stream: TcpStream| async move {
        let mut buf = vec![0u8; 8192];
        loop {
            let n = AsyncReadExt::read(&mut stream, &mut buf)
                .await
                .expect("read");
            if n == 0 {
                break;
            }
            AsyncWriteExt::write_all(&mut stream, &buf[..n])
                .await
                .expect("write");
        }
        AsyncWriteExt::shutdown(&mut stream)
            .await
            .expect("shutdown");
    });
    let data = Pattern::new(1).bytes(1 << 20);
    assert!(
        round_trip(addr, data.clone(), 0) == data,
        "the echo differs"
    );
    stop(handle);
}

#[test]
fn futures_io_traits_echo_a_megabyte() {
    use futures_io::{AsyncRead, AsyncWrite};
    let (handle, addr) = serve(NetConfig::default(), |mut stream: TcpStream| async move {
        let mut buf = vec![0u8; 5000];
        loop {
            let n = poll_fn(|cx| Pin::new(&mut stream).poll_read(cx, &mut buf))
                .await
                .expect("read");
            if n == 0 {
                break;
            }
            let mut written = 0;
            while written < n {
                written += poll_fn(|cx| Pin::new(&mut stream).poll_write(cx, &buf[written..n]))
                    .await
                    .expect("write");
            }
            poll_fn(|cx| Pin::new(&mut stream).poll_flush(cx))
                .await
                .expect("flush");
        }
        poll_fn(|cx| Pin::new(&mut stream).poll_close(cx))
            .await
            .expect("close");
    });
    let data = Pattern::new(2).bytes(1 << 20);
    assert!(
        round_trip(addr, data.clone(), 0) == data,
        "the echo differs"
    );
    stop(handle);
}

#[test]
fn a_dropped_tokio_read_loses_nothing() {
    let cancelled = Arc::new(AtomicUsize::new(0));
    let count = cancelled.clone();
    let (handle, addr) = serve(NetConfig::default(), move |mut stream: TcpStream| {
        let count = count.clone();
        async move {
            let mut received = Vec::new();
            let mut buf = [0u8; 7];
            loop {
                // A short timeout drops the read future while it waits, again and again.
                match percore::time::timeout(
                    Duration::from_millis(1),
                    AsyncReadExt::read(&mut stream, &mut buf),
                )
                .await
                {
                    Ok(Ok(0)) => break,
                    Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
                    Ok(Err(e)) => panic!("read: {e}"),
                    Err(_) => {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            AsyncWriteExt::write_all(&mut stream, &received)
                .await
                .expect("write");
            AsyncWriteExt::shutdown(&mut stream)
                .await
                .expect("shutdown");
        }
    });
    let data = Pattern::new(3).bytes(30_000);
    let back = round_trip(addr, data.clone(), 10);
    assert_eq!(back.len(), data.len());
    assert!(back == data, "bytes were lost or reordered");
    assert!(
        cancelled.load(Ordering::Relaxed) > 0,
        "no read was ever cancelled: the test proved nothing"
    );
    stop(handle);
}

#[test]
fn tokio_writes_stay_under_the_high_watermark() {
    const WATERMARK: usize = 32 * 1024;
    const WRITE: usize = 4096;
    const TOTAL: usize = 4 << 20;
    let most = Arc::new(AtomicUsize::new(0));
    let seen = most.clone();
    let net = NetConfig {
        send_high_watermark: WATERMARK,
        ..NetConfig::default()
    };
    let (handle, addr) = serve(net, move |mut stream: TcpStream| {
        let seen = seen.clone();
        async move {
            let chunk = vec![b'z'; WRITE];
            for _ in 0..TOTAL / WRITE {
                AsyncWriteExt::write_all(&mut stream, &chunk)
                    .await
                    .expect("write");
                seen.fetch_max(stream.pending_output(), Ordering::Relaxed);
            }
            AsyncWriteExt::shutdown(&mut stream)
                .await
                .expect("shutdown");
        }
    });
    let mut stream = StdStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (mut total, mut buf) = (0, vec![0u8; 64 * 1024]);
    loop {
        let n = stream.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        assert!(buf[..n].iter().all(|&b| b == b'z'));
        total += n;
        // A slow reader: the server must wait instead of buffering everything.
        if total < TOTAL / 4 {
            thread::sleep(Duration::from_micros(200));
        }
    }
    assert_eq!(total, TOTAL);
    let most = most.load(Ordering::Relaxed);
    assert!(most > 0);
    assert!(
        most <= WATERMARK + WRITE,
        "{most} bytes of unsent output, above the watermark"
    );
    stop(handle);
}

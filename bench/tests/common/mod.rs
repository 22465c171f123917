//! Small test servers with known behaviour, on std threads (one per connection), and the
//! load runner the tests share.

#![allow(dead_code)] // Each test file uses part of this.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::Arc,
    thread,
    time::Duration,
};

use percore_bench::load::{self, LoadConfig, Protocol, report::LoadReport};

/// Starts a server on 127.0.0.1 that runs `handle` on a thread for each connection. The
/// accept thread lives until the test process ends (it holds no resource but the port).
pub fn spawn_server<F>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = Arc::new(handle);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let handle = handle.clone();
            thread::spawn(move || handle(stream));
        }
    });
    addr
}

/// Calls `on_request` for each complete request head (`\r\n\r\n`-terminated, no bodies)
/// with the bytes to write; writes what it returns (one write per read batch, as a
/// pipelining server does). Returns when the peer closes or `on_request` says stop.
pub fn serve_heads(mut stream: TcpStream, mut on_request: impl FnMut(&mut Vec<u8>) -> bool) {
    let _ = stream.set_nodelay(true);
    let mut input = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        input.extend_from_slice(&buf[..n]);
        let mut out = Vec::new();
        let mut go_on = true;
        while let Some(end) = find(&input, b"\r\n\r\n") {
            input.drain(..end + 4);
            if !on_request(&mut out) {
                go_on = false;
                break;
            }
        }
        if !out.is_empty() && stream.write_all(&out).is_err() {
            return;
        }
        if !go_on {
            return;
        }
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A short run against `target`: warm-up 200 ms, window 800 ms, drain 500 ms.
pub fn config(target: SocketAddr) -> LoadConfig {
    LoadConfig {
        target,
        tls: None,
        new_conn: false,
        connections: 8,
        pipeline: 1,
        duration: Duration::from_millis(800),
        warmup: Duration::from_millis(200),
        shards: 1,
        timeout: Duration::from_millis(500),
        rate: None,
        drain_grace: Duration::from_millis(500),
        server_pid: None,
        clk_tck: 100,
        progress_every: None,
    }
}

pub fn run<P: Protocol>(cfg: LoadConfig, proto: P) -> LoadReport {
    let mode = proto.name();
    let outcome = load::run(cfg.clone(), proto, |_| {}).expect("run starts");
    LoadReport::new(mode, "test".into(), &cfg, outcome)
}

/// Both phases balance: every request sent is one success, one error or in flight at the end.
pub fn assert_reconciled(report: &LoadReport) {
    for (phase, c) in [("measured", &report.measured), ("warm-up", &report.warmup)] {
        assert!(
            c.reconciles(),
            "{phase}: sent = ok + request errors + in flight at end\n{}",
            report.to_text()
        );
    }
}

//! Test support for the steering tests: a line server that says which shard serves each
//! connection and can spin its shard, and clients for it.

#![allow(dead_code)]

use std::{
    io::{self, BufRead, BufReader, Write},
    net::{SocketAddr, TcpStream as StdStream},
    time::{Duration, Instant},
};

use percore::{ServerBuilder, ServerHandle, TcpStream, mesh};

/// Line protocol: `ping` → `pong <shard>`; `spin <ms>` burns CPU inline (stalling the
/// shard, see [`burn`]), then `spun <shard>`.
pub async fn spin_or_pong(mut stream: TcpStream) {
    loop {
        let line = stream
            .read_with(|input| match input.iter().position(|b| *b == b'\n') {
                Some(end) => (end + 1, String::from_utf8_lossy(&input[..end]).into_owned()),
                None => (0, String::new()),
            })
            .await;
        let Ok(Some(line)) = line else { return };
        let shard = mesh::shard_id();
        let reply = if let Some(ms) = line.strip_prefix("spin ") {
            burn(Duration::from_millis(ms.parse().unwrap_or(0)));
            format!("spun {shard}\n")
        } else {
            format!("pong {shard}\n")
        };
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Spins for `span` of wall time and `span` of this thread's own CPU time. The stall
/// detector discounts the time a shard waits for a CPU (preemption is not the shard's
/// fault), so on a loaded machine a wall-clock spin alone may hold the CPU for less than
/// the threshold and go uncounted; a spin that also burns its span of CPU is a stall there
/// too.
fn burn(span: Duration) {
    let started = Instant::now();
    let cpu_at_start = thread_cpu_time();
    loop {
        std::hint::spin_loop();
        if started.elapsed() < span {
            continue;
        }
        match (cpu_at_start, thread_cpu_time()) {
            (Some(start), Some(now)) if now.saturating_sub(start) < span => continue,
            _ => return,
        }
    }
}

/// The calling thread's time on a CPU (the first field of its `schedstat`), if readable.
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

pub fn serve(builder: ServerBuilder) -> (ServerHandle, SocketAddr) {
    let server = builder
        .serve("127.0.0.1:0".parse().unwrap(), spin_or_pong)
        .unwrap_or_else(|e| panic!("server did not start: {e}"));
    let addr = server.listen_addr().unwrap();
    (server, addr)
}

pub struct Client {
    reader: BufReader<StdStream>,
    writer: StdStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = StdStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    pub fn ask(&mut self, line: &str) -> String {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
        let mut reply = String::new();
        self.reader
            .read_line(&mut reply)
            .unwrap_or_else(|e| panic!("no reply to {line:?}: {e}"));
        reply.trim_end().to_string()
    }

    /// The shard serving this connection.
    pub fn shard(&mut self) -> usize {
        let reply = self.ask("ping");
        reply
            .strip_prefix("pong ")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected reply {reply:?}"))
    }
}

/// A connection served by `shard` (new connections until one lands there, at most 200).
pub fn client_on(addr: SocketAddr, shard: usize) -> Client {
    for _ in 0..200 {
        let mut client = Client::connect(addr).unwrap();
        if client.shard() == shard {
            return client;
        }
    }
    panic!("200 connections and none on shard {shard}");
}

/// Waits (bounded) until `server` reports shard `shard` stalled (`true`) or not (`false`).
pub fn wait_stalled(server: &ServerHandle, shard: usize, stalled: bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if server.shard_loads()[shard].stalled == stalled {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// Pins the calling thread to `cpu`.
pub fn pin_to(cpu: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
}

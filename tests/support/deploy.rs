//! Test support for deployment: one-shot clients of the three services (a new connection
//! per request, as a client going through a restart sees the server), a bounded load loop
//! that counts refused connections and failed requests, and plain HTTP calls to a health or
//! admin endpoint.

#![allow(dead_code)]

use std::{
    io::{self, Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Which service a one-shot request talks to.
#[derive(Clone, Copy, Debug)]
pub enum Service {
    Http,
    Echo,
    Kv,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Http => "serve",
            Service::Echo => "echo",
            Service::Kv => "kv",
        }
    }
}

/// How a one-shot request ended.
#[derive(Debug)]
pub enum Outcome {
    Ok,
    /// The connection was refused (or could not be made).
    Refused(io::Error),
    /// Connected, but the answer was missing, cut or wrong.
    Failed(String),
}

/// Connects, sends one request of `service`, reads its whole answer, checks it.
pub fn one_shot(service: Service, addr: SocketAddr, seq: u64) -> Outcome {
    let mut stream = match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
        Ok(stream) => stream,
        Err(e) => return Outcome::Refused(e),
    };
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let result = match service {
        Service::Http => http_once(&mut stream),
        Service::Echo => echo_once(&mut stream, seq),
        Service::Kv => kv_once(&mut stream),
    };
    match result {
        Ok(()) => Outcome::Ok,
        Err(e) => Outcome::Failed(e),
    }
}

fn http_once(stream: &mut TcpStream) -> Result<(), String> {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("read: {e} after {} bytes", response.len()))?;
    let text = String::from_utf8_lossy(&response);
    if text.starts_with("HTTP/1.1 200 OK") && text.ends_with("Hello, World!") {
        Ok(())
    } else {
        Err(format!("bad response {text:?}"))
    }
}

fn echo_once(stream: &mut TcpStream, seq: u64) -> Result<(), String> {
    let message = format!("echo {seq} through the restart\n");
    stream
        .write_all(message.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut got = vec![0; message.len()];
    stream
        .read_exact(&mut got)
        .map_err(|e| format!("read: {e}"))?;
    if got == message.as_bytes() {
        Ok(())
    } else {
        Err(format!("echoed {:?}", String::from_utf8_lossy(&got)))
    }
}

fn kv_once(stream: &mut TcpStream) -> Result<(), String> {
    stream
        .write_all(b"*1\r\n$4\r\nPING\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut got = [0u8; 7];
    stream
        .read_exact(&mut got)
        .map_err(|e| format!("read: {e}"))?;
    if &got == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(format!("answered {:?}", String::from_utf8_lossy(&got)))
    }
}

/// What a load loop saw.
#[derive(Default)]
pub struct Tally {
    pub ok: AtomicU64,
    pub refused: AtomicU64,
    pub failed: AtomicU64,
    /// The first few problems, for the failure message.
    pub problems: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
    pub fn problems(&self) -> Vec<String> {
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// `clients` threads each making one-shot requests back to back until `stop` is set or
/// `limit` passes (bounded either way).
pub fn spawn_load(
    service: Service,
    addr: SocketAddr,
    clients: usize,
    stop: Arc<AtomicBool>,
    limit: Duration,
) -> (Arc<Tally>, Vec<thread::JoinHandle<()>>) {
    let tally = Arc::new(Tally::default());
    let threads = (0..clients)
        .map(|client| {
            let (stop, tally) = (stop.clone(), tally.clone());
            thread::spawn(move || {
                let deadline = Instant::now() + limit;
                let mut seq = (client as u64) << 40;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    seq += 1;
                    let problem = match one_shot(service, addr, seq) {
                        Outcome::Ok => {
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                        Outcome::Refused(e) => {
                            tally.refused.fetch_add(1, Ordering::Relaxed);
                            Some(format!("refused: {e}"))
                        }
                        Outcome::Failed(e) => {
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                            Some(format!("failed: {e}"))
                        }
                    };
                    if let Some(problem) = problem {
                        let mut problems = tally.problems.lock().unwrap_or_else(|p| p.into_inner());
                        if problems.len() < 10 {
                            problems.push(problem);
                        }
                        // A refused connection fails at once: do not spin on it.
                        thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();
    (tally, threads)
}

/// `METHOD PATH` over a fresh connection: the status code and the body.
pub fn http_call(addr: SocketAddr, method: &str, path: &str) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{text:?}")))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

/// Polls `check` every 10 ms until it holds or `limit` passes; whether it held. For states
/// another process reaches with no event this process can wait on.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

//! Test support: a loopback TCP proxy that injects network faults on chosen connections
//! (this kernel has no netem, and tests may not need root). Each accepted connection gets the
//! [`Fault`] its plan picks for its index; two threads per connection copy the bytes, one per
//! direction, with every read bounded by a timeout so the proxy never hangs a test.
//!
//! - `Latency`: every segment waits before it is forwarded, both ways.
//! - `TinySegments`: bytes are forwarded one per write (`TCP_NODELAY`), both ways.
//! - `Stall`: after `after` bytes from the client, forwarding stops for a while, once.
//! - `HalfClose`: after `after` bytes from the client, the server side gets a FIN (its reads
//!   end) while its responses still flow back; later client bytes are read and dropped.
//! - `Reset`: after `after` bytes from the client, both sockets are closed with an RST.

#![allow(dead_code)]

use std::{
    io::{ErrorKind, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

/// What the proxy does to one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    Latency(Duration),
    TinySegments,
    Stall { after: usize, pause: Duration },
    HalfClose { after: usize },
    Reset { after: usize },
}

impl Fault {
    /// Whether every request on the connection must still be answered.
    pub fn is_benign(self) -> bool {
        matches!(
            self,
            Fault::None | Fault::Latency(_) | Fault::TinySegments | Fault::Stall { .. }
        )
    }
}

/// The longest any proxy read waits; a connection idle this long is given up.
const IDLE_LIMIT: Duration = Duration::from_secs(20);

pub struct Proxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    cuts: Arc<AtomicUsize>,
    active: Arc<AtomicUsize>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`; connection `i` (in accept
    /// order) gets `plan(i)`.
    pub fn start(
        upstream: SocketAddr,
        plan: impl Fn(usize) -> Fault + Send + Sync + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        let addr = listener.local_addr().expect("proxy address");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let cuts = Arc::new(AtomicUsize::new(0));
        let active = Arc::new(AtomicUsize::new(0));
        let (stop2, accepted2, cuts2, active2) =
            (stop.clone(), accepted.clone(), cuts.clone(), active.clone());
        let acceptor = thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let index = accepted2.fetch_add(1, Ordering::Relaxed);
                let fault = plan(index);
                let (cuts, active) = (cuts2.clone(), active2.clone());
                active.fetch_add(1, Ordering::Relaxed);
                thread::spawn(move || {
                    if let Ok(server) = TcpStream::connect(upstream) {
                        relay(client, server, fault, cuts);
                    }
                    active.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
        Proxy {
            addr,
            stop,
            accepted,
            cuts,
            active,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections the proxy has accepted.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections the proxy is still relaying.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Half-closes and resets actually injected (a connection can end before its cut point).
    pub fn cuts(&self) -> usize {
        self.cuts.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the blocking accept so the acceptor sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Copies both directions of one connection, applying `fault`.
fn relay(client: TcpStream, server: TcpStream, fault: Fault, cuts: Arc<AtomicUsize>) {
    for s in [&client, &server] {
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(IDLE_LIMIT));
    }
    let (Ok(client_r), Ok(server_w)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let reset = Arc::new(AtomicBool::new(false));
    let reset2 = reset.clone();
    let upstream = thread::spawn(move || {
        client_to_server(client_r, server_w, fault, &cuts, &reset2);
    });
    // Server → client.
    pump(server, client, fault, usize::MAX, &reset);
    let _ = upstream.join();
}

fn client_to_server(
    client: TcpStream,
    server: TcpStream,
    fault: Fault,
    cuts: &AtomicUsize,
    reset: &AtomicBool,
) {
    let after = match fault {
        Fault::Stall { after, .. } | Fault::HalfClose { after } | Fault::Reset { after } => after,
        _ => usize::MAX,
    };
    let (Ok(client_ref), Ok(server_ref)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    if !pump(client, server, fault, after, reset) {
        return;
    }
    let (client, server) = (client_ref, server_ref);
    match fault {
        Fault::Stall { pause, .. } => {
            // The fault itself is the wait: nothing moves upstream for `pause`.
            thread::sleep(pause);
            pump(client, server, Fault::None, usize::MAX, reset);
        }
        Fault::HalfClose { .. } => {
            cuts.fetch_add(1, Ordering::Relaxed);
            let _ = server.shutdown(Shutdown::Write);
            // Keep reading the client so its writes never block; drop what it sends.
            let mut sink = [0u8; 4096];
            let mut client = client;
            while matches!(client.read(&mut sink), Ok(n) if n > 0) {}
        }
        Fault::Reset { .. } => {
            cuts.fetch_add(1, Ordering::Relaxed);
            // Set before the reads end, so the other direction does not pass on a FIN.
            reset.store(true, Ordering::SeqCst);
            for s in [&client, &server] {
                set_linger_zero(s);
                // Ends the other direction's read (Linux sends nothing on SHUT_RD); the last
                // close of each socket then sends the RST.
                let _ = s.shutdown(Shutdown::Read);
            }
        }
        _ => {}
    }
}

/// Copies `from` → `to` until EOF, an error, or `limit` bytes (then returns true). On EOF
/// it passes the half-close on, unless the connection is being reset.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    fault: Fault,
    limit: usize,
    reset: &AtomicBool,
) -> bool {
    let mut buf = [0u8; 16 * 1024];
    let mut copied = 0usize;
    let pass_on_eof = |to: &TcpStream| {
        if !reset.load(Ordering::SeqCst) {
            let _ = to.shutdown(Shutdown::Write);
        }
    };
    loop {
        let want = buf.len().min(limit - copied);
        if want == 0 {
            return true;
        }
        let n = match from.read(&mut buf[..want]) {
            Ok(0) => {
                pass_on_eof(&to);
                return false;
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                pass_on_eof(&to);
                return false;
            }
        };
        let sent = match fault {
            Fault::Latency(delay) => {
                thread::sleep(delay);
                to.write_all(&buf[..n])
            }
            Fault::TinySegments => buf[..n]
                .iter()
                .try_for_each(|b| to.write_all(std::slice::from_ref(b))),
            _ => to.write_all(&buf[..n]),
        };
        if sent.is_err() {
            let _ = from.shutdown(Shutdown::Read);
            return false;
        }
        copied += n;
    }
}

/// SO_LINGER {on, 0}: the socket's last close sends RST instead of FIN.
fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `stream` owns a valid socket fd; `linger` is a valid `struct linger` that
    // outlives the call, and its size is passed.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

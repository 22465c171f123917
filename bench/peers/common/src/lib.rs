//! What every Rust peer shares, so that none gets a trick the others lack:
//!
//! - [`Args`]: `--listen ADDR --threads N` (pinning is left to `taskset`);
//! - [`Response`]: the exact bytes every server answers `GET /` with,
//!   `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nDate: <IMF-fixdate>\r\n\r\nHello, World!`,
//!   with the Date refreshed when the second changes;
//! - [`RequestEnds`]: counts `\r\n\r\n` request ends across reads (pipelining, split reads);
//! - [`reuseport_listener`]: a non-blocking TCP listener with `SO_REUSEPORT`, one per thread.

use std::{
    io,
    net::{SocketAddr, TcpListener},
    time::{SystemTime, UNIX_EPOCH},
};

use socket2::{Domain, Protocol, Socket, Type};

/// Command line of every Rust peer.
#[derive(Debug, Clone)]
pub struct Args {
    pub listen: SocketAddr,
    pub threads: usize,
}

impl Args {
    /// Parses `--listen ADDR` (default 127.0.0.1:8080) and `--threads N` (default 1);
    /// exits with status 2 on anything else.
    pub fn parse(name: &str) -> Args {
        let mut args = Args {
            listen: "127.0.0.1:8080".parse().expect("default address"),
            threads: 1,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next();
            match (flag.as_str(), value) {
                ("--listen", Some(v)) => {
                    args.listen = v.parse().unwrap_or_else(|e| usage(name, &format!("{v}: {e}")))
                }
                ("--threads", Some(v)) => {
                    args.threads = match v.parse() {
                        Ok(n) if n > 0 => n,
                        _ => usage(name, &format!("--threads {v}: need a number > 0")),
                    }
                }
                _ => usage(name, &format!("unknown argument {flag}")),
            }
        }
        args
    }
}

fn usage(name: &str, why: &str) -> ! {
    eprintln!("{name}: {why}\nusage: {name} [--listen 127.0.0.1:8080] [--threads 1]");
    std::process::exit(2)
}

/// Starts `threads - 1` more threads running `f(i)` and runs `f(0)` on this one; returns when
/// all have returned (they serve until killed).
pub fn run_threads<F>(threads: usize, f: F)
where
    F: Fn(usize) + Send + Sync + Clone + 'static,
{
    let handles: Vec<_> = (1..threads)
        .map(|i| {
            let f = f.clone();
            std::thread::Builder::new()
                .name(format!("peer-{i}"))
                .spawn(move || f(i))
                .expect("spawn thread")
        })
        .collect();
    f(0);
    for h in handles {
        let _ = h.join();
    }
}

/// A TCP listener on `addr` with `SO_REUSEADDR` and `SO_REUSEPORT` (one per thread, the
/// kernel spreads connections), backlog 4096, non-blocking.
pub fn reuseport_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// The response body every server sends.
pub const BODY: &[u8] = b"Hello, World!";
const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nDate: ";
const TAIL: &[u8] = b"\r\n\r\nHello, World!";
/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const DATE_LEN: usize = 29;
/// Length of the whole response.
pub const RESPONSE_LEN: usize = HEAD.len() + DATE_LEN + TAIL.len();

/// The fixed response, its Date rewritten when the wall-clock second changes.
pub struct Response {
    bytes: [u8; RESPONSE_LEN],
    second: u64,
}

impl Default for Response {
    fn default() -> Self {
        Self::new()
    }
}

impl Response {
    pub fn new() -> Response {
        let mut bytes = [0u8; RESPONSE_LEN];
        bytes[..HEAD.len()].copy_from_slice(HEAD);
        bytes[HEAD.len() + DATE_LEN..].copy_from_slice(TAIL);
        let mut r = Response {
            bytes,
            second: u64::MAX,
        };
        r.refresh();
        r
    }

    /// Rewrites the Date if the second changed since the last call (one vDSO clock read).
    pub fn refresh(&mut self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if now != self.second {
            self.second = now;
            let date = imf_fixdate(now);
            self.bytes[HEAD.len()..HEAD.len() + DATE_LEN].copy_from_slice(&date);
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Appends `n` copies of the response to `out`.
    pub fn append(&self, out: &mut Vec<u8>, n: usize) {
        out.reserve(n * RESPONSE_LEN);
        for _ in 0..n {
            out.extend_from_slice(&self.bytes);
        }
    }
}

/// `secs` since the Unix epoch as an IMF-fixdate (RFC 9110 §5.6.7).
pub fn imf_fixdate(secs: u64) -> [u8; DATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (hour, min, sec) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let weekday = DAYS[(days % 7) as usize];
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = [0u8; DATE_LEN];
    let two = |v: u64| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
    out[0..3].copy_from_slice(weekday);
    out[3..5].copy_from_slice(b", ");
    out[5..7].copy_from_slice(&two(day as u64));
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    out[11] = b' ';
    let y = year as u64;
    out[12..16].copy_from_slice(&[
        b'0' + (y / 1000 % 10) as u8,
        b'0' + (y / 100 % 10) as u8,
        b'0' + (y / 10 % 10) as u8,
        b'0' + (y % 10) as u8,
    ]);
    out[16] = b' ';
    out[17..19].copy_from_slice(&two(hour));
    out[19] = b':';
    out[20..22].copy_from_slice(&two(min));
    out[22] = b':';
    out[23..25].copy_from_slice(&two(sec));
    out[25..29].copy_from_slice(b" GMT");
    out
}

/// Counts HTTP/1.1 request ends (`\r\n\r\n`) in a byte stream fed in arbitrary pieces. Enough
/// for `GET` without a body, which is all these benchmarks send.
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestEnds {
    /// How many bytes of `\r\n\r\n` the stream currently ends with (0..=3).
    matched: u8,
}

impl RequestEnds {
    /// Feeds `bytes`; returns how many requests ended inside them.
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        let mut ends = 0;
        let mut m = self.matched;
        for &b in bytes {
            m = match (m, b) {
                (0 | 2, b'\r') => m + 1,
                (1, b'\n') => 2,
                (3, b'\n') => {
                    ends += 1;
                    0
                }
                (_, b'\r') => 1,
                _ => 0,
            };
        }
        self.matched = m;
        ends
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&imf_fixdate(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&imf_fixdate(1_798_761_599), b"Thu, 31 Dec 2026 23:59:59 GMT");
    }

    #[test]
    fn response_bytes() {
        let r = Response::new();
        let s = std::str::from_utf8(r.bytes()).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nDate: "));
        assert!(s.ends_with(" GMT\r\n\r\nHello, World!"));
        assert_eq!(s.len(), RESPONSE_LEN);
    }

    #[test]
    fn counts_request_ends_across_splits() {
        let req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
        let stream: Vec<u8> = req.iter().copied().cycle().take(req.len() * 16).collect();
        for split in 1..stream.len() {
            let mut c = RequestEnds::default();
            let n: usize = stream.chunks(split).map(|ch| c.feed(ch)).sum();
            assert_eq!(n, 16, "split {split}");
        }
        let mut c = RequestEnds::default();
        assert_eq!(c.feed(b"\r\r\n\r\nGET"), 1);
    }
}

//! `percore serve --access-log`: one line per response on stdout, with the real client from
//! a trusted proxy's PROXY header; lines still buffered at a stop are written before the
//! process exits; without the flag, stdout stays empty.

#[path = "support/process.rs"]
mod process;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use process::{free_addr, sigterm, wait_exit, wait_until_listening};

/// `percore serve` on 2 shards behind a trusted proxy at 127.0.0.1, `extra` flags added;
/// stdout lines come through the returned channel.
fn serve(extra: &[&str]) -> (Child, String, mpsc::Receiver<String>) {
    let addr = free_addr();
    let mut child = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args(["serve", "--listen", &addr, "--shards", "2"])
        .args(["--drain-delay", "0", "--drain-timeout-secs", "2"])
        .args(["--proxy-protocol", "--proxy-from", "127.0.0.1/32"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_listening(&mut child);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, addr, rx)
}

/// Sends `request` after a PROXY v1 header naming `client`, reads until the server closes.
fn via_proxy(addr: &str, client: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let header = format!("PROXY TCP4 {client} 127.0.0.1 40001 8080\r\n");
    stream.write_all(header.as_bytes()).unwrap();
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks the documented fields of one line; returns (status, bytes).
fn fields<'a>(line: &'a str, client: &str, request_line: &str) -> (&'a str, &'a str) {
    let (head, rest) = line.split_once(" [").expect(line);
    assert_eq!(head, format!("{client} - -"), "{line}");
    let (date, rest) = rest.split_once("] \"").expect(line);
    assert!(date.ends_with(" GMT") && date.len() == 29, "{line}");
    let (request, rest) = rest.split_once("\" ").expect(line);
    assert_eq!(request, request_line, "{line}");
    let parts: Vec<&str> = rest.split(' ').collect();
    assert_eq!(parts.len(), 4, "status bytes µs shard: {line}");
    let micros: u64 = parts[2].parse().expect(line);
    assert!(micros < 5_000_000, "{line}");
    assert!(parts[3] == "0" || parts[3] == "1", "shard: {line}");
    (parts[0], parts[1])
}

#[test]
fn the_access_log_names_the_client_a_trusted_proxy_sent() {
    let (mut child, addr, lines) = serve(&["--access-log"]);
    let request = b"GET /ip HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let response = via_proxy(&addr, "203.0.113.7", request);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // Written while the server runs (the shard's buffer goes out 50 ms after its line).
    let line = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("an access log line while the server runs");
    let (status, bytes) = fields(&line, "203.0.113.7", "GET /ip HTTP/1.1");
    assert_eq!(status, "200");
    assert_eq!(bytes.parse::<usize>().unwrap(), response.len(), "{line}");

    // A request the parser refuses still gets its line, and one left in a shard's buffer at
    // the stop is written before the process exits.
    let refused = via_proxy(&addr, "198.51.100.2", b"GET / HTTP/9.9\r\n\r\n");
    assert!(refused.starts_with("HTTP/1.1 505"), "{refused}");
    let async_route = via_proxy(
        &addr,
        "198.51.100.3",
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));
    let rest: Vec<String> = lines.iter().collect();
    let refused_line = rest
        .iter()
        .find(|l| l.starts_with("198.51.100.2 "))
        .unwrap_or_else(|| panic!("no line for the refused request in {rest:?}"));
    assert_eq!(fields(refused_line, "198.51.100.2", "-").0, "505");
    // An async route's line (the response comes from a task).
    assert!(async_route.starts_with("HTTP/1.1 200"), "{async_route}");
    let line = rest
        .iter()
        .find(|l| l.starts_with("198.51.100.3 "))
        .unwrap_or_else(|| panic!("no line for the async request in {rest:?}"));
    let (status, bytes) = fields(line, "198.51.100.3", "GET /healthz HTTP/1.1");
    assert_eq!(status, "200");
    assert_eq!(bytes.parse::<usize>().unwrap(), async_route.len(), "{line}");
}

#[test]
fn without_the_flag_nothing_is_logged() {
    let (mut child, addr, lines) = serve(&[]);
    let response = via_proxy(
        &addr,
        "203.0.113.7",
        b"GET /ip HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));
    let out: Vec<String> = lines.iter().collect();
    assert!(out.is_empty(), "stdout without --access-log: {out:?}");
}

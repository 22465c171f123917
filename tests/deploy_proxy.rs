//! The PROXY protocol on accept, through the `percore` binary: from a trusted peer, a v1 or
//! v2 header gives handlers the real client (HTTP `/ip`, kv `CLIENT INFO`); a bad,
//! truncated, missing or late header closes the connection and is counted; an untrusted
//! peer is served directly but closed if it sends a header.

#[path = "support/binary.rs"]
mod binary;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use binary::Server;

/// Sends `bytes` on a new connection and reads until the server closes (bounded).
fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut out = Vec::new();
    // A reset (the server closing with unread input) ends the read as well.
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn v2_tcp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, tlvs: &[u8]) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.extend_from_slice(&[0x21, 0x11]);
    out.extend_from_slice(&((12 + tlvs.len()) as u16).to_be_bytes());
    out.extend_from_slice(&src);
    out.extend_from_slice(&dst);
    out.extend_from_slice(&sport.to_be_bytes());
    out.extend_from_slice(&dport.to_be_bytes());
    out.extend_from_slice(tlvs);
    out
}

const GET_IP: &[u8] = b"GET /ip HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn a_trusted_proxy_gives_http_handlers_the_real_client_and_bad_headers_are_closed() {
    let server = Server::start(
        "serve",
        &[
            "--shards",
            "2",
            "--proxy-protocol",
            "--proxy-from",
            "10.0.0.0/8,127.0.0.1",
            "--proxy-header-timeout",
            "0.5",
        ],
    );
    let addr = server.addr;
    let v1 = [
        &b"PROXY TCP4 203.0.113.7 10.0.0.1 40001 8080\r\n"[..],
        GET_IP,
    ]
    .concat();
    let response = exchange(addr, &v1);
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert_eq!(body(&response), "203.0.113.7:40001\n");

    let tlv = [0x04, 0x00, 0x02, 0xab, 0xcd]; // a NOOP TLV
    let v2 = [
        v2_tcp4([198, 51, 100, 9], 50002, [10, 0, 0, 1], 8080, &tlv),
        GET_IP.to_vec(),
    ]
    .concat();
    assert_eq!(body(&exchange(addr, &v2)), "198.51.100.9:50002\n");

    // v2 LOCAL (a health check of the proxy itself): the connection's own peer stands.
    let mut local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec();
    local.extend_from_slice(GET_IP);
    assert!(body(&exchange(addr, &local)).starts_with("127.0.0.1:"));

    // Refused: no header, a bad one, TLVs overrunning, a v1 line over 107 bytes, too late.
    for bad in [
        GET_IP.to_vec(),
        [
            &b"PROXY TCP4 203.0.113.7 10.0.0.1 99999 8080\r\n"[..],
            GET_IP,
        ]
        .concat(),
        [
            v2_tcp4([1, 2, 3, 4], 1, [5, 6, 7, 8], 2, &[0x04, 0x00, 0x09, 0x00]),
            GET_IP.to_vec(),
        ]
        .concat(),
        [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 120]].concat(),
        b"PROXY TCP4 203.0.".to_vec(),
    ] {
        let response = exchange(addr, &bad);
        assert_eq!(
            response,
            "",
            "closed without an answer for {:?}",
            String::from_utf8_lossy(&bad)
        );
    }
    let metrics = server.metrics();
    assert_eq!(
        metrics.sum_with("percore_proxy_headers_total", "kind=\"proxied\""),
        2.0
    );
    assert_eq!(
        metrics.sum_with("percore_proxy_headers_total", "kind=\"local\""),
        1.0
    );
    for (reason, count) in [
        ("signature", 1.0),
        ("v1", 1.0),
        ("v2", 1.0),
        ("too_long", 1.0),
        ("timeout", 1.0),
    ] {
        assert_eq!(
            metrics.sum_with(
                "percore_proxy_rejected_total",
                &format!("reason=\"{reason}\"")
            ),
            count,
            "{reason}"
        );
    }
    assert_eq!(
        metrics.sum("percore_http_responses_total"),
        3.0,
        "only the good ones were served"
    );
}

#[test]
fn an_untrusted_peer_is_served_directly_and_closed_if_it_sends_a_header() {
    let server = Server::start(
        "serve",
        &[
            "--shards",
            "1",
            "--proxy-protocol",
            "--proxy-from",
            "10.0.0.0/8",
        ],
    );
    let direct = exchange(server.addr, GET_IP);
    assert!(body(&direct).starts_with("127.0.0.1:"), "{direct}");
    let forged = [
        &b"PROXY TCP4 203.0.113.7 10.0.0.1 40001 8080\r\n"[..],
        GET_IP,
    ]
    .concat();
    assert_eq!(exchange(server.addr, &forged), "");
    let v2 = [
        v2_tcp4([1, 2, 3, 4], 1, [5, 6, 7, 8], 2, &[]),
        GET_IP.to_vec(),
    ]
    .concat();
    assert_eq!(exchange(server.addr, &v2), "");
    let metrics = server.metrics();
    assert_eq!(
        metrics.sum_with("percore_proxy_rejected_total", "reason=\"untrusted\""),
        2.0
    );
}

#[test]
fn kv_client_info_shows_the_real_client() {
    let server = Server::start(
        "kv",
        &[
            "--shards",
            "2",
            "--proxy-protocol",
            "--proxy-from",
            "127.0.0.0/8",
        ],
    );
    let mut request = v2_tcp4([192, 0, 2, 44], 61000, [10, 0, 0, 1], 6380, &[]);
    request.extend_from_slice(b"*2\r\n$6\r\nCLIENT\r\n$4\r\nINFO\r\n*1\r\n$4\r\nQUIT\r\n");
    let reply = exchange(server.addr, &request);
    assert!(reply.contains("addr=192.0.2.44:61000 "), "{reply}");
}

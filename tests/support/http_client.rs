//! Test support: a small blocking HTTP/1.1 client for requests that carry an id. Every
//! request is `POST /echo` with a body that starts with its id, so the response names the
//! request it answers (the demo service echoes the body).

#![allow(dead_code)]

use std::io::{self, BufRead};

/// How a request frames its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    ContentLength,
    Chunked,
}

/// The body of request `id`: `id=<16 hex digits>;` then `len - 20` bytes derived from the id.
pub fn body_for(id: u64, len: usize) -> Vec<u8> {
    let mut body = format!("id={id:016x};").into_bytes();
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while body.len() < len.max(20) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.push(b'a' + (x % 26) as u8);
    }
    body
}

/// The id a body starts with, if it starts like [`body_for`]'s.
pub fn id_of(body: &[u8]) -> Option<u64> {
    let hex = body.strip_prefix(b"id=")?.get(..16)?;
    u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// `POST /echo` carrying `body`, keep-alive unless `close`.
pub fn echo_request(body: &[u8], framing: Framing, close: bool) -> Vec<u8> {
    let mut req = b"POST /echo HTTP/1.1\r\nHost: test\r\n".to_vec();
    if close {
        req.extend_from_slice(b"Connection: close\r\n");
    }
    match framing {
        Framing::ContentLength => {
            req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            req.extend_from_slice(body);
        }
        Framing::Chunked => {
            req.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            // Two chunks, so the decoder's boundary is crossed.
            let (a, b) = body.split_at(body.len() / 2);
            for chunk in [a, b] {
                req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                req.extend_from_slice(chunk);
                req.extend_from_slice(b"\r\n");
            }
            req.extend_from_slice(b"0\r\n\r\n");
        }
    }
    req
}

/// One response as the client read it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// The server said `Connection: close`.
    pub close: bool,
}

/// Reads one response framed by `Content-Length` (every demo response is). `Ok(None)`: the
/// connection ended cleanly before its first byte.
pub fn read_response(reader: &mut impl BufRead) -> io::Result<Option<Response>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad(format!("not a status line: {line:?}")))?;
    let mut length = None;
    let mut close = false;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let field = line.trim_end();
        if field.is_empty() {
            break;
        }
        let (name, value) = field
            .split_once(':')
            .ok_or_else(|| bad(format!("not a field line: {field:?}")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse().map_err(|_| bad("bad Content-Length"))?);
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            close = true;
        }
    }
    let length: usize = length.ok_or_else(|| bad("a response without Content-Length"))?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Response {
        status,
        body,
        close,
    }))
}

fn bad(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

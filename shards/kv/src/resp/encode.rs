//! Reply encoders: each appends one value to an output buffer, without allocating.
//!
//! Most values are spelt the same in RESP2 and RESP3. The ones that differ (null, map,
//! set, double) follow the protocol of the connection whose command is being answered:
//! a flag of the shard thread, set with [`set_protocol`] right before a command runs or
//! its reply is written (the code between is synchronous, so no other connection's
//! command runs in between), and back to RESP2 after each batch.

use std::cell::Cell;

thread_local! {
    static RESP3: Cell<bool> = const { Cell::new(false) };
}

/// Encodes the next replies for a RESP3 (`true`) or a RESP2 connection.
pub fn set_protocol(resp3: bool) {
    RESP3.with(|r| r.set(resp3));
}

/// Whether replies are being encoded for a RESP3 connection.
pub fn resp3() -> bool {
    RESP3.with(Cell::get)
}

/// A map header of `len` pairs: `%len` (RESP3) or an array of `2 × len` (RESP2).
pub fn map(out: &mut Vec<u8>, len: usize) {
    if resp3() {
        out.push(b'%');
        push_int(out, len as i64);
        out.extend_from_slice(b"\r\n");
    } else {
        array(out, len * 2);
    }
}

/// A set header: `~len` (RESP3) or an array (RESP2).
pub fn set(out: &mut Vec<u8>, len: usize) {
    if resp3() {
        out.push(b'~');
        push_int(out, len as i64);
        out.extend_from_slice(b"\r\n");
    } else {
        array(out, len);
    }
}

/// A double already formatted (`text`): `,text` (RESP3) or a bulk string (RESP2).
pub fn double_text(out: &mut Vec<u8>, text: &str) {
    if resp3() {
        out.push(b',');
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    } else {
        bulk(out, text.as_bytes());
    }
}

/// `+OK`.
pub fn ok(out: &mut Vec<u8>) {
    out.extend_from_slice(b"+OK\r\n");
}

/// A simple string: `+<s>`.
pub fn simple(out: &mut Vec<u8>, s: &str) {
    out.push(b'+');
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// An error: `-<message>` (the message starts with its code, e.g. `ERR ...`). CR and LF in
/// the message become spaces so the reply stays one line.
pub fn error(out: &mut Vec<u8>, message: &str) {
    out.push(b'-');
    out.extend(
        message
            .bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// An integer: `:<n>`.
pub fn integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    push_int(out, n);
    out.extend_from_slice(b"\r\n");
}

/// A bulk string: `$<len>` and the bytes.
pub fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    out.push(b'$');
    push_int(out, data.len() as i64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// A bulk string holding the decimal form of `n`.
pub fn bulk_int(out: &mut Vec<u8>, n: i64) {
    let mut digits = Vec::with_capacity(20);
    push_int(&mut digits, n);
    bulk(out, &digits);
}

/// The null bulk string: `$-1` (RESP3: `_`).
pub fn null(out: &mut Vec<u8>) {
    if resp3() {
        out.extend_from_slice(b"_\r\n");
    } else {
        out.extend_from_slice(b"$-1\r\n");
    }
}

/// The null array: `*-1` (RESP3: `_`).
pub fn null_array(out: &mut Vec<u8>) {
    if resp3() {
        out.extend_from_slice(b"_\r\n");
    } else {
        out.extend_from_slice(b"*-1\r\n");
    }
}

/// An array header: `*<len>`; the caller appends `len` values.
pub fn array(out: &mut Vec<u8>, len: usize) {
    out.push(b'*');
    push_int(out, len as i64);
    out.extend_from_slice(b"\r\n");
}

/// Appends the decimal digits of `n`.
pub fn push_int(out: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

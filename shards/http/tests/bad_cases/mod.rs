//! The table of bad requests and their statuses, shared by the sans-IO tests and the tests
//! against a running server.

#![allow(dead_code)]

/// `HTTP/1.1` request head with `Host: a` and the given extra field lines.
pub fn get(fields: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: a\r\n{fields}\r\n").into_bytes()
}

pub fn post(fields: &str, body: &str) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: a\r\n{fields}\r\n{body}").into_bytes()
}

pub fn chunked(body: &str) -> Vec<u8> {
    post("Transfer-Encoding: chunked\r\n", body)
}

pub fn line(request_line: &str) -> Vec<u8> {
    format!("{request_line}\r\nHost: a\r\n\r\n").into_bytes()
}

pub fn raw(s: &[u8]) -> Vec<u8> {
    s.to_vec()
}

pub fn chunked_with(coding: &str) -> Vec<u8> {
    post(&format!("Transfer-Encoding: {coding}\r\n"), "0\r\n\r\n")
}

pub fn cases() -> Vec<(&'static str, Vec<u8>, u16)> {
    let long_target = format!("GET /{} HTTP/1.1", "a".repeat(8 * 1024));
    let many_fields: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    let big_block: String = (0..17)
        .map(|i| format!("X-{i}: {}\r\n", "v".repeat(1000)))
        .collect();
    let huge_field = format!("X: {}\r\n", "v".repeat(16 * 1024));
    let many_trailers: String = (0..101).map(|i| format!("T-{i}: v\r\n")).collect();
    let big_trailer = format!("T: {}\r\n", "v".repeat(16 * 1024));
    vec![
        // Content-Length and Transfer-Encoding together, in either order.
        (
            "CL+TE",
            post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
            400,
        ),
        (
            "TE+CL",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                "0\r\n\r\n",
            ),
            400,
        ),
        (
            "CL+unknown TE",
            post("Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n", ""),
            400,
        ),
        (
            "CL+TE on 1.0",
            raw(b"POST / HTTP/1.0\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400,
        ),
        // Content-Length values.
        (
            "duplicate CL, same value",
            post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
            400,
        ),
        (
            "duplicate CL, different values",
            post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
            400,
        ),
        (
            "duplicate CL, other case",
            post("Content-Length: 0\r\ncontent-LENGTH: 0\r\n", ""),
            400,
        ),
        ("CL list", post("Content-Length: 5, 5\r\n", "hello"), 400),
        ("CL plus sign", post("Content-Length: +5\r\n", "hello"), 400),
        ("CL negative", post("Content-Length: -1\r\n", ""), 400),
        ("CL hex", post("Content-Length: 0x5\r\n", "hello"), 400),
        ("CL inner space", post("Content-Length: 5 5\r\n", ""), 400),
        ("CL inner tab", post("Content-Length: 5\t5\r\n", ""), 400),
        ("CL empty", post("Content-Length:\r\n", ""), 400),
        (
            "CL overflow",
            post("Content-Length: 99999999999999999999\r\n", ""),
            400,
        ),
        (
            "CL trailing letter",
            post("Content-Length: 5a\r\n", "hello"),
            400,
        ),
        (
            "CL decimal point",
            post("Content-Length: 5.0\r\n", "hello"),
            400,
        ),
        // Transfer-Encoding.
        (
            "TE on HTTP/1.0",
            raw(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            400,
        ),
        ("TE chunked, gzip", chunked_with("chunked, gzip"), 400),
        (
            "TE chunked twice in a list",
            chunked_with("chunked, chunked"),
            400,
        ),
        (
            "TE chunked on two lines",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                "",
            ),
            400,
        ),
        ("TE trailing comma", chunked_with("chunked,"), 400),
        ("TE empty", chunked_with(""), 400),
        ("TE with parameter", chunked_with("chunked;q=1"), 400),
        ("TE vertical tab", chunked_with("\x0bchunked"), 400),
        ("TE xchunked", chunked_with("xchunked"), 501),
        ("TE gzip", chunked_with("gzip"), 501),
        ("TE gzip, chunked", chunked_with("gzip, chunked"), 501),
        ("TE identity", chunked_with("identity"), 501),
        (
            "TE gzip then chunked lines",
            post(
                "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                "",
            ),
            501,
        ),
        // Chunked body framing.
        ("chunk size not hex", chunked("zz\r\n"), 400),
        ("chunk size negative", chunked("-1\r\n"), 400),
        ("chunk size 0x prefix", chunked("0x10\r\n"), 400),
        ("chunk size overflow", chunked("1ffffffffffffffff\r\n"), 400),
        ("chunk size empty", chunked("\r\nhello\r\n0\r\n\r\n"), 400),
        (
            "chunk size leading space",
            chunked(" 5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        (
            "chunk size trailing space",
            chunked("5 \r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        ("chunk size bare LF", chunked("5\nhello\r\n0\r\n\r\n"), 400),
        (
            "chunk data without CRLF",
            chunked("5\r\nhelloXX0\r\n\r\n"),
            400,
        ),
        (
            "chunk data longer than size",
            chunked("3\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        ("chunk data bare LF", chunked("5\r\nhello\n0\r\n\r\n"), 400),
        (
            "chunk extension bare CR",
            chunked("5;a\rb\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        (
            "chunk extension NUL",
            chunked("5;a=\0\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        (
            "chunk extension too long",
            chunked(&format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(5000))),
            400,
        ),
        ("last chunk bare LF", chunked("0\r\n\n"), 400),
        ("trailer obs-fold", chunked("0\r\nT: a\r\n b\r\n\r\n"), 400),
        ("trailer without colon", chunked("0\r\nT\r\n\r\n"), 400),
        (
            "trailer space before colon",
            chunked("0\r\nT : a\r\n\r\n"),
            400,
        ),
        (
            "too many trailers",
            chunked(&format!("0\r\n{many_trailers}\r\n")),
            431,
        ),
        (
            "trailer section too large",
            chunked(&format!("0\r\n{big_trailer}\r\n")),
            431,
        ),
        ("chunked body too large", chunked("100001\r\n"), 413),
        // Line endings and folding.
        (
            "bare LF after request line",
            raw(b"GET / HTTP/1.1\nHost: a\r\n\r\n"),
            400,
        ),
        (
            "bare LF after field",
            raw(b"GET / HTTP/1.1\r\nHost: a\n\r\n"),
            400,
        ),
        (
            "bare LF ends head",
            raw(b"GET / HTTP/1.1\r\nHost: a\r\n\n"),
            400,
        ),
        (
            "bare LF leading line",
            raw(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            400,
        ),
        ("bare CR in value", get("X: a\rb\r\n"), 400),
        ("bare CR in request line", line("GET /\r HTTP/1.1"), 400),
        ("obs-fold", get("X: a\r\n b\r\n"), 400),
        ("obs-fold with tab", get("X: a\r\n\tb\r\n"), 400),
        (
            "whitespace before first field",
            raw(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n"),
            400,
        ),
        // Field syntax.
        ("space before colon", get("Content-Length : 0\r\n"), 400),
        ("tab before colon", get("X\t: a\r\n"), 400),
        ("empty field name", get(": a\r\n"), 400),
        ("field without colon", get("X a\r\n"), 400),
        ("NUL in field name", get("X\0Y: a\r\n"), 400),
        ("NUL in field value", get("X: a\0b\r\n"), 400),
        ("control byte in value", get("X: a\x01b\r\n"), 400),
        ("DEL in value", get("X: a\x7fb\r\n"), 400),
        ("non-token field name", get("X(Y): a\r\n"), 400),
        ("non-ASCII field name", post("X\u{e9}: a\r\n", ""), 400),
        // Host.
        ("missing Host on 1.1", raw(b"GET / HTTP/1.1\r\n\r\n"), 400),
        ("two Hosts", get("Host: b\r\n"), 400),
        (
            "Host with space",
            raw(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
            400,
        ),
        (
            "Host with userinfo",
            raw(b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"),
            400,
        ),
        (
            "Host with slash",
            raw(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
            400,
        ),
        // Request line.
        ("invalid method", line("G@T / HTTP/1.1"), 400),
        ("empty method", line(" / HTTP/1.1"), 400),
        ("NUL in method", line("GE\0T / HTTP/1.1"), 400),
        ("NUL in target", line("GET /a\0b HTTP/1.1"), 400),
        ("control byte in target", line("GET /a\x01 HTTP/1.1"), 400),
        ("space in target", line("GET /a b HTTP/1.1"), 400),
        ("double space", line("GET  / HTTP/1.1"), 400),
        ("tab separator", line("GET\t/ HTTP/1.1"), 400),
        ("fragment in target", line("GET /a#b HTTP/1.1"), 400),
        ("non-ASCII target", line("GET /\u{e9} HTTP/1.1"), 400),
        ("relative target", line("GET index.html HTTP/1.1"), 400),
        ("asterisk with GET", line("GET * HTTP/1.1"), 400),
        ("absolute-form ftp", line("GET ftp://a/ HTTP/1.1"), 400),
        (
            "absolute-form empty authority",
            line("GET http:///a HTTP/1.1"),
            400,
        ),
        (
            "absolute-form userinfo",
            line("GET http://u@a/ HTTP/1.1"),
            400,
        ),
        ("no version (HTTP/0.9)", raw(b"GET /\r\n\r\n"), 400),
        ("lowercase version", line("GET / http/1.1"), 400),
        ("version trailing space", line("GET / HTTP/1.1 "), 400),
        ("version two-digit minor", line("GET / HTTP/1.10"), 400),
        ("version without minor", line("GET / HTTP/2"), 400),
        ("HTTP/2.0", line("GET / HTTP/2.0"), 505),
        ("HTTP/1.2", line("GET / HTTP/1.2"), 505),
        ("HTTP/0.9 version", line("GET / HTTP/0.9"), 505),
        // Limits.
        ("request line over 8 KiB", line(&long_target), 414),
        (
            "8 KiB of leading empty lines",
            raw("\r\n".repeat(4097).as_bytes()),
            414,
        ),
        ("101 fields", get(&many_fields), 431),
        ("header block over 16 KiB", get(&big_block), 431),
        ("one field over 16 KiB", get(&huge_field), 431),
        (
            "Content-Length over 1 MiB",
            post("Content-Length: 1048577\r\n", ""),
            413,
        ),
        (
            "Content-Length u64::MAX",
            post("Content-Length: 18446744073709551615\r\n", ""),
            413,
        ),
        (
            "unknown expectation",
            post("Expect: 200-ok\r\nContent-Length: 1\r\n", "x"),
            417,
        ),
        // After a valid request, the bad one still ends the connection.
        (
            "bad request pipelined after a good one",
            [get(""), raw(b"GET / HTTP/1.1\r\n\r\n")].concat(),
            400,
        ),
    ]
}

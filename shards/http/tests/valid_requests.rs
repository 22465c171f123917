//! Valid requests — pipelining, HEAD, bodies, chunked with extensions and trailers,
//! 100-continue, HTTP/1.0 keep-alive, limits at their exact edge — each delivered at every
//! split point (R15), with what the parser must report.

mod common;

use common::{Seen, Transcript, check_split_invariant, serve_output};
use percore_http::{BodyKind, Limits, Version};

fn check(name: &str, input: &[u8]) -> Transcript {
    check_split_invariant(name, input, &Limits::default())
}

#[test]
fn simple_get() {
    let t = check(
        "get",
        b"GET /index.html?q=1&r=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n",
    );
    let [req] = t.requests()[..] else {
        panic!("{t:?}")
    };
    assert_eq!(req.method, "GET");
    assert_eq!(req.target, "/index.html?q=1&r=2");
    assert_eq!(req.path, "/index.html");
    assert_eq!(req.query.as_deref(), Some("q=1&r=2"));
    assert_eq!(req.version, Version::Http11);
    assert_eq!(
        req.headers,
        [
            ("Host".into(), "example.com".into()),
            ("User-Agent".into(), "t".into())
        ]
    );
    assert_eq!(
        (req.body_kind, req.keep_alive, req.head),
        (BodyKind::None, true, false)
    );
    assert!(!t.should_close && !t.in_request && t.requests_served == 1);
}

#[test]
fn pipelined_requests_answered_in_order_in_one_output() {
    let input = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n\
                  POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello\
                  HEAD /c HTTP/1.1\r\nHost: h\r\n\r\n\
                  POST /d HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
                  GET /e HTTP/1.1\r\nHost: h\r\n\r\n";
    let t = check("pipelined", input);
    let paths: Vec<_> = t.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/a", "/b", "/c", "/d", "/e"]);
    assert_eq!(t.requests()[1].body, b"hello");
    assert_eq!(t.requests()[3].body, b"abc");
    assert!(t.requests()[2].head);
    let out = String::from_utf8(serve_output(&[input], &Limits::default())).unwrap();
    assert_eq!(out.matches("HTTP/1.1 200 OK\r\n").count(), 5);
    // HEAD gets the Content-Length a GET would, and no body; POST bodies are echoed.
    assert!(out.contains("Content-Length: 5\r\n\r\nhello"));
    assert!(out.contains("Content-Length: 3\r\n\r\nabcHTTP/1.1"));
}

#[test]
fn head_request_has_no_response_body() {
    let input = b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
    let t = check("head", input);
    assert!(t.requests()[0].head);
    let out = String::from_utf8(serve_output(&[input], &Limits::default())).unwrap();
    assert!(out.ends_with("Content-Length: 3\r\n\r\n"), "{out}");
}

#[test]
fn content_length_bodies() {
    let t = check("cl", b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 005\r\n\r\nhelloGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(t.requests()[0].body, b"hello");
    assert_eq!(t.requests()[0].body_kind, BodyKind::Length(5));
    assert_eq!(t.requests()[1].method, "GET");
    let t = check(
        "cl 0",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(
        (t.requests()[0].body_kind, t.requests()[0].body.len()),
        (BodyKind::None, 0)
    );
}

#[test]
fn chunked_with_extensions_and_trailers() {
    let input = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n\
                  5;name=value\r\nhello\r\n6 ; x=\"q s\"\r\n world\r\nA\r\n0123456789\r\n\
                  0\r\nChecksum: abc\r\nX-T: 1\r\n\r\n\
                  GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
    let t = check("chunked", input);
    let reqs = t.requests();
    assert_eq!(reqs[0].body, b"hello world0123456789");
    assert_eq!(reqs[0].body_kind, BodyKind::Chunked);
    assert_eq!(reqs[1].path, "/next");
}

#[test]
fn expect_100_continue() {
    let t = check(
        "expect cl",
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!(t.events[0], Seen::Continue);
    assert!(matches!(&t.events[1], Seen::Request(r) if r.body == b"hi" && r.expect_continue));
    let t = check("expect chunked", b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n");
    assert_eq!(t.events[0], Seen::Continue);
    // No body, or HTTP/1.0: no 100 Continue (RFC 9110 §10.1.1).
    let t = check(
        "expect no body",
        b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
    );
    assert!(matches!(&t.events[..], [Seen::Request(r)] if !r.expect_continue));
    let t = check(
        "expect 1.0",
        b"POST / HTTP/1.0\r\nExpect: whatever\r\nContent-Length: 1\r\n\r\nx",
    );
    assert!(matches!(&t.events[..], [Seen::Request(_), Seen::Closed]));
    // A refused body gets its final status instead of 100 Continue.
    let t = check(
        "expect too large",
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 9999999\r\n\r\n",
    );
    assert_eq!(t.events, [Seen::Error(413, "request body too large")]);
    let out = serve_output(
        &[b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"],
        &Limits::default(),
    );
    assert!(out.starts_with(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"));
}

#[test]
fn waiting_for_the_body_sends_continue_once() {
    let head = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    let t = common::run(&[head], &Limits::default());
    assert_eq!(t.events, [Seen::Continue]);
    assert!(t.in_request && !t.should_close);
}

#[test]
fn connection_persistence() {
    let t = check(
        "1.0 close",
        b"GET / HTTP/1.0\r\n\r\nGET /ignored HTTP/1.0\r\n\r\n",
    );
    assert!(
        matches!(&t.events[..], [Seen::Request(r), Seen::Closed] if !r.keep_alive && r.version == Version::Http10)
    );
    let t = check(
        "1.0 keep-alive",
        b"GET /1 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
    );
    assert!(
        matches!(&t.events[..], [Seen::Request(a), Seen::Request(b), Seen::Closed] if a.keep_alive && !b.keep_alive)
    );
    let t = check("1.1 close", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(matches!(&t.events[..], [Seen::Request(r), Seen::Closed] if !r.keep_alive));
    assert!(t.should_close);
    let out = serve_output(
        &[b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"],
        &Limits::default(),
    );
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("\r\nConnection: keep-alive\r\n")
    );
}

#[test]
fn max_requests_closes_the_last_one() {
    let limits = Limits {
        max_requests: 2,
        ..Limits::default()
    };
    let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".repeat(3);
    let t = check_split_invariant("max requests", &input, &limits);
    assert!(
        matches!(&t.events[..], [Seen::Request(a), Seen::Request(b), Seen::Closed] if a.keep_alive && !b.keep_alive)
    );
    assert_eq!(t.requests_served, 2);
}

#[test]
fn target_forms_and_field_values() {
    let t = check(
        "absolute",
        b"GET http://Example.com:80/p?x HTTP/1.1\r\nHost: other\r\n\r\n",
    );
    let r = t.requests()[0];
    assert_eq!(
        (r.authority.as_deref(), r.path.as_str(), r.query.as_deref()),
        (Some("Example.com:80"), "/p", Some("x"))
    );
    let t = check(
        "absolute no path",
        b"GET HTTPS://h?x HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    assert_eq!(t.requests()[0].path, "/");
    let t = check("asterisk", b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(t.requests()[0].path, "*");
    let t = check("leading CRLF", b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(t.requests().len(), 1);
    let t = check("values", b"get / HTTP/1.1\r\nhOsT: a\r\nX-Empty:\r\nX-Ows: \t v 1 \t\r\nX-Obs: \xe9t\xe9\r\nHost-Like_~!: y\r\n\r\n");
    let r = t.requests()[0];
    assert_eq!(r.method, "get");
    assert_eq!(r.headers[1], ("X-Empty".into(), String::new()));
    assert_eq!(r.headers[2], ("X-Ows".into(), "v 1".into()));
    let t = check("1.0 no host", b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(t.requests().len(), 1);
    let t = check("empty host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n");
    assert_eq!(t.requests().len(), 1);
}

#[test]
fn limits_at_their_edge() {
    let limits = Limits::default();
    // Request line of exactly max_request_line bytes, CRLF included.
    let target = "a".repeat(limits.max_request_line - "GET / HTTP/1.1\r\n".len());
    let input = format!("GET /{target} HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(input.find('\n').unwrap() + 1, limits.max_request_line);
    assert_eq!(check("line at limit", input.as_bytes()).requests().len(), 1);
    let over = format!("GET /{target}a HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(check("line over limit", over.as_bytes()).error(), Some(414));
    // Exactly 100 fields.
    let fields: String = (0..99).map(|i| format!("X-{i}: v\r\n")).collect();
    let input = format!("GET / HTTP/1.1\r\nHost: a\r\n{fields}\r\n");
    assert_eq!(
        check("100 fields", input.as_bytes()).requests()[0]
            .headers
            .len(),
        100
    );
    // A header block of exactly max_header_bytes, final CRLF included.
    let pad = limits.max_header_bytes - "Host: a\r\nX: \r\n\r\n".len();
    let input = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "v".repeat(pad)
    );
    assert_eq!(
        check("block at limit", input.as_bytes()).requests().len(),
        1
    );
    let input = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "v".repeat(pad + 1)
    );
    assert_eq!(
        check("block over limit", input.as_bytes()).error(),
        Some(431)
    );
    // A body of exactly max_body.
    let small = Limits {
        max_body: 10,
        ..Limits::default()
    };
    let t = check_split_invariant(
        "body at limit",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789",
        &small,
    );
    assert_eq!(t.requests()[0].body, b"0123456789");
}

#[test]
fn incomplete_requests_wait() {
    let limits = Limits::default();
    let t = common::run(&[b"GET / HTTP/1.1\r\nHost"], &limits);
    assert!(t.events.is_empty() && t.in_request && !t.should_close);
    let t = common::run(
        &[b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234"],
        &limits,
    );
    assert!(t.events.is_empty() && t.in_request);
    let t = common::run(&[b""], &limits);
    assert!(t.events.is_empty() && !t.in_request);
}

#[test]
fn drain_closes_idle_and_answers_in_flight_with_close() {
    use percore_http::{Connection, Event};
    // Idle after a request: closes at once.
    let mut conn = Connection::new(Limits::default());
    let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert!(matches!(conn.feed(input), (_, Event::Request(r)) if r.keep_alive()));
    conn.drain();
    assert!(conn.should_close());
    // New (no request yet): its first request is answered, with close.
    let mut conn = Connection::new(Limits::default());
    conn.drain();
    assert!(!conn.should_close());
    match conn.feed(input) {
        (n, Event::Request(r)) => assert!(n == input.len() && !r.keep_alive()),
        other => panic!("{other:?}"),
    }
    assert!(conn.should_close());
    let mut conn = Connection::new(Limits::default());
    let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert!(matches!(conn.feed(&input[..10]), (0, Event::NeedMore)));
    assert!(conn.reading_head());
    conn.drain();
    assert!(!conn.should_close());
    match conn.feed(input) {
        (n, Event::Request(r)) => assert!(n == input.len() && !r.keep_alive()),
        other => panic!("{other:?}"),
    }
    assert!(conn.should_close());
}

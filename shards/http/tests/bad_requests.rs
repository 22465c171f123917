//! R13/R14: a table of malformed, ambiguous and oversized requests (request-smuggling
//! literature, nginx/h2o/HAProxy test suites), each with the status it must get. Every case is
//! delivered at every split point (R15), must end in exactly one error and nothing after it.

mod bad_cases;
mod common;

use bad_cases::{cases, chunked, get, post, raw};

use common::{Seen, check_split_invariant};
use percore_http::Limits;

#[test]
fn bad_requests_get_their_status_at_every_split() {
    let cases = cases();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let limits = Limits::default();
    for (name, input, status) in &cases {
        let transcript = check_split_invariant(name, input, &limits);
        let errors: Vec<_> = transcript
            .events
            .iter()
            .filter(|e| matches!(e, Seen::Error(..)))
            .collect();
        assert_eq!(errors.len(), 1, "{name}: {transcript:?}");
        assert_eq!(transcript.error(), Some(*status), "{name}: {transcript:?}");
        assert!(
            matches!(transcript.events.last(), Some(Seen::Error(..))),
            "{name}: output after the error"
        );
        assert!(transcript.should_close, "{name}: connection not closing");
    }
    println!("{} bad-request cases passed at every split", cases.len());
}

#[test]
fn body_over_configured_cap() {
    let limits = Limits {
        max_body: 8,
        ..Limits::default()
    };
    let cases = [
        (
            "CL over cap",
            post("Content-Length: 9\r\n", "123456789"),
            413,
        ),
        (
            "one chunk over cap",
            chunked("9\r\n123456789\r\n0\r\n\r\n"),
            413,
        ),
        (
            "chunks adding up over cap",
            chunked("5\r\n12345\r\n4\r\n1234\r\n0\r\n\r\n"),
            413,
        ),
    ];
    for (name, input, status) in cases {
        assert_eq!(
            check_split_invariant(name, &input, &limits).error(),
            Some(status),
            "{name}"
        );
    }
    let ok = check_split_invariant(
        "at cap",
        &chunked("4\r\n1234\r\n4\r\n5678\r\n0\r\n\r\n"),
        &limits,
    );
    assert_eq!(ok.requests()[0].body, b"12345678");
}

#[test]
fn error_response_is_the_last_output() {
    let input = [
        get(""),
        raw(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n"),
        get(""),
    ]
    .concat();
    let out = common::serve_output(&[&input], &Limits::default());
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.matches("HTTP/1.1 ").count(), 2, "{text}");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
    let error = &text[text.rfind("HTTP/1.1 ").unwrap()..];
    assert!(error.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(error.contains("\r\nConnection: close\r\n"));
    assert!(error.ends_with("\r\n\r\ninvalid Content-Length"));
}

//! Parser and encoder tests. Every case runs whole, split in two at every point, and byte
//! by byte: the outcome must not depend on where reads end.

use super::*;

#[derive(Debug, PartialEq, Eq, Clone)]
enum Seen {
    Command(Vec<Vec<u8>>),
    Error(ProtocolError),
}

/// Feeds `reads` in turn, re-offering unconsumed bytes as the connection does.
fn run(reads: &[&[u8]], limits: &Limits) -> (Vec<Seen>, bool) {
    let mut parser = Parser::new(limits.clone());
    let mut buffered: Vec<u8> = Vec::new();
    let mut seen = Vec::new();
    for read in reads {
        buffered.extend_from_slice(read);
        loop {
            let (consumed, parsed) = parser.feed(&buffered);
            assert!(consumed <= buffered.len());
            buffered.drain(..consumed);
            match parsed {
                Parsed::NeedMore => {
                    assert!(buffered.is_empty(), "NeedMore consumes everything");
                    break;
                }
                Parsed::Command(args) => {
                    assert!(!args.is_empty());
                    seen.push(Seen::Command(args));
                }
                Parsed::Error(e) => {
                    seen.push(Seen::Error(e));
                    // Failed for good: the same error again, nothing consumed.
                    assert_eq!(parser.feed(b"PING\r\n"), (0, Parsed::Error(e)));
                    return (seen, false);
                }
            }
        }
    }
    let idle = parser.is_idle();
    (seen, idle)
}

fn every_split(input: &[u8], limits: &Limits) -> (Vec<Seen>, bool) {
    let whole = run(&[input], limits);
    for mid in 0..=input.len() {
        assert_eq!(
            run(&[&input[..mid], &input[mid..]], limits),
            whole,
            "split at {mid} of {:?}",
            String::from_utf8_lossy(input)
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(&bytes, limits), whole, "byte by byte");
    whole
}

fn cmd(args: &[&str]) -> Seen {
    Seen::Command(args.iter().map(|a| a.as_bytes().to_vec()).collect())
}

fn small() -> Limits {
    Limits {
        max_bulk_len: 16,
        max_multibulk_len: 4,
        max_inline_len: 32,
    }
}

#[test]
fn valid_requests_at_every_split_point() {
    let cases: &[(&[u8], Vec<Seen>, bool)] = &[
        (b"*1\r\n$4\r\nPING\r\n", vec![cmd(&["PING"])], true),
        (
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n",
            vec![cmd(&["SET", "k", "hello"])],
            true,
        ),
        (
            b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n",
            vec![cmd(&["GET", ""])],
            true,
        ),
        // Binary data, CRLF inside a bulk.
        (
            b"*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\0\xff\r\n",
            vec![Seen::Command(vec![
                b"ECHO".to_vec(),
                b"\r\n\0\xff".to_vec(),
            ])],
            true,
        ),
        // Pipelines, and empty multibulks that are skipped.
        (
            b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$1\r\nx\r\n",
            vec![cmd(&["PING"]), cmd(&["ECHO", "x"])],
            true,
        ),
        // Inline commands, with quotes and escapes; bare LF; empty lines skipped.
        (b"PING\r\n", vec![cmd(&["PING"])], true),
        (b"\r\n\nset  k   v\n", vec![cmd(&["set", "k", "v"])], true),
        (
            b"SET \"a b\" 'c d'\r\n",
            vec![cmd(&["SET", "a b", "c d"])],
            true,
        ),
        (
            b"ECHO \"\\x41\\n\\t\\\"\"\r\n",
            vec![cmd(&["ECHO", "A\n\t\""])],
            true,
        ),
        (b"ECHO 'it\\'s'\r\n", vec![cmd(&["ECHO", "it's"])], true),
        // A NUL ends an inline line, as in Redis (a fuzzing find: it looped forever).
        (b"P\x14\0G\n", vec![cmd(&["P\x14"])], true),
        (b"\0\r\n", vec![], true),
        // Mixed inline and multibulk.
        (
            b"PING\r\n*1\r\n$4\r\nPING\r\nPING\r\n",
            vec![cmd(&["PING"]), cmd(&["PING"]), cmd(&["PING"])],
            true,
        ),
        // At the limits exactly.
        (
            b"*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$16\r\n0123456789abcdef\r\n",
            vec![cmd(&["a", "b", "c", "0123456789abcdef"])],
            true,
        ),
        // An incomplete command is held, not reported.
        (b"*2\r\n$3\r\nGET\r\n$1\r\n", vec![], false),
        (b"PIN", vec![], false),
    ];
    for (input, expected, idle) in cases {
        let (seen, is_idle) = every_split(input, &small());
        assert_eq!(&seen, expected, "{:?}", String::from_utf8_lossy(input));
        assert_eq!(is_idle, *idle, "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn protocol_errors_at_every_split_point() {
    use ProtocolError::*;
    let cases: &[(&[u8], Vec<Seen>)] = &[
        (b"*x\r\n", vec![Seen::Error(InvalidMultibulkLength)]),
        (b"*5\r\n", vec![Seen::Error(InvalidMultibulkLength)]),
        (b"*01\r\n", vec![Seen::Error(InvalidMultibulkLength)]),
        (b"*+1\r\n", vec![Seen::Error(InvalidMultibulkLength)]),
        (
            b"*99999999999999999999\r\n",
            vec![Seen::Error(InvalidMultibulkLength)],
        ),
        (b"*1\r\n$17\r\n", vec![Seen::Error(InvalidBulkLength)]),
        (b"*1\r\n$-1\r\n", vec![Seen::Error(InvalidBulkLength)]),
        (b"*1\r\n$\r\n", vec![Seen::Error(InvalidBulkLength)]),
        (b"*1\r\n$1x\r\n", vec![Seen::Error(InvalidBulkLength)]),
        (b"*1\r\nPING\r\n", vec![Seen::Error(ExpectedDollar(b'P'))]),
        (b"*1\r\n\r\n", vec![Seen::Error(ExpectedDollar(b'\r'))]),
        (
            b"PING\r\n*1\r\n:1\r\n",
            vec![cmd(&["PING"]), Seen::Error(ExpectedDollar(b':'))],
        ),
        (b"SET \"a\r\n", vec![Seen::Error(UnbalancedQuotes)]),
        (b"SET 'a\r\n", vec![Seen::Error(UnbalancedQuotes)]),
        (b"SET \"a\"b\r\n", vec![Seen::Error(UnbalancedQuotes)]),
        (b"SET \"a\0\"\r\n", vec![Seen::Error(UnbalancedQuotes)]),
        // Lines past the limit, with or without their end.
        (&[b'a'; 40], vec![Seen::Error(TooBigInline)]),
        (
            b"*111111111111111111111111111111111",
            vec![Seen::Error(TooBigMultibulkCount)],
        ),
        (
            b"*1\r\n$111111111111111111111111111111111",
            vec![Seen::Error(TooBigBulkCount)],
        ),
    ];
    for (input, expected) in cases {
        let (seen, _) = every_split(input, &small());
        assert_eq!(&seen, expected, "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn protocol_error_messages_are_redis_wording() {
    assert_eq!(
        ProtocolError::ExpectedDollar(b'x').message(),
        "ERR Protocol error: expected '$', got 'x'"
    );
    assert_eq!(
        ProtocolError::InvalidMultibulkLength.message(),
        "ERR Protocol error: invalid multibulk length"
    );
    assert_eq!(
        ProtocolError::InvalidBulkLength.message(),
        "ERR Protocol error: invalid bulk length"
    );
    assert_eq!(
        ProtocolError::UnbalancedQuotes.message(),
        "ERR Protocol error: unbalanced quotes in request"
    );
}

#[test]
fn a_large_bulk_arrives_in_pieces_without_reserving_its_declared_size() {
    let limits = Limits::default();
    let mut parser = Parser::new(limits);
    let input = b"*2\r\n$3\r\nSET\r\n$100000000\r\nab";
    assert_eq!(parser.feed(input), (input.len(), Parsed::NeedMore));
    assert!(parser.bulk.capacity() <= 64 * 1024);
}

#[test]
fn parse_int_is_strict() {
    assert_eq!(parse_int(b"0"), Some(0));
    assert_eq!(parse_int(b"-12"), Some(-12));
    assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
    assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
    for bad in [
        &b""[..],
        b"-",
        b"-0",
        b"01",
        b"+1",
        b" 1",
        b"1 ",
        b"9223372036854775808",
        b"1.5",
    ] {
        assert_eq!(parse_int(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn encoders_write_resp2() {
    let mut out = Vec::new();
    ok(&mut out);
    simple(&mut out, "PONG");
    error(&mut out, "ERR bad\r\nthing");
    integer(&mut out, -42);
    integer(&mut out, i64::MIN);
    bulk(&mut out, b"hi");
    bulk(&mut out, b"");
    bulk_int(&mut out, 10);
    null(&mut out);
    null_array(&mut out);
    array(&mut out, 2);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "+OK\r\n+PONG\r\n-ERR bad  thing\r\n:-42\r\n:-9223372036854775808\r\n$2\r\nhi\r\n$0\r\n\r\n$2\r\n10\r\n$-1\r\n*-1\r\n*2\r\n"
    );
}

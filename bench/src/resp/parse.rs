//! A sans-IO RESP reply parser (RESP2 and the RESP3 types): finds where one whole reply
//! ends, nested arrays and maps included, and whether it is an error reply. Replies are
//! small in this load (a value of `--value-size` at most), so a reply is parsed only once it
//! is whole; `More` means "wait", and a reply larger than `MAX_REPLY` is refused.

/// Largest reply accepted.
pub const MAX_REPLY: usize = 64 * 1024 * 1024;
/// Largest length line (`$…`, `*…`) or simple-string line.
const MAX_LINE: usize = 64 * 1024;

/// What the parser said about the front of the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Not a whole reply yet.
    More,
    /// A whole reply of `len` bytes; `error` when it is an error reply (`-…` or `!…`).
    Done { len: usize, error: bool, null: bool },
    /// Not RESP.
    Invalid,
}

/// Parses the reply at the front of `data`.
pub fn parse_reply(data: &[u8]) -> Reply {
    let mut pos = 0usize;
    // Values still to read: 1 for the reply, plus the elements of the aggregates met.
    let mut pending: u64 = 1;
    let (mut error, mut null) = (false, false);
    let mut top = true;
    while pending > 0 {
        let Some(&kind) = data.get(pos) else {
            return Reply::More;
        };
        if !b"+-:,#_$!=*~>%|(".contains(&kind) {
            return Reply::Invalid;
        }
        let line_end = match find_crlf(data, pos + 1) {
            Line::End(at) => at,
            Line::BareLf => return Reply::Invalid,
            Line::More if data.len() - pos > MAX_LINE => return Reply::Invalid,
            Line::More => return Reply::More,
        };
        let line = &data[pos + 1..line_end];
        pos = line_end + 2;
        pending -= 1;
        match kind {
            b'+' | b'(' => {}
            b'-' => error |= top,
            b':' => {
                if parse_int(line).is_none() {
                    return Reply::Invalid;
                }
            }
            b',' => {}
            b'#' => {
                if line != b"t" && line != b"f" {
                    return Reply::Invalid;
                }
            }
            b'_' => null |= top,
            b'$' | b'!' | b'=' => {
                let Some(len) = parse_int(line) else {
                    return Reply::Invalid;
                };
                if len == -1 {
                    null |= top;
                } else if len < 0 || len as usize > MAX_REPLY {
                    return Reply::Invalid;
                } else {
                    let end = pos + len as usize;
                    if data.len() < end + 2 {
                        return Reply::More;
                    }
                    if &data[end..end + 2] != b"\r\n" {
                        return Reply::Invalid;
                    }
                    pos = end + 2;
                    error |= top && kind == b'!';
                }
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let Some(n) = parse_int(line) else {
                    return Reply::Invalid;
                };
                if n == -1 && kind == b'*' {
                    null |= top;
                } else if n < 0 || n as usize > MAX_REPLY {
                    return Reply::Invalid;
                } else {
                    let per = if matches!(kind, b'%' | b'|') { 2 } else { 1 };
                    pending += n as u64 * per;
                    // An attribute map (`|`) precedes the reply it describes.
                    if kind == b'|' {
                        pending += 1;
                    }
                }
            }
            _ => return Reply::Invalid,
        }
        top = false;
    }
    Reply::Done {
        len: pos,
        error,
        null,
    }
}

enum Line {
    /// The index of the line's `\r`.
    End(usize),
    /// A `\n` without its `\r`: not RESP.
    BareLf,
    More,
}

fn find_crlf(data: &[u8], from: usize) -> Line {
    let rest = data.get(from..).unwrap_or(&[]);
    match rest.iter().position(|&b| b == b'\n') {
        None => Line::More,
        Some(nl) if nl > 0 && rest[nl - 1] == b'\r' => Line::End(from + nl - 1),
        Some(_) => Line::BareLf,
    }
}

fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let v = digits.iter().try_fold(0i64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
    })?;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(len: usize, error: bool, null: bool) -> Reply {
        Reply::Done { len, error, null }
    }

    #[test]
    fn every_reply_type_is_framed() {
        assert_eq!(parse_reply(b"+OK\r\n"), done(5, false, false));
        assert_eq!(parse_reply(b"-ERR no\r\n+OK\r\n"), done(9, true, false));
        assert_eq!(parse_reply(b":42\r\n"), done(5, false, false));
        assert_eq!(parse_reply(b"$5\r\nhello\r\n"), done(11, false, false));
        assert_eq!(parse_reply(b"$-1\r\n"), done(5, false, true));
        assert_eq!(parse_reply(b"_\r\n"), done(3, false, true));
        let nested = b"*2\r\n$1\r\na\r\n*2\r\n:1\r\n-inner\r\n";
        assert_eq!(parse_reply(nested), done(nested.len(), false, false));
        let map = b"%1\r\n+k\r\n$1\r\nv\r\n";
        assert_eq!(parse_reply(map), done(map.len(), false, false));
        assert_eq!(parse_reply(b"!3\r\nbad\r\n"), done(9, true, false));
    }

    #[test]
    fn partial_replies_wait_at_every_split() {
        let wire = b"*3\r\n$3\r\nfoo\r\n:7\r\n$-1\r\n";
        for split in 0..wire.len() {
            assert_eq!(parse_reply(&wire[..split]), Reply::More, "split {split}");
        }
        assert_eq!(parse_reply(wire), done(wire.len(), false, false));
    }

    #[test]
    fn garbage_is_invalid() {
        for wire in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b":12x\r\n",
            b"$3\r\nabcd\r\n",
            b"$-5\r\n",
            b"#x\r\n",
            b"+OK\n",
            b"x",
        ] {
            assert_eq!(parse_reply(wire), Reply::Invalid, "{:?}", wire);
        }
    }
}

//! A sans-IO HTTP/1.1 response parser for the load generator: it only needs to find where
//! each response ends (status line, `Content-Length`, chunked bodies, bodies delimited by
//! the close) and whether the status is the expected one. It is incremental over bodies
//! (a large body is consumed as it arrives) and needs a whole head in one slice (the
//! receive queue lends all buffered bytes at once).

/// Largest response head accepted; more without its end is a parse error.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest chunk-size or trailer line.
const MAX_LINE: usize = 4096;

/// Which statuses count as success: inclusive ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusSet(Vec<(u16, u16)>);

impl StatusSet {
    /// Parses `2xx`, `200`, `200-299` or a comma-separated list of them.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || format!("bad status `{part}` (use e.g. 2xx, 200, 200-299)");
            let range = if let Some(class) = part.strip_suffix("xx") {
                let c: u16 = class.parse().map_err(|_| bad())?;
                (c * 100, c * 100 + 99)
            } else if let Some((a, b)) = part.split_once('-') {
                (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                )
            } else {
                let s = part.parse().map_err(|_| bad())?;
                (s, s)
            };
            if !(100..=999).contains(&range.0) || range.1 < range.0 || range.1 > 999 {
                return Err(bad());
            }
            ranges.push(range);
        }
        if ranges.is_empty() {
            return Err("empty --expect-status".into());
        }
        Ok(StatusSet(ranges))
    }

    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|&(a, b)| (a..=b).contains(&status))
    }
}

impl Default for StatusSet {
    fn default() -> Self {
        StatusSet(vec![(200, 299)])
    }
}

/// Where the parser is within the current response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before (or in) a response head.
    Head,
    /// In a body of known length.
    Body {
        remaining: u64,
        ok: bool,
        close: bool,
    },
    /// In a chunked body.
    Chunked { at: Chunk, ok: bool, close: bool },
    /// In a body that ends when the server closes.
    UntilClose { ok: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    Size,
    Data { remaining: u64 },
    DataEnd,
    Trailer,
}

/// What the parser said about some bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// More bytes are needed (what was consumed belongs to the current response).
    More,
    /// A whole response ended.
    Response { status: u16, ok: bool, close: bool },
    /// Not HTTP.
    Invalid,
}

/// Parses the responses of one connection, in order.
#[derive(Clone, Debug)]
pub struct ResponseParser {
    state: State,
    /// The requests are HEAD: no response has a body.
    head_requests: bool,
    /// The status of the head being parsed (reported with the response).
    status: u16,
}

impl ResponseParser {
    pub fn new(head_requests: bool) -> Self {
        ResponseParser {
            state: State::Head,
            head_requests,
            status: 0,
        }
    }

    /// True between responses (no byte of the next one consumed).
    pub fn at_boundary(&self) -> bool {
        self.state == State::Head
    }

    /// True when the current body ends with the connection.
    pub fn until_close(&self) -> Option<bool> {
        match self.state {
            State::UntilClose { ok } => Some(ok),
            _ => None,
        }
    }

    /// Reads at most one response from the front of `data`: bytes consumed, and the step.
    pub fn parse(&mut self, data: &[u8], expect: &StatusSet) -> (usize, Step) {
        let mut offset = 0;
        loop {
            match self.state {
                State::Head => {
                    let (consumed, step) = self.parse_head(&data[offset..], expect);
                    offset += consumed;
                    match step {
                        HeadStep::More => return (offset, Step::More),
                        HeadStep::Invalid => return (offset, Step::Invalid),
                        // A body (possibly empty) or the next head follows.
                        HeadStep::Interim | HeadStep::Done => continue,
                    }
                }
                State::Body {
                    remaining,
                    ok,
                    close,
                } => {
                    let take = remaining.min((data.len() - offset) as u64);
                    offset += take as usize;
                    if take < remaining {
                        self.state = State::Body {
                            remaining: remaining - take,
                            ok,
                            close,
                        };
                        return (offset, Step::More);
                    }
                    return (offset, self.finish(ok, close));
                }
                State::Chunked { at, ok, close } => {
                    let (consumed, done) = self.parse_chunked(&data[offset..], at, ok, close);
                    offset += consumed;
                    return match done {
                        ChunkStep::More => (offset, Step::More),
                        ChunkStep::Invalid => (offset, Step::Invalid),
                        ChunkStep::Done => (offset, self.finish(ok, close)),
                    };
                }
                State::UntilClose { .. } => return (data.len(), Step::More),
            }
        }
    }

    fn finish(&mut self, ok: bool, close: bool) -> Step {
        self.state = State::Head;
        Step::Response {
            status: self.status,
            ok,
            close,
        }
    }

    fn parse_head(&mut self, data: &[u8], expect: &StatusSet) -> (usize, HeadStep) {
        // Reject what is not HTTP as soon as its first bytes show it.
        let prefix = b"HTTP/1.";
        let n = data.len().min(prefix.len());
        if data[..n] != prefix[..n] {
            return (0, HeadStep::Invalid);
        }
        let Some(end) = find_head_end(data) else {
            let step = if data.len() > MAX_HEAD {
                HeadStep::Invalid
            } else {
                HeadStep::More
            };
            return (0, step);
        };
        let Some(head) = parse_head_fields(&data[..end]) else {
            return (0, HeadStep::Invalid);
        };
        self.status = head.status;
        if (100..200).contains(&head.status) && head.status != 101 {
            // 100 Continue and friends: the final response follows.
            return (end, HeadStep::Interim);
        }
        let ok = expect.contains(head.status);
        let close = head.close;
        let bodiless =
            self.head_requests || head.status == 101 || head.status == 204 || head.status == 304;
        self.state = if bodiless {
            State::Body {
                remaining: 0,
                ok,
                close,
            }
        } else if head.chunked {
            State::Chunked {
                at: Chunk::Size,
                ok,
                close,
            }
        } else if let Some(len) = head.content_length {
            State::Body {
                remaining: len,
                ok,
                close,
            }
        } else {
            State::UntilClose { ok }
        };
        (end, HeadStep::Done)
    }

    fn parse_chunked(
        &mut self,
        data: &[u8],
        mut at: Chunk,
        ok: bool,
        close: bool,
    ) -> (usize, ChunkStep) {
        let mut offset = 0;
        loop {
            let rest = &data[offset..];
            match at {
                Chunk::Size | Chunk::Trailer => {
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        if rest.len() > MAX_LINE {
                            return (offset, ChunkStep::Invalid);
                        }
                        self.state = State::Chunked { at, ok, close };
                        return (offset, ChunkStep::More);
                    };
                    if nl == 0 || rest[nl - 1] != b'\r' {
                        return (offset, ChunkStep::Invalid);
                    }
                    let line = &rest[..nl - 1];
                    offset += nl + 1;
                    if at == Chunk::Trailer {
                        if line.is_empty() {
                            return (offset, ChunkStep::Done);
                        }
                        continue;
                    }
                    let Some(size) = parse_chunk_size(line) else {
                        return (offset, ChunkStep::Invalid);
                    };
                    at = if size == 0 {
                        Chunk::Trailer
                    } else {
                        Chunk::Data { remaining: size }
                    };
                }
                Chunk::Data { remaining } => {
                    let take = remaining.min(rest.len() as u64);
                    offset += take as usize;
                    if take < remaining {
                        self.state = State::Chunked {
                            at: Chunk::Data {
                                remaining: remaining - take,
                            },
                            ok,
                            close,
                        };
                        return (offset, ChunkStep::More);
                    }
                    at = Chunk::DataEnd;
                }
                Chunk::DataEnd => {
                    if rest.len() < 2 {
                        if rest.first().is_some_and(|&b| b != b'\r') {
                            return (offset, ChunkStep::Invalid);
                        }
                        self.state = State::Chunked { at, ok, close };
                        return (offset, ChunkStep::More);
                    }
                    if &rest[..2] != b"\r\n" {
                        return (offset, ChunkStep::Invalid);
                    }
                    offset += 2;
                    at = Chunk::Size;
                }
            }
        }
    }
}

enum HeadStep {
    More,
    Invalid,
    /// A 1xx interim response was consumed.
    Interim,
    Done,
}

enum ChunkStep {
    More,
    Invalid,
    Done,
}

/// The length of the head (through its blank line), if it is all there.
fn find_head_end(data: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = data[from..].iter().position(|&b| b == b'\n') {
        let nl = from + p;
        if nl >= 3 && &data[nl - 3..=nl] == b"\r\n\r\n" {
            return Some(nl + 1);
        }
        from = nl + 1;
    }
    None
}

/// What the engine needs from a head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    content_length: Option<u64>,
    chunked: bool,
    close: bool,
}

/// Parses a whole head (status line, header lines, blank line); `None` if malformed.
fn parse_head_fields(head: &[u8]) -> Option<Head> {
    let mut lines = head[..head.len() - 4].split(|&b| b == b'\n');
    let status_line = lines.next()?;
    let status_line = status_line.strip_suffix(b"\r").unwrap_or(status_line);
    // "HTTP/1.x SSS[ reason]"
    if status_line.len() < 12 || status_line[8] != b' ' {
        return None;
    }
    let minor = status_line[7];
    if !matches!(minor, b'0' | b'1') {
        return None;
    }
    let code = &status_line[9..12];
    if !code.iter().all(u8::is_ascii_digit) || status_line.get(12).is_some_and(|&b| b != b' ') {
        return None;
    }
    let status = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    let mut out = Head {
        status,
        content_length: None,
        chunked: false,
        close: minor == b'0',
    };
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.is_empty() || name.iter().any(|&b| b == b' ' || b == b'\t') {
            return None;
        }
        match name.first().map(u8::to_ascii_lowercase) {
            Some(b'c') if name.eq_ignore_ascii_case(b"content-length") => {
                let len = parse_decimal(value)?;
                if out.content_length.is_some_and(|l| l != len) {
                    return None;
                }
                out.content_length = Some(len);
            }
            Some(b'c') if name.eq_ignore_ascii_case(b"connection") => {
                for token in value.split(|&b| b == b',').map(trim) {
                    if token.eq_ignore_ascii_case(b"close") {
                        out.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && minor == b'0' {
                        out.close = false;
                    }
                }
            }
            Some(b't') if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                let last = value.rsplit(|&b| b == b',').next().map(trim)?;
                out.chunked = last.eq_ignore_ascii_case(b"chunked");
            }
            _ => {}
        }
    }
    Some(out)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// A chunk-size line: hex digits, then optional `;extensions`.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let digits = trim(&line[..end]);
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let v = (d as char).to_digit(16)?;
        Some(n * 16 + u64::from(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(parser: &mut ResponseParser, wire: &[u8]) -> Vec<Step> {
        let expect = StatusSet::default();
        let mut out = Vec::new();
        let mut offset = 0;
        while offset < wire.len() {
            let (n, step) = parser.parse(&wire[offset..], &expect);
            offset += n;
            out.push(step);
            if step == Step::More || step == Step::Invalid {
                break;
            }
        }
        out
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nDate: x\r\n\r\nHello, World!";

    fn response(status: u16, close: bool) -> Step {
        Step::Response {
            status,
            ok: (200..300).contains(&status),
            close,
        }
    }

    #[test]
    fn pipelined_responses_of_every_framing_come_out_in_order() {
        let mut wire = OK.to_vec();
        wire.extend_from_slice(
            b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n\
              5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
        );
        wire.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
        wire.extend_from_slice(
            b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        let mut p = ResponseParser::new(false);
        assert_eq!(
            all(&mut p, &wire),
            vec![
                response(200, false),
                response(404, false),
                response(204, false),
                response(201, true)
            ]
        );
        assert!(p.at_boundary());
    }

    #[test]
    fn every_split_point_gives_the_same_responses() {
        let mut wire = OK.to_vec();
        wire.extend_from_slice(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        );
        wire.extend_from_slice(OK);
        for split in 0..=wire.len() {
            let mut p = ResponseParser::new(false);
            let expect = StatusSet::default();
            let mut seen = Vec::new();
            let mut buf = wire[..split].to_vec();
            let mut fed = split;
            loop {
                let (n, step) = p.parse(&buf, &expect);
                buf.drain(..n);
                match step {
                    Step::Response { .. } => seen.push(step),
                    Step::More if fed < wire.len() => {
                        buf.extend_from_slice(&wire[fed..]);
                        fed = wire.len();
                    }
                    Step::More => break,
                    Step::Invalid => panic!("invalid at split {split}"),
                }
                if buf.is_empty() && fed == wire.len() {
                    break;
                }
            }
            assert_eq!(seen.len(), 3, "split {split}: {seen:?}");
        }
    }

    #[test]
    fn garbage_bad_status_lines_and_bad_chunks_are_invalid_at_once() {
        for wire in [
            &b"SSH-2.0-OpenSSH\r\n"[..],
            b"HTTX",
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc",
        ] {
            let mut p = ResponseParser::new(false);
            assert_eq!(
                p.parse(wire, &StatusSet::default()).1,
                Step::Invalid,
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn bodies_without_length_end_with_the_connection_and_head_has_none() {
        let mut p = ResponseParser::new(false);
        let (n, step) = p.parse(b"HTTP/1.0 200 OK\r\n\r\nsome body", &StatusSet::default());
        assert_eq!((n, step), (28, Step::More));
        assert_eq!(p.until_close(), Some(true));
        let mut p = ResponseParser::new(true);
        assert_eq!(all(&mut p, OK), vec![response(200, false), Step::Invalid]);
    }

    #[test]
    fn status_sets() {
        let s = StatusSet::parse("2xx, 301,400-404").unwrap();
        assert!(s.contains(204) && s.contains(301) && s.contains(404));
        assert!(!s.contains(300) && !s.contains(500));
        assert!(StatusSet::parse("abc").is_err());
        assert!(StatusSet::parse("").is_err());
        let mut p = ResponseParser::new(false);
        let (_, step) = p.parse(
            b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n",
            &StatusSet::parse("2xx").unwrap(),
        );
        assert_eq!(
            step,
            Step::Response {
                status: 500,
                ok: false,
                close: false
            }
        );
    }
}

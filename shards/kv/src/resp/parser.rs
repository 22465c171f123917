//! The request parser. It is stateful and consumes every byte it is given: a partial line
//! or bulk is kept inside the parser, so a command larger than one read (or than the
//! connection's receive queue) still arrives. Memory is bounded by the limits: a line by
//! `max_inline_len`, a bulk by `max_bulk_len`, a command by `max_multibulk_len` bulks.
//!
//! States: `Start` (between commands) → a line is read; `*N` goes to `BulkHeader` with N
//! bulks to read, anything else is an inline command. `BulkHeader` reads `$LEN`, then
//! `BulkData` copies LEN bytes and the CRLF. After a protocol error the parser is `Failed`
//! for good: the connection answers the error and closes, as Redis does.

use super::inline::split_inline;

/// Request limits (Redis's defaults: `proto-max-bulk-len` 512 MiB, inline 64 KiB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string in bytes.
    pub max_bulk_len: usize,
    /// Most bulks in one multibulk command.
    pub max_multibulk_len: usize,
    /// Longest line (an inline command, or a `*N`/`$N` header) in bytes.
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: 1024 * 1024,
            max_inline_len: 64 * 1024,
        }
    }
}

/// A protocol error: the connection gets `-ERR Protocol error: <reason>` and is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    InvalidMultibulkLength,
    InvalidBulkLength,
    /// A bulk header did not start with `$` (the byte found instead).
    ExpectedDollar(u8),
    TooBigMultibulkCount,
    TooBigBulkCount,
    TooBigInline,
    UnbalancedQuotes,
}

impl ProtocolError {
    /// The error reply line, as Redis words it (without the leading `-` and CRLF).
    pub fn message(&self) -> String {
        let reason = match self {
            ProtocolError::InvalidMultibulkLength => "invalid multibulk length".to_string(),
            ProtocolError::InvalidBulkLength => "invalid bulk length".to_string(),
            ProtocolError::ExpectedDollar(b) => format!("expected '$', got '{}'", *b as char),
            ProtocolError::TooBigMultibulkCount => "too big mbulk count string".to_string(),
            ProtocolError::TooBigBulkCount => "too big bulk count string".to_string(),
            ProtocolError::TooBigInline => "too big inline request".to_string(),
            ProtocolError::UnbalancedQuotes => "unbalanced quotes in request".to_string(),
        };
        format!("ERR Protocol error: {reason}")
    }
}

/// What one call to [`Parser::feed`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A complete command (never empty).
    Command(Vec<Vec<u8>>),
    /// Every byte was consumed; the command is not complete yet.
    NeedMore,
    /// A protocol error; the connection must answer it and close.
    Error(ProtocolError),
}

#[derive(Debug)]
enum State {
    Start,
    BulkHeader {
        remaining: usize,
    },
    /// `need` bytes of data plus the CRLF still to copy into `bulk`.
    BulkData {
        remaining: usize,
        need: usize,
    },
    Failed(ProtocolError),
}

/// Which kind of line is being read (it decides the error past the length limit).
#[derive(Clone, Copy)]
enum LineKind {
    Start,
    BulkHeader,
}

/// The RESP request parser of one connection.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    state: State,
    /// A line that spans reads (empty when lines arrive whole).
    line: Vec<u8>,
    args: Vec<Vec<u8>>,
    pub(super) bulk: Vec<u8>,
}

impl Parser {
    pub fn new(limits: Limits) -> Self {
        Parser {
            limits,
            state: State::Start,
            line: Vec::new(),
            args: Vec::new(),
            bulk: Vec::new(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// True between commands (no partial command held).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Start) && self.line.is_empty()
    }

    /// Consumes bytes of `input` up to the end of one command, or all of it. Returns how many
    /// bytes were consumed and what was found. After an error, consumes nothing and repeats
    /// the error.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Parsed) {
        let mut pos = 0;
        loop {
            match self.state {
                State::Failed(e) => return (0, Parsed::Error(e)),
                State::Start => {
                    let kind = LineKind::Start;
                    let Some((used, line)) = self.take_line(&input[pos..], kind) else {
                        return self.need_more_or_fail(input.len());
                    };
                    pos += used;
                    if let Some(parsed) = self.start_line(&line) {
                        return (pos, parsed);
                    }
                }
                State::BulkHeader { remaining } => {
                    let kind = LineKind::BulkHeader;
                    let Some((used, line)) = self.take_line(&input[pos..], kind) else {
                        return self.need_more_or_fail(input.len());
                    };
                    pos += used;
                    if let Err(e) = self.bulk_header(&line, remaining) {
                        return (pos, self.fail(e));
                    }
                }
                State::BulkData { remaining, need } => {
                    let take = need.min(input.len() - pos);
                    self.bulk.extend_from_slice(&input[pos..pos + take]);
                    pos += take;
                    if take < need {
                        self.state = State::BulkData {
                            remaining,
                            need: need - take,
                        };
                        return (pos, Parsed::NeedMore);
                    }
                    // The two bytes after the data are the CRLF (not checked, as in Redis).
                    let len = self.bulk.len() - 2;
                    self.bulk.truncate(len);
                    self.args.push(std::mem::take(&mut self.bulk));
                    if remaining == 1 {
                        self.state = State::Start;
                        return (pos, Parsed::Command(std::mem::take(&mut self.args)));
                    }
                    self.state = State::BulkHeader {
                        remaining: remaining - 1,
                    };
                }
            }
        }
    }

    fn need_more_or_fail(&mut self, consumed: usize) -> (usize, Parsed) {
        match self.state {
            State::Failed(e) => (consumed, Parsed::Error(e)),
            _ => (consumed, Parsed::NeedMore),
        }
    }

    fn fail(&mut self, e: ProtocolError) -> Parsed {
        self.state = State::Failed(e);
        self.line = Vec::new();
        self.args = Vec::new();
        self.bulk = Vec::new();
        Parsed::Error(e)
    }

    /// Takes one line ending in `\n` (without it, and without a `\r` before it). `None`
    /// when the line is not complete: then all of `input` was kept in `self.line`, or the
    /// line passed its limit and the parser failed.
    fn take_line(&mut self, input: &[u8], kind: LineKind) -> Option<(usize, Vec<u8>)> {
        let limit = self.limits.max_inline_len;
        let inline = self.line.first().or(input.first()) != Some(&b'*');
        match input.iter().position(|&b| b == b'\n') {
            Some(end) => {
                if self.line.len() + end > limit {
                    self.fail(too_big(kind, inline));
                    return None;
                }
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&input[..end]);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Some((end + 1, line))
            }
            None => {
                if self.line.len() + input.len() > limit {
                    self.fail(too_big(kind, inline));
                    return None;
                }
                self.line.extend_from_slice(input);
                None
            }
        }
    }

    /// A line read between commands. Returns what to report, or `None` to go on (an empty
    /// command is skipped, a multibulk header moves on to its bulks).
    fn start_line(&mut self, line: &[u8]) -> Option<Parsed> {
        if line.first() == Some(&b'*') {
            let Some(count) = parse_int(&line[1..]) else {
                return Some(self.fail(ProtocolError::InvalidMultibulkLength));
            };
            if count > self.limits.max_multibulk_len as i64 {
                return Some(self.fail(ProtocolError::InvalidMultibulkLength));
            }
            if count > 0 {
                self.args = Vec::with_capacity((count as usize).min(64));
                self.state = State::BulkHeader {
                    remaining: count as usize,
                };
            }
            return None;
        }
        match split_inline(line) {
            None => Some(self.fail(ProtocolError::UnbalancedQuotes)),
            Some(args) if args.is_empty() => None,
            Some(args) => Some(Parsed::Command(args)),
        }
    }

    fn bulk_header(&mut self, line: &[u8], remaining: usize) -> Result<(), ProtocolError> {
        match line.first() {
            Some(b'$') => {}
            Some(&other) => return Err(ProtocolError::ExpectedDollar(other)),
            // Redis reads the byte after the line here: the '\r' (or '\n') that ended it.
            None => return Err(ProtocolError::ExpectedDollar(b'\r')),
        }
        let len = match parse_int(&line[1..]) {
            Some(len) if len >= 0 && len as u64 <= self.limits.max_bulk_len as u64 => len as usize,
            _ => return Err(ProtocolError::InvalidBulkLength),
        };
        // Reserve at most 64 KiB up front: memory follows the bytes actually received.
        self.bulk = Vec::with_capacity((len + 2).min(64 * 1024));
        self.state = State::BulkData {
            remaining,
            need: len + 2,
        };
        Ok(())
    }
}

fn too_big(kind: LineKind, inline: bool) -> ProtocolError {
    match kind {
        LineKind::BulkHeader => ProtocolError::TooBigBulkCount,
        LineKind::Start if inline => ProtocolError::TooBigInline,
        LineKind::Start => ProtocolError::TooBigMultibulkCount,
    }
}

/// A strict decimal integer as Redis's `string2ll` reads it: optional `-`, digits, no
/// leading zeros, no `+`, no spaces, within `i64`.
pub fn parse_int(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    if digits[0] == b'0' && (digits.len() > 1 || negative) {
        return None;
    }
    let mut value: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        let d = i64::from(b - b'0');
        value = if negative {
            value.checked_mul(10)?.checked_sub(d)?
        } else {
            value.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(value)
}

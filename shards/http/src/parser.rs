//! The request-head parser: request line and header fields, strictly (RFC 9112 §2–5).
//!
//! It is resumable and split-invariant (R15): the caller offers the whole unconsumed input
//! each time, starting at the same head start; only complete lines are judged, and the
//! parser remembers how far it got, so a head trickled in byte by byte costs linear time.
//! Every verdict is made on a fixed byte of the head — a line's LF, or the byte at which a
//! limit is crossed — so it cannot depend on where reads break.
//!
//! Nothing is copied: the parsed head is a set of [`Span`]s into the input, read back
//! through [`Request`](crate::Request).

mod whole;

use crate::{
    HttpError, Limits,
    chars::{
        is_field_value, is_host, is_ows, is_target_byte, is_tchar, is_token, same_ignoring_case,
    },
};

/// Byte offsets `start..end` into the head.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    fn new(base: usize, start: usize, end: usize) -> Self {
        Self {
            start: base + start,
            end: base + end,
        }
    }

    /// The bytes of the span; empty if `head` is not the head it was parsed from.
    pub fn get(self, head: &[u8]) -> &[u8] {
        head.get(self.start..self.end).unwrap_or_default()
    }
}

/// The HTTP version of a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Version {
    /// HTTP/1.0: close after the response unless `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: keep-alive unless `Connection: close`.
    #[default]
    Http11,
}

/// The header fields the framing rules look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldKind {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    Expect,
    Other,
}

impl FieldKind {
    /// The known names all differ in length: one comparison at most per field.
    #[inline]
    fn of(name: &[u8]) -> Self {
        let (known, kind): (&[u8], _) = match name.len() {
            4 => (b"host", FieldKind::Host),
            6 => (b"expect", FieldKind::Expect),
            10 => (b"connection", FieldKind::Connection),
            14 => (b"content-length", FieldKind::ContentLength),
            17 => (b"transfer-encoding", FieldKind::TransferEncoding),
            _ => return FieldKind::Other,
        };
        if same_ignoring_case(name, known) {
            kind
        } else {
            FieldKind::Other
        }
    }
}

/// One header field line, its value trimmed of surrounding whitespace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Field {
    pub name: Span,
    pub value: Span,
    pub kind: FieldKind,
}

/// The parts of the request line. The target is split into path and query; for an
/// absolute-form target (`http://host/path`), `authority` is the host part.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct RequestLine {
    pub method: Span,
    pub target: Span,
    pub authority: Option<Span>,
    pub path: Span,
    pub query: Option<Span>,
    pub version: Version,
}

/// Where the parser is within the current head.
#[derive(Debug)]
pub(crate) struct HeadParser {
    /// Start of the first line not yet judged.
    pos: usize,
    /// How far the line at `pos` is known to hold no LF: a trickled line is searched once.
    scanned: usize,
    /// Start of the header block, once the request line is parsed.
    fields_start: Option<usize>,
    /// Length of the whole head, once its empty line is found.
    head_len: Option<usize>,
    pub line: RequestLine,
    pub fields: Vec<Field>,
}

enum Line {
    /// The LF ending the line is at this offset.
    End(usize),
    /// No LF yet, and the budget is not yet spent.
    Partial,
    /// The budget is spent without an LF.
    OverBudget,
}

/// Finds the LF ending the line that starts at `pos`, if it lies before `budget_end`;
/// `scanned` (≥ `pos`) is where the search resumes, and is advanced past what was searched.
fn find_line(input: &[u8], pos: usize, scanned: &mut usize, budget_end: usize) -> Line {
    let from = (*scanned).max(pos);
    let to = budget_end.min(input.len());
    let searched = input.get(from..to).unwrap_or_default();
    match find_lf(searched) {
        Some(i) => Line::End(from + i),
        None => {
            *scanned = to.max(from);
            if input.len() >= budget_end {
                Line::OverBudget
            } else {
                Line::Partial
            }
        }
    }
}

/// The offset of the first LF in `s`. Eight bytes at a time, inline: header lines are short,
/// and a library call's set-up costs more than the search on 20 bytes.
fn find_lf(s: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const LFS: u64 = u64::from_le_bytes([b'\n'; 8]);
    let mut words = s.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_le_bytes(bytes) ^ LFS;
        // `haszero`: the lowest set bit marks the first zero byte exactly (a borrow can only
        // mark bytes above it).
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| at + i)
}

/// The line `pos..lf` without its CR; a bare LF is refused.
fn strip_cr(input: &[u8], pos: usize, lf: usize) -> Result<&[u8], HttpError> {
    input[pos..lf]
        .strip_suffix(b"\r")
        .ok_or(HttpError::bad_request("bare LF as line terminator"))
}

impl HeadParser {
    pub fn new(limits: &Limits) -> Self {
        Self {
            pos: 0,
            scanned: 0,
            fields_start: None,
            head_len: None,
            line: RequestLine::default(),
            // Allocated once per connection; a configured limit beyond this just grows it.
            fields: Vec::with_capacity(limits.max_headers.min(1024)),
        }
    }

    /// Forgets the current head (keeping the field storage) to parse the next one.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.scanned = 0;
        self.fields_start = None;
        self.head_len = None;
        self.fields.clear();
    }

    /// Parses as much of the head at the start of `input` as is there. Returns the head's
    /// length once its final empty line is in, `None` while more input is needed.
    pub fn parse(&mut self, input: &[u8], limits: &Limits) -> Result<Option<usize>, HttpError> {
        if self.head_len.is_some() {
            return Ok(self.head_len);
        }
        // Keep-alive offers an empty input right after each response. With nothing judged
        // yet and no bytes, the search below would find no LF and a budget not yet spent:
        // answer that directly (a zero budget still falls through, to be refused there).
        if input.is_empty() && self.pos == 0 && limits.max_request_line > 0 {
            return Ok(None);
        }
        // Nothing judged or searched yet: try the whole head in one pass (once per head: a
        // failed try searches, which moves `scanned`, or judges, which moves `pos`).
        if self.pos == 0 && self.scanned == 0 && self.fields_start.is_none() {
            if let Some(head) = whole::parse_into(input, limits, &mut self.fields, &mut self.line) {
                self.fields_start = Some(head.fields_start);
                self.pos = head.last_line;
                self.head_len = Some(head.head_len);
                return Ok(self.head_len);
            }
            self.fields.clear();
        }
        self.parse_lines(input, limits)
    }

    /// The line-by-line parser: resumable, and the one that gives every verdict.
    fn parse_lines(&mut self, input: &[u8], limits: &Limits) -> Result<Option<usize>, HttpError> {
        // The request line, unless done (empty lines before it are skipped).
        let fields_start = loop {
            if let Some(start) = self.fields_start {
                break start;
            }
            let lf = match find_line(input, self.pos, &mut self.scanned, limits.max_request_line) {
                Line::End(lf) => lf,
                Line::Partial => return Ok(None),
                Line::OverBudget => return Err(HttpError::line_too_long()),
            };
            let line = strip_cr(input, self.pos, lf)?;
            // RFC 9112 §2.2: empty lines before a request line are ignored.
            if !line.is_empty() {
                self.line = parse_request_line(line, self.pos)?;
                self.fields_start = Some(lf + 1);
            }
            self.pos = lf + 1;
        };
        // The field lines, up to the empty line; their budget is fixed from here on.
        let budget_end = fields_start.saturating_add(limits.max_header_bytes);
        loop {
            let lf = match find_line(input, self.pos, &mut self.scanned, budget_end) {
                Line::End(lf) => lf,
                Line::Partial => return Ok(None),
                Line::OverBudget => {
                    return Err(HttpError::headers_too_large("header block too large"));
                }
            };
            let line = strip_cr(input, self.pos, lf)?;
            if line.is_empty() {
                self.head_len = Some(lf + 1);
                return Ok(self.head_len);
            }
            if self.fields.len() >= limits.max_headers {
                return Err(HttpError::headers_too_large("too many header fields"));
            }
            let field = parse_field(line, self.pos)?;
            self.fields.push(field);
            self.pos = lf + 1;
        }
    }
}

/// Parses `method SP request-target SP HTTP-version` (CR and LF already removed); `base`
/// is the line's offset in the head.
fn parse_request_line(line: &[u8], base: usize) -> Result<RequestLine, HttpError> {
    let (method, target, version) = match valid_method_and_target(line) {
        Some(parts) => parts,
        None => checked_method_and_target(line)?,
    };
    let version = parse_version(version)?;
    let target_start = method.len() + 1;
    let mut parsed = RequestLine {
        method: Span::new(base, 0, method.len()),
        target: Span::new(base, target_start, target_start + target.len()),
        version,
        ..RequestLine::default()
    };
    // Origin-form (`/path`) is nearly every request: skip the call for the other forms.
    let (authority, path_start) = if target[0] == b'/' {
        (None, 0)
    } else {
        split_target(method, target)?
    };
    let path_start = target_start + path_start;
    parsed.authority = authority.map(|(s, e)| Span::new(base, target_start + s, target_start + e));
    let target_end = target_start + target.len();
    match line[path_start..target_end].iter().position(|&b| b == b'?') {
        Some(q) => {
            parsed.path = Span::new(base, path_start, path_start + q);
            parsed.query = Some(Span::new(base, path_start + q + 1, target_end));
        }
        None => parsed.path = Span::new(base, path_start, target_end),
    }
    Ok(parsed)
}

/// The line's method, target and the rest (the version), split at its first two spaces.
type LineParts<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// The common case in one pass: a non-empty token, a space, a non-empty run of target
/// bytes, a space. Neither class holds a space, so those are the line's first two spaces
/// and the parts are the ones `checked_method_and_target` would accept. `None` only for
/// lines that function refuses: it then gives the reason.
fn valid_method_and_target(line: &[u8]) -> Option<LineParts<'_>> {
    let method_len = line.iter().position(|&b| !is_tchar(b))?;
    let after_method = line.get(method_len + 1..)?;
    if method_len == 0 || line[method_len] != b' ' {
        return None;
    }
    let target_len = after_method.iter().position(|&b| !is_target_byte(b))?;
    if target_len == 0 || after_method[target_len] != b' ' {
        return None;
    }
    Some((
        &line[..method_len],
        &after_method[..target_len],
        &after_method[target_len + 1..],
    ))
}

/// Splits the line at its first two spaces and checks the method and target, with the
/// reason for whatever is wrong.
fn checked_method_and_target(line: &[u8]) -> Result<LineParts<'_>, HttpError> {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::bad_request(
            "request line is not `method target version`",
        ));
    };
    if !is_token(method) {
        return Err(HttpError::bad_request("invalid method"));
    }
    if target.is_empty() || !target.iter().all(|&b| is_target_byte(b)) {
        return Err(HttpError::bad_request("invalid request target"));
    }
    Ok((method, target, version))
}

/// `HTTP/1.1` or `HTTP/1.0`; another well-formed `HTTP/d.d` is 505, anything else 400.
fn parse_version(v: &[u8]) -> Result<Version, HttpError> {
    // The two accepted versions as whole 8-byte words: one comparison each, where the
    // byte patterns below compile to a byte-by-byte decision tree.
    const HTTP11: u64 = u64::from_le_bytes(*b"HTTP/1.1");
    const HTTP10: u64 = u64::from_le_bytes(*b"HTTP/1.0");
    if let Ok(&word) = <&[u8; 8]>::try_from(v) {
        match u64::from_le_bytes(word) {
            HTTP11 => return Ok(Version::Http11),
            HTTP10 => return Ok(Version::Http10),
            _ => {}
        }
    }
    match v {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(HttpError::version_not_supported())
        }
        _ => Err(HttpError::bad_request("invalid HTTP version")),
    }
}

/// Recognises the target form (RFC 9112 §3.2): origin-form `/path?query`, asterisk-form `*`
/// (OPTIONS only) and absolute-form `http(s)://authority/path`, which a server must accept.
/// Returns the authority's range and where the path starts, both within `target`.
type TargetParts = (Option<(usize, usize)>, usize);

fn split_target(method: &[u8], target: &[u8]) -> Result<TargetParts, HttpError> {
    if target[0] == b'/' {
        return Ok((None, 0));
    }
    if target == b"*" {
        return if method == b"OPTIONS" {
            Ok((None, 0))
        } else {
            Err(HttpError::bad_request(
                "asterisk-form target is for OPTIONS only",
            ))
        };
    }
    let scheme_len = if starts_with_ignore_case(target, b"http://") {
        7
    } else if starts_with_ignore_case(target, b"https://") {
        8
    } else {
        return Err(HttpError::bad_request("unsupported request-target form"));
    };
    let rest = &target[scheme_len..];
    let authority_len = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    if authority.is_empty() || !is_host(authority) {
        return Err(HttpError::bad_request(
            "invalid authority in absolute-form target",
        ));
    }
    Ok((
        Some((scheme_len, scheme_len + authority_len)),
        scheme_len + authority_len,
    ))
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Parses `field-name ":" OWS field-value OWS` (CR and LF already removed).
fn parse_field(line: &[u8], base: usize) -> Result<Field, HttpError> {
    if matches!(line[0], b' ' | b'\t') {
        return Err(HttpError::bad_request("obsolete line folding"));
    }
    let name_len = line
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(line.len());
    match line.get(name_len) {
        Some(b':') if name_len > 0 => {}
        Some(b':') => return Err(HttpError::bad_request("empty header name")),
        Some(b' ' | b'\t') if line.contains(&b':') => {
            return Err(HttpError::bad_request("whitespace before colon"));
        }
        Some(b' ' | b'\t') => return Err(HttpError::bad_request("header line without colon")),
        Some(_) => return Err(HttpError::bad_request("invalid byte in header name")),
        None => return Err(HttpError::bad_request("header line without colon")),
    }
    let raw_value = &line[name_len + 1..];
    if !is_field_value(raw_value) {
        return Err(HttpError::bad_request("invalid byte in header value"));
    }
    let lead = raw_value
        .iter()
        .position(|&b| !is_ows(b))
        .unwrap_or(raw_value.len());
    // The value from `lead` starts with a non-OWS byte (or is empty): only its end needs
    // trimming.
    let value_len = raw_value[lead..]
        .iter()
        .rposition(|&b| !is_ows(b))
        .map_or(0, |last| last + 1);
    let value_start = name_len + 1 + lead;
    Ok(Field {
        name: Span::new(base, 0, name_len),
        value: Span::new(base, value_start, value_start + value_len),
        kind: FieldKind::of(&line[..name_len]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chars::trim_ows;

    fn parse_all(input: &[u8]) -> Result<Option<usize>, HttpError> {
        HeadParser::new(&Limits::default()).parse(input, &Limits::default())
    }

    #[test]
    fn spans_point_into_the_head() {
        let input = b"\r\nPOST http://h:1/p/q?x=1 HTTP/1.0\r\nA:  b c \r\nB:\r\n\r\nbody";
        let mut parser = HeadParser::new(&Limits::default());
        assert_eq!(
            parser.parse(input, &Limits::default()),
            Ok(Some(input.len() - 4))
        );
        let line = parser.line;
        assert_eq!(line.method.get(input), b"POST");
        assert_eq!(line.target.get(input), b"http://h:1/p/q?x=1");
        assert_eq!(line.authority.map(|s| s.get(input)), Some(&b"h:1"[..]));
        assert_eq!(line.path.get(input), b"/p/q");
        assert_eq!(line.query.map(|s| s.get(input)), Some(&b"x=1"[..]));
        assert_eq!(line.version, Version::Http10);
        let fields: Vec<_> = parser
            .fields
            .iter()
            .map(|f| (f.name.get(input), f.value.get(input)))
            .collect();
        assert_eq!(fields, [(&b"A"[..], &b"b c"[..]), (b"B", b"")]);
    }

    #[test]
    fn resumes_where_it_stopped() {
        let input = b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n";
        let limits = Limits::default();
        let mut parser = HeadParser::new(&limits);
        for end in 0..input.len() {
            assert_eq!(parser.parse(&input[..end], &limits), Ok(None), "at {end}");
        }
        assert_eq!(parser.parse(input, &limits), Ok(Some(input.len())));
        assert_eq!(parser.fields.len(), 2);
        parser.reset();
        assert_eq!(parser.parse(b"GET", &limits), Ok(None));
    }

    #[test]
    fn field_syntax() {
        let status = |fields: &[u8]| {
            let input = [&b"GET / HTTP/1.1\r\n"[..], fields, b"\r\n"].concat();
            parse_all(&input).map(|_| 200).unwrap_or_else(|e| e.status)
        };
        assert_eq!(status(b"A: b\r\n"), 200);
        assert_eq!(status(b"A : b\r\n"), 400);
        assert_eq!(status(b" A: b\r\n"), 400);
        assert_eq!(status(b"A b\r\n"), 400);
        assert_eq!(status(b"A: b\x00\r\n"), 400);
        assert_eq!(status(b"A: \xff\r\n"), 200);
    }

    #[test]
    fn line_feeds_are_found_at_every_offset() {
        for len in 0..40 {
            for lf in 0..=len {
                let mut s = vec![b'a'; len];
                if lf < len {
                    s[lf] = b'\n';
                    s.iter_mut()
                        .skip(lf + 1)
                        .step_by(3)
                        .for_each(|b| *b = b'\n');
                }
                let want = s.iter().position(|&b| b == b'\n');
                assert_eq!(find_lf(&s), want, "len {len} lf {lf}");
            }
        }
        assert_eq!(find_lf(b"\x0b\x09\x8a\x0a"), Some(3));
    }

    #[test]
    fn empty_input_waits_unless_the_line_budget_is_zero() {
        let limits = Limits::default();
        let mut parser = HeadParser::new(&limits);
        assert_eq!(parser.parse(b"", &limits), Ok(None));
        assert_eq!(parser.parse(b"GET / HTTP/1.1\r\n", &limits), Ok(None));
        let zero = Limits {
            max_request_line: 0,
            ..Limits::default()
        };
        let refused = HeadParser::new(&zero).parse(b"", &zero);
        assert_eq!(refused.map_err(|e| e.status), Err(414));
    }

    /// The version match as written before its word-compare fast path.
    fn reference_version(v: &[u8]) -> Result<Version, HttpError> {
        match v {
            b"HTTP/1.1" => Ok(Version::Http11),
            b"HTTP/1.0" => Ok(Version::Http10),
            [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
                if major.is_ascii_digit() && minor.is_ascii_digit() =>
            {
                Err(HttpError::version_not_supported())
            }
            _ => Err(HttpError::bad_request("invalid HTTP version")),
        }
    }

    #[test]
    fn versions_match_the_byte_patterns() {
        let mut cases: Vec<Vec<u8>> = [&b""[..], b"HTTP/1.1 ", b"HTTP/1.", b"http/1.1", b"HTTP/11"]
            .iter()
            .map(|v| v.to_vec())
            .collect();
        for major in 0..=255u8 {
            for minor in 0..=255u8 {
                cases.push(vec![b'H', b'T', b'T', b'P', b'/', major, b'.', minor]);
            }
        }
        for at in 0..8 {
            for b in 0..=255u8 {
                let mut v = *b"HTTP/1.1";
                v[at] = b;
                cases.push(v.to_vec());
                v = *b"HTTP/1.0";
                v[at] = b;
                cases.push(v.to_vec());
            }
        }
        for v in cases {
            assert_eq!(parse_version(&v), reference_version(&v), "{v:?}");
        }
    }

    #[test]
    fn the_one_pass_split_agrees_with_the_checked_one() {
        // Every line of up to six bytes from tchars, target bytes, spaces and bytes that
        // are neither (tab, `#`, obs-text, CR).
        let alphabet = b"G/ \t#:\x80\r";
        let mut fast = 0;
        for len in 0..=6u32 {
            for code in 0..alphabet.len().pow(len) {
                let line: Vec<u8> = (0..len)
                    .map(|i| alphabet[code / alphabet.len().pow(i) % alphabet.len()])
                    .collect();
                let checked = checked_method_and_target(&line);
                match valid_method_and_target(&line) {
                    Some(parts) => {
                        assert_eq!(checked, Ok(parts), "{line:?}");
                        fast += 1;
                    }
                    // The fast path leaves out only lines the checked split refuses.
                    None => assert!(checked.is_err(), "{line:?}"),
                }
            }
        }
        assert!(fast > 500, "{fast}");
    }

    #[test]
    fn values_are_trimmed_of_ows_on_both_sides() {
        // Every value of up to six bytes from space, tab and `a`.
        for len in 0..=6u32 {
            for code in 0..3usize.pow(len) {
                let value: Vec<u8> = (0..len)
                    .map(|i| b" \ta"[code / 3usize.pow(i) % 3])
                    .collect();
                let line = [&b"X:"[..], &value].concat();
                let field = parse_field(&line, 0).unwrap();
                assert_eq!(field.value.get(&line), trim_ows(&value), "{value:?}");
            }
        }
    }

    /// Heads from a family built around the common one: every method, target, version,
    /// line end, field and limit variant below, and every prefix of each.
    fn head_family() -> Vec<Vec<u8>> {
        let lines: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\n",
            b"GET /a/b?c=d&e HTTP/1.0\r\n",
            b"M-X! /? HTTP/1.1\r\n",
            b"GET * HTTP/1.1\r\n",
            b"OPTIONS * HTTP/1.1\r\n",
            b"GET http://h:1/p?q HTTP/1.1\r\n",
            b"GET /# HTTP/1.1\r\n",
            b"GET  / HTTP/1.1\r\n",
            b"GET / HTTP/2.0\r\n",
            b"GET / HTTP/1.1 \r\n",
            b"GET / http/1.1\r\n",
            b"GET / HTTP/1.1\n",
            b"GET / HTTP/1.1\r\r\n",
            b"G\x01T / HTTP/1.1\r\n",
            b" GET / HTTP/1.1\r\n",
            b"\r\nGET / HTTP/1.1\r\n",
            b"GET /\xff HTTP/1.1\r\n",
        ];
        let fields: &[&[u8]] = &[
            b"Host: 127.0.0.1:18998\r\n",
            b"host:x\r\n",
            b"A:  b c \t\r\n",
            b"A:\t\tb\tc\r\n",
            b"B:\r\n",
            b"C: \t \r\n",
            b"D: \xff\x80 obs\r\n",
            b"E: a\x7fb\r\n",
            b"F: a\x00b\r\n",
            b"G: a\rb\r\n",
            b"H : b\r\n",
            b" I: b\r\n",
            b": b\r\n",
            b"J\r\n",
            b"K: b\n",
            b"Content-Length: 5\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"Connection: close\r\n",
            b"Expect: 100-continue\r\n",
            b"L: 0123456789abcdef0123456789\r\n",
        ];
        let mut heads = Vec::new();
        for line in lines {
            for (i, a) in fields.iter().enumerate() {
                for b in &fields[i..] {
                    for end in [&b"\r\n"[..], b"\n", b"\r\nrest", b"\r"] {
                        heads.push([line, &a[..], b, end].concat());
                    }
                }
            }
            heads.push([line, &b"\r\n"[..]].concat());
        }
        heads
    }

    #[test]
    fn both_passes_split_the_target_at_its_first_question_mark() {
        let limits = Limits::default();
        for target in [&b"/a?b?c"[..], b"/??", b"/?", b"/a?", b"/a", b"/?#"] {
            let head = [&b"GET "[..], target, b" HTTP/1.1\r\nHost: h\r\n\r\n"].concat();
            let mut fields = Vec::new();
            let whole = whole::parse(&head, &limits, &mut fields);
            let mut lines = HeadParser::new(&limits);
            let verdict = lines.parse_lines(&head, &limits);
            let first = target.iter().position(|&b| b == b'?');
            match whole {
                // `#` is refused by both (the line-by-line pass gives the reason).
                None => assert!(verdict.is_err() && target.contains(&b'#'), "{target:?}"),
                Some(whole) => {
                    assert_eq!(whole.line, lines.line, "{target:?}");
                    let path = whole.line.path.get(&head);
                    assert_eq!(path, &target[..first.unwrap_or(target.len())]);
                    let query = whole.line.query.map(|q| q.get(&head));
                    assert_eq!(query, first.map(|q| &target[q + 1..]));
                }
            }
        }
    }

    #[test]
    fn the_whole_head_pass_agrees_with_the_line_by_line_one() {
        let small = |line: usize, header_bytes: usize, headers: usize| Limits {
            max_request_line: line,
            max_header_bytes: header_bytes,
            max_headers: headers,
            ..Limits::default()
        };
        let mut limits = vec![
            Limits::default(),
            small(17, 25, 1),
            small(30, 26, 2),
            small(8 * 1024, 64, 0),
        ];
        // Budgets that end at, just before and just after a line's LF.
        limits.extend((14..=17).map(|line| small(line, 16 * 1024, 100)));
        limits.extend((20..=26).map(|bytes| small(8 * 1024, bytes, 100)));
        let mut whole_heads = 0;
        for head in head_family() {
            for limits in &limits {
                for end in 0..=head.len() {
                    let input = &head[..end];
                    let mut fields = Vec::new();
                    let whole = whole::parse(input, limits, &mut fields);
                    let mut lines = HeadParser::new(limits);
                    let verdict = lines.parse_lines(input, limits);
                    let Some(whole) = whole else {
                        continue;
                    };
                    whole_heads += 1;
                    assert_eq!(verdict, Ok(Some(whole.head_len)), "{input:?}");
                    assert_eq!(whole.line, lines.line, "{input:?}");
                    assert_eq!(fields, lines.fields, "{input:?}");
                    assert_eq!(Some(whole.fields_start), lines.fields_start, "{input:?}");
                    assert_eq!(whole.last_line, lines.pos, "{input:?}");
                    // And through the parser's own entry: the same verdict.
                    let mut parser = HeadParser::new(limits);
                    assert_eq!(parser.parse(input, limits), verdict, "{input:?}");
                }
            }
        }
        assert!(whole_heads > 1000, "{whole_heads}");
    }

    #[test]
    fn a_head_trickled_in_tries_the_whole_pass_once() {
        let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let limits = Limits::default();
        let mut parser = HeadParser::new(&limits);
        assert_eq!(parser.parse(&input[..5], &limits), Ok(None));
        assert!(
            parser.scanned > 0,
            "the line-by-line search went on from the failed pass"
        );
        assert_eq!(parser.parse(input, &limits), Ok(Some(input.len())));
        assert_eq!(parser.fields.len(), 1);
    }

    #[test]
    fn known_field_names_in_any_case() {
        assert_eq!(FieldKind::of(b"HOST"), FieldKind::Host);
        assert_eq!(FieldKind::of(b"Content-Length"), FieldKind::ContentLength);
        assert_eq!(
            FieldKind::of(b"transfer-ENCODING"),
            FieldKind::TransferEncoding
        );
        assert_eq!(FieldKind::of(b"Connection"), FieldKind::Connection);
        assert_eq!(FieldKind::of(b"expect"), FieldKind::Expect);
        for other in [&b"hosts"[..], b"hast", b"content-lengtx", b"x", b""] {
            assert_eq!(FieldKind::of(other), FieldKind::Other, "{other:?}");
        }
    }
}

//! The common head in one pass: a request line in origin form with `HTTP/1.1` or `HTTP/1.0`,
//! then field lines of a token, a colon and a value, every line ended by CRLF, all of it in
//! the input at once.
//!
//! This is the line-by-line parser's own verdict, reached faster: each byte is looked at once
//! (the line-by-line path finds each line's LF first, then splits and checks the line). It
//! accepts only heads that path accepts, and produces the same request line, fields and
//! length; on anything else (a partial head, another target form or version, an invalid
//! byte, a limit reached) it gives up with no trace and the line-by-line path gives the
//! verdict and its reason. `tests::the_whole_head_pass_agrees_with_the_line_by_line_one`
//! checks the agreement on every head of a generated family.

use super::{Field, FieldKind, RequestLine, Span, Version};
use crate::{
    Limits,
    chars::{is_field_value_byte, is_ows, is_target_byte, is_tchar},
};

/// Where the parts of a complete head parsed in one pass end.
pub(super) struct Ends {
    /// Where the field lines start (just past the request line's LF).
    pub fields_start: usize,
    /// Where the final empty line starts.
    pub last_line: usize,
    /// The whole head's length, its final CRLF included.
    pub head_len: usize,
}

/// A complete head parsed in one pass, with its request line: what the tests compare.
#[cfg(test)]
pub(super) struct Whole {
    pub line: RequestLine,
    pub fields_start: usize,
    pub last_line: usize,
    pub head_len: usize,
}

/// How far the bytes from `at` satisfy `class`.
#[inline(always)]
fn run_of(input: &[u8], mut at: usize, class: impl Fn(u8) -> bool) -> usize {
    while let Some(&b) = input.get(at) {
        if !class(b) {
            break;
        }
        at += 1;
    }
    at
}

/// Where the run of field-value bytes from `at` ends. Eight bytes at a time: the lowest byte
/// flagged as below 0x20 or equal to 0x7f is exactly the first such byte (`hasless` and
/// `haszero` of Bit Twiddling Hacks), and only a tab among those belongs to a value.
#[inline(always)]
fn field_value_end(input: &[u8], mut at: usize) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const SPACES: u64 = u64::from_le_bytes([0x20; 8]);
    const DELS: u64 = u64::from_le_bytes([0x7f; 8]);
    while let Some(word) = input.get(at..at + 8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_le_bytes(bytes);
        let y = x ^ DELS;
        let flagged = (x.wrapping_sub(SPACES) & !x | y.wrapping_sub(ONES) & !y) & HIGHS;
        if flagged == 0 {
            at += 8;
            continue;
        }
        let first = at + (flagged.trailing_zeros() / 8) as usize;
        if input[first] != b'\t' {
            return first;
        }
        at = first + 1;
    }
    run_of(input, at, is_field_value_byte)
}

/// [`parse_into`] with a request line of its own.
#[cfg(test)]
pub(super) fn parse(input: &[u8], limits: &Limits, fields: &mut Vec<Field>) -> Option<Whole> {
    let mut line = RequestLine::default();
    let ends = parse_into(input, limits, fields, &mut line)?;
    Some(Whole {
        line,
        fields_start: ends.fields_start,
        last_line: ends.last_line,
        head_len: ends.head_len,
    })
}

/// Parses the head at the start of `input` into `line` (written in place: returning it
/// would copy it twice on every request) and `fields` (empty on entry). Both are left with
/// what was written when this gives up, for the caller to clear or overwrite.
#[inline]
pub(super) fn parse_into(
    input: &[u8],
    limits: &Limits,
    fields: &mut Vec<Field>,
    line: &mut RequestLine,
) -> Option<Ends> {
    let version_end = request_line(input, line)?;
    // The request line's LF: before its budget, as the line-by-line search requires.
    let line_lf = version_end + 1;
    if line_lf >= limits.max_request_line {
        return None;
    }
    let fields_start = line_lf + 1;
    let budget_end = fields_start.saturating_add(limits.max_header_bytes);
    let mut pos = fields_start;
    loop {
        if *input.get(pos)? == b'\r' {
            // The empty line, and the end of the head.
            if *input.get(pos + 1)? != b'\n' || pos + 1 >= budget_end {
                return None;
            }
            return Some(Ends {
                fields_start,
                last_line: pos,
                head_len: pos + 2,
            });
        }
        let name_end = run_of(input, pos, is_tchar);
        if name_end == pos || *input.get(name_end)? != b':' || fields.len() >= limits.max_headers {
            return None;
        }
        let raw_start = name_end + 1;
        let cr = field_value_end(input, raw_start);
        if *input.get(cr)? != b'\r' || *input.get(cr + 1)? != b'\n' || cr + 1 >= budget_end {
            return None;
        }
        let value_start = run_of(input, raw_start, is_ows).min(cr);
        let mut value_end = cr;
        while value_end > value_start && is_ows(input[value_end - 1]) {
            value_end -= 1;
        }
        fields.push(Field {
            name: Span {
                start: pos,
                end: name_end,
            },
            value: Span {
                start: value_start,
                end: value_end,
            },
            kind: FieldKind::of(&input[pos..name_end]),
        });
        pos = cr + 2;
    }
}

/// `method SP origin-form SP HTTP/1.x CR LF`, parsed into `line`; returns the offset of its
/// CR.
#[inline(always)]
fn request_line(input: &[u8], line: &mut RequestLine) -> Option<usize> {
    // `GET ` as one 4-byte word: most requests skip the byte loop over the method.
    const GET: u32 = u32::from_le_bytes(*b"GET ");
    let method_end = match input.first_chunk::<4>() {
        Some(&first) if u32::from_le_bytes(first) == GET => 3,
        _ => run_of(input, 0, is_tchar),
    };
    if method_end == 0 || *input.get(method_end)? != b' ' {
        return None;
    }
    let target_start = method_end + 1;
    if *input.get(target_start)? != b'/' {
        return None;
    }
    let target_end = run_of(input, target_start, is_target_byte);
    if *input.get(target_end)? != b' ' {
        return None;
    }
    let version_start = target_end + 1;
    // `HTTP/1.x` and CRLF as an 8-byte and a 2-byte word.
    const HTTP11: u64 = u64::from_le_bytes(*b"HTTP/1.1");
    const HTTP10: u64 = u64::from_le_bytes(*b"HTTP/1.0");
    const CRLF: u16 = u16::from_le_bytes(*b"\r\n");
    let version: [u8; 8] = input
        .get(version_start..version_start + 8)?
        .try_into()
        .ok()?;
    let crlf: [u8; 2] = input
        .get(version_start + 8..version_start + 10)?
        .try_into()
        .ok()?;
    if u16::from_le_bytes(crlf) != CRLF {
        return None;
    }
    let version = match u64::from_le_bytes(version) {
        HTTP11 => Version::Http11,
        HTTP10 => Version::Http10,
        _ => return None,
    };
    let target = Span {
        start: target_start,
        end: target_end,
    };
    let (path, query) = match input[target_start..target_end]
        .iter()
        .position(|&b| b == b'?')
    {
        None => (target, None),
        Some(q) => (
            Span {
                start: target_start,
                end: target_start + q,
            },
            Some(Span {
                start: target_start + q + 1,
                end: target_end,
            }),
        ),
    };
    *line = RequestLine {
        method: Span {
            start: 0,
            end: method_end,
        },
        target,
        authority: None,
        path,
        query,
        version,
    };
    Some(version_start + 8)
}

//! Byte classes of RFC 9110/9112, as lookup tables.

/// A 256-entry table of the bytes for which the closure-like expression holds.
macro_rules! table {
    (|$b:ident| $pred:expr) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let $b = i as u8;
            t[i] = $pred;
            i += 1;
        }
        t
    }};
}

/// `tchar`: the bytes of a token (method, field name, transfer coding).
static TCHAR: [bool; 256] = table!(|b| {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
});

/// `field-vchar / SP / HTAB`, obs-text included: everything but CTLs (CR, LF, NUL...) and DEL.
static FIELD_VALUE: [bool; 256] = table!(|b| b == b'\t' || (b >= 0x20 && b != 0x7f));

/// A request-target byte: visible ASCII without `#` (a fragment is never sent); non-ASCII
/// must be percent-encoded.
static TARGET: [bool; 256] = table!(|b| b > 0x20 && b < 0x7f && b != b'#');

/// A `Host` byte: `reg-name`, `IP-literal` and `port` characters of RFC 3986.
static HOST: [bool; 256] = table!(|b| {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b'%'
                | b':'
                | b'['
                | b']'
        )
});

pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

pub(crate) fn is_field_value_byte(b: u8) -> bool {
    FIELD_VALUE[b as usize]
}

/// Whether every byte of `s` may appear in a field value. Eight bytes at a time: a word
/// with no byte below 0x20 and none equal to 0x7f is all valid (obs-text, 0x80 and up, is
/// allowed); only a word that has one (a tab, or an invalid byte) is checked byte by byte.
pub(crate) fn is_field_value(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const SPACES: u64 = u64::from_ne_bytes([0x20; 8]);
    const DELS: u64 = u64::from_ne_bytes([0x7f; 8]);
    let mut words = s.chunks_exact(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_ne_bytes(bytes);
        // "Has a byte below 0x20" and "has a zero byte in x ^ DELS" (Bit Twiddling Hacks'
        // `hasless` and `haszero`): exact as to whether such a byte exists.
        let below_space = x.wrapping_sub(SPACES) & !x & HIGHS;
        let y = x ^ DELS;
        let del = y.wrapping_sub(ONES) & !y & HIGHS;
        if (below_space | del) != 0 && !word.iter().all(|&b| is_field_value_byte(b)) {
            return false;
        }
    }
    words.remainder().iter().all(|&b| is_field_value_byte(b))
}

pub(crate) fn is_target_byte(b: u8) -> bool {
    TARGET[b as usize]
}

pub(crate) fn is_host(s: &[u8]) -> bool {
    // No early exit (hosts are short and valid), and eight bytes per loop step: the inner
    // loop has a fixed length, so it is fully unrolled.
    let mut ok = true;
    let mut words = s.chunks_exact(8);
    for word in &mut words {
        ok &= word.iter().fold(true, |ok, &b| ok & HOST[b as usize]);
    }
    ok & words
        .remainder()
        .iter()
        .fold(true, |ok, &b| ok & HOST[b as usize])
}

pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` without leading and trailing spaces and tabs.
/// `a == b`, inline: the short names, methods, paths and hosts compared on every request
/// cost less as two overlapping words (of 2, 4 or 8 bytes) than a call to the library's
/// `bcmp`, whose set-up outweighs the comparison. Longer slices go to `bcmp`.
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    macro_rules! words {
        ($t:ty, $n:expr) => {{
            let word = |s: &[u8], at: usize| {
                <$t>::from_le_bytes(s[at..at + $n].try_into().unwrap_or_default())
            };
            let last = a.len() - $n;
            word(a, 0) == word(b, 0) && word(a, last) == word(b, last)
        }};
    }
    if a.len() != b.len() {
        return false;
    }
    match a.len() {
        0 => true,
        1 => a[0] == b[0],
        2..4 => words!(u16, 2),
        4..8 => words!(u32, 4),
        8..=16 => words!(u64, 8),
        _ => a == b,
    }
}

/// `name` equals `known` (lower-case letters and `-`, of the same length, 4 bytes or more)
/// but for the case of its letters. `name` is a token: the only byte that ORed with 0x20
/// gives a lower-case letter or `-` is that letter in either case, or `-` itself (CR, 0x0d,
/// is not a tchar). Compared as two words that may overlap, the first and the last 8 (or 4)
/// bytes, rather than byte by byte: a header name is checked on every request.
#[inline(always)]
pub(crate) fn same_ignoring_case(name: &[u8], known: &[u8]) -> bool {
    let len = name.len();
    debug_assert!(len == known.len() && len >= 4);
    if len >= 8 {
        let word =
            |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or_default());
        const LOWER: u64 = u64::from_le_bytes([0x20; 8]);
        word(name, 0) | LOWER == word(known, 0)
            && word(name, len - 8) | LOWER == word(known, len - 8)
    } else {
        let word =
            |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap_or_default());
        const LOWER: u32 = u32::from_le_bytes([0x20; 4]);
        word(name, 0) | LOWER == word(known, 0)
            && word(name, len - 4) | LOWER == word(known, len - 4)
    }
}

pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ows(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// Each element of a comma-separated list (`#rule`), trimmed of OWS. Empty elements are
/// yielded too: framing headers refuse them.
pub(crate) fn list_elements(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    s.split(|&b| b == b',').map(trim_ows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(is_token(b"GET") && is_token(b"x-y_z~1") && !is_token(b"") && !is_token(b"a b"));
        assert!(!is_tchar(b':') && !is_tchar(b'\0') && !is_tchar(0x80));
        assert!(is_field_value_byte(b'\t') && is_field_value_byte(0xff));
        assert!(
            !is_field_value_byte(b'\r') && !is_field_value_byte(0) && !is_field_value_byte(0x7f)
        );
        for b in 0..=255u8 {
            for at in 0..19 {
                let mut s = *b"abcdefghijklmnopqrs";
                s[at] = b;
                assert_eq!(is_field_value(&s), is_field_value_byte(b), "{b:#x} at {at}");
                assert_eq!(is_field_value(&s[..at + 1]), is_field_value_byte(b));
            }
        }
        assert!(is_field_value(b"") && is_field_value(b"\xff\x80 \t~!"));
        assert!(is_target_byte(b'/') && !is_target_byte(b' ') && !is_target_byte(b'#'));
        assert!(is_host(b"[::1]:8080") && !is_host(b"a b") && !is_host(b"u@h"));
        for b in 0..=255u8 {
            for len in 1..=20 {
                for at in 0..len {
                    let mut s = b"127.0.0.1:18080-abc~"[..len].to_vec();
                    s[at] = b;
                    assert_eq!(is_host(&s), HOST[b as usize], "{b:#x} at {at} of {len}");
                }
            }
        }
        assert!(is_host(b""));
        let text = b"abcdefghijklmnopqrstu";
        for len in 0..text.len() {
            let a = &text[..len];
            assert!(same_bytes(a, a));
            assert!(len == 0 || !same_bytes(a, &text[1..=len]));
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_bytes(a, &b) && !same_bytes(&b, a), "{len} {at}");
            }
            assert!(len == 0 || !same_bytes(a, &a[1..]));
        }
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"  "), b"");
        let v: Vec<&[u8]> = list_elements(b"a, b ,,c").collect();
        assert_eq!(v, [&b"a"[..], b"b", b"", b"c"]);
    }
}
